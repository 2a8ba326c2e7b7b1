"""A Hugging Face Space, built and run as a Space runs it, serving two strangers.

`python -m space.build` writes the folder; its own `app.py` is started the way a Space
starts it (SYSTEM=spaces, told its port as PORT), here on loopback. Two visitors, each
with their own cookie jar, hold a typed turn (with a note saved by a tool) and a
websocket voice turn, and neither can see or steer anything of the other's.
"""
from __future__ import annotations

import asyncio
import json
import re
import time
import uuid

import httpx
import pytest
import websockets
import yaml
from gradio_client import Client

from handlers.visitors import COOKIE_NAME
from handlers.voice.identity import VoiceTokens
from handlers.voice.websocket_guard import CLOSE_POLICY
from providers import model_files
from config import Settings
from space.build import BuildError, build
from tests.clients.voice_ws import VoiceWebsocketClient, espeak_clip
from tests.conftest import ROOT, start_app, stop_app
from tests.fakes.vendor_server import FakeVendorServer
from tests.fakes.wire import ToolScript
from tests.test_voice_websocket_guard import closed_with, url

SECRET = "space-test-secret-0123456789abcdef"


def front_matter(readme: str) -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", readme, re.S)
    assert match, "the Space README must start with its metadata"
    return yaml.safe_load(match.group(1))


def test_the_space_folder_is_ready_to_push(tmp_path):
    out = build(tmp_path / "not" / "yet" / "there")
    meta = front_matter((out / "README.md").read_text())
    gradio_pin = next(line for line in (ROOT / "requirements.txt").read_text().splitlines()
                      if line.startswith("gradio=="))
    assert meta["sdk"] == "gradio" and f"gradio=={meta['sdk_version']}" == gradio_pin
    assert meta["python_version"] == "3.11" and meta["hf_oauth"] is True
    assert (out / meta["app_file"]).read_text() == (ROOT / "app.py").read_text()  # the same app
    readme = (out / "README.md").read_text()
    assert "COZY_SECRET" in readme and "OPENAI_API_KEY" in readme and "Forget me" in readme

    requirements = [line for line in (out / "requirements.txt").read_text().splitlines()
                    if line and not line.startswith("#")]
    packages = [line for line in requirements if not line.startswith("-")]
    assert packages and all("==" in line for line in packages), "every requirement is pinned"
    assert any(line.startswith("llama-cpp-python==") for line in packages)
    assert (out / "constraints.txt").exists() and "-c constraints.txt" in requirements
    assert (out / "packages.txt").read_text().split()
    for folder in ("handlers", "orchestrator", "providers", "personas", "space", "storage", "tools", "memory"):
        assert (out / folder).is_dir()
    assert not (out / "tests").exists() and not (out / "data").exists() and not list(out.rglob("__pycache__"))

    with pytest.raises(BuildError, match="not empty"):
        build(out)


@pytest.fixture(scope="module")
def llm_vendor():
    """The Space's language model is a cloud one here (its key a Space secret), faked at the
    wire: it makes the tool call that saves each visitor's note, deterministically."""
    with FakeVendorServer() as server:
        yield server


@pytest.fixture(scope="module")
def space(tmp_path_factory, llm_vendor):
    folder = tmp_path_factory.mktemp("space")
    built = build(folder / "space")
    fast_model = model_files.resolve("smollm2-135m", Settings.from_env().models_dir)
    app = start_app(folder, {"SYSTEM": "spaces", "COZY_SECRET": SECRET, "COZY_DATA_DIR": str(folder / "data"),
                             "COZY_LLM": "smollm2-135m", "COZY_LLM_PATH": str(fast_model),
                             "OPENAI_API_KEY": llm_vendor.api_key, "OPENAI_BASE_URL": f"{llm_vendor.url}/v1",
                             "COZY_LLM_ORDER": "openai", "COZY_STT_ORDER": "offline", "COZY_TTS_ORDER": "offline"},
                    app_file=built / "app.py", port_variable="PORT")
    yield app
    stop_app(app)


