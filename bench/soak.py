"""Soak: distinct prompts and voice calls against the real app; does RSS level off?

Starts the app as a separate process on 127.0.0.1 (its own data dir), then sends
distinct chat prompts through `/v1/chat/completions` and well-behaved voice calls
(websocket and phone, each ended a different way). Every 50 prompts and every 50
calls it prints the app's RSS, open voice slots and the breaker states, so the
curve can be read off. At the end: RSS growth over the last half of the prompts,
which stays near zero when memory is bounded.

    .venv/bin/python bench/soak.py [prompts=500] [calls=300] [model=smollm2-135m]
"""
from __future__ import annotations

import asyncio
import re
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import start_app, stop_app  # noqa: E402
from tests.test_voice_websocket_guard import ENDINGS, TELEPHONE, WEBSOCKET, one_call  # noqa: E402

BREAKER = re.compile(r'cozy_breaker_state\{modality="(\w+)",provider="([^"]+)"\} (\S+)')
STATES = {"0.0": "closed", "1.0": "half-open", "2.0": "open"}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def snapshot(app, label: str) -> float:
    health = httpx.get(f"{app.base_url}/healthz", timeout=10).json()
    metrics = httpx.get(f"{app.base_url}/metrics", timeout=10).text
    open_breakers = [f"{m}:{p}" for m, p, v in BREAKER.findall(metrics) if STATES.get(v) != "closed"]
    rss = rss_mb(app.process.pid)
    print(f"{label:>14}  rss {rss:7.0f} MB   voice slots open {health['voice_connections']}   "
          f"breakers not closed: {open_breakers or 'none'}", flush=True)
    return rss


def main() -> None:
    prompts = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    model = sys.argv[3] if len(sys.argv) > 3 else "smollm2-135m"
    with tempfile.TemporaryDirectory() as folder:
        app = start_app(Path(folder), {"COZY_LLM": model, "COZY_DATA_DIR": f"{folder}/data",
                                       "COZY_CONCURRENCY_LIMIT": "1", "COZY_RATE_LIMIT_RPM": "100000"})
        try:
            print(f"soak: {prompts} distinct prompts, then {calls} voice calls, model {model}")
            curve = [snapshot(app, "start")]
            with httpx.Client(base_url=app.base_url, timeout=180) as http:
                for index in range(1, prompts + 1):
                    http.post("/v1/chat/completions", json={
                        "model": ("concise", "companion", "tutor", "storyteller")[index % 4], "max_tokens": 8,
                        "messages": [{"role": "user", "content": f"Request {index}: give me one word "
                                                                 f"that rhymes with number {index * 7919}."}]})
                    if index % 50 == 0:
                        curve.append(snapshot(app, f"prompt {index}"))

            async def voice() -> None:
                refused = 0
                for index in range(1, calls + 1):
                    try:
                        await one_call(app, (WEBSOCKET, TELEPHONE)[index % 2], ENDINGS[(index // 2) % len(ENDINGS)])
                    except Exception as exc:  # noqa: BLE001 - counted: a refused call is what this soak looks for
                        refused += 1
                        print(f"call {index} failed: {type(exc).__name__}: {exc}", flush=True)
                    deadline = time.monotonic() + 10  # the slot comes back once the server has seen the close
                    while httpx.get(f"{app.base_url}/healthz").json()["voice_connections"] and \
                            time.monotonic() < deadline:
                        await asyncio.sleep(0.05)
                    if index % 50 == 0:
                        snapshot(app, f"call {index}")
                print(f"voice calls refused or failed: {refused} of {calls}")

            asyncio.run(voice())
            if len(curve) > 2:
                half = len(curve) // 2
                print(f"RSS over the prompts (MB, every 50): {[round(v) for v in curve]}")
                print(f"growth over the second half of the prompts: {curve[-1] - curve[half]:+.0f} MB; "
                      f"peak {max(curve):.0f} MB")
        finally:
            stop_app(app)


if __name__ == "__main__":
    main()
