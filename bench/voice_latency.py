"""Voice latency and idle cost, measured end to end against the real app.

For each model (default and fast) and each behaviour it starts the app, holds spoken
turns over the websocket route at real-time pace and over WebRTC (an aiortc peer),
and prints the median of every stage plus the end-of-speech -> first reply audio
time seen by each client, in one table:
- stock: stock FastRTC ReplyOnPause with the same offline models, as a FastRTC demo
  would use them (bench/stock_fastrtc_app.py; the client's figure only);
- old: the first whole sentence, nothing read before the turn is taken, Whisper's
  30 s window, a fixed 0.5 s silence ends the turn, and the models write and transcribe
  with every core (COZY_EARLY_REPLY=0 COZY_END_OF_TURN=silence COZY_STT_WINDOW=full
  COZY_LLM_DECODE_THREADS and COZY_STT_THREADS = cores);
- early: the reply starts on its first clause, the model reads the prompt's start
  while the user speaks and the rest during the pause (COZY_EARLY_REPLY=1), still
  with the fixed silence;
- new: early, with the default end of turn (the end-of-turn model).
"End of speech" is the last sample of the spoken words (a clip's trailing silence is
cut off), so the client's and the server's figures start at the same moment.
It counts gaps in the reply audio as the websocket client would play it (a piece that
arrives after the one before has finished playing). Then it measures the CPU an open,
silent connection costs, against stock FastRTC ReplyOnPause in the same run.

    flock /tmp/bench.lock .venv/bin/python bench/voice_latency.py [--turns 5] [--webrtc-turns 3]
        [--models qwen2.5-1.5b,smollm2-135m] [--modes stock,old,early,new] [--rounds 1] [--no-idle]

With --rounds N it goes through every model and behaviour N times and pools the turns, so a
slow spell of the (shared, virtual) machine falls on every behaviour alike; it also prints
every turn's figure, so a median can be read against the spread.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.clients.voice_webrtc import webrtc_turn  # noqa: E402
from tests.clients.voice_ws import VoiceWebsocketClient, espeak_clip  # noqa: E402
from tests.conftest import free_port, isolated_env, start_app, stop_app  # noqa: E402

QUESTIONS = [
    "what is the capital of France",
    "how many legs does a spider have",
    "what colour is the sky on a clear day",
    "name a fruit that is yellow",
    "what is two plus two",
    "who wrote romeo and juliet",
    "what do bees make",
]
MODES = {"stock": {"COZY_STOCK_REPLY": "answer"},
         "old": {"COZY_EARLY_REPLY": "0", "COZY_END_OF_TURN": "silence", "COZY_STT_WINDOW": "full",
                 "COZY_LLM_DECODE_THREADS": str(min(4, os.cpu_count() or 2)),
                 "COZY_STT_THREADS": str(min(4, os.cpu_count() or 2))},
         "early": {"COZY_EARLY_REPLY": "1", "COZY_END_OF_TURN": "silence"},
         "new": {"COZY_EARLY_REPLY": "1"}}
STAGES = [
    ("endpointing_s", "endpointing (end of speech -> turn taken)"),
    ("stt_s", "speech-to-text (after the turn is taken)"),
    ("llm_first_token_s", "LLM first token (from its start)"),
    ("llm_first_piece_s", "LLM first clause ready (from its start)"),
    ("tts_first_audio_s", "TTS first audio (from the clause)"),
    ("first_audio_s", "server: end of speech -> first audio out"),
    ("client_first_audio_s", "websocket client: end of speech -> audio"),
    ("transport_s", "transport (websocket client - server)"),
    ("webrtc_first_audio_s", "WebRTC client: end of speech -> audio"),
]
GAP_TOLERANCE_S = 0.03  # a frame this late is still played without an audible break


def spoken(text: str) -> np.ndarray:
    """espeak's clip of `text`, ending on its last audible sample (espeak adds silence after it)."""
    clip = espeak_clip(text)
    loud = np.flatnonzero(np.abs(clip.astype(np.int32)) > 100)  # about -50 dBFS: the last word's tail stays
    return clip[:loud[-1] + 1] if loud.size else clip


