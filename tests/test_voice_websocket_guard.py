"""The guarded voice websockets of the real app: hostile frames get a clean close with
a code that says why, the app logs no trace, and the next caller is served; the
concurrency limit holds across the websocket and telephone (Twilio) routes.

One app instance with COZY_CONCURRENCY_LIMIT=1, so every test also proves that a
closed connection gives its slot back.
"""
from __future__ import annotations

import asyncio
import base64
import json
import uuid
from contextlib import asynccontextmanager
from types import SimpleNamespace

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from handlers.voice.websocket_guard import (CLOSE_BUSY, CLOSE_INVALID, CLOSE_POLICY, CLOSE_TOO_BIG, CLOSE_UNSUPPORTED,
                                      MAX_FRAME_BYTES, GuardedWebSocket, _Refused)
from handlers.voice.slots import VoiceSlots
from tests.clients.voice_ws import answer_call
from tests.conftest import start_app, stop_app

WEBSOCKET = "/voice/websocket/offer"
TELEPHONE = "/voice/telephone/handler"
MULAW_SILENCE = b"\xff"
FRAME_S = 0.02
START_TIMEOUT_S = 2  # short, so the test of a socket that never starts is short too


@pytest.fixture(scope="module")
def voice_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("voice-app")
    app = start_app(folder, {"COZY_CONCURRENCY_LIMIT": "1", "COZY_VOICE_START_TIMEOUT_S": str(START_TIMEOUT_S),
                             "COZY_LLM": "smollm2-135m", "COZY_DATA_DIR": str(folder / "data")})
    yield app
    stop_app(app)


@pytest.fixture
def clean_log(voice_app):
    """Whatever the test did, the app logged no exception trace and no error."""
    before = voice_app.log_path.stat().st_size
    yield
    with voice_app.log_path.open(errors="replace") as log:
        log.seek(before)
        written = log.read()
    assert "Traceback" not in written and '"level": "ERROR"' not in written, written[-4000:]


def url(app, path: str) -> str:
    return app.base_url.replace("http", "ws", 1) + path


