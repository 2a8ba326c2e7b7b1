"""Barge-in latency: how soon the caller's audio stops when they talk over a reply.

Starts the app (fast model, the storyteller persona, so replies are long), and for each
route holds calls in which the client asks for a story, waits until the reply has played
for a second, then talks over it at real-time pace. Measured from the moment the
interrupting speech starts (client clock):
- phone (`/voice/telephone/handler`, Twilio's protocol): -> the `clear` for the call's
  streamSid, and -> the last frame of the interrupted reply's audio;
- websocket (`/voice/websocket/offer`): -> the `clear` (the client drops the audio it holds
  ahead of playback: FastRTC sends a reply as fast as it is made), and -> the last frame of
  the interrupted reply's audio (often before the interruption: all of it had been sent).
Prints medians; the floor is what the VAD needs before it can know speech has started
(COZY_MIN_SPEECH_S of speech, in 32 ms windows).

    .venv/bin/python bench/barge_in_latency.py [--calls 5]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from providers import model_files  # noqa: E402
from tests.clients.voice_ws import PhoneCallClient, VoiceWebsocketClient, espeak_clip  # noqa: E402
from tests.conftest import isolated_env, start_app, stop_app  # noqa: E402

GAP_S = 0.4  # no reply audio for this long: the interrupted reply has stopped


async def one_interruption(client, question: np.ndarray, interruption: np.ndarray) -> dict[str, float | None]:
    rate = client.input_rate
    silence = np.zeros(int(rate * 0.2), np.int16)
    async with client:
        await client._send_pcm(np.concatenate([np.zeros(int(rate * 0.3), np.int16), question]))
        deadline = time.perf_counter() + 60
        while client._recording.first_audio_at is None and time.perf_counter() < deadline:
            await client._send_pcm(silence)
        if client._recording.first_audio_at is None:
            return {"clear_s": None, "last_audio_s": None}
        while time.perf_counter() < client._recording.first_audio_at + 1.0:
            await client._send_pcm(silence)
        spoke_at = time.perf_counter()
        await client._send_pcm(np.concatenate([interruption, np.zeros(int(rate * 1.5), np.int16)]))
        frames = list(zip(client.arrivals, client.frames))
    clear = next((t for t, f in frames if t >= spoke_at and f.get("event") == "clear"), None)
    last_audio, previous = None, spoke_at
    for t, frame in frames:
        if t < spoke_at or frame.get("event") != "media":
            continue
        if t - previous > GAP_S:
            break  # what comes after a gap is the answer to the interruption
        last_audio = previous = t
    return {"clear_s": None if clear is None else clear - spoke_at,
            "last_audio_s": (last_audio or spoke_at) - spoke_at}


def median_ms(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "n/a"
    return f"{statistics.median(known) * 1000:.0f} ms (n={len(known)}, range {min(known) * 1000:.0f}-" \
           f"{max(known) * 1000:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    settings = Settings.from_env()
    folder = Path(tempfile.mkdtemp(prefix="barge-in-"))
    fast = model_files.resolve("smollm2-135m", settings.models_dir)
    app = start_app(folder, {**isolated_env(folder / "data"), "COZY_LLM": "smollm2-135m", "COZY_LLM_PATH": str(fast),
                             "COZY_DEFAULT_PERSONA": "storyteller"})
    try:
        results = {}
        for route in ("phone", "websocket"):
            rate = 8_000 if route == "phone" else 16_000
            question = espeak_clip("tell me a long story about a dragon and a lighthouse", sample_rate=rate)
            interruption = espeak_clip("wait, stop, I have a question", sample_rate=rate)
            runs = []
            for _ in range(args.calls):
                client = PhoneCallClient(app.base_url) if route == "phone" else VoiceWebsocketClient(app.base_url)
                runs.append(asyncio.run(one_interruption(client, question, interruption)))
            results[route] = runs
        vad = settings.voice
        print(f"barge-in, {args.calls} interruptions per route (client clock, from the start of the "
              f"interrupting speech):")
        print(f"  floor: the VAD needs {vad.min_speech_s * 1000:.0f} ms of speech (COZY_MIN_SPEECH_S) in 32 ms "
              f"windows before it can know")
        phone = results["phone"]
        print(f"  phone     -> clear sent:          {median_ms([r['clear_s'] for r in phone])}")
        print(f"  phone     -> last reply audio:    {median_ms([r['last_audio_s'] for r in phone])}")
        print(f"  websocket -> clear sent:          {median_ms([r['clear_s'] for r in results['websocket']])}")
        print(f"  websocket -> last reply audio:    {median_ms([r['last_audio_s'] for r in results['websocket']])}")
    finally:
        stop_app(app)


if __name__ == "__main__":
    main()
