"""When is the user done? The old rule (a fixed 0.5 s silence) against Smart Turn, same run.

Every utterance is streamed in 20 ms frames at audio time through the Silero VAD and the
turn detector, as handlers/voice/reply_on_pause.py does; the early transcript (Whisper,
started at 0.1 s of silence) and the end-of-turn check (model, then the words) really run,
and a verdict counts only once its compute time has passed in audio time.

- Pause set (tests/pause_set.py, mid-sentence pauses of 0.5-1.0 s): premature end of turn
  is any turn ended before the last word was spoken. Target: at most 1 in 10.
- Complete questions: endpointing = end of speech -> turn ended, median.
Each rule is also run on phone audio (8 kHz mu-law, back to 16 kHz) with its phone settings.

    flock /tmp/bench.lock .venv/bin/python bench/end_of_turn.py
"""
from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.phone_audio_accuracy import phone_line  # noqa: E402
from config import Settings  # noqa: E402
from handlers.voice.end_of_turn import TurnTakingPolicy, ends_mid_phrase  # noqa: E402
from handlers.voice.reply_on_pause import PREROLL_S  # noqa: E402
from handlers.voice.turn_detector import SILENCE, TurnDetector, TurnDetectorOptions, TurnEvent  # noqa: E402
from providers import model_files  # noqa: E402
from providers.base import AudioClip  # noqa: E402
from providers.offline.end_of_turn import SmartTurn  # noqa: E402
from providers.offline.stt import WhisperSTT  # noqa: E402
from providers.offline.vad import SileroVad  # noqa: E402
from tests.pause_set import PAUSE_SET, QUESTIONS, paused_speech, question_speech, silence  # noqa: E402

RATE = 16_000
FRAME = 320  # 20 ms, as the websocket client sends
LEAD_S, TAIL_S = 0.5, 3.0


@dataclass
class Models:
    vad: SileroVad
    model: SmartTurn
    stt: WhisperSTT
    check_ms: list[float]
    stt_ms: list[float]


@dataclass(frozen=True)
class Rule:
    name: str
    options: TurnDetectorOptions
    words: bool = True  # the early-transcript veto


def turn_ends(models: Models, rule: Rule, speech: np.ndarray) -> list[float]:
    """Audio times (s, from the end of speech) at which turns ended."""
    audio = np.concatenate([silence(LEAD_S), speech, silence(TAIL_S)])
    speech_end_s = LEAD_S + len(speech) / RATE
    detector, stream = TurnDetector(rule.options), models.vad.stream()
    kept: list[np.ndarray] = []
    early: tuple[float, str] | None = None  # (ready at, words)
    check: tuple[int, float, bool] | None = None  # (pause, ready at, finished)
    ends: list[float] = []
    for start in range(0, len(audio), FRAME):
        frame = audio[start:start + FRAME]
        kept.append(frame)
        now = (start + len(frame)) / RATE
        events = detector.feed(stream.feed(frame))
        if check is not None and now >= check[1] and not detector.too_soon(check[0]):
            pause, _, finished = check
            check = None
            if finished and detector.in_pause(pause):
                events += detector.end_now()
        for event in events:
            turn_audio = np.concatenate(kept)
            if event is TurnEvent.PAUSE_STARTED:
                began = time.perf_counter()
                words = models.stt.transcribe(AudioClip(RATE, turn_audio))
                spent = time.perf_counter() - began
                models.stt_ms.append(spent * 1000)
                early = (now + spent, words)
            elif event is TurnEvent.SPEECH_RESUMED:
                early = None
            elif event is TurnEvent.CHECK_TURN:
                began = time.perf_counter()
                probability = models.model.probability(turn_audio)
                spent = time.perf_counter() - began
                models.check_ms.append(spent * 1000)
                finished = probability >= rule.options.threshold
                ready = now + spent
                if finished and rule.words and early is not None:
                    ready = max(ready, early[0])
                    finished = not ends_mid_phrase(early[1])
                check = (detector.pause_index, ready, finished)
            elif event is TurnEvent.TURN_ENDED:
                ends.append(now - speech_end_s)
                kept, early, check = [], None, None
        if not detector.in_turn and kept:
            # Between turns keep only the preroll, as the handler does.
            joined = np.concatenate(kept)
            kept = [joined[-int(PREROLL_S * RATE):]]
    return ends


def run(models: Models, rule: Rule, phone: bool) -> dict:
    line = phone_line if phone else (lambda s: s)
    premature = 0
    for utterance in PAUSE_SET:
        ends = turn_ends(models, rule, line(paused_speech(utterance)))
        premature += any(end < -0.05 for end in ends)  # a turn taken before the last words
    endpointing = []
    for text in QUESTIONS:
        ends = [e for e in turn_ends(models, rule, line(question_speech(text))) if e >= -0.05]
        endpointing.append(ends[0] if ends else TAIL_S)
    return {"premature": premature, "of": len(PAUSE_SET), "endpointing_s": statistics.median(endpointing),
            "worst_s": max(endpointing)}


def main() -> None:
    settings = Settings.from_env()
    d = settings.models_dir
    models = Models(vad=SileroVad(model_files.resolve("silero-vad-v5", d, progress=lambda _: None)),
                    model=SmartTurn(model_files.resolve("smart-turn-v3.2", d, progress=lambda _: None)),
                    stt=WhisperSTT(model_files.resolve("whisper-tiny.en", d, progress=lambda _: None).parent),
                    check_ms=[], stt_ms=[])
    models.model.warmup()
    models.stt.warmup()
    voice = settings.voice
    policy = TurnTakingPolicy(voice, have_model=True)
    old = replace(policy.base(), end_of_turn=SILENCE, end_of_turn_silence_s=0.5)
    smart = policy.base()
    rules = [Rule("old: 0.5 s silence", old)]
    for fallback in (1.0, 1.2, 1.5):
        rules.append(Rule(f"smart, fallback {fallback:.1f} s", replace(smart, fallback_silence_s=fallback)))
    rules.append(Rule(f"smart, model alone (no word veto), fallback {smart.fallback_silence_s:.1f} s", smart,
                      words=False))
    print(f"{'rule':58s} {'channel':7s} {'premature':>10s} {'endpoint med':>13s} {'worst':>6s}")
    for rule in rules:
        for phone in (False, True):
            r = rule
            if phone and rule.options.smart:
                phone_options = policy.options_for(None, phone=True)
                r = replace(rule, options=replace(rule.options, threshold=phone_options.threshold))
            result = run(models, r, phone)
            print(f"{r.name:58s} {'phone' if phone else 'web':7s} {result['premature']:>4d} of {result['of']:<3d}"
                  f" {result['endpointing_s']:>12.2f}s {result['worst_s']:>5.2f}s", flush=True)
    phone = policy.options_for(None, phone=True)
    result = run(models, Rule(f"phone settings: threshold {phone.threshold}, fallback "
                              f"{phone.fallback_silence_s} s", phone), True)
    print(f"{'phone defaults':58s} {'phone':7s} {result['premature']:>4d} of {result['of']:<3d}"
          f" {result['endpointing_s']:>12.2f}s {result['worst_s']:>5.2f}s")
    print(f"\nend-of-turn check (features + model): median {statistics.median(models.check_ms):.0f} ms, "
          f"max {max(models.check_ms):.0f} ms over {len(models.check_ms)} checks; "
          f"early transcript median {statistics.median(models.stt_ms):.0f} ms")


if __name__ == "__main__":
    main()