def playback_gaps(frames: list[dict], arrivals: list[float], rate: int = 24_000) -> list[float]:
    """Silences inside a reply as a client playing each media frame on arrival would hear
    them: a frame that arrives after everything before it has finished playing."""
    gaps, play_end = [], None
    for frame, arrived in zip(frames, arrivals):
        if frame.get("event") != "media":
            continue
        seconds = len(base64.b64decode(frame["media"]["payload"])) / rate
        if play_end is not None and arrived > play_end + GAP_TOLERANCE_S:
            gaps.append(arrived - play_end)
        play_end = max(play_end or arrived, arrived) + seconds
    return gaps


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def spoken_turns(base_url: str, turns: int, stock: bool = False) -> list[dict]:
    results = []
    async with VoiceWebsocketClient(base_url) as client:
        for index in range(turns):
            question = spoken(QUESTIONS[index % len(QUESTIONS)])
            frames_before = len(client.frames)
            # The stock handler reports no turn record: listen long enough for a reply instead.
            recording = await client.speak(question, listen_s=12 if stock else 25, until_reply_done=not stock)
            stages = recording.last_turn().get("stages_s", {})
            latency = recording.first_audio_latency_s
            gaps = playback_gaps(client.frames[frames_before:], client.arrivals[frames_before:])
            results.append({**stages, "client_first_audio_s": latency, "gaps": len(gaps),
                            "longest_gap_s": max(gaps, default=0.0),
                            "transport_s": None if latency is None or "first_audio_s" not in stages
                            else latency - stages["first_audio_s"],
                            "reply": " ".join(m["content"] for m in recording.transcript()[-1:])})
            await asyncio.sleep(0.5)
    return results


async def webrtc_turns(base_url: str, turns: int) -> list[dict]:
    results = []
    for index in range(turns):
        result = await webrtc_turn(base_url, spoken(QUESTIONS[index % len(QUESTIONS)]), listen_s=25)
        heard, ended = result["first_audio_at"], result["speech_ended_at"]
        results.append({"webrtc_first_audio_s": None if heard is None or ended is None else heard - ended})
    return results


async def silent_connections(base_url: str, count: int, seconds: float) -> None:
    clients = [VoiceWebsocketClient(base_url) for _ in range(count)]
    for client in clients:
        await client.__aenter__()
    silence = np.zeros(16_000 * int(seconds), np.int16)
    await asyncio.gather(*(client._send_pcm(silence) for client in clients))
    for client in clients:
        await client.__aexit__(None, None, None)


def idle_cpu_per_connection(base_url: str, pid: int, count: int = 2, seconds: float = 10.0) -> float:
    # Baseline: the process itself, with no connection, over the same time.
    before = cpu_seconds(pid)
    time.sleep(seconds)
    process_only = cpu_seconds(pid) - before
    before = cpu_seconds(pid)
    asyncio.run(silent_connections(base_url, count, seconds))
    with_connections = cpu_seconds(pid) - before
    return max(0.0, with_connections - process_only) / seconds / count


def stock_turns(env: dict[str, str], turns: int) -> list[dict]:
    """The same spoken turns against stock ReplyOnPause serving the same models."""
    port = free_port()
    stock = subprocess.Popen([sys.executable, str(ROOT / "bench" / "stock_fastrtc_app.py")],
                             env={**os.environ, **env, "COZY_PORT": str(port)}, cwd=ROOT)
    try:
        wait_for_port(port, stock)
        return asyncio.run(spoken_turns(f"http://127.0.0.1:{port}", turns, stock=True))
    finally:
        stock.terminate()
        stock.wait(timeout=20)


def wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 180.0) -> None:
    import socket

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the stock FastRTC app exited while starting")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError("the stock FastRTC app did not start listening")


