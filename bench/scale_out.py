"""What replicas buy, and what PostgreSQL costs, in one run.

1. API chat through nginx against a fake OpenAI-compatible upstream (a process of its own,
   standing in for a vLLM or llama.cpp server), with 1 replica and then 3 (deploy/local.sh):
   requests per second and median latency at a fixed number of concurrent clients.
2. The storage work of one turn (open the session, read its history, memory and profile,
   save both messages, complete the record), on the DuckDB file and on PostgreSQL.

    .venv/bin/python bench/scale_out.py [seconds per level] [concurrent clients]

Everything runs on this machine: on 2 cores, replicas share the same CPU, so the ratio
says what the extra processes cost or buy here, not on a cluster of machines.
"""
from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LOCAL_SH = ROOT / "deploy" / "local.sh"


def load(url: str, seconds: float, clients: int) -> tuple[float, float, int]:
    """(requests per second, median latency in ms, failed requests)."""
    latencies: list[float] = []
    failed = [0]
    stop_at = time.monotonic() + seconds
    lock = threading.Lock()

    def client(n: int) -> None:
        with httpx.Client(timeout=60) as http:
            i = 0
            while time.monotonic() < stop_at:
                i += 1
                started = time.perf_counter()
                response = http.post(f"{url}/v1/chat/completions", json={
                    "model": "concise", "user": f"bench-{n}",
                    "messages": [{"role": "user", "content": f"Question {i} from client {n}?"}]})
                with lock:
                    if response.status_code == 200:
                        latencies.append(time.perf_counter() - started)
                    else:
                        failed[0] += 1
    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return len(latencies) / elapsed, statistics.median(latencies) * 1000 if latencies else float("nan"), failed[0]


def cluster_levels(seconds: float, clients: int) -> dict[int, tuple[float, float, int]]:
    upstream = subprocess.Popen([sys.executable, "-m", "tests.fakes.vendor_server"], cwd=ROOT,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    from tests.fakes.vendor_server import API_KEY
    upstream_url = upstream.stdout.readline().strip()
    folder = tempfile.mkdtemp(prefix="cozy-bench-cluster-")
    env = {**os.environ, "COZY_CLUSTER_DIR": folder, "OPENAI_API_KEY": API_KEY,
           "OPENAI_BASE_URL": f"{upstream_url}/v1", "COZY_STT_ORDER": "offline", "COZY_TTS_ORDER": "offline",
           "COZY_LLM": "smollm2-135m", "COZY_PRELOAD_MODELS": "0", "COZY_RATE_LIMIT_RPM": "0",
           "COZY_LOG_LEVEL": "WARNING"}
    results = {}
    try:
        for replicas in (1, 3):
            out = subprocess.run(["bash", str(LOCAL_SH), "up", str(replicas)], env=env, check=True,
                                 capture_output=True, text=True, timeout=900).stdout
            url = re.search(r"URL (\S+)", out.strip().splitlines()[-1]).group(1)
            load(url, 3, clients)  # warm: connections, caches, first requests
            results[replicas] = load(url, seconds, clients)
    finally:
        subprocess.run(["bash", str(LOCAL_SH), "down"], env=env, capture_output=True, timeout=300)
        upstream.stdin.close()
        upstream.wait(10)
    return results


def storage_turn_ms(db, turns: int) -> float:
    """Median ms of one turn's storage work, as the orchestrator does it."""
    from memory.chat_memory import LocalChatMemory
    from memory.user_profile import LocalUserProfile
    from storage.conversations import ConversationStore

    store, memory, profile = ConversationStore(db), LocalChatMemory(db), LocalUserProfile(db)
    times = []
    for i in range(turns):
        user = f"user-{i % 20}"
        started = time.perf_counter()
        session = store.session_for_key(user, "companion", "bench")
        store.recent(session)
        memory.recall(user, f"what did I say about topic {i}?")
        profile.get(user)
        reply_id = store.save_turn(session, user, "companion", f"Tell me about topic {i}.", "Here it is.", {})
        store.update_metadata(reply_id, {"record": {"turn": i}})
        times.append(time.perf_counter() - started)
    return statistics.median(times[10:]) * 1000


def storage_levels(turns: int) -> tuple[float, float]:
    from storage.database import Database
    from storage.postgres import PostgresDatabase
    from tests.postgres_service import PostgresServer

    folder = Path(tempfile.mkdtemp(prefix="cozy-bench-db-"))
    duck = Database(folder / "cozy.duckdb")
    server = PostgresServer()
    pg = PostgresDatabase(server.new_database())
    try:
        duck_ms, pg_ms = [], []
        for _ in range(3):  # alternate, so drift favours neither
            duck_ms.append(storage_turn_ms(duck, turns))
            pg_ms.append(storage_turn_ms(pg, turns))
        return statistics.median(duck_ms), statistics.median(pg_ms)
    finally:
        duck.close()
        pg.close()
        server.stop()


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 20
    clients = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    duck_ms, pg_ms = storage_levels(200)
    print(f"storage per turn (median of 3 x 200 turns): DuckDB {duck_ms:.2f} ms, PostgreSQL {pg_ms:.2f} ms, "
          f"ratio {pg_ms / duck_ms:.2f}x")
    levels = cluster_levels(seconds, clients)
    base_rps = levels[1][0]
    print(f"API chat through nginx, fake upstream, {clients} concurrent clients, {seconds:g} s per level:")
    print("replicas  req/s   p50 ms  failed  req/s vs 1 replica")
    for replicas, (rps, p50, failed) in levels.items():
        print(f"{replicas:>8}  {rps:6.1f}  {p50:7.1f}  {failed:6d}  {rps / base_rps:.2f}x")


if __name__ == "__main__":
    main()
