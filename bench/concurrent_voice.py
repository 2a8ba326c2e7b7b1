"""Several people at once: 2, 4 and 8 websocket conversations ask their question at the
same moment, against the real app on this machine's cores.

Per level it prints the median end of speech -> first reply audio at the client (what a
caller waits in silence), how many first heard "One moment" (a turn that waited 1.5 s
for the model hears why, handlers/voice/turn.py: audio heard more than 0.5 s before the
answer's own first audio), and the median time to the answer's
own first audio. All connections are the local user here, so the per-user queue and
the connection limit are raised to the level (a public server counts each visitor).

    flock /tmp/bench.lock .venv/bin/python bench/concurrent_voice.py [--levels 2,4,8] [--model qwen2.5-1.5b]
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.voice_latency import QUESTIONS, spoken  # noqa: E402
from tests.clients.voice_ws import VoiceWebsocketClient  # noqa: E402
from tests.conftest import isolated_env, start_app, stop_app  # noqa: E402

SILENCE_BAR_S = 1.8


async def one_conversation(base_url: str, index: int, start: asyncio.Event) -> dict:
    async with VoiceWebsocketClient(base_url) as client:
        await start.wait()
        recording = await client.speak(spoken(QUESTIONS[index % len(QUESTIONS)]), listen_s=90)
        stages = recording.last_turn().get("stages_s", {})
        heard, answer = recording.first_audio_latency_s, stages.get("first_audio_s")
        # "One moment" is not in the transcript: audio heard well before the answer's own was it.
        waited = heard is not None and answer is not None and heard < answer - 0.5
        return {"first_audio_s": heard, "one_moment": waited, "answer_audio_s": answer,
                "error": recording.last_turn().get("error")}


async def level(base_url: str, count: int) -> list[dict]:
    start = asyncio.Event()
    tasks = [asyncio.create_task(one_conversation(base_url, i, start)) for i in range(count)]
    await asyncio.sleep(1.0)  # every connection is open and registered
    start.set()
    return await asyncio.gather(*tasks)


def median(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    return f"{statistics.median(present) * 1000:.0f}" if present else "-"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--levels", default="1,2,4,8")  # 1: the baseline the others are against
    parser.add_argument("--model", default="qwen2.5-1.5b")
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    folder = Path(tempfile.mkdtemp(prefix="cozy-bench-"))
    env = {**isolated_env(folder), "COZY_LOG_LEVEL": "WARNING", "COZY_LLM": args.model,
           "COZY_CONCURRENCY_LIMIT": str(max(levels)), "COZY_LOCAL_QUEUE_PER_USER": str(max(levels)),
           "COZY_LOCAL_QUEUE_MAX": str(max(levels) * 2)}
    if args.model != "qwen2.5-1.5b":
        env.pop("COZY_LLM_PATH")
    app = start_app(folder, env)
    rows = []
    try:
        for count in levels:
            results = asyncio.run(level(app.base_url, count))
            rows.append((count, results))
            errors = [r["error"] for r in results if r["error"]]
            print(f"  {count} at once: done{'; errors: ' + str(errors) if errors else ''}", flush=True)
    finally:
        stop_app(app)
    print(f"\n== {args.model}: end of speech -> audio, medians (ms)")
    print(f"  {'conversations':>13s} {'first audio heard':>18s} {'heard One moment':>17s} "
          f"{'silent > 1.8 s':>15s} {'answer audio (server)':>22s}")
    for count, results in rows:
        heard = sum(r["one_moment"] for r in results)
        # 1.5 s, and what the line takes to reach the client: longer is silence the caller sits through.
        silent = sum(r["first_audio_s"] is None or r["first_audio_s"] > SILENCE_BAR_S for r in results)
        print(f"  {count:>13d} {median([r['first_audio_s'] for r in results]):>18s} {heard:>9d} of {count:<5d}"
              f" {silent:>7d} of {count:<5d} {median([r['answer_audio_s'] for r in results]):>22s}")


if __name__ == "__main__":
    main()
