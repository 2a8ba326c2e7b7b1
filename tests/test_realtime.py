"""/v1/realtime through the official `openai` SDK's realtime client, against the running app.

Every event received is checked against OpenAI's published server-event schemas and for
a unique event_id (tests/clients/realtime.py); the tests check types, order and ids.
"""
from __future__ import annotations

import asyncio
import base64
import json
import re
import time

import httpx
import numpy as np
import pytest
import websockets
from openai import OpenAI

from handlers.realtime.audio_formats import PCMU, decode, encode
from providers.base import AudioClip
from providers.pcm import resample
from tests.clients.realtime import Recorder, audio_of, raw_realtime, realtime, types
from tests.clients.voice_ws import espeak_clip
from tests.conftest import isolated_env, start_app, stop_app

KEYS = "rt-key-alice=alice,rt-key-bob=bob"
ALICE, BOB = "rt-key-alice", "rt-key-bob"
WEATHER_TOOL = {"type": "function", "name": "get_weather", "description": "Current weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("realtime")
    running = start_app(folder, {**isolated_env(folder / "data"), "COZY_API_KEYS": KEYS})
    yield running
    stop_app(running)


@pytest.fixture(scope="module")
def question_24k() -> np.ndarray:
    return espeak_clip("what is the capital of France", 24_000)


def silence(seconds: float, rate: int = 24_000) -> np.ndarray:
    return np.zeros(int(seconds * rate), np.int16)


def heard(whisper, samples: np.ndarray, rate: int) -> str:
    """What an independent Whisper (this process's, not the app's) hears in reply audio."""
    return whisper.transcribe(AudioClip(16_000, resample(samples, rate, 16_000))).lower()


def one_response(events: list[dict]) -> str:
    """Every response event carries the one response id of its response.created."""
    created = [e for e in events if e["type"] == "response.created"]
    assert len(created) == 1, types(events)
    response_id = created[0]["response"]["id"]
    for event in events:
        if event["type"].startswith("response.") and event["type"] not in ("response.created", "response.done"):
            assert event["response_id"] == response_id, event
    assert events[-1]["response"]["id"] == response_id
    return response_id


def in_order(events: list[dict], expected: list[str]) -> None:
    """`expected` appear in this order (other events may come between)."""
    seen = types(events)
    position = 0
    for wanted in expected:
        assert wanted in seen[position:], f"{wanted} missing after {seen[:position]}: {seen}"
        position = seen.index(wanted, position) + 1


async def say_text(rt: Recorder, text: str, **response) -> list[dict]:
    await rt.send({"type": "conversation.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}})
    await rt.send({"type": "response.create", "response": response})
    return await rt.until("response.done")


async def test_a_spoken_turn_with_server_vad_is_heard_and_answered(app, question_24k, whisper):
    async with realtime(app.base_url, "concise", ALICE) as rt:
        created = await rt.recv()
        assert created["type"] == "session.created"  # always the first event
        session = created["session"]
        assert session["model"] == "concise" and session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
        await rt.append_audio(np.concatenate([silence(0.3), question_24k, silence(1.2)]))
        events = await rt.until("response.done")
    in_order(events, ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
                      "input_audio_buffer.committed", "conversation.item.added",
                      "conversation.item.input_audio_transcription.completed", "conversation.item.done",
                      "response.created", "response.output_item.added", "conversation.item.added",
                      "response.content_part.added", "response.output_audio_transcript.delta",
                      "response.output_audio.delta", "response.output_audio.done",
                      "response.output_audio_transcript.done", "response.content_part.done",
                      "response.output_item.done", "conversation.item.done", "response.done"])
    one_response(events)
    started = next(e for e in events if e["type"] == "input_audio_buffer.speech_started")
    committed = next(e for e in events if e["type"] == "input_audio_buffer.committed")
    assert committed["item_id"] == started["item_id"]  # the speech became that user item
    said = next(e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed")
    assert "capital" in said["transcript"].lower() and "france" in said["transcript"].lower()
    done = events[-1]["response"]
    assert done["status"] == "completed" and done["usage"]["output_tokens"] > 0
    transcript = next(e for e in events if e["type"] == "response.output_audio_transcript.done")["transcript"]
    assert "paris" in transcript.lower()
    assert "paris" in heard(whisper, audio_of(events), 24_000)


async def test_a_text_turn_gets_text_only(app):
    async with realtime(app.base_url, "concise", ALICE) as rt:
        await rt.until("session.created")
        events = await say_text(rt, "What is the capital of Italy?", output_modalities=["text"])
    in_order(events, ["conversation.item.added", "conversation.item.done", "response.created",
                      "response.output_item.added", "response.content_part.added", "response.output_text.delta",
                      "response.output_text.done", "response.content_part.done", "response.output_item.done",
                      "response.done"])
    one_response(events)
    assert not [e for e in events if "audio" in e["type"]]
    text = next(e for e in events if e["type"] == "response.output_text.done")["text"]
    assert "rome" in text.lower()
    deltas = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert deltas == text
    assert events[-1]["response"]["output"][0]["content"][0] == {"type": "output_text", "text": text}


async def test_manual_commit_in_mu_law_with_turn_detection_off(app, question_24k, whisper):
    async with realtime(app.base_url, "concise", ALICE) as rt:
        await rt.until("session.created")
        await rt.send({"type": "session.update", "session": {
            "type": "realtime", "instructions": "Always answer in one full sentence.", "audio": {
            "input": {"format": {"type": PCMU}, "turn_detection": None},
            "output": {"format": {"type": PCMU}}}}})
        updated = await rt.until("session.updated")
        assert updated[-1]["session"]["audio"]["input"]["turn_detection"] is None
        await rt.send({"type": "input_audio_buffer.commit"})  # nothing in it yet
        error = (await rt.until("error"))[-1]["error"]
        assert error["code"] == "input_audio_buffer_commit_empty"
        # espeak's "France" is misheard at 8 kHz by tiny.en ("I'm from"); "Germany" is not.
        question_8k = espeak_clip("What is the capital of Germany?", 8_000)
        await rt.append_audio(np.concatenate([question_8k, silence(1.0, 8_000)]), lambda s: encode(PCMU, s),
                              rate=8_000)
        await rt.send({"type": "input_audio_buffer.commit"})
        events = await rt.until("conversation.item.done")
        assert "input_audio_buffer.speech_started" not in types(events)  # the client decides here
        assert "response.created" not in types(events)  # a client commit asks for no response by itself
        said = next(e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed")
        assert "germany" in said["transcript"].lower()
        await rt.send({"type": "response.create"})
        events = await rt.until("response.done")
    one_response(events)
    transcript = next(e for e in events if e["type"] == "response.output_audio_transcript.done")["transcript"]
    assert "berlin" in transcript.lower()
    # tiny.en is weak on a lone name at 8 kHz ("Berlin" heard as "for one"), hence a full sentence.
    reply = audio_of(events, lambda b: decode(PCMU, b))
    assert {"berlin", "germany"} & set(re.findall(r"[a-z]+", heard(whisper, reply, 8_000)))


async def test_a_client_function_call_round_trip(app):
    async with realtime(app.base_url, "concise", ALICE) as rt:
        await rt.until("session.created")
        await rt.send({"type": "session.update", "session": {"type": "realtime", "tools": [WEATHER_TOOL],
                                                             "output_modalities": ["text"]}})
        await rt.until("session.updated")
        events = await say_text(rt, "What is the weather in Paris right now?")
        in_order(events, ["response.created", "response.output_item.added", "conversation.item.added",
                          "response.function_call_arguments.delta", "response.function_call_arguments.done",
                          "response.output_item.done", "conversation.item.done", "response.done"])
        one_response(events)
        call = next(e for e in events if e["type"] == "response.function_call_arguments.done")
        assert call["name"] == "get_weather" and "paris" in json.loads(call["arguments"])["city"].lower()
        items = [i for i in events[-1]["response"]["output"] if i["type"] == "function_call"]
        assert items and items[0]["call_id"] == call["call_id"]
        await rt.send({"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": call["call_id"], "output": "Sunny, 31 degrees Celsius"}})
        await rt.send({"type": "response.create"})
        events = await rt.until("response.done")
    text = next(e for e in events if e["type"] == "response.output_text.done")["text"].lower()
    assert "31" in text or "sunny" in text


async def first_audio_of_a_long_reply(rt: Recorder) -> list[dict]:
    await rt.send({"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [
        {"type": "input_text", "text": "Tell me a long story about a lighthouse keeper and a storm."}]}})
    await rt.send({"type": "response.create"})
    return await rt.until("response.output_audio.delta")


async def test_response_cancel_and_talking_over_a_reply(app, question_24k):
    async with realtime(app.base_url, "storyteller", ALICE) as rt:
        await rt.until("session.created")
        events = await first_audio_of_a_long_reply(rt)
        await rt.send({"type": "response.create"})  # one is running
        await rt.send({"type": "response.cancel"})
        events += await rt.until("response.done")
        error = next(e for e in events if e["type"] == "error")["error"]
        assert error["code"] == "conversation_already_has_active_response"
        done = events[-1]["response"]
        assert done["status"] == "cancelled" and done["status_details"]["reason"] == "client_cancelled"
        one_response([e for e in events if e["type"] != "error"])

        # Barge-in: speech while the reply plays cancels it; the item keeps what was sent.
        events = await first_audio_of_a_long_reply(rt)
        await rt.append_audio(np.concatenate([question_24k, silence(0.2)]))
        events += await rt.until("response.done")
        in_order(events, ["input_audio_buffer.speech_started", "response.done"])
        done = events[-1]["response"]
        assert done["status"] == "cancelled" and done["status_details"]["reason"] == "turn_detected"
        item = next(i for i in done["output"] if i["type"] == "message")
        assert item["status"] == "incomplete"
        sent_words = item["content"][0]["transcript"].split()
        assert sent_words, "the item keeps the words whose audio was sent"
        sent_ms = sum(len(base64.b64decode(e["delta"])) // 2 for e in events
                      if e["type"] == "response.output_audio.delta") * 1000 // 24_000

        # The client played only part of it: truncate to that.
        await rt.send({"type": "conversation.item.truncate", "item_id": item["id"], "content_index": 0,
                       "audio_end_ms": min(300, sent_ms)})
        truncated = (await rt.until("conversation.item.truncated"))[-1]
        assert truncated["item_id"] == item["id"] and truncated["audio_end_ms"] == min(300, sent_ms)
        await rt.send({"type": "conversation.item.truncate", "item_id": item["id"], "content_index": 0,
                       "audio_end_ms": sent_ms + 60_000})
        assert (await rt.until("error"))[-1]["error"]["param"] == "audio_end_ms"
        await rt.send({"type": "conversation.item.retrieve", "item_id": item["id"]})
        kept = (await rt.until("conversation.item.retrieved"))[-1]["item"]["content"][0]["transcript"].split()
        assert len(kept) < len(sent_words) and sent_words[:len(kept)] == kept


async def test_bad_events_get_errors_and_the_session_goes_on(app):
    async with raw_realtime(app.base_url, "concise", ALICE) as rt:
        await rt.until("session.created")
        bad = [
            ("not json at all", "invalid_json", None),
            (json.dumps({"type": "conversation.bogus", "event_id": "evt_1"}), "invalid_event_type", "evt_1"),
            (json.dumps({"type": "input_audio_buffer.append", "audio": "%%% not base64 %%%"}), "invalid_audio", None),
            (json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"abc").decode()}),
             "invalid_audio", None),
            (json.dumps({"type": "input_audio_buffer.append", "audio": "A" * (3 * 1024 * 1024)}),
             "event_too_large", None),
            (json.dumps({"type": "session.update", "session": {"output_modalities": ["audio", "text"]}}),
             "invalid_value", None),
            (json.dumps({"type": "session.update", "session": {"audio": {"input": {"format": {
                "type": "audio/flac"}}}}}), "invalid_value", None),
            (json.dumps({"type": "conversation.item.retrieve", "item_id": "item_nope"}), "item_not_found", None),
            (json.dumps({"type": "conversation.item.delete", "item_id": 7}), "item_not_found", None),
            (json.dumps({"type": "response.cancel"}), "response_cancel_not_active", None),
            (json.dumps({"type": "response.create"}), "no_input", None),
        ]
        for frame, code, event_id in bad:
            await rt.connection.send(frame)
            error = (await rt.until("error"))[-1]["error"]
            assert error["code"] == code, (frame[:80], error)
            assert error["event_id"] == event_id
        # Still serving: an update, an item, a delete.
        await rt.send({"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief."}})
        assert (await rt.until("session.updated"))[-1]["session"]["instructions"] == "Be brief."
        await rt.send({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}})
        item = next(e for e in await rt.until("conversation.item.done"))["item"]
        await rt.send({"type": "conversation.item.delete", "item_id": item["id"]})
        assert (await rt.until("conversation.item.deleted"))[-1]["item_id"] == item["id"]


