"""Many people on one server: what one caller sends never switches the model off for
the others, and a refused request leaves nothing behind.

One real app on the fast model, with an API key per user, driven by the `openai` SDK
and plain HTTP on loopback.
"""
from __future__ import annotations

import re
import threading
import time

import httpx
import openai
import pytest

from tests.conftest import start_app, stop_app
from tests.test_openai_api import sdk

USERS = ("ada", "bob", "cy")
BREAKER = re.compile(r'cozy_breaker_state\{modality="(\w+)",provider="([^"]+)"\} (\S+)')


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shared-app")
    keys = ",".join(f"key-{user}={user}" for user in USERS)
    app = start_app(folder, {"COZY_LLM": "smollm2-135m", "COZY_DATA_DIR": str(folder / "data"),
                             "COZY_API_KEYS": keys})
    yield app
    stop_app(app)


def client(app, user: str) -> openai.OpenAI:
    return sdk(app.base_url, f"key-{user}")


def breakers(app) -> dict[tuple[str, str], str]:
    text = httpx.get(f"{app.base_url}/metrics", timeout=10).text
    states = {"0.0": "closed", "1.0": "half-open", "2.0": "open"}
    return {(modality, provider): states[value] for modality, provider, value in BREAKER.findall(text)}


def llm_breaker(app) -> str:
    [state] = [s for (modality, provider), s in breakers(app).items()
               if modality == "llm" and provider.startswith("offline")]
    return state


def ordinary_chat(app, user: str) -> str:
    completion = client(app, user).chat.completions.create(
        model="concise", max_tokens=16, messages=[{"role": "user", "content": "Say hello."}])
    return completion.choices[0].message.content


def nested_schema(levels: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"inner": schema}}
    return schema


def test_a_schema_nested_300_deep_is_the_senders_400_and_nobody_elses_outage(shared_app):
    ada = client(shared_app, "ada")
    tool = {"type": "function", "function": {"name": "deep", "parameters": nested_schema(300)}}
    for _ in range(5):  # more than the breaker's three strikes
        with pytest.raises(openai.BadRequestError) as refused:
            ada.chat.completions.create(model="concise", tools=[tool],
                                        messages=[{"role": "user", "content": "Call deep."}])
        assert "nested more than" in refused.value.message
        assert refused.value.body["param"].startswith("tools.0.function.parameters")
    assert ordinary_chat(shared_app, "bob")
    assert llm_breaker(shared_app) == "closed"


def test_eight_long_chats_at_once_are_answered_or_told_busy_at_once(shared_app):
    results: list[tuple[str, float, dict]] = []
    lock = threading.Lock()

    def long_chat() -> None:
        started = time.monotonic()
        try:
            completion = client(shared_app, "ada").chat.completions.create(
                model="storyteller", max_tokens=512,
                messages=[{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}])
            outcome, details = "answered", {"text": completion.choices[0].message.content}
        except (openai.RateLimitError, openai.InternalServerError) as busy:
            outcome = "busy"
            details = {"status": busy.status_code, "retry_after": busy.response.headers.get("retry-after"),
                       "message": busy.message}
        with lock:
            results.append((outcome, time.monotonic() - started, details))

    threads = [threading.Thread(target=long_chat) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(results) == 8, results
    answered = [r for r in results if r[0] == "answered"]
    busy = [r for r in results if r[0] == "busy"]
    assert answered and all(text for _, _, text in answered), results
    for _, seconds, details in busy:
        assert seconds < 5, f"a busy answer must come at once, came after {seconds:.1f}s: {details}"
        assert details["status"] in (429, 503) and int(details["retry_after"]) >= 1, details
        assert "try again" in details["message"]
    assert llm_breaker(shared_app) == "closed"
    assert ordinary_chat(shared_app, "bob")  # and the next person is served


def test_an_oversized_chunked_body_gets_413_and_the_server_keeps_serving(shared_app):
    def five_megabytes():
        for _ in range(80):
            yield b"x" * 65_536

    response = httpx.post(f"{shared_app.base_url}/v1/chat/completions", content=five_megabytes(), timeout=30,
                          headers={"authorization": "Bearer key-cy", "content-type": "application/json"})
    assert "content-length" not in response.request.headers  # sent chunked
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "request_too_large"
    assert ordinary_chat(shared_app, "cy")


def test_a_refused_request_leaves_no_message_and_no_conversation_behind(shared_app):
    http = httpx.Client(base_url=shared_app.base_url, headers={"authorization": "Bearer key-cy"}, timeout=120)
    session = http.post("/v1/chat/sessions", json={"persona_id": "concise"}).json()["id"]
    before = {s["id"] for s in http.get("/v1/chat/sessions").json()["data"]}
    too_long = "word " * 180_000  # ~900 KB: under the body limit, far over the context window
    for headers in ({"x-session-id": session}, {}):  # a named conversation, and a stateless request
        response = http.post("/v1/chat/completions", headers=headers, json={
            "model": "concise", "messages": [{"role": "user", "content": too_long}]})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] == "context_length_exceeded"
    assert http.get(f"/v1/chat/sessions/{session}/messages").json()["data"] == []
    assert {s["id"] for s in http.get("/v1/chat/sessions").json()["data"]} == before
    assert llm_breaker(shared_app) == "closed"


