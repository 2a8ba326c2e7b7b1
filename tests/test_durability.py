"""Nothing acknowledged is lost: not to kill -9, not to a crash before memories are learnt."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from orchestrator.services import build_chat_services
from personas.cards import PersonaCatalog
from tests.clients.voice_ws import VoiceWebsocketClient, espeak_clip
from storage.backends import open_database
from tests.conftest import ROOT, database_url, start_app, stop_app, stored_settings

pytestmark = pytest.mark.storage  # also run on PostgreSQL (make test)

PERSONAS = ROOT / "personas"


def read(folder: Path, url: str | None, sql: str) -> list[tuple]:
    """What is stored, read once the app has stopped (the DuckDB file, or PostgreSQL)."""
    db = open_database(folder / "cozy.duckdb", url)
    try:
        return db.read(sql)
    finally:
        db.close()


async def test_acknowledged_turns_survive_kill_9(tmp_path):
    url = database_url()
    env = {"COZY_DATA_DIR": str(tmp_path), "COZY_LLM": "smollm2-135m", **({"COZY_DB_URL": url} if url else {})}
    app = start_app(tmp_path, env)
    try:
        async with VoiceWebsocketClient(app.base_url) as client:
            for sentence in ("my name is Sarah and I love astronomy", "what is the capital of France"):
                turn = await client.speak(espeak_clip(sentence), listen_s=20)
                assert "turn_s" in turn.last_turn().get("stages_s", {}), app.log_tail()  # acknowledged
            acknowledged = turn.transcript()
            # Mid-conversation: a third question is being answered when the power goes.
            await client._send_pcm(espeak_clip("tell me a long story about the sea"))
            await client._send_pcm(espeak_clip("and")[:1600])
            os.kill(app.process.pid, signal.SIGKILL)
            app.process.wait(timeout=10)
    finally:
        if app.process.poll() is None:
            app.process.kill()

    restarted = start_app(tmp_path, env)  # replays DuckDB's WAL on open
    stop_app(restarted)  # clean shutdown: drains memory learning, checkpoints
    saved = read(tmp_path, url, "SELECT role, content FROM messages ORDER BY created_at, seq")
    for message in acknowledged:
        assert (message["role"], message["content"]) in saved
    assert read(tmp_path, url, "SELECT value FROM profiles WHERE key = 'name'") == [("Sarah",)]
    assert read(tmp_path, url, "SELECT count(*) FROM memory_backlog") == [(0,)]


def test_a_turn_saved_just_before_a_crash_is_still_learnt_from(tmp_path, fast_llm):
    settings = stored_settings(tmp_path)
    crash = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from storage.backends import open_database
        from storage.conversations import ConversationStore
        store = ConversationStore(open_database(Path({str(tmp_path / 'cozy.duckdb')!r}), {settings.db_url!r}))
        session = store.create_session("ada", "companion")
        store.save_turn(session, "ada", "companion", "My name is Ada and I live in Lyon.", "Nice!", {{}})
        os.kill(os.getpid(), signal.SIGKILL)  # before any learning could happen
    """)
    result = subprocess.run([sys.executable, "-c", crash], cwd=ROOT)
    assert result.returncode == -signal.SIGKILL

    services = build_chat_services(settings, PersonaCatalog(PERSONAS, "companion"), fast_llm)
    try:
        assert services.learner.wait_idle()
        assert services.profile.get("ada") == {"name": "Ada", "location": "Lyon"}
        assert "Lives in Lyon" in services.memory.recall("ada", "where do I live?")
    finally:
        services.close()