class Visitor:
    """One browser: its own cookie jar, the page's API as Gradio's client calls it."""

    def __init__(self, app):
        self.http = httpx.Client(base_url=app.base_url, timeout=30)
        page = self.http.get("/", headers={"accept": "text/html"})
        assert page.status_code == 200
        set_cookie = page.headers["set-cookie"]
        assert set_cookie.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in set_cookie
        self.cookie = self.http.cookies[COOKIE_NAME]
        self.page = Client(app.base_url, headers={"Cookie": f"{COOKIE_NAME}={self.cookie}"}, verbose=False)

    def type(self, text: str, persona: str = "concise") -> tuple[str, list[str]]:
        chat, sessions, *_ = self.page.predict(text, persona, [], api_name="/type")  # message, persona, transcript
        return chat[-1]["content"], [choice[1] for choice in sessions["choices"]]

    def stored(self) -> str:
        return self.page.predict(api_name="/stored")

    def voice_token(self) -> str:
        response = self.http.get("/voice/token")
        assert response.status_code == 200, response.text
        return response.json()["token"]


def note_call(text: str) -> tuple[list[str], list[ToolScript]]:
    return [], [ToolScript(f"call_{uuid.uuid4().hex[:8]}", "add_note", (json.dumps({"text": text}),))]


def wait_for(predicate, timeout_s: float = 60, every_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every_s)


def test_two_visitors_share_nothing(space, llm_vendor):
    ada, bob = Visitor(space), Visitor(space)
    assert ada.cookie != bob.cookie

    llm_vendor.script.chat_turns.extend([note_call("locker code 4321"), (["Noted, Ada."], [])])
    reply, ada_sessions = ada.type("My name is Ada. Make a note: my locker code is 4321.")
    assert "Noted" in reply and len(ada_sessions) == 1
    llm_vendor.script.chat_turns.extend([note_call("bike lock 8765"), (["Noted, Bob."], [])])
    reply, bob_sessions = bob.type("My name is Bob. Make a note: my bike lock is 8765.")
    assert "Noted" in reply and bob_sessions and not set(bob_sessions) & set(ada_sessions)

    # Memories and audit rows are written off the hot path: wait for them, then compare.
    def settled(visitor: Visitor, name: str) -> str | None:
        stored = visitor.stored()
        return stored if name in stored and "1 tool calls" in stored else None

    ada_stored, bob_stored = wait_for(lambda: settled(ada, "Ada")), wait_for(lambda: settled(bob, "Bob"))
    assert ada_stored and bob_stored, (ada.stored(), bob.stored())
    assert "4321" in ada_stored and "8765" not in ada_stored and "Bob" not in ada_stored
    assert "8765" in bob_stored and "4321" not in bob_stored and "Ada" not in bob_stored
    # "1 tool calls" each: their own add_note, not the other's.


def test_voice_turns_belong_to_their_visitor_and_nobody_else_can_read_or_steer_them(space):
    ada, bob = Visitor(space), Visitor(space)
    ada_token, bob_token = ada.voice_token(), bob.voice_token()

    async def scenario():
        async with VoiceWebsocketClient(space.base_url, token=ada_token) as call:
            connection = call.websocket_id
            async with httpx.AsyncClient(base_url=space.base_url, timeout=10) as http:
                for token in (None, bob_token, "forged.token", VoiceTokens(b"other").issue("visitor:x")):
                    params = {"webrtc_id": connection, **({"token": token} if token else {})}
                    outputs = await http.get("/voice/outputs", params=params)
                    settings = await http.post("/voice/settings", json={
                        "webrtc_id": connection, "persona_id": "tutor", **({"token": token} if token else {})})
                    assert outputs.status_code in (401, 403, 404) and settings.status_code in (401, 403, 404)
                own = await http.post("/voice/settings", json={"webrtc_id": connection, "persona_id": "concise",
                                                               "token": ada_token})
                assert own.status_code == 200
            # One open voice connection per visitor: a second one is refused, in words.
            async with websockets.connect(url(space, "/voice/websocket/offer")) as second:
                await second.send(json.dumps({"event": "start", "websocket_id": uuid.uuid4().hex,
                                              "token": ada.voice_token()}))
                code, reason = await closed_with(second)
                assert code == CLOSE_POLICY and "already have a voice connection" in reason
            return await call.speak(espeak_clip("Hello there, how are you today?"), listen_s=90)

    turn = asyncio.run(scenario())
    assert turn.transcript() and turn.transcript()[0]["role"] == "user" and turn.audio.size > 0
    assert wait_for(lambda: "1 conversations" in ada.stored())
    assert "0 conversations" in bob.stored()


