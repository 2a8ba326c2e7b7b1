"""Talking over the persona on the phone: Twilio is told to clear, and only what was heard is kept.

A Twilio-speaking client plays the reply in real time and echoes the server's marks as
Twilio does. It asks for a story, lets a second or so of it play, and talks over it. The
server sends `clear` for the call's streamSid, the reply audio stops, and the stored
assistant message holds only the words the caller heard, marked as interrupted. A client
of the plain websocket route is told to clear the same way.
"""
from __future__ import annotations

import asyncio
import json
import re
import time

import duckdb
import numpy as np
import pytest

from config import Settings
from providers import model_files
from tests.clients.voice_ws import PhoneCallClient, VoiceWebsocketClient, espeak_clip
from tests.conftest import isolated_env, start_app, stop_app

LET_IT_PLAY_S = 1.5


def storyteller_app(folder):
    """The fast model and a persona whose replies are long: there is always more to cut off."""
    fast = model_files.resolve("smollm2-135m", Settings.from_env().models_dir)
    app = start_app(folder, {**isolated_env(folder / "data"), "COZY_LLM": "smollm2-135m", "COZY_LLM_PATH": str(fast),
                             "COZY_DEFAULT_PERSONA": "storyteller"})
    app.folder = folder
    return app


@pytest.fixture(scope="module")
def phone_app(tmp_path_factory):
    app = storyteller_app(tmp_path_factory.mktemp("phone-barge-in"))
    yield app
    stop_app(app)


@pytest.fixture(scope="module")
def websocket_app(tmp_path_factory):
    app = storyteller_app(tmp_path_factory.mktemp("websocket-barge-in"))
    yield app
    stop_app(app)


async def interrupted_call(call: VoiceWebsocketClient) -> tuple[VoiceWebsocketClient, float, float]:
    rate = call.input_rate
    question = espeak_clip("tell me a long story about a dragon and a lighthouse", sample_rate=rate)
    interruption = espeak_clip("wait, stop, I have a question", sample_rate=rate)
    silence = np.zeros(rate // 5, np.int16)
    async with call:
        await call._send_pcm(np.concatenate([np.zeros(2400, np.int16), question]))
        deadline = time.perf_counter() + 120
        while call._recording.first_audio_at is None:
            assert time.perf_counter() < deadline, "no reply audio"
            await call._send_pcm(silence)
        while time.perf_counter() < call._recording.first_audio_at + LET_IT_PLAY_S:
            await call._send_pcm(silence)
        spoke_at = time.perf_counter()
        await call._send_pcm(interruption)
        deadline = time.perf_counter() + 30
        while call.cleared_at is None:  # wait for the server's clear, talking on in silence
            assert time.perf_counter() < deadline, "the server never sent clear"
            await call._send_pcm(silence)
        for _ in range(10):
            await call._send_pcm(silence)
    return call, spoke_at, call._recording.first_audio_at


def test_talking_over_a_phone_reply_clears_it_and_keeps_only_what_was_heard(phone_app):
    call, spoke_at, first_audio_at = asyncio.run(interrupted_call(PhoneCallClient(phone_app.base_url)))
    clears = [f for f in call.frames if f.get("event") == "clear"]
    assert clears and all(f["streamSid"] == call.websocket_id for f in clears)
    marks = [f for f in call.frames if f.get("event") == "mark"]
    media = [f for f in call.frames if f.get("event") == "media"]
    assert len(marks) == len(media)  # a mark after every chunk of audio
    heard_s = call.cleared_at - first_audio_at
    log = phone_app.log_tail()
    stop_app(phone_app)  # DuckDB holds its file while the app runs
    database = next(phone_app.folder.glob("data/*.duckdb"))
    with duckdb.connect(str(database), read_only=True) as db:
        replies = db.execute("SELECT content, metadata FROM messages WHERE role = 'assistant' ORDER BY seq").fetchall()
    assert replies, log
    content, metadata = replies[0][0], json.loads(replies[0][1])
    assert metadata["finish_reason"] == "interrupted", (content, metadata)
    assert content, "something was heard before the caller cut in"
    words = re.findall(r"\w+", content)
    # At most what fits in the time the caller heard (a fast speaker says ~4 words a second).
    assert len(words) <= 4 * heard_s + 3, (heard_s, content)
    assert metadata.get("generated_chars", len(content) + 1) > len(content), metadata


def test_talking_over_a_websocket_reply_tells_the_client_to_drop_what_it_has_not_played(websocket_app):
    """The websocket route sends a reply's audio as fast as it is made, so the client holds
    seconds of it ahead of playback: only a `clear` can stop what the caller hears."""
    call, spoke_at, _ = asyncio.run(interrupted_call(VoiceWebsocketClient(websocket_app.base_url)))
    assert call.cleared_at is not None and call.cleared_at > spoke_at
    cleared = [f for f in call.frames if f.get("event") == "clear"]
    assert cleared == [{"event": "clear"}]  # once, for the one interruption
