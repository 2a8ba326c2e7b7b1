"""The API against two oracles, with schemathesis fuzzing the real running app:
our own OpenAPI document (every /v1 operation) and OpenAI's published spec (the
chat, transcription and speech operations we claim to be compatible with).

Checks: no 5xx, and every response matches the documented schema (event streams
included). schemathesis runs as its CLI in a subprocess, the way its docs and our
specs README run it; this file doubles as its hooks file (SCHEMATHESIS_HOOKS), so
the hooks sit next to the runs they shape.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import openai
import pytest
import requests
import schemathesis
from schemathesis.core.transport import Response

from tests.conftest import ROOT, start_app, stop_app

OPENAI_SPEC = Path("/work/shared/specs/openai-openapi.yaml")
FUZZ_KEY = "fuzz-key"
MAX_TOKENS = 4  # the model's words do not matter here, only that a reply is produced and well-formed
SEED = "20261122"
COMMON_ARGS = ["-c", "not_a_server_error,response_schema_conformance", "--seed", SEED,
               "--generation-database", "none", "--no-color", "--request-timeout", "60",
               "-H", f"Authorization: Bearer {FUZZ_KEY}"]


# --- schemathesis hooks (loaded in the schemathesis process) --------------------------------


def _is_ours(case) -> bool:
    return case.operation.path.startswith("/v1/")  # OpenAI's spec has its paths under a /v1 base URL


@schemathesis.hook
def before_call(context, case, kwargs):
    if not case.operation.path.endswith("/chat/completions") or not isinstance(case.body, dict):
        return
    body = case.body
    if _is_ours(case):
        # A made-up X-Session-Id can only ever be a 404; sessions have operations of their own.
        for name in [h for h in case.headers or {} if h.lower() == "x-session-id"]:
            del case.headers[name]
    elif isinstance(body.get("model"), str):
        # OpenAI's model names are not personas here: every request would stop at a 404.
        body["model"] = "concise"
    for field in ("max_tokens", "max_completion_tokens"):
        value = body.get(field)
        if value is None and field == "max_tokens" or type(value) is int and value > MAX_TOKENS:
            body[field] = MAX_TOKENS


@schemathesis.hook
def before_load_schema(context, raw_schema):
    """OpenAI's spec gives an event stream's `schema` as the JSON payload of its events,
    while OpenAPI 3.1 tools (schemathesis too) read it as each event ({"data", "event"}).
    Say what OpenAI means: data is such a payload, an error, or the final [DONE]."""
    if raw_schema.get("info", {}).get("title") != "OpenAI API":
        return
    for item in raw_schema.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            for response in responses.values():
                media = response.get("content", {}).get("text/event-stream") if isinstance(response, dict) else None
                if not media or "schema" not in media:
                    continue
                payload = {"anyOf": [media["schema"], {"$ref": "#/components/schemas/ErrorResponse"}]}
                media["schema"] = {"type": "object", "required": ["data"], "properties": {"data": {"anyOf": [
                    {"const": "[DONE]"},
                    {"type": "string", "contentMediaType": "application/json", "contentSchema": payload}]}}}


# --- the app and the runs -------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzzed-app")
    app = start_app(folder, {"COZY_API_KEYS": f"{FUZZ_KEY}=fuzzer", "COZY_RATE_LIMIT_RPM": "0",
                             "COZY_RATE_LIMIT_AUDIO_SECONDS": "0", "COZY_LLM": "smollm2-135m",
                             "COZY_DATA_DIR": str(folder / "data")})
    yield app
    stop_app(app)


def run_schemathesis(location: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(Path(__file__).resolve()),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-m", "schemathesis.cli", "run", location, *COMMON_ARGS, *args],
                          cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600)


def assert_clean_run(run: subprocess.CompletedProcess, operations: int) -> None:
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-12_000:]
    tested = re.search(r"Selected: (\d+)/\d+\s+Tested: (\d+)", report)
    assert tested and tested.groups() == (str(operations), str(operations)), report[-4_000:]


def assert_still_serving(app) -> None:
    """The server answers and nothing it did left an error behind in its log."""
    assert httpx.get(f"{app.base_url}/healthz").status_code == 200
    client = openai.OpenAI(base_url=f"{app.base_url}/v1", api_key=FUZZ_KEY, max_retries=0,
                           _strict_response_validation=True, timeout=60)
    reply = client.chat.completions.create(model="concise", max_tokens=MAX_TOKENS,
                                           messages=[{"role": "user", "content": "Hello"}])
    assert reply.choices[0].message.content is not None
    log = app.log_path.read_text(errors="replace")
    assert "Traceback" not in log and '"level": "ERROR"' not in log, app.log_tail(40)


# --- our own document ---------------------------------------------------------------------------


def sse_response(content: bytes) -> Response:
    request = requests.Request("POST", "http://127.0.0.1/v1/chat/completions").prepare()
    return Response(status_code=200, headers={"content-type": ["text/event-stream; charset=utf-8"]},
                    content=content, request=request, elapsed=0.1, verify=True)


def test_our_openapi_describes_the_chat_event_stream(fuzzed_app):
    document = httpx.get(f"{fuzzed_app.base_url}/openapi.json").json()
    operation = document["paths"]["/v1/chat/completions"]["post"]
    assert operation["operationId"] == "createChatCompletion"
    assert set(operation["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert operation["security"] == [{"bearer": []}]
    api = [op for path, item in document["paths"].items() if path.startswith("/v1/") for op in item.values()]
    assert len(api) == 19 and not any("422" in op["responses"] for op in api), "bad input is a 400, never a 422"

    # The declared event schema has teeth: a real stream passes it, a tampered one does not.
    stream = httpx.post(f"{fuzzed_app.base_url}/v1/chat/completions", headers={"Authorization": f"Bearer {FUZZ_KEY}"},
                        json={"model": "concise", "stream": True, "max_tokens": MAX_TOKENS,
                              "stream_options": {"include_usage": True},
                              "messages": [{"role": "user", "content": "Hi"}]}, timeout=60)
    assert stream.headers["content-type"].startswith("text/event-stream") and stream.content.endswith(b"[DONE]\n\n")
    validated = schemathesis.openapi.from_dict(document)["/v1/chat/completions"]["POST"]
    validated.validate_response(sse_response(stream.content))
    for tampered in (stream.content.replace(b'"chat.completion.chunk"', b'"chat.completion"', 1),
                     stream.content.replace(b"data: {", b"data: {{", 1),
                     stream.content.replace(b'"finish_reason": null', b'"finish_reason": "done"', 1)):
        with pytest.raises(AssertionError):  # schemathesis failures are AssertionErrors
            validated.validate_response(sse_response(tampered))


def test_fuzzing_our_api_finds_no_server_error_or_schema_mismatch(fuzzed_app, tmp_path):
    run = run_schemathesis(f"{fuzzed_app.base_url}/openapi.json",
                           ["--include-path-regex", "^/v1/", "-n", "10"], tmp_path)
    assert_clean_run(run, operations=19)
    assert_still_serving(fuzzed_app)


# --- OpenAI's published spec as the oracle -----------------------------------------------------------


@pytest.mark.skipif(not OPENAI_SPEC.is_file(), reason=f"{OPENAI_SPEC} is not on this machine")
def test_fuzzing_with_openais_spec_finds_no_server_error_or_schema_mismatch(fuzzed_app, tmp_path):
    # Selected by operation id: by path and method the spec's other POSTs come along and run for minutes.
    run = run_schemathesis(str(OPENAI_SPEC), [
        "--url", f"{fuzzed_app.base_url}/v1", "-n", "15",
        "--include-operation-id", "createChatCompletion", "--include-operation-id", "createTranscription",
        "--include-operation-id", "createSpeech"], tmp_path)
    assert_clean_run(run, operations=3)
    assert_still_serving(fuzzed_app)


# --- what the fuzzers found, pinned down ---------------------------------------------------------------

USER_HI = {"role": "user", "content": "Hi"}
FOUND = {  # each was a 500 or 503 before it was fixed: (path, body, status, the error's param)
    "tool calls on a user message": ("/v1/chat/completions", {"model": "concise", "max_tokens": MAX_TOKENS, "messages": [
        {"role": "user", "content": None, "tool_calls": [{"id": "c", "type": "function",
                                                          "function": {"name": "f", "arguments": "{}"}}]}]},
        400, "messages"),
    "a lone surrogate in a message": ("/v1/chat/completions", {"model": "concise", "max_tokens": MAX_TOKENS,
                                                              "messages": [{"role": "user", "content": "\ud800hi"}]},
                                      400, "messages.0.content"),
    "a NUL to speak": ("/v1/audio/speech", {"model": "tts-1", "input": "Hello\u0000 there.",
                                            "response_format": "pcm"}, 200, None),
    "more than the context window": ("/v1/chat/completions", {"model": "concise", "max_tokens": MAX_TOKENS,
                                                             "messages": [{"role": "user", "content": "hi " * 20_000}]},
                                     400, "messages"),
}


@pytest.mark.parametrize("path, body, status, param", FOUND.values(), ids=FOUND.keys())
def test_inputs_that_once_broke_the_server(fuzzed_app, path, body, status, param):
    # json.dumps by hand: httpx would refuse to encode the lone surrogates.
    response = httpx.post(fuzzed_app.base_url + path, content=json.dumps(body), timeout=60, headers={
        "Authorization": f"Bearer {FUZZ_KEY}", "Content-Type": "application/json"})
    assert response.status_code == status, response.text[:500]
    if status >= 400:
        error = response.json()["error"]
        assert error["param"] == param and error["type"] == "invalid_request_error", error
    else:
        assert len(response.content) > 4_800  # some audio: at least 0.1 s of 24 kHz PCM


def test_completions_carry_no_null_system_fingerprint(fuzzed_app):
    # OpenAI's schema types it as a string when present: a null fails strict clients.
    reply = httpx.post(f"{fuzzed_app.base_url}/v1/chat/completions", headers={"Authorization": f"Bearer {FUZZ_KEY}"},
                       json={"model": "concise", "max_tokens": MAX_TOKENS, "messages": [USER_HI]}, timeout=60).json()
    assert reply["object"] == "chat.completion" and "system_fingerprint" not in reply


@pytest.mark.parametrize("method, path, status", [("GET", "/v1/nothing-here", 404), ("GET", "/v1/chat/completions", 405),
                                                  ("DELETE", "/v1/models", 405), ("TRACE", "/v1/models/concise", 405)])
def test_unknown_routes_under_v1_answer_in_openai_shape(fuzzed_app, method, path, status):
    # Before, the Gradio app mounted at "/" answered these, with {"detail": "Not Found"}.
    response = httpx.request(method, fuzzed_app.base_url + path, headers={"Authorization": f"Bearer {FUZZ_KEY}"})
    assert response.status_code == status
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    if status == 405:
        assert response.headers["allow"] in ("GET", "POST")


def test_metrics_count_requests_by_route_template_not_by_raw_path(fuzzed_app):
    # A label per session id or per made-up URL or method would grow /metrics without bound.
    made_up = [uuid.uuid4().hex for _ in range(3)]
    auth = {"Authorization": f"Bearer {FUZZ_KEY}"}
    for word in made_up:
        httpx.get(f"{fuzzed_app.base_url}/v1/chat/sessions/{word}", headers=auth)
        httpx.get(f"{fuzzed_app.base_url}/v1/{word}", headers=auth)
        httpx.get(f"{fuzzed_app.base_url}/voice/{word}")
        httpx.request(f"X{word[:8].upper()}", f"{fuzzed_app.base_url}/v1/models", headers=auth)
    metrics = httpx.get(f"{fuzzed_app.base_url}/metrics").text
    assert not any(word in metrics or word[:8].upper() in metrics for word in made_up)
    for label in ('route="/v1/chat/sessions/{session_id}",status="404"', 'route="/v1/{unknown}"',
                  'method="OTHER"'):
        assert label in metrics, label
