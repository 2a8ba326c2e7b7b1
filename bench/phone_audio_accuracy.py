"""Does a phone line's 8 kHz mu-law hurt turn-taking and recognition? Same speech, two ways.

Each sentence (espeak-ng voices, several speakers and speeds) is fed as a call would feed
it: in 20 ms frames with silence around, through the Silero VAD and the turn detector,
and the turn's audio to Whisper. Once at 16 kHz (browser/websocket), once as the phone
sends it: 8 kHz, mu-law encoded, then resampled once to 16 kHz (FastRTC's telephone
route). Prints, per path, how many sentences gave exactly one turn, and the word error
rate of the transcripts.

    .venv/bin/python bench/phone_audio_accuracy.py
"""
from __future__ import annotations

import audioop
import re
import sys
from collections import deque
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from providers.pcm import resample  # noqa: E402
from handlers.voice.reply_on_pause import PREROLL_S  # noqa: E402
from handlers.voice.turn_detector import TurnDetector, TurnDetectorOptions, TurnEvent  # noqa: E402
from providers import model_files  # noqa: E402
from providers.base import AudioClip  # noqa: E402
from providers.offline.stt import WhisperSTT  # noqa: E402
from providers.offline.vad import SileroVad  # noqa: E402
from tests.clients.voice_ws import espeak_clip  # noqa: E402

SENTENCES = [
    "what is the capital of France",
    "set a reminder for tomorrow at nine",
    "how many legs does a spider have",
    "tell me a story about a lighthouse",
    "what time is it in Tokyo right now",
    "please note that the wifi password is on the fridge",
    "what is seventeen times twenty three",
    "who wrote romeo and juliet",
    "can you recommend a good book for a rainy day",
    "how far away is the moon",
]
VOICES = ["en-us", "en-gb", "en-us+f3"]


def phone_line(samples_16k: np.ndarray) -> np.ndarray:
    """16 kHz speech as it reaches us from a phone call: 8 kHz mu-law, back to 16 kHz once."""
    narrow = resample(samples_16k, 16_000, 8_000)
    mulaw = audioop.lin2ulaw(narrow.astype(np.int16).tobytes(), 2)
    decoded = np.frombuffer(audioop.ulaw2lin(mulaw, 2), np.int16)
    return resample(decoded, 8_000, 16_000)


def turns_in(vad: SileroVad, options: TurnDetectorOptions, samples: np.ndarray) -> list[np.ndarray]:
    detector, stream = TurnDetector(options), vad.stream()
    padded = np.concatenate([np.zeros(8_000, np.int16), samples, np.zeros(24_000, np.int16)])
    turns, current = [], []
    preroll: deque[np.ndarray] = deque(maxlen=int(PREROLL_S / 0.02))  # as the handler keeps it
    for start in range(0, len(padded), 320):
        frame = padded[start:start + 320]
        events = detector.feed(stream.feed(frame))
        if TurnEvent.SPEECH_STARTED in events:
            current = [*preroll, frame]
        elif detector.in_turn:
            current.append(frame)
        preroll.append(frame)
        if TurnEvent.TURN_ENDED in events:
            turns.append(np.concatenate(current))
            current = []
    return turns


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("17", "seventeen").replace("23", "twenty three"))


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ref != hyp))
    return row[-1]


def main() -> None:
    settings = Settings.from_env()
    v = settings.voice
    options = TurnDetectorOptions(speech_probability=v.speech_probability, min_speech_s=v.min_speech_s,
                                  end_of_turn_silence_s=v.end_of_turn_silence_s, max_turn_s=v.max_continuous_speech_s)
    vad = SileroVad(model_files.resolve("silero-vad-v5", settings.models_dir), threshold=v.speech_probability)
    stt_path = model_files.resolve("whisper-tiny.en", settings.models_dir)
    stt = WhisperSTT(stt_path if stt_path.is_dir() else stt_path.parent)
    totals = {"16 kHz": [0, 0, 0, 0], "phone 8 kHz mu-law": [0, 0, 0, 0]}  # one turn, clips, errors, words
    for voice in VOICES:
        for sentence in SENTENCES:
            clean = espeak_clip(sentence, voice=voice)
            for path, samples in (("16 kHz", clean), ("phone 8 kHz mu-law", phone_line(clean))):
                turns = turns_in(vad, options, samples)
                heard = " ".join(stt.transcribe(AudioClip(16_000, t)) for t in turns)
                total = totals[path]
                total[0] += len(turns) == 1
                total[1] += 1
                total[2] += word_errors(words(sentence), words(heard))
                total[3] += len(words(sentence))
    print(f"{len(SENTENCES)} sentences x {len(VOICES)} espeak voices, VAD + turn detector + Whisper tiny.en:")
    for path, (one_turn, clips, errors, count) in totals.items():
        print(f"  {path:20s} exactly one turn: {one_turn}/{clips}   word error rate: {errors / count:.1%}")


if __name__ == "__main__":
    main()
