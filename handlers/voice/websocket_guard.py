"""Guards in front of FastRTC's websocket routes (0.0.34 defects, see the shared notes).

Stock, a non-JSON or binary frame raises inside the ASGI app and drops the socket
with no close code; `media` sent before `start` reaches the handler and bypasses
the concurrency limit; the telephone route does not count connections at all;
and a socket that ends before `start` crashes FastRTC's clean-up (it reads a task
attribute that only `start` sets). So the guard owns a connection until a valid
`start`: it accepts, counts, checks and times out the socket itself, and only then
hands it to FastRTC, replaying the `start` frame and checking every later frame.
These routes are registered before `stream.mount`, so they win.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Callable

from fastapi import APIRouter, WebSocket
from fastapi.websockets import WebSocketDisconnect
from fastrtc import Stream

from handlers.phone.telephone import TOKEN_PARAMETER, PhoneLine
from handlers.visitor_limits import LimitReached
from handlers.voice.identity import TokenRejected, VoiceIdentities
from handlers.voice.playback import PlaybackClock
from handlers.voice.slots import VoiceSlots

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 256 * 1024
# An idle socket that never starts must not hold a slot for ever.
CLOSE_UNSUPPORTED = 1003  # binary frames
CLOSE_INVALID = 1007  # not JSON, or not our events
CLOSE_POLICY = 1008  # media before start, start twice, an id already in use, no start in time
CLOSE_TOO_BIG = 1009
CLOSE_BUSY = 1013  # try again later
PHONE_RATE = 8_000  # Twilio's mu-law, one byte per sample
MARK_EVERY_BYTES = PHONE_RATE // 4  # a mark per quarter second of reply audio
# Before `start`: Twilio says "connected" first; "mark" and "dtmf" carry nothing we need.
_IGNORED_BEFORE_START = {"connected", "mark", "dtmf"}


class _Refused(Exception):
    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


class _ClientLeft(Exception):
    pass


class GuardedWebSocket:
    """Looks like the WebSocket FastRTC expects; validates every frame it hands over."""

    def __init__(self, websocket: WebSocket, start_field: str, slots: VoiceSlots, phone: bool,
                 identities: VoiceIdentities | None = None, phone_line: PhoneLine | None = None,
                 start_timeout_s: float = 10.0):
        self._ws = websocket
        self._start_timeout_s = start_timeout_s
        self._phone_line = phone_line
        self._start_field = start_field
        self._slots = slots
        self._phone = phone
        self._identities = identities
        self._replay: dict | None = None
        self.connection_id: str | None = None
        self.refusal: _Refused | None = None
        self.before_close: Callable[[], None] | None = None  # frees the slot before the close goes out
        # A phone stream: what the caller has heard, from the marks Twilio echoes.
        self.playback = PlaybackClock() if phone else None
        # FastRTC resets a WebRTC peer's handler when it goes, never a websocket's (0.0.34):
        # the handler asks to be told here (its reset closes a reply still being made).
        self._on_end: list[Callable[[], None]] = []

    def when_ended(self, callback: Callable[[], None]) -> None:
        self._on_end.append(callback)

    def ended(self) -> None:
        """The connection is over: run the callbacks off the event loop (they save what was said)."""
        callbacks, self._on_end = self._on_end, []
        loop = asyncio.get_running_loop()
        for callback in callbacks:
            loop.run_in_executor(None, callback)

    def __getattr__(self, name):
        return getattr(self._ws, name)

    async def accept(self, *args, **kwargs) -> None:
        """The guard has accepted already."""

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        # FastRTC closes the socket itself on the way out; make that close say why.
        if self.before_close is not None:
            self.before_close()
        if self.refusal is not None:
            code, reason = self.refusal.code, self.refusal.reason
        # A client that has gone first makes Starlette raise here, and FastRTC would
        # then skip its clean-up: closing a closed socket is not an error.
        await _close(self._ws, code, reason or "")

    async def send_json(self, data, mode: str = "text") -> None:
        if self.playback is None or not isinstance(data, dict):
            await self._ws.send_json(data, mode)
            return
        if data.get("event") == "media":
            await self._send_marked_audio(data, mode)
            return
        await self._ws.send_json(data, mode)
        if data.get("event") == "clear":
            self.playback.cleared()

    async def _send_marked_audio(self, data: dict, mode: str) -> None:
        """FastRTC sends a whole sentence as one media message. Sent in short chunks, each
        followed by a mark, Twilio's echoes tell to a quarter second what the caller heard."""
        try:
            audio = base64.b64decode((data.get("media") or {}).get("payload") or "")
        except (ValueError, binascii.Error):
            await self._ws.send_json(data, mode)
            return
        stream_sid = data.get("streamSid") or self.connection_id
        for start in range(0, len(audio), MARK_EVERY_BYTES):
            chunk = audio[start:start + MARK_EVERY_BYTES]  # mu-law: one byte per sample
            await self._ws.send_json({**data, "media": {"payload": base64.b64encode(chunk).decode()}}, mode)
            name = self.playback.sent(len(chunk) / PHONE_RATE)
            await self._ws.send_json({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}}, mode)

    async def await_start(self) -> None:
        """Read until a valid `start`, which FastRTC then gets as its first frame."""
        while True:
            try:
                data = await asyncio.wait_for(self._next_frame(), self._start_timeout_s)
            except TimeoutError:
                raise _Refused(CLOSE_POLICY, f"no 'start' within {self._start_timeout_s:g}s") from None
            event = data["event"]
            if event == "start":
                self._take_start(data)
                self._replay = data
                return
            if event == "media":
                raise _Refused(CLOSE_POLICY, "send 'start' before 'media'")
            if event == "stop":
                raise _Refused(1000, "stopped before start")
            if event == "ping":
                await self._ws.send_json({"event": "pong"})
            elif event not in _IGNORED_BEFORE_START:
                raise _Refused(CLOSE_INVALID, f"unknown event '{event[:40]}' before 'start'")

    def _take_start(self, data: dict) -> None:
        connection_id = data.get(self._start_field)
        if not isinstance(connection_id, str) or not connection_id or len(connection_id) > 200:
            raise _Refused(CLOSE_INVALID, f"'start' needs '{self._start_field}'")
        if not self._phone:
            # FastRTC files connections by this id: a second one would replace (and on
            # close remove) the first's entry, and with it its place in the count.
            if self._slots.id_in_use(connection_id):
                raise _Refused(CLOSE_POLICY, f"a connection with this {self._start_field} is already open")
            if self._identities is not None and self._identities.required:
                try:  # the connection speaks as the identity its token names
                    self._identities.bind(connection_id, data.get("token"))
                except (TokenRejected, LimitReached) as exc:
                    raise _Refused(CLOSE_POLICY, str(exc)[:120]) from None
            self._slots.websocket_ids.add(connection_id)
        elif self._phone_line is not None:
            self._take_phone_caller(connection_id, data)
        self.connection_id = connection_id

    def _take_phone_caller(self, stream_sid: str, data: dict) -> None:
        """A media stream is only for a call our webhook answered: its one-time token
        names the caller (and the persona of the number they called)."""
        start = data.get("start")
        parameters = start.get("customParameters") if isinstance(start, dict) else None
        token = parameters.get(TOKEN_PARAMETER) if isinstance(parameters, dict) else None
        try:
            caller = self._phone_line.tokens.redeem(token)
            if self._identities is not None:
                self._identities.bind_user(stream_sid, caller.user_id, caller.persona_id)
        except (TokenRejected, LimitReached) as exc:
            raise _Refused(CLOSE_POLICY, str(exc)[:120]) from None

    async def receive_json(self, mode: str = "text"):
        if self._replay is not None:
            data, self._replay = self._replay, None
            return data
        try:
            data = await self._next_frame()
        except _ClientLeft:
            raise WebSocketDisconnect(1000) from None
        except _Refused as refused:
            self.refusal = refused
            raise
        if data["event"] == "start":
            self.refusal = _Refused(CLOSE_POLICY, "'start' was already sent")
            raise self.refusal
        if data["event"] == "media":
            self._check_media(data)
        elif data["event"] == "mark" and self.playback is not None:
            mark = data.get("mark")
            self.playback.echoed(mark.get("name") if isinstance(mark, dict) else None)
        return data

    def _check_media(self, data: dict) -> None:
        media = data.get("media")
        payload = media.get("payload") if isinstance(media, dict) else None
        if isinstance(payload, str):
            try:
                base64.b64decode(payload, validate=True)
                return
            except (ValueError, binascii.Error):
                pass
        self.refusal = _Refused(CLOSE_INVALID, "'media' needs media.payload: base64 mu-law audio")
        raise self.refusal

    async def _next_frame(self) -> dict:
        message = await self._ws.receive()
        if message["type"] == "websocket.disconnect":
            raise _ClientLeft
        text = message.get("text")
        if text is None:
            raise _Refused(CLOSE_UNSUPPORTED, "binary frames are not supported; send JSON text")
        if len(text) > MAX_FRAME_BYTES:
            raise _Refused(CLOSE_TOO_BIG, "frame too large")
        try:
            data = json.loads(text)
        except ValueError:
            raise _Refused(CLOSE_INVALID, "frames must be JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("event"), str):
            raise _Refused(CLOSE_INVALID, "frames need an 'event' field")
        return data


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    try:
        await websocket.close(code, reason)
    except (RuntimeError, WebSocketDisconnect, OSError):  # already closed, by FastRTC or by the client
        pass


async def _guarded(websocket: WebSocket, serve, start_field: str, slots: VoiceSlots, phone: bool,
                   stream: Stream, identities: VoiceIdentities | None = None,
                   phone_line: PhoneLine | None = None, start_timeout_s: float = 10.0) -> None:
    await websocket.accept()
    if slots.busy():
        log.info("refusing a voice websocket: %d connections is the limit", slots.limit)
        await _close(websocket, CLOSE_BUSY, "too many voice connections; try again later")
        return
    guarded = GuardedWebSocket(websocket, start_field, slots, phone, identities, phone_line, start_timeout_s)
    slots.guarded += 1  # no await since busy(): the check and the count are one step
    released = False

    def release() -> None:
        # Before the close goes out: a client told why may call again at once, and must find
        # its slot free rather than "too many voice connections".
        nonlocal released
        if released:
            return
        released = True
        slots.guarded -= 1
        if guarded.connection_id is not None:
            if not phone:
                slots.release_websocket(guarded.connection_id, stream)
            if identities is not None:
                identities.forget(guarded.connection_id)

    guarded.before_close = release
    try:
        await guarded.await_start()
        await serve(guarded)
    except _ClientLeft:
        pass
    except _Refused as refused:
        log.info("closing a voice websocket: %s", refused.reason)
        release()
        await _close(websocket, refused.code, refused.reason)
    except WebSocketDisconnect:
        pass  # the client left while FastRTC was sending: an ordinary end of a call
    except Exception as exc:  # noqa: BLE001 - one bad connection must not leave a trace per frame
        log.warning("closing a voice websocket after %s: %s", type(exc).__name__, exc)
        release()
        await _close(websocket, CLOSE_INVALID, "bad frame")
    finally:
        release()
        guarded.ended()


def build_guard_routes(stream: Stream, slots: VoiceSlots, identities: VoiceIdentities | None = None,
                       path: str = "/voice", phone_line: PhoneLine | None = None,
                       start_timeout_s: float = 10.0) -> APIRouter:
    """`phone_line`: the telephone route serves only streams its webhook answered (a token each);
    `start_timeout_s`: a socket that sends no 'start' this soon is closed (it holds a slot)."""
    router = APIRouter()

    @router.websocket(f"{path}/websocket/offer")
    async def websocket_offer(websocket: WebSocket) -> None:
        await _guarded(websocket, stream.websocket_offer, "websocket_id", slots, phone=False, stream=stream,
                       identities=identities, start_timeout_s=start_timeout_s)

    @router.websocket(f"{path}/telephone/handler")
    async def telephone_handler(websocket: WebSocket) -> None:
        await _guarded(websocket, stream.telephone_handler, "streamSid", slots, phone=True, stream=stream,
                       identities=identities, phone_line=phone_line, start_timeout_s=start_timeout_s)

    return router
