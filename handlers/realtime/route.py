"""The websocket route `/v1/realtime?model=<persona id>`.

Authenticated as the rest of /v1 (bearer API key or JWT in `Authorization`; public mode
serves no anonymous caller) and refused at the handshake with OpenAI's error body when
that fails. A connection holds one of the voice slots the websocket, WebRTC and phone
routes share. Binary frames are no part of the protocol: the socket is closed with 1003.
"""
from __future__ import annotations

import asyncio
import json
import logging

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from fastapi.websockets import WebSocketDisconnect

from handlers.api.auth import Authenticator
from handlers.api.errors import ApiError, error_body
from handlers.api.rate_limit import RateLimiter
from handlers.realtime.responder import Responder
from handlers.realtime.session import Identity, RealtimeSession
from handlers.voice.slots import VoiceSlots
from personas.cards import PersonaCatalog, PersonaError
from providers.base import SpeechToText

log = logging.getLogger(__name__)

CLOSE_UNSUPPORTED, CLOSE_POLICY, CLOSE_BUSY = 1003, 1008, 1013
IDLE_TIMEOUT_S = 600.0  # a silent client does not hold a voice slot for ever


async def _deny(websocket: WebSocket, status: int, body: dict, close_code: int) -> None:
    """A refusal the client can read: an HTTP error at the handshake where the server can send
    one, else an `error` event and a close saying why."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(JSONResponse(body, status_code=status))
        return
    await websocket.accept()
    await websocket.send_text(json.dumps({"type": "error", "event_id": "event_refused", **body}))
    await websocket.close(close_code, body["error"]["message"][:120])


def build_realtime_router(personas: PersonaCatalog, stt: SpeechToText, responder: Responder, vad, judge,
                          authenticator: Authenticator, limiter: RateLimiter, slots: VoiceSlots) -> APIRouter:
    router = APIRouter()

    @router.websocket("/v1/realtime")
    async def realtime(websocket: WebSocket) -> None:
        try:
            user_id, _ = authenticator.identify(websocket.headers.get("authorization"))
            limiter.request(user_id)
            model = websocket.query_params.get("model")
            try:
                persona = personas.get(model)
            except PersonaError:
                raise ApiError(404, f"The model '{model}' does not exist; GET /v1/models lists the personas.",
                               param="model", code="model_not_found") from None
        except ApiError as exc:
            await _deny(websocket, exc.status, error_body(exc.message, exc.type, exc.param, exc.code),
                        CLOSE_POLICY)
            return
        if slots.busy():
            log.info("refusing a realtime session: %d voice connections is the limit", slots.limit)
            await _deny(websocket, 503, error_body("Too many voice connections right now; try again shortly.",
                                                   "server_error", code="server_busy"), CLOSE_BUSY)
            return
        slots.guarded += 1  # no await since busy(): the check and the count are one step
        try:
            await websocket.accept()
            session = RealtimeSession(websocket.send_text, Identity(user_id, persona.id), personas, stt, responder,
                                      vad, judge, limiter)
            await session.start()
            try:
                await _serve(websocket, session)
            finally:
                await session.close()
        except WebSocketDisconnect:
            pass
        finally:
            slots.guarded -= 1

    return router


async def _serve(websocket: WebSocket, session: RealtimeSession) -> None:
    while True:
        try:
            message = await asyncio.wait_for(websocket.receive(), timeout=IDLE_TIMEOUT_S)
        except asyncio.TimeoutError:
            await websocket.close(1000, "idle for too long")
            return
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes") is not None:
            log.info("closing a realtime session: a binary frame")
            await websocket.close(CLOSE_UNSUPPORTED, "binary frames are not part of the protocol: send JSON events")
            return
        await session.handle_text(message.get("text") or "")