def test_end_users_behind_one_key_keep_their_conversations_apart(shared_app):
    # An app serving its customers through one API key names each with OpenAI's `user`.
    cy = client(shared_app, "cy")
    cy.chat.completions.create(model="concise", user="ada", max_tokens=8,
                               messages=[{"role": "user", "content": "My name is Ada and I keep bees."}])
    cy.chat.completions.create(model="concise", safety_identifier="bob", max_tokens=8,
                               messages=[{"role": "user", "content": "What is my name?"}])
    http = httpx.Client(base_url=shared_app.base_url, headers={"authorization": "Bearer key-cy"}, timeout=30)

    def said(end_user: str) -> list[str]:
        sessions = http.get("/v1/chat/sessions", params={"user": end_user}).json()["data"]
        return [m["content"] for s in sessions
                for m in http.get(f"/v1/chat/sessions/{s['id']}/messages", params={"user": end_user}).json()["data"]
                if m["role"] == "user"]

    assert said("ada") == ["My name is Ada and I keep bees."]
    assert said("bob") == ["What is my name?"]  # Ada's words are not in Bob's conversation
    ada_session = http.get("/v1/chat/sessions", params={"user": "ada"}).json()["data"][0]["id"]
    assert http.get(f"/v1/chat/sessions/{ada_session}", params={"user": "bob"}).status_code == 404
    assert http.get(f"/v1/chat/sessions/{ada_session}").status_code == 404  # nor the key's own view
    assert client(shared_app, "ada").chat.completions.with_raw_response.create(  # another key's "ada" is not cy's
        model="concise", user="ada", max_tokens=4, messages=[{"role": "user", "content": "Hi"}]).headers[
        "x-session-id"] != ada_session


def test_a_user_sees_everything_stored_about_them_and_can_erase_it(shared_app):
    def me(key: str, method: str = "GET", **params) -> dict:
        response = httpx.request(method, f"{shared_app.base_url}/v1/users/me", params=params, timeout=30,
                                 headers={"authorization": f"Bearer {key}"})
        assert response.status_code == 200, response.text
        return response.json()

    for user in ("dee", "eve"):  # two end users of one key
        client(shared_app, "bob").chat.completions.create(
            model="companion", user=user, max_tokens=8,
            messages=[{"role": "user", "content": f"My name is {user.title()} and I love tea."}])
    dee = me("key-bob", user="dee")
    assert [m["content"] for m in dee["messages"] if m["role"] == "user"] == ["My name is Dee and I love tea."]
    assert dee["sessions"] and all("Eve" not in m["content"] for m in dee["messages"])

    erased = me("key-bob", "DELETE", user="dee")
    assert erased["deleted"] and erased["erased"]["messages"] >= 2 and erased["erased"]["sessions"] == 1
    after = me("key-bob", user="dee")
    assert after["sessions"] == after["messages"] == after["memories"] == after["profile"] == []
    assert [m["content"] for m in me("key-bob", user="eve")["messages"] if m["role"] == "user"] == [
        "My name is Eve and I love tea."]  # the other end user keeps everything
