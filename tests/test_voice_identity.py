"""Voice connections carry an identity on a server with API keys: a short-lived token
from GET /voice/token, sent in the websocket `start` (or the WebRTC offer). The call
speaks as that identity, and nobody else can read its outputs or steer it."""
from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
import websockets

from handlers.voice.identity import VoiceTokens
from handlers.voice.websocket_guard import CLOSE_POLICY
from tests.clients.voice_ws import VoiceWebsocketClient, espeak_clip
from tests.conftest import start_app, stop_app
from tests.test_voice_websocket_guard import closed_with, url

SECRET = "test-secret-for-voice-tokens-0123456789"


@pytest.fixture(scope="module")
def keyed_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keyed-voice")
    app = start_app(folder, {"COZY_LLM": "smollm2-135m", "COZY_DATA_DIR": str(folder / "data"),
                             "COZY_API_KEYS": "key-ann=ann,key-ben=ben", "COZY_SECRET": SECRET})
    yield app
    stop_app(app)


def token_for(app, key: str) -> str:
    response = httpx.get(f"{app.base_url}/voice/token", headers={"authorization": f"Bearer {key}"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["token"]


async def refused_start(app, frame: dict) -> tuple[int | None, str]:
    async with websockets.connect(url(app, "/voice/websocket/offer")) as ws:
        await ws.send(json.dumps(frame))
        return await closed_with(ws)


def test_a_token_needs_a_key(keyed_app):
    assert httpx.get(f"{keyed_app.base_url}/voice/token", timeout=10).status_code == 401
    assert httpx.get(f"{keyed_app.base_url}/voice/token", headers={"authorization": "Bearer nope"},
                     timeout=10).status_code == 401


@pytest.mark.parametrize("token, words", [
    (None, "token is required"),
    ("forged.signature", "not valid"),
    (VoiceTokens(b"another server's secret").issue("ann"), "not valid"),
    (VoiceTokens(SECRET.encode(), ttl_s=-60).issue("ann"), "expired"),
    ("x" * 5000, "malformed"),
])
async def test_a_start_without_a_valid_token_is_refused(keyed_app, token, words):
    frame = {"event": "start", "websocket_id": uuid.uuid4().hex, **({"token": token} if token else {})}
    code, reason = await refused_start(keyed_app, frame)
    assert code == CLOSE_POLICY and words in reason


async def test_a_call_speaks_as_its_token_and_only_its_owner_can_see_or_steer_it(keyed_app):
    ann, ben = token_for(keyed_app, "key-ann"), token_for(keyed_app, "key-ben")
    async with VoiceWebsocketClient(keyed_app.base_url, token=ann) as call:
        connection = call.websocket_id
        async with httpx.AsyncClient(base_url=keyed_app.base_url, timeout=10) as http:
            assert (await http.get("/voice/outputs", params={"webrtc_id": connection})).status_code == 401
            assert (await http.get("/voice/outputs", params={"webrtc_id": connection, "token": ben})
                    ).status_code == 404
            assert (await http.post("/voice/settings", json={"webrtc_id": connection, "persona_id": "tutor",
                                                             "token": ben})).status_code == 404
            assert (await http.post("/voice/settings", json={"webrtc_id": connection, "persona_id": "concise",
                                                             "token": ann})).status_code == 200
        turn = await call.speak(espeak_clip("What is the capital of France?"), listen_s=60)
        assert turn.transcript() and turn.transcript()[0]["role"] == "user"

    def sessions(key: str) -> list[dict]:
        return httpx.get(f"{keyed_app.base_url}/v1/chat/sessions", headers={"authorization": f"Bearer {key}"},
                         timeout=10).json()["data"]

    async with asyncio.timeout(30):  # the turn is saved as it ends; poll until it is there
        while not sessions("key-ann"):
            await asyncio.sleep(0.1)
    assert sessions("key-ann")[0]["persona_id"] == "concise"
    assert sessions("key-ben") == []


def test_a_webrtc_offer_without_a_token_is_refused(keyed_app):
    response = httpx.post(f"{keyed_app.base_url}/voice/webrtc/offer", timeout=10,
                          json={"sdp": "v=0", "type": "offer", "webrtc_id": uuid.uuid4().hex})
    assert response.status_code == 401 and response.json()["meta"]["error"] == "unauthorized"
    health = httpx.get(f"{keyed_app.base_url}/healthz", timeout=10).json()
    assert health["voice_connections"] == 0