def start_frame(path: str, connection_id: str | None = None, app=None) -> str:
    """`app`: a telephone stream starts with the token of a call its webhook answered."""
    connection_id = connection_id or uuid.uuid4().hex
    if path == TELEPHONE:  # Twilio Media Streams: "connected", then "start" with the stream id
        _, token = answer_call(app.base_url)
        return json.dumps({"event": "start", "sequenceNumber": "1", "streamSid": connection_id,
                           "start": {"streamSid": connection_id, "customParameters": {"cozy_token": token},
                                     "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                                     "channels": 1}}})
    return json.dumps({"event": "start", "websocket_id": connection_id})


def silence_frame(path: str, stream_sid: str = "") -> str:
    rate = 8_000 if path == TELEPHONE else 16_000  # Twilio's rate; the websocket takes the handler's
    payload = base64.b64encode(MULAW_SILENCE * int(rate * FRAME_S)).decode()
    frame = {"event": "media", "media": {"payload": payload}}
    return json.dumps({**frame, "streamSid": stream_sid} if path == TELEPHONE else frame)


async def closed_with(ws, timeout_s: float = 5.0) -> tuple[int | None, str]:
    """The close code and reason the server sent, skipping anything it said before."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout_s)
    except ConnectionClosed as closed:
        return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "")


@asynccontextmanager
async def started_call(app, path: str):
    """A well-behaved caller: `start`, then live audio (silence) until the block ends."""
    sid = uuid.uuid4().hex
    async with websockets.connect(url(app, path)) as ws:
        if path == TELEPHONE:
            await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(start_frame(path, sid, app))
        sending = asyncio.create_task(_send_silence(ws, path, sid))
        try:
            await asyncio.sleep(0.2)  # let the server file the connection
            yield ws
        finally:
            sending.cancel()
            try:
                await ws.send(json.dumps({"event": "stop"}))
            except ConnectionClosed:
                pass


async def _send_silence(ws, path: str, sid: str) -> None:
    while True:
        await ws.send(silence_frame(path, sid))
        await asyncio.sleep(FRAME_S)


async def assert_served(app, path: str) -> None:
    """A normal call works: it stays open on audio and answers a ping."""
    async with started_call(app, path) as ws:
        await asyncio.sleep(0.2)
        await ws.send(json.dumps({"event": "ping"}))
        async with asyncio.timeout(5):
            while (message := json.loads(await ws.recv())).get("event") != "pong":
                assert message.get("event") == "media", message  # reply audio is fine; nothing else is
        assert ws.state is websockets.State.OPEN


HOSTILE = {
    "not json": (["hello?"], CLOSE_INVALID),
    "binary frame": ([b"\x00\x01\x02"], CLOSE_UNSUPPORTED),
    "json without event": ([json.dumps({"media": {"payload": ""}})], CLOSE_INVALID),
    "json that is not an object": ([json.dumps(["start"])], CLOSE_INVALID),
    "media before start": (["SILENCE"], CLOSE_POLICY),
    "start without an id": ([json.dumps({"event": "start"})], CLOSE_INVALID),
    "oversized frame": (["x" * (MAX_FRAME_BYTES + 1)], CLOSE_TOO_BIG),
    "start twice": (["START", "START"], CLOSE_POLICY),
    "media that is not base64": (["START", json.dumps({"event": "media", "media": {"payload": "%%%"}})],
                                 CLOSE_INVALID),
    "media without a payload": (["START", json.dumps({"event": "media", "media": {}})], CLOSE_INVALID),
}


@pytest.mark.parametrize("path", [WEBSOCKET, TELEPHONE])
@pytest.mark.parametrize("frames, code", HOSTILE.values(), ids=HOSTILE.keys())
async def test_a_hostile_frame_gets_a_clean_close_and_the_next_caller_is_served(voice_app, clean_log,
                                                                                 path, frames, code):
    sid = uuid.uuid4().hex
    async with websockets.connect(url(voice_app, path), max_size=None) as ws:
        for frame in frames:
            await ws.send({"START": start_frame(path, sid, voice_app),
                           "SILENCE": silence_frame(path, sid)}.get(frame, frame))
        received_code, reason = await closed_with(ws)
    assert received_code == code, reason
    assert reason  # the close says what was wrong
    await assert_served(voice_app, path)


class FakeSocket:
    """Just enough of Starlette's WebSocket to feed the guard frames."""

    def __init__(self, frames: list[str]):
        self.frames = list(frames)

    async def receive(self) -> dict:
        if not self.frames:
            return {"type": "websocket.disconnect", "code": 1000}
        return {"type": "websocket.receive", "text": self.frames.pop(0)}


async def test_a_start_with_an_id_already_open_is_refused():
    # FastRTC files connections by id: a second one would replace the first's entry, and its
    # close would remove it, freeing a slot that is still in use. (Needs a limit above 1 to
    # reach over the wire, so it is checked here, on the guard itself.)
    stream = SimpleNamespace(connections={"taken": [object()]}, concurrency_limit=4)
    slots = VoiceSlots(4, [stream])
    with pytest.raises(_Refused) as refused:
        await GuardedWebSocket(FakeSocket([start_frame(WEBSOCKET, "taken")]), "websocket_id", slots,
                               phone=False).await_start()
    assert refused.value.code == CLOSE_POLICY
    fresh = GuardedWebSocket(FakeSocket([start_frame(WEBSOCKET, "free")]), "websocket_id", slots, phone=False)
    await fresh.await_start()
    assert slots.websocket_ids == {"free"} and not slots.busy()


@pytest.mark.parametrize("held, refused", [(WEBSOCKET, WEBSOCKET), (WEBSOCKET, TELEPHONE),
                                           (TELEPHONE, TELEPHONE), (TELEPHONE, WEBSOCKET)])
async def test_the_concurrency_limit_holds_across_websocket_and_telephone(voice_app, clean_log, held, refused):
    async with started_call(voice_app, held):
        async with websockets.connect(url(voice_app, refused)) as ws:  # closed on arrival, before any frame
            code, reason = await closed_with(ws)
        assert code == CLOSE_BUSY and "try again" in reason
    # The slot comes back when the server has seen the held call's close (a moment after ours).
    await wait_until_no_voice_connections(voice_app, f"hanging up a {held} call")
    await assert_served(voice_app, refused)


async def test_a_socket_that_never_starts_does_not_hold_the_slot_for_ever(voice_app, clean_log):
    async with websockets.connect(url(voice_app, WEBSOCKET)) as idle:
        await idle.send(json.dumps({"event": "ping"}))  # allowed before start, and answered
        assert json.loads(await asyncio.wait_for(idle.recv(), 5)) == {"event": "pong"}
        code, reason = await closed_with(idle, timeout_s=START_TIMEOUT_S + 5)
    assert code == CLOSE_POLICY and "start" in reason
    await assert_served(voice_app, WEBSOCKET)


async def open_voice_connections(app) -> int:
    async with httpx.AsyncClient(base_url=app.base_url, timeout=5) as client:
        return (await client.get("/healthz")).json()["voice_connections"]


async def wait_until_no_voice_connections(app, call: str, timeout_s: float = 15.0) -> None:
    """Poll the server until every slot is back (a slot comes back when the server has
    seen the close, which may be a moment after the client's)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (count := await open_voice_connections(app)) != 0:
        assert asyncio.get_running_loop().time() < deadline, f"after {call}: {count} slot(s) still held"
        await asyncio.sleep(0.05)


async def one_call(app, path: str, ending: str) -> None:
    """A well-behaved call: start, a little audio, ping/pong, then one way of ending it."""
    sid = uuid.uuid4().hex
    ws = await websockets.connect(url(app, path))
    try:
        await ws.send(start_frame(path, sid, app))
        for _ in range(3):
            await ws.send(silence_frame(path, sid))
        await ws.send(json.dumps({"event": "ping"}))
        async with asyncio.timeout(10):
            while json.loads(await ws.recv()).get("event") != "pong":
                pass
        if ending == "stop, server closes":
            await ws.send(json.dumps({"event": "stop"}))
            await closed_with(ws)
        elif ending == "stop, client closes at once":  # races FastRTC's own close
            await ws.send(json.dumps({"event": "stop"}))
            await ws.close()
        elif ending == "client closes":
            await ws.close()
        elif ending == "connection drops":
            ws.transport.abort()
    finally:
        if ending != "connection drops":
            await ws.close()


ENDINGS = ("stop, server closes", "stop, client closes at once", "client closes", "connection drops")


async def test_200_calls_in_a_row_give_every_slot_back(voice_app, clean_log):
    # With one slot, a single leaked connection refuses every later caller.
    for index in range(200):
        path = (WEBSOCKET, TELEPHONE)[index % 2]
        ending = ENDINGS[(index // 2) % len(ENDINGS)]
        call = f"call {index + 1} ({path}, {ending})"
        await one_call(voice_app, path, ending)
        await wait_until_no_voice_connections(voice_app, call)
    await assert_served(voice_app, WEBSOCKET)
    await assert_served(voice_app, TELEPHONE)
    await wait_until_no_voice_connections(voice_app, "the last normal calls")


async def test_webrtc_shares_the_one_limit_and_a_failed_offer_holds_no_slot(voice_app, clean_log):
    from aiortc import RTCPeerConnection

    async def offer() -> dict:
        peer = RTCPeerConnection()
        peer.addTransceiver("audio", direction="sendrecv")
        peer.createDataChannel("text")
        await peer.setLocalDescription(await peer.createOffer())
        try:
            async with httpx.AsyncClient(base_url=voice_app.base_url, timeout=30) as client:
                return (await client.post("/voice/webrtc/offer", json={
                    "sdp": peer.localDescription.sdp, "type": "offer", "webrtc_id": uuid.uuid4().hex})).json()
        finally:
            await peer.close()

    async with started_call(voice_app, WEBSOCKET):
        refused = await offer()
    assert refused.get("status") == "failed" and refused["meta"]["error"] == "concurrency_limit_reached"
    async with httpx.AsyncClient(base_url=voice_app.base_url, timeout=30) as client:
        for _ in range(3):  # garbage SDP: FastRTC files a peer before it fails on the offer
            await client.post("/voice/webrtc/offer", json={"sdp": "v=0 garbage", "type": "offer",
                                                           "webrtc_id": uuid.uuid4().hex})
    await wait_until_no_voice_connections(voice_app, "garbage offers")
    await assert_served(voice_app, WEBSOCKET)
