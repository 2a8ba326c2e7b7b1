"""Admins manage personas through the API; everyone else may only read them. Through the
real API (the `openai` SDK for chats) against the fake OpenAI vendor, on a copy of the
shipped cards."""
from __future__ import annotations

import shutil
import time

import jwt
import openai
import pytest
import yaml
from fastapi import FastAPI
from starlette.testclient import TestClient

from handlers.api import install_api
from handlers.api.auth import AuthConfig, Authenticator
from handlers.api.rate_limit import RateLimiter, RateLimits
from orchestrator.services import build_chat_services
from personas.cards import PersonaCatalog
from providers.moderation.offline import OfflineModerator
from tests.conftest import ROOT, stored_settings
from tests.fakes.providers import RecordingTTS, ScriptedSTT, openai_llm

pytest_plugins = ["tests.fakes.fixtures"]  # the fake vendor servers

KEYS = {"key-root": "root", "key-ada": "ada"}
SECRET = "persona-admin-test-secret-of-32-bytes!"
CARD = {"id": "pirate", "name": "Pip the pirate", "language": "en",
        "system_prompt": "You are Pip, a cheerful pirate. Answer in one sentence, in pirate speech.",
        "greeting": "Ahoy!", "voices": {"piper": "en_US-joe-medium"}, "temperature": 0.5}


@pytest.fixture
def api(vendor, tmp_path):
    folder = tmp_path / "personas"
    shutil.copytree(ROOT / "personas", folder, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    services = build_chat_services(stored_settings(tmp_path), PersonaCatalog(folder, "concise"), openai_llm(vendor),
                                   moderator=OfflineModerator())
    app = FastAPI()
    install_api(app, services, ScriptedSTT(), RecordingTTS(),
                Authenticator(AuthConfig(KEYS, jwt_secret=SECRET, admins=frozenset({"root"}))),
                RateLimiter(RateLimits()))
    with TestClient(app) as http:
        yield http, folder, services
    services.close()


def as_(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def a_jwt(sub: str, **claims) -> str:
    return jwt.encode({"sub": sub, "exp": int(time.time()) + 300, **claims}, SECRET, algorithm="HS256")


def chat(http: TestClient, model: str, key: str = "key-ada", **extra):
    sdk = openai.OpenAI(api_key=key, base_url="http://testserver/v1", http_client=http, max_retries=0)
    return sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hello?"}], **extra)


def system_prompt_sent(vendor) -> str:
    [last] = [r for r in vendor.requests if r.path.endswith("/chat/completions")][-1:]
    return last.body["messages"][0]["content"]


def test_an_admin_adds_a_persona_that_every_caller_can_talk_to_at_once(api, vendor):
    http, folder, _ = api
    created = http.post("/v1/personalities", json=CARD, headers=as_("key-root"))
    assert created.status_code == 201, created.text
    assert created.json()["name"] == "Pip the pirate"
    assert "pirate" in [m["id"] for m in http.get("/v1/models", headers=as_("key-ada")).json()["data"]]
    chat(http, "pirate")
    assert "cheerful pirate" in system_prompt_sent(vendor)
    on_disk = yaml.safe_load((folder / "pirate.yaml").read_text())
    assert on_disk["system_prompt"] == CARD["system_prompt"]
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]  # written whole, nothing half-done left


def test_others_get_403_and_nothing_changes(api):
    http, folder, _ = api
    before = sorted(p.name for p in folder.iterdir())
    for method, path, body in (("POST", "/v1/personalities", CARD), ("PATCH", "/v1/personalities/concise", {"name": "X"}),
                               ("PUT", "/v1/personalities/concise", CARD), ("DELETE", "/v1/personalities/concise", None)):
        for who in ("key-ada", a_jwt("eve")):
            response = http.request(method, path, json=body, headers=as_(who))
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["error"]["type"] == "permission_error"
    assert sorted(p.name for p in folder.iterdir()) == before
    assert http.get("/v1/personalities/concise", headers=as_("key-ada")).json()["name"] != "X"
    # A JWT marked as admin may.
    assert http.post("/v1/personalities", json=CARD, headers=as_(a_jwt("ops", admin=True))).status_code == 201


@pytest.mark.parametrize("change, field", [
    ({"temperature": 5}, "temperature"),
    ({"name": None}, "name"),
    ({"voices": ["piper"]}, "voices"),
    ({"accent": "pirate"}, None),  # an unknown field is named in the message
    ({"id": "../../etc/passwd"}, "id"),
    ({"memory": "everything"}, "memory"),
    ({"max_reply_tokens": "many"}, "max_reply_tokens"),
    ({"allowed_tools": [1, {"x": 2}]}, "allowed_tools"),
    ({"moderation": "sometimes"}, "moderation"),
])
def test_a_bad_card_is_a_400_naming_the_field_and_nothing_is_written(api, change, field):
    http, folder, _ = api
    card = {k: v for k, v in {**CARD, **change}.items() if v is not None}
    response = http.post("/v1/personalities", json=card, headers=as_("key-root"))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == field and (field or "accent") in error["message"]
    assert not (folder / "pirate.yaml").exists() and not list(folder.glob("*passwd*"))


def test_a_change_is_used_by_the_next_turn(api, vendor):
    http, _, _ = api
    patched = http.patch("/v1/personalities/concise", json={"system_prompt": "You are Brief. Always mention teapots."},
                         headers=as_("key-root"))
    assert patched.status_code == 200, patched.text
    chat(http, "concise")
    assert "teapots" in system_prompt_sent(vendor)
    assert http.patch("/v1/personalities/concise", json={"temperature": "hot"},
                      headers=as_("key-root")).json()["error"]["param"] == "temperature"
    assert http.put("/v1/personalities/concise", json={**CARD, "id": "concise"}, headers=as_("key-root")).status_code == 200
    chat(http, "concise")
    assert "cheerful pirate" in system_prompt_sent(vendor)
    assert http.patch("/v1/personalities/nobody", json={"name": "x"}, headers=as_("key-root")).status_code == 404


def test_a_deleted_persona_takes_no_new_turns_but_its_conversations_stay_readable(api):
    http, folder, _ = api
    assert http.post("/v1/personalities", json=CARD, headers=as_("key-root")).status_code == 201
    reply = chat(http, "pirate", extra_body={"user": "sam"})
    sessions = http.get("/v1/chat/sessions", params={"user": "sam"}, headers=as_("key-ada")).json()["data"]
    deleted = http.delete("/v1/personalities/pirate", headers=as_("key-root"))
    assert deleted.status_code == 200 and deleted.json()["deleted"] is True
    assert "pirate" not in [m["id"] for m in http.get("/v1/models", headers=as_("key-ada")).json()["data"]]
    with pytest.raises(openai.NotFoundError):
        chat(http, "pirate")
    shown = http.get("/v1/personalities/pirate", headers=as_("key-ada")).json()
    assert shown["deleted"] is True and shown["name"] == "Pip the pirate"
    [session] = [s for s in sessions if s["persona_id"] == "pirate"]
    messages = http.get(f"/v1/chat/sessions/{session['id']}/messages", params={"user": "sam"},
                        headers=as_("key-ada")).json()["data"]
    assert [m["content"] for m in messages][-1] == reply.choices[0].message.content
    again = http.post("/v1/personalities", json=CARD, headers=as_("key-root"))
    assert again.status_code == 409  # its old conversations still name it
    assert http.delete("/v1/personalities/concise", headers=as_("key-root")).status_code == 409  # the default
