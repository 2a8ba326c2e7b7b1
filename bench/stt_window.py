"""Whisper tiny.en in a 10 s encoder window against faster-whisper's own 30 s, same run.

Both transcribe the same espeak-ng utterances (the voice bench's questions, the pause
set's fragments, a few requests) as a turn delivers them: a little lead-in and 0.1 s
of trailing silence. Prints the median time per clip, the ratio, and the word error
rate of each against the words that were spoken ("2" for "two" counts as an error for both).

    flock /tmp/bench.lock .venv/bin/python bench/stt_window.py
"""
from __future__ import annotations

import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from providers import model_files  # noqa: E402
from providers.base import AudioClip  # noqa: E402
from providers.offline.stt import WhisperSTT  # noqa: E402
from tests.pause_set import PAUSE_SET, QUESTIONS, question_speech, silence, trimmed  # noqa: E402
from tests.clients.voice_ws import espeak_clip  # noqa: E402

REQUESTS = ("please remember that my favourite colour is green", "set a timer for ten minutes",
            "could you remind me to call my mother tomorrow morning", "what is the weather like today in London",
            "my name is Alice and I live in Paris", "turn the lights off in the kitchen please")


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


def word_errors(said: str, heard: str) -> tuple[int, int]:
    """(edit distance in words, words said)."""
    ref, hyp = words(said), words(heard)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[len(hyp)], len(ref)


def main() -> None:
    folder = model_files.resolve("whisper-tiny.en", Settings.from_env().models_dir, progress=lambda _: None).parent
    models = {"full 30 s window": WhisperSTT(folder, short_window=False), "short 10 s window": WhisperSTT(folder)}
    texts = [*QUESTIONS, *(u.first for u in PAUSE_SET), *REQUESTS]
    clips = [np.concatenate([silence(0.3), question_speech(t) if t in QUESTIONS else trimmed(espeak_clip(t)),
                             silence(0.1)]) for t in texts]
    results = {}
    for name, model in models.items():
        model.warmup()
        seconds, errors, said = [], 0, 0
        for text, clip in zip(texts, clips):
            began = time.perf_counter()
            heard = model.transcribe(AudioClip(16_000, clip))
            seconds.append(time.perf_counter() - began)
            wrong, total = word_errors(text, heard)
            errors, said = errors + wrong, said + total
        results[name] = (statistics.median(seconds), errors / said)
    print(f"{len(texts)} espeak clips, {statistics.median(len(c) for c in clips) / 16_000:.1f} s median")
    for name, (median_s, wer) in results.items():
        print(f"  {name:<18} median {median_s * 1000:5.0f} ms   word error rate {wer:.3f}")
    (full, _), (short, _) = results.values()
    print(f"  full / short       {full / short:.1f}x")


if __name__ == "__main__":
    main()