def voice_connections(base_url: str) -> int:
    return httpx.get(f"{base_url}/healthz", timeout=10).json()["voice_connections"]


def wait_for(condition, timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the state was not reached in time"
        time.sleep(0.1)


async def test_binary_frames_close_the_socket_and_the_slot_comes_back(app):
    url = app.base_url.replace("http", "ws", 1) + "/v1/realtime?model=concise"
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {ALICE}"}) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"
        assert voice_connections(app.base_url) >= 1  # counted with the other voice connections
        await ws.send(b"\x00\x01binary")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await ws.recv()
    assert closed.value.rcvd.code == 1003
    await asyncio.to_thread(wait_for, lambda: voice_connections(app.base_url) == 0)


async def test_refused_without_a_key_or_with_an_unknown_persona(app):
    url = app.base_url.replace("http", "ws", 1) + "/v1/realtime"
    for headers, query, status in (({}, "?model=concise", 401),
                                   ({"Authorization": "Bearer wrong"}, "?model=concise", 401),
                                   ({"Authorization": f"Bearer {ALICE}"}, "?model=no-such-persona", 404)):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(url + query, additional_headers=headers):
                pass
        assert refused.value.response.status_code == status
        body = json.loads(refused.value.response.body)
        assert body["error"]["code"] in ("invalid_api_key", "model_not_found")


async def test_a_fact_told_on_realtime_is_known_to_the_chat_api_and_only_to_its_user(app):
    async with realtime(app.base_url, "concise", ALICE) as rt:
        await rt.until("session.created")
        await say_text(rt, "My name is Zorblat and I collect antique maps.", output_modalities=["text"])

    def remembered(key: str) -> bool:
        data = httpx.get(f"{app.base_url}/v1/users/me", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        return "zorblat" in json.dumps(data.json().get("profile")).lower() + \
            json.dumps(data.json().get("memories")).lower()

    await asyncio.to_thread(wait_for, lambda: remembered(ALICE), 60)  # learned off the hot path
    chat = OpenAI(api_key=ALICE, base_url=f"{app.base_url}/v1")
    reply = await asyncio.to_thread(chat.chat.completions.create, model="concise",
                                    messages=[{"role": "user", "content": "What is my name?"}])
    assert "zorblat" in reply.choices[0].message.content.lower()
    assert not remembered(BOB)
    bob = OpenAI(api_key=BOB, base_url=f"{app.base_url}/v1")
    reply = await asyncio.to_thread(bob.chat.completions.create, model="concise",
                                    messages=[{"role": "user", "content": "What is my name?"}])
    assert "zorblat" not in reply.choices[0].message.content.lower()
