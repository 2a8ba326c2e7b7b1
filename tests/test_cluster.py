"""Three replicas behind nginx, on PostgreSQL and Redis, started by deploy/local.sh as a user would.

The LLM is a fake OpenAI-compatible upstream on loopback (what a vLLM or llama.cpp server
is at scale); speech is the local Whisper and Piper. One replica is killed with SIGKILL in
the middle of traffic, and then every replica is restarted in turn with SIGTERM.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from handlers.api.auth import end_user_id
from tests import postgres_service
from tests.clients.voice_ws import VoiceWebsocketClient, espeak_clip
from tests.conftest import ROOT
from tests.fakes.vendor_server import FakeVendorServer

LOCAL_SH = ROOT / "deploy" / "local.sh"
KEYS = {"k-alice": "alice", "k-bob": "bob", "k-carol": "carol", "k-dora": "dora", "k-erin": "erin",
        **{f"k-r{i}": f"restarter{i}" for i in range(8)}}
RPM = 10  # per user, across the cluster


def _installed() -> bool:
    import shutil
    return bool(postgres_service.server_binaries() and shutil.which("redis-server")
                and (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()))


class Cluster:
    def __init__(self, folder: Path, env: dict[str, str]):
        self.folder, self.env = folder, env

    def run(self, *args: str, timeout: float = 900) -> str:
        done = subprocess.run(["bash", str(LOCAL_SH), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        assert done.returncode == 0, f"local.sh {' '.join(args)} failed:\n{done.stderr[-3000:]}\n{self.logs()}"
        return done.stdout

    def state(self, name: str) -> str:
        return (self.folder / "state" / name).read_text().strip()

    def pid(self, i: int) -> int:
        return int((self.folder / f"replica-{i}.pid").read_text())

    def replica_url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.state(f'replica-{i}.port')}"

    def db(self) -> psycopg.Connection:
        url = f"postgresql://cozy:{self.state('pg_password')}@127.0.0.1:{self.state('pg_port')}/cozy"
        return psycopg.connect(url, autocommit=True)

    def logs(self) -> str:
        tails = []
        for log in sorted(self.folder.glob("replica-*.log")):
            tails.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(tails)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not _installed():
        pytest.skip("needs postgresql, redis-server and nginx (deploy/local.sh installs them as root)")
    folder = tmp_path_factory.mktemp("cluster")
    with FakeVendorServer() as upstream:
        upstream.script.chat_text = ["Noted", ", thank", " you", "."]
        env = {**os.environ, "COZY_CLUSTER_DIR": str(folder),
               "OPENAI_API_KEY": upstream.api_key, "OPENAI_BASE_URL": f"{upstream.url}/v1",
               "COZY_STT_ORDER": "offline", "COZY_TTS_ORDER": "offline",  # only the LLM is upstream
               "COZY_LLM": "smollm2-135m", "COZY_PRELOAD_MODELS": "0",
               "COZY_API_KEYS": ",".join(f"{k}={u}" for k, u in KEYS.items()),
               "COZY_RATE_LIMIT_RPM": str(RPM), "COZY_LOG_FORMAT": "text"}
        for name in ("COZY_DB_URL", "COZY_REDIS_URL", "COZY_DATA_DIR", "COZY_PORT"):
            env.pop(name, None)  # the cluster makes its own
        running = Cluster(folder, env)
        out = running.run("up", "3")
        running.url = re.search(r"^URL (http://\S+)$", out.strip().splitlines()[-1]).group(1)
        try:
            yield running
        finally:
            running.run("down", timeout=300)


def chat(base: str, key: str, text: str, conversation: str, timeout: float = 60) -> httpx.Response:
    return httpx.post(f"{base}/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, timeout=timeout,
                      json={"model": "companion", "user": conversation,
                            "messages": [{"role": "user", "content": text}]})


def voice_token(base: str, key: str, cookie: str) -> str:
    response = httpx.get(f"{base}/voice/token", headers={"authorization": f"Bearer {key}", "cookie": cookie})
    assert response.status_code == 200, response.text
    return response.json()["token"]


def route_cookie(base: str) -> str:
    """What a browser gets on its first visit: the balancer's route cookie."""
    response = httpx.get(f"{base}/healthz")
    return response.headers["set-cookie"].split(";")[0]


async def spoken_turn(base: str, key: str, text: str, cookie: str | None = None) -> tuple[str, list]:
    cookie = cookie or route_cookie(base)
    token = await asyncio.to_thread(voice_token, base, key, cookie)
    async with VoiceWebsocketClient(base, token=token, headers={"cookie": cookie}) as client:
        turn = await client.speak(espeak_clip(text), listen_s=45)
    return cookie, turn.transcript()