def median(values: list[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def table(columns: dict[str, list[dict]]) -> None:
    names = list(columns)
    print("\n== medians (ms); columns: model/behaviour, "
          + ", ".join(f"{n}: {len(columns[n])} turns" for n in names))
    print(f"  {'stage':<46}" + "".join(f"{n:>20}" for n in names))
    for key, label in STAGES:
        cells = []
        for name in names:
            value = median([r.get(key) for r in columns[name]])
            cells.append("n/a" if value is None else f"{value * 1000:.0f}")
        print(f"  {label:<46}" + "".join(f"{c:>20}" for c in cells))
    gaps = []
    for name in names:
        turns = [r for r in columns[name] if "gaps" in r]
        gaps.append(f"{sum(r['gaps'] for r in turns)}/{len(turns)} max "
                    f"{max((r['longest_gap_s'] for r in turns), default=0) * 1000:.0f}")
    print(f"  {'gaps in reply audio / turns, longest (ms)':<46}" + "".join(f"{g:>20}" for g in gaps))
    print("\n== every turn, end of speech -> audio at the client (ms, in the order held)")
    for name in names:
        for key, label in (("client_first_audio_s", "websocket"), ("webrtc_first_audio_s", "WebRTC")):
            turns = [r[key] for r in columns[name] if r.get(key) is not None]
            if turns:
                print(f"  {name:<22} {label:<10} " + " ".join(f"{t * 1000:.0f}" for t in turns))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--webrtc-turns", type=int, default=3)
    parser.add_argument("--models", default="qwen2.5-1.5b,smollm2-135m")
    parser.add_argument("--modes", default="stock,old,early,new")
    parser.add_argument("--rounds", type=int, default=1,
                        help="go through every model and behaviour this many times, pooling the turns: "
                             "a slow spell of the machine then falls on every behaviour alike")
    parser.add_argument("--no-idle", action="store_true", help="skip the idle-connection CPU comparison")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cozy-bench-"))
    idle_ours = None
    columns: dict[str, list[dict]] = {}
    rounds = ((r, model, mode) for r in range(args.rounds)
              for model in args.models.split(",") for mode in args.modes.split(","))
    for round_index, model, mode in rounds:
        folder = tmp / f"{model}-{mode}-{round_index + 1}"
        folder.mkdir(parents=True)
        env = {**isolated_env(folder), "COZY_LOG_LEVEL": "WARNING", "COZY_LLM": model, **MODES[mode]}
        if model != "qwen2.5-1.5b":
            env.pop("COZY_LLM_PATH")
        if mode == "stock":
            columns.setdefault(f"{model}/stock", []).extend(stock_turns(env, args.turns))
            continue
        app = start_app(folder, env)
        try:
            results = asyncio.run(spoken_turns(app.base_url, args.turns))
            results += asyncio.run(webrtc_turns(app.base_url, args.webrtc_turns))
            columns.setdefault(f"{model}/{mode}", []).extend(results)
            for result in results:
                if result.get("reply"):
                    print(f"  [{model}/{mode}] {result['reply'][:100]!r}")
            if idle_ours is None and not args.no_idle:
                idle_ours = idle_cpu_per_connection(app.base_url, app.process.pid)
        finally:
            stop_app(app)
    table(columns)
    if args.no_idle:
        return

    port = free_port()
    stock = subprocess.Popen([sys.executable, str(ROOT / "bench" / "stock_fastrtc_app.py")],
                             env={**os.environ, "COZY_PORT": str(port)}, cwd=ROOT)
    try:
        wait_for_port(port, stock)
        idle_stock = idle_cpu_per_connection(f"http://127.0.0.1:{port}", stock.pid)
    finally:
        stock.terminate()
        stock.wait(timeout=20)
    print("\n== idle cost of an open connection sending silence (CPU cores per connection)")
    print(f"  CozyEngine handler      {idle_ours:.3f}")
    print(f"  stock FastRTC 0.0.34    {idle_stock:.3f}")
    if idle_ours:
        print(f"  ratio stock/ours        {idle_stock / idle_ours:.1f}x")


if __name__ == "__main__":
    main()
