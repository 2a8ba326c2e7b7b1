"""The OpenAI-compatible API, driven by the official `openai` SDK against the real app."""
from __future__ import annotations

import io
import json
import re
import subprocess
import tempfile
import wave
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from handlers.api.audio_codec import decode_audio
from providers.pcm import rms_dbfs

pytestmark = pytest.mark.storage  # also run on PostgreSQL (make test)


def sdk(base_url: str, key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0,
                         _strict_response_validation=True, timeout=120)


@pytest.fixture(scope="module")
def client(running_app) -> openai.OpenAI:
    return sdk(running_app.base_url)


def test_models_are_the_personas(client):
    ids = {m.id for m in client.models.list()}
    assert {"companion", "tutor", "concise", "storyteller"} <= ids
    assert client.models.retrieve("tutor").id == "tutor"


def test_chat_completion(client):
    completion = client.chat.completions.create(
        model="concise", messages=[{"role": "user", "content": "What is the capital of France?"}])
    choice = completion.choices[0]
    assert "paris" in choice.message.content.lower()
    assert choice.finish_reason == "stop" and completion.model == "concise"
    assert completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_streamed_chat_completion_with_usage(client):
    chunks = list(client.chat.completions.create(
        model="concise", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "What is the capital of Italy?"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "rome" in text.lower()
    assert len({c.id for c in chunks}) == 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def test_a_client_tool_call_round(client):
    messages = [{"role": "user", "content": "What is the weather in Paris right now?"}]
    first = client.chat.completions.create(model="concise", messages=messages, tools=[WEATHER_TOOL])
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and "paris" in json.loads(call.function.arguments)["city"].lower()
    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 31 degrees Celsius"}]
    second = client.chat.completions.create(model="concise", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].finish_reason == "stop"
    assert "31" in second.choices[0].message.content or "sunny" in second.choices[0].message.content.lower()


def test_a_streamed_tool_call_arrives_as_tool_call_deltas(client):
    chunks = list(client.chat.completions.create(
        model="concise", stream=True, tools=[WEATHER_TOOL],
        messages=[{"role": "user", "content": "What's the weather in Berlin?"}]))
    calls = [t for c in chunks if c.choices for t in (c.choices[0].delta.tool_calls or [])]
    assert calls and calls[0].function.name == "get_weather" and calls[0].index == 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_a_session_remembers_the_conversation(client, running_app):
    created = httpx.post(f"{running_app.base_url}/v1/chat/sessions", json={"persona_id": "concise"}).json()
    headers = {"X-Session-Id": created["id"]}
    client.chat.completions.create(model="concise", extra_headers=headers,
                                   messages=[{"role": "user", "content": "My favourite number is 42."}])
    reply = client.chat.completions.create(model="concise", extra_headers=headers,
                                           messages=[{"role": "user", "content": "What is my favourite number?"}])
    assert "42" in reply.choices[0].message.content
    messages = httpx.get(f"{running_app.base_url}/v1/chat/sessions/{created['id']}/messages").json()["data"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]


def espeak_wav(text: str) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
        return path.read_bytes()


@pytest.mark.parametrize("response_format", ["json", "text", "verbose_json"])
def test_transcription(client, response_format):
    audio = ("question.wav", espeak_wav("what is the capital of France"), "audio/wav")
    result = client.audio.transcriptions.create(model="whisper-1", file=audio, response_format=response_format)
    text = result if isinstance(result, str) else result.text
    assert "capital" in text.lower() and "france" in text.lower()
    if response_format == "verbose_json":
        assert result.language == "english" and 1.0 < result.duration < 3.0


@pytest.mark.parametrize("response_format", ["mp3", "wav", "opus", "pcm"])
def test_speech_to_a_file_that_decodes(client, tmp_path, response_format):
    target = tmp_path / f"speech.{response_format}"
    with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input="The capital of France is Paris.",
            response_format=response_format) as response:
        response.stream_to_file(target)
    data = target.read_bytes()
    if response_format == "pcm":
        samples = np.frombuffer(data, "<i2")
        rate = 24_000
    else:
        samples = decode_audio(data, 16_000)
        rate = 16_000
    assert 1.0 < len(samples) / rate < 5.0 and rms_dbfs(samples) > -35
    if response_format == "wav":
        with wave.open(io.BytesIO(data)) as wav:
            assert wav.getframerate() == 24_000 and wav.getnchannels() == 1


# --- bad input: clear 4xx errors in OpenAI's shape, and the server keeps serving -------------

BAD_REQUESTS = [
    ("empty messages", "/v1/chat/completions", {"model": "concise", "messages": []}, 400, "messages"),
    ("wrong type", "/v1/chat/completions", {"model": "concise", "messages": "hello"}, 400, "messages"),
    ("unknown model", "/v1/chat/completions",
     {"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}, 404, "model"),
    ("bad role", "/v1/chat/completions",
     {"model": "concise", "messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages.0.role"),
    ("ends on assistant", "/v1/chat/completions",
     {"model": "concise", "messages": [{"role": "assistant", "content": "hi"}]}, 400, "messages"),
    ("temperature out of range", "/v1/chat/completions",
     {"model": "concise", "temperature": 9, "messages": [{"role": "user", "content": "hi"}]}, 400, "temperature"),
    ("speech without input", "/v1/audio/speech", {"model": "tts-1", "input": ""}, 400, "input"),
    ("speech format", "/v1/audio/speech", {"model": "tts-1", "input": "hi", "response_format": "midi"}, 400,
     "response_format"),
]


@pytest.mark.parametrize("name, path, body, status, param", BAD_REQUESTS, ids=[r[0] for r in BAD_REQUESTS])
def test_bad_input_gets_a_clear_error(running_app, name, path, body, status, param):
    response = httpx.post(running_app.base_url + path, json=body, timeout=30)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["message"] and error["type"]


def test_malformed_json_and_oversized_bodies(running_app):
    url = f"{running_app.base_url}/v1/chat/completions"
    response = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    huge = {"model": "concise", "messages": [{"role": "user", "content": "x" * 2_000_000}]}
    response = httpx.post(url, json=huge)
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize("payload", [b"", b"this is not audio" * 50, b"RIFF\x00\x00\x00\x00WAVEfmt " + b"\x00" * 20])
def test_broken_audio_gets_a_clear_error(running_app, payload):
    response = httpx.post(f"{running_app.base_url}/v1/audio/transcriptions",
                          files={"file": ("broken.wav", payload, "audio/wav")}, data={"model": "whisper-1"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "file"
    assert httpx.get(f"{running_app.base_url}/healthz").status_code == 200


def test_request_ids_and_metrics(running_app, client):
    response = httpx.get(f"{running_app.base_url}/v1/models", headers={"X-Request-ID": "trace-me-123"})
    assert response.headers["x-request-id"] == "trace-me-123"
    assert len(httpx.get(f"{running_app.base_url}/v1/models").headers["x-request-id"]) == 32
    client.chat.completions.create(model="concise", messages=[{"role": "user", "content": "Hi"}])
    metrics = httpx.get(f"{running_app.base_url}/metrics").text
    for name in ('cozy_http_requests_total{method="POST",route="/v1/chat/completions",status="200"}',
                 "cozy_http_request_seconds_bucket",
                 "cozy_voice_sessions_active", 'cozy_provider_calls_total{modality="llm"',
                 'cozy_breaker_state{modality="llm"'):
        assert name in metrics, name
    # The turn's model call, labelled with the provider and model that served it
    assert re.search(r'cozy_turn_stage_seconds_count\{channel="api",model="[^"]+",provider="offline-[^"]+",'
                     r'stage="llm"\}', metrics)
    assert '"request_id": "trace-me-123"' in running_app.log_path.read_text()