def test_three_replicas_survive_a_kill_9_and_keep_every_acknowledged_message(cluster):
    served_by = set()
    acknowledged: list[tuple[str, str]] = []
    facts = {"alice": "My name is Alice and I live in Oslo.", "bob": "My name is Bob and I live in Lima.",
             "carol": "My name is Carol and I live in Kyoto."}
    for user, fact in facts.items():
        response = chat(cluster.url, f"k-{user}", fact, f"{user}-chat")
        assert response.status_code == 200, response.text
        served_by.add(response.headers["x-served-by"])
        acknowledged.append((fact, response.json()["choices"][0]["message"]["content"]))
    assert len(served_by) >= 2, served_by  # stateless API calls spread over the replicas

    # Voice through the balancer: a browser-like client keeps to its replica by the route cookie.
    cookie, transcript = asyncio.run(spoken_turn(cluster.url, "k-erin", "what is the capital of France"))
    assert any(m["role"] == "assistant" and m["content"] for m in transcript), transcript

    # Traffic goes on while a replica dies: the one holding a voice connection, if any.
    victim = 2
    stop, results, lock = threading.Event(), [], threading.Lock()

    def talk(user: str) -> None:
        n = 0
        while not stop.is_set() and n < 4:
            n += 1
            text = f"Tell me about the number {n}, please."
            response = chat(cluster.url, f"k-{user}", text, f"{user}-chat")
            with lock:
                results.append((user, text, response))
            time.sleep(0.5)
    threads = [threading.Thread(target=talk, args=(user,)) for user in facts]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(results) < 2 and time.monotonic() < deadline:  # traffic is flowing when the replica dies
        time.sleep(0.05)
    os.kill(cluster.pid(victim), signal.SIGKILL)
    for thread in threads:
        thread.join(120)
    stop.set()
    failed = [(u, r.status_code, r.text[:200]) for u, _, r in results if r.status_code != 200]
    assert not failed, failed  # the balancer sent each request to a live replica
    for _, text, response in results:
        acknowledged.append((text, response.json()["choices"][0]["message"]["content"]))

    # The conversation goes on, on the replicas left; a voice client reconnects and talks.
    after = chat(cluster.url, "k-alice", "And one more thing.", "alice-chat")
    assert after.status_code == 200 and after.headers["x-served-by"] != f"replica-{victim}"
    _, transcript = asyncio.run(spoken_turn(cluster.url, "k-erin", "what is the capital of Italy", cookie))
    assert any(m["role"] == "assistant" and m["content"] for m in transcript), transcript

    with cluster.db() as db:
        stored = set(db.execute("SELECT content FROM messages").fetchall())
        for question, answer in acknowledged:
            assert (question,) in stored and (answer,) in stored, (question, answer)
        # Every queued memory update is done, whichever replica queued it (the dead one too).
        deadline = time.monotonic() + 60
        while db.execute("SELECT count(*) FROM memory_backlog").fetchone()[0] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert db.execute("SELECT count(*) FROM memory_backlog").fetchone()[0] == 0
        names = dict(db.execute("SELECT user_id, value FROM profiles WHERE key = 'name'").fetchall())
        assert {u: names.get(end_user_id(u, f"{u}-chat")) for u in facts} == \
            {"alice": "Alice", "bob": "Bob", "carol": "Carol"}

    cluster.run("up", "3")  # brings the dead replica back


def test_a_voice_connections_events_reach_a_client_asking_another_replica(cluster):
    """Without the route cookie, /voice/outputs may land on any replica: it finds the holder."""
    async def talk() -> list:
        token = await asyncio.to_thread(voice_token, cluster.replica_url(1), "k-erin", "")
        async with VoiceWebsocketClient(cluster.replica_url(1), token=token,
                                        outputs_base_url=cluster.replica_url(3)) as client:
            # Another identity asking another replica for it is told it does not exist.
            others = await asyncio.to_thread(voice_token, cluster.replica_url(2), "k-bob", "")
            async with httpx.AsyncClient(timeout=10) as http:
                peek = await http.get(f"{cluster.replica_url(3)}/voice/outputs",
                                      params={"webrtc_id": client.websocket_id, "token": others})
            assert peek.status_code == 404, peek.text
            turn = await client.speak(espeak_clip("what is the capital of Spain"), listen_s=45)
        return turn.transcript()
    transcript = asyncio.run(talk())
    assert [m["role"] for m in transcript][-2:] == ["user", "assistant"], transcript
    assert "spain" in transcript[-2]["content"].lower(), transcript


def test_a_per_user_rate_limit_holds_across_replicas(cluster):
    started = time.monotonic()
    responses = [chat(cluster.url, "k-dora", f"Question {i}?", "dora-chat") for i in range(RPM + 5)]
    elapsed = time.monotonic() - started
    ok = [r for r in responses if r.status_code == 200]
    limited = [r for r in responses if r.status_code == 429]
    assert len({r.headers["x-served-by"] for r in responses}) >= 2  # spread over replicas...
    # ...yet one bucket: RPM at once, plus what refilled while the requests ran.
    assert RPM <= len(ok) <= RPM + 1 + int(elapsed * RPM / 60), (len(ok), elapsed)
    assert len(ok) + len(limited) == len(responses)
    assert all(int(r.headers["retry-after"]) >= 1 for r in limited)
    assert json.loads(limited[0].text)["error"]["code"] == "rate_limit_exceeded"
    assert chat(cluster.url, "k-bob", "Still fine for me?", "bob-chat").status_code == 200  # only dora's bucket


def test_a_rolling_restart_drops_no_request(cluster):
    stop, results = threading.Event(), []

    def keep_asking(key: str, offset_s: float) -> None:
        stop.wait(offset_s)
        while not stop.is_set():
            try:
                response = chat(cluster.url, key, "Are you there?", f"{key}-restart", timeout=60)
                results.append((response.status_code, response.headers.get("x-served-by")))
            except httpx.HTTPError as exc:
                results.append((type(exc).__name__, None))
            stop.wait(60 / RPM + 1)  # each user within its limit; eight users keep the cluster busy
    keys = [f"k-r{i}" for i in range(8)]
    threads = [threading.Thread(target=keep_asking, args=(key, i * 0.9)) for i, key in enumerate(keys)]
    for thread in threads:
        thread.start()
    try:
        cluster.run("restart")
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    statuses = [status for status, _ in results]
    assert statuses and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}
    assert len({by for _, by in results}) == 3  # every replica served during the restart
