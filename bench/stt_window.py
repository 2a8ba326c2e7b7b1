"""Whisper tiny.en in the short encoder window against faster-whisper's own 30 s, same run,
with two threads and with one (COZY_STT_THREADS), alone and beside the end-of-turn model
(the voice asks both at the same moment of a pause).

Each transcribes the same espeak-ng utterances (the voice bench's questions, the pause
set's fragments, a few requests) as a turn delivers them: a little lead-in and 0.1 s
of trailing silence. Prints the median time per clip, the ratio to the full window, and
the word error rate against the words that were spoken ("2" for "two" counts as an error for all).

    flock /tmp/bench.lock .venv/bin/python bench/stt_window.py
"""
from __future__ import annotations

import re
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from providers import model_files  # noqa: E402
from providers.base import AudioClip  # noqa: E402
from providers.offline.end_of_turn import SmartTurn  # noqa: E402
from providers.offline.stt import LOOP_FREE_WINDOW_FRAMES, SHORT_WINDOW_FRAMES, WhisperSTT  # noqa: E402
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


def transcribe_timed(model: WhisperSTT, clip: np.ndarray, beside: SmartTurn | None) -> tuple[str, float]:
    """(words, seconds); `beside`: the end-of-turn model scores the same clip meanwhile."""
    other = threading.Thread(target=beside.probability, args=(clip,)) if beside is not None else None
    if other is not None:
        other.start()
    began = time.perf_counter()
    heard = model.transcribe(AudioClip(16_000, clip))
    seconds = time.perf_counter() - began
    if other is not None:
        other.join()
    return heard, seconds


def main() -> None:
    settings = Settings.from_env()
    folder = model_files.resolve("whisper-tiny.en", settings.models_dir, progress=lambda _: None).parent
    smart_turn = SmartTurn(model_files.resolve("smart-turn-v3.2", settings.models_dir, progress=lambda _: None))
    smart_turn.warmup()
    short = f"{SHORT_WINDOW_FRAMES / 100:g} s window"
    models = {"30 s window, 2 threads": WhisperSTT(folder, threads=2, short_window=False),
              "10 s window, 2 threads (before)": WhisperSTT(folder, threads=2, narrowest_window=LOOP_FREE_WINDOW_FRAMES),
              f"{short}, 2 threads": WhisperSTT(folder, threads=2),
              f"{short}, 1 thread": WhisperSTT(folder, threads=1)}
    texts = [*QUESTIONS, *(u.first for u in PAUSE_SET), *REQUESTS]
    clips = [np.concatenate([silence(0.3), question_speech(t) if t in QUESTIONS else trimmed(espeak_clip(t)),
                             silence(0.1)]) for t in texts]
    for model in models.values():
        model.warmup()
    results = {}
    for name, model in models.items():
        alone, beside, errors, said = [], [], 0, 0
        for round_ in range(3):  # alternate alone and beside, so both see the same machine
            for text, clip in zip(texts, clips):
                heard, seconds = transcribe_timed(model, clip, None)
                alone.append(seconds)
                beside.append(transcribe_timed(model, clip, smart_turn)[1])
                if round_ == 0:
                    wrong, total = word_errors(text, heard)
                    errors, said = errors + wrong, said + total
        results[name] = (statistics.median(alone), statistics.median(beside), errors / said)
    print(f"{len(texts)} espeak clips, {statistics.median(len(c) for c in clips) / 16_000:.1f} s median; "
          "median ms per clip, 3 rounds")
    full = results["30 s window, 2 threads"][0]
    for name, (alone_s, beside_s, wer) in results.items():
        print(f"  {name:<31} alone {alone_s * 1000:5.0f} ms ({full / alone_s:.1f}x faster than the full window)"
              f"   beside the end-of-turn model {beside_s * 1000:5.0f} ms   word error rate {wer:.3f}")


if __name__ == "__main__":
    main()