def test_the_space_is_public_mode(space):
    http = httpx.Client(base_url=space.base_url, timeout=10)
    # No anonymous API user on a public server, and no voice token without an identity.
    assert http.get("/v1/models").status_code == 401
    assert http.get("/voice/token").status_code == 401
    # A tampered or oversized cookie is just a stranger: a new identity, never an error.
    for bad in ("v1.00000000000000000000000000000000.deadbeef", "x" * 3000):
        page = http.get("/", headers={"accept": "text/html", "cookie": f"{COOKIE_NAME}={bad}"})
        assert page.status_code == 200 and page.headers["set-cookie"].split(";")[0] != f"{COOKIE_NAME}={bad}"
    # The page's events refuse a request that carries no visitor.
    stranger = Client(space.base_url, verbose=False)
    with pytest.raises(Exception, match="reload the page"):
        stranger.predict("hi", "concise", [], api_name="/type")


@pytest.mark.parametrize("token", [None, "forged.token", VoiceTokens(b"another server").issue("visitor:x"),
                                   VoiceTokens(SECRET.encode(), ttl_s=-60).issue("visitor:x"), "x" * 5000])
def test_a_webrtc_offer_needs_a_valid_visitor_token(space, token):
    body = {"sdp": "v=0", "type": "offer", "webrtc_id": uuid.uuid4().hex, **({"token": token} if token else {})}
    response = httpx.post(f"{space.base_url}/voice/webrtc/offer", json=body, timeout=10)
    assert response.status_code in (401, 422) and httpx.get(f"{space.base_url}/healthz").json()[
        "voice_connections"] == 0


def test_forget_me_erases_the_visitor_everywhere_and_no_one_else(space, llm_vendor):
    ada, bob = Visitor(space), Visitor(space)
    llm_vendor.script.chat_turns.extend([note_call("passport in the drawer"), (["Noted."], [])])
    ada.type("My name is Ada. Make a note: my passport is in the drawer.")
    bob.type("My name is Bob. What is the time?")
    assert wait_for(lambda: "passport" in ada.stored() and "Ada" in ada.stored())
    bob_before = wait_for(lambda: (s := bob.stored()) and "Bob" in s and s)

    erased = ada.page.predict(api_name="/forget")[0]  # the status line, then the emptied views
    assert "erased" in erased and "Erased 1 notes" in erased
    after = ada.stored()
    assert "0 conversations, 0 messages, 0 memories, 0 profile entries, 0 documents, 0 tool calls, 0 moderation flags" in after
    assert "passport" not in after and "No notes." in after
    assert bob.stored() == bob_before  # the other visitor keeps everything


def test_a_visitor_who_is_not_an_admin_cannot_change_personas(space):
    from space.persona_editor import NOT_ADMIN

    visitor = Visitor(space)
    card = "id: sneaky\nname: Sneaky\nsystem_prompt: Obey me.\ngreeting: Hi.\n"
    _, status, _ = visitor.page.predict("__new__", card, api_name="/persona_save")
    assert status == NOT_ADMIN
    _, status, _, _ = visitor.page.predict("concise", api_name="/persona_delete")
    assert status == NOT_ADMIN
    assert visitor.page.predict(card, api_name="/persona_try_voice")[1] == NOT_ADMIN
    with pytest.raises(Exception, match="sneaky is not in the list of choices"):  # no such persona
        visitor.page.predict("hi", "sneaky", [], api_name="/type")
