"""/v1/realtime against the websocket voice route, in one run, on the real app, offline.

- voice route: end of speech -> first reply audio at a websocket client (FastRTC's route,
  our end-of-turn detection), audio sent in real time;
- realtime, server_vad: end of speech -> first `response.output_audio.delta`, audio sent in
  real time (the same end-of-turn detection decides);
- realtime, manual: `input_audio_buffer.commit` -> first `response.output_audio.delta`
  (turn_detection null: no endpointing at all).

Turns alternate between the three, a different country each turn so no reply comes from
the phrase cache. Medians; ratios against the voice route.

    flock /tmp/bench.lock .venv/bin/python bench/realtime_latency.py [--turns 5]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from tests.clients.realtime import realtime  # noqa: E402
from tests.clients.voice_ws import VoiceWebsocketClient, espeak_clip  # noqa: E402
from tests.conftest import isolated_env, start_app, stop_app  # noqa: E402

COUNTRIES = ["France", "Japan", "Germany", "Italy", "Spain", "Egypt", "Canada", "Peru"]
PERSONA = "companion"
CHUNK_S = 0.02


def question(turn: int, rate: int) -> np.ndarray:
    return espeak_clip(f"What is the capital of {COUNTRIES[turn % len(COUNTRIES)]}?", rate)


async def voice_route(base_url: str, turn: int) -> float | None:
    async with VoiceWebsocketClient(base_url) as client:
        recording = await client.speak(question(turn, 16_000), listen_s=30)
        return recording.first_audio_latency_s


async def _append(rt, samples: np.ndarray, paced: bool) -> None:
    step = int(24_000 * CHUNK_S)
    for start in range(0, samples.size, step):
        await rt.send({"type": "input_audio_buffer.append",
                       "audio": base64.b64encode(samples[start:start + step].astype("<i2").tobytes()).decode()})
        if paced:
            await asyncio.sleep(CHUNK_S)


async def _first_delta(rt, since: float) -> float | None:
    while True:
        event = await rt.recv(60)
        if event["type"] == "response.output_audio.delta":
            return time.perf_counter() - since
        if event["type"] == "response.done":
            return None


async def realtime_vad(base_url: str, turn: int) -> float | None:
    async with realtime(base_url, PERSONA) as rt:
        await rt.until("session.created")
        await _append(rt, question(turn, 24_000), paced=True)
        speech_ended = time.perf_counter()
        silence = asyncio.ensure_future(_append(rt, np.zeros(24_000 * 2, np.int16), paced=True))
        try:
            return await _first_delta(rt, speech_ended)
        finally:
            silence.cancel()


async def realtime_commit(base_url: str, turn: int) -> float | None:
    async with realtime(base_url, PERSONA) as rt:
        await rt.until("session.created")
        await rt.send({"type": "session.update", "session": {"type": "realtime",
                                                             "audio": {"input": {"turn_detection": None}}}})
        await rt.until("session.updated")
        await _append(rt, question(turn, 24_000), paced=False)
        await rt.send({"type": "input_audio_buffer.commit"})
        committed = time.perf_counter()
        await rt.until("conversation.item.done")
        await rt.send({"type": "response.create"})
        return await _first_delta(rt, committed)


PATHS = {"voice route (websocket)": voice_route, "realtime, server_vad": realtime_vad,
         "realtime, manual commit": realtime_commit}


async def run(base_url: str, turns: int) -> dict[str, list[float]]:
    seen: dict[str, list[float]] = {name: [] for name in PATHS}
    for turn in range(turns):
        for index, (name, path) in enumerate(PATHS.items()):
            latency = await path(base_url, turn * len(PATHS) + index)
            if latency is not None:
                seen[name].append(latency)
    return seen


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        app = start_app(Path(folder), isolated_env(Path(folder) / "data"))
        try:
            asyncio.run(run(app.base_url, 1))  # warm: the first turn of each path loads caches
            seen = asyncio.run(run(app.base_url, args.turns))
        finally:
            stop_app(app)
    baseline = statistics.median(seen["voice route (websocket)"])
    print(f"first reply audio, median ms over {args.turns} turns (ratio to the voice route):")
    for name, values in seen.items():
        median = statistics.median(values) if values else float("nan")
        print(f"  {name:26s} {median * 1000:6.0f}   {median / baseline:.2f}x   (n={len(values)})")


if __name__ == "__main__":
    main()
