"""SIGTERM takes a replica out of service without dropping what it is doing.

A real app process; its LLM is a fake OpenAI upstream that holds a streamed reply open
until the test lets it go, so the reply is certainly in flight when the signal comes.
"""
from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time

import httpx
import numpy as np
import openai

from config import Settings
from providers import model_files
from storage.backends import open_database
from tests.clients.voice_ws import VoiceWebsocketClient, espeak_clip
from tests.conftest import database_url, isolated_env, start_app
from tests.fakes.vendor_server import Fault, FakeVendorServer


def test_sigterm_finishes_the_reply_in_flight_refuses_new_work_then_exits(tmp_path):
    held = threading.Event()
    url = database_url()
    with FakeVendorServer() as upstream:
        upstream.script.chat_text = ["The", " sea", " is", " wide", ".", " It", " is", " deep", "."]
        env = {**isolated_env(tmp_path / "data"), "OPENAI_API_KEY": upstream.api_key,
               "OPENAI_BASE_URL": f"{upstream.url}/v1", "COZY_LLM_ORDER": "openai", "COZY_STT_ORDER": "offline",
               "COZY_TTS_ORDER": "offline",
               "COZY_LLM": "smollm2-135m", **({"COZY_DB_URL": url} if url else {})}
        app = start_app(tmp_path, env)
        try:
            upstream.fail_always(Fault(hold=held, hold_before_chunk=7))  # after " It": the first sentence is out
            client = openai.OpenAI(base_url=f"{app.base_url}/v1", api_key="unused", max_retries=0)
            stream = client.chat.completions.create(model="companion", stream=True, user="sam",
                                                    messages=[{"role": "user", "content": "Tell me about the sea."}])
            pieces = []
            while "wide." not in "".join(pieces):  # the reply has started
                chunk = next(stream)
                pieces += [choice.delta.content or "" for choice in chunk.choices]

            app.process.send_signal(signal.SIGTERM)
            status, deadline = None, time.monotonic() + 30
            while status != 503:  # the balancer's health check sees the replica leave...
                assert time.monotonic() < deadline, "healthz never said draining"
                status = httpx.get(f"{app.base_url}/healthz", timeout=5).status_code
            assert httpx.get(f"{app.base_url}/healthz", timeout=5).json() == {"status": "draining"}
            refused = httpx.post(f"{app.base_url}/v1/chat/completions", timeout=5, json={
                "model": "companion", "messages": [{"role": "user", "content": "Hello?"}]})
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"  # ...and new work goes elsewhere
            assert refused.json()["error"]["code"] == "draining"
            assert app.process.poll() is None  # still here: a reply is in flight

            held.set()
            for chunk in stream:
                if chunk.choices:
                    pieces.append(chunk.choices[0].delta.content or "")
            assert "".join(pieces).strip() == "The sea is wide. It is deep."
            # uvicorn re-raises the signal once it has shut down: "ended by SIGTERM", as a supervisor expects.
            assert app.process.wait(timeout=60) in (0, -signal.SIGTERM)
        finally:
            held.set()
            if app.process.poll() is None:
                app.process.kill()

    db = open_database(tmp_path / "data" / "cozy.duckdb", url)
    try:
        stored = [row[0] for row in db.read("SELECT content FROM messages ORDER BY seq")]
    finally:
        db.close()
    assert stored == ["Tell me about the sea.", "The sea is wide. It is deep."]  # saved before the exit


def test_a_caller_who_leaves_mid_reply_does_not_hold_up_a_restart(tmp_path):
    """A reply being spoken when its websocket goes is ended with it (and counts as in flight
    no longer), so SIGTERM exits at once rather than after the whole drain timeout."""
    fast = model_files.resolve("smollm2-135m", Settings.from_env().models_dir)
    url = database_url()
    env = {**isolated_env(tmp_path / "data"), "COZY_LLM": "smollm2-135m", "COZY_LLM_PATH": str(fast),
           "COZY_DEFAULT_PERSONA": "storyteller", "COZY_DRAIN_TIMEOUT_S": "600",
           **({"COZY_DB_URL": url} if url else {})}
    app = start_app(tmp_path, env)
    try:
        async def leave_mid_reply() -> None:
            async with VoiceWebsocketClient(app.base_url) as client:
                recording = await client.speak(espeak_clip("tell me a long story about a dragon and a lighthouse"),
                                               listen_s=0.5, until_reply_done=False)
                deadline = time.monotonic() + 120
                while recording.first_audio_at is None:  # the reply is being spoken...
                    assert time.monotonic() < deadline, "no reply audio"
                    await client._send_pcm(np.zeros(3200, np.int16))
            # ...and the caller is gone.
        asyncio.run(leave_mid_reply())

        app.process.send_signal(signal.SIGTERM)
        try:
            code = app.process.wait(timeout=90)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still draining a reply nobody hears:\n{app.log_tail()}") from None
        assert code in (0, -signal.SIGTERM), app.log_tail()
    finally:
        if app.process.poll() is None:
            app.process.kill()
            app.process.wait(timeout=20)

    db = open_database(tmp_path / "data" / "cozy.duckdb", url)
    try:
        rows = db.read("SELECT role, content FROM messages ORDER BY seq")
    finally:
        db.close()
    assert [role for role, _ in rows] == ["user", "assistant"], rows  # the turn was kept...
    assert rows[1][1], rows  # ...with what was said of the reply before the caller left
