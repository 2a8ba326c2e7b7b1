"""Plain HTTP routes beside the mounted Stream: health, live turn outputs, settings."""
from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fastrtc import Stream
from pydantic import BaseModel, Field

from handlers.api.auth import end_user_id
from handlers.visitor_limits import LimitReached
from handlers.visitors import BrowserIdentity
from handlers.voice.identity import TokenRejected, VoiceIdentities
from handlers.voice.replica_routes import forward_events, forward_json
from handlers.voice.slots import VoiceSlots
from personas.cards import PersonaCatalog, PersonaError


class VoiceSettingsBody(BaseModel):
    webrtc_id: str = Field(min_length=1, max_length=200)
    persona_id: str = Field(min_length=1, max_length=100)
    token: str | None = Field(None, max_length=1024)


def build_routes(stream: Stream, personas: PersonaCatalog, model_names: dict[str, str],
                 slots: VoiceSlots, identities: VoiceIdentities, authenticate: Any,
                 browser: BrowserIdentity, voice_path: str = "/voice") -> APIRouter:
    router = APIRouter()

    def owned_by_caller(webrtc_id: str, token: str | None) -> None:
        """With identities, only the connection's own identity may read or steer it."""
        if not identities.required:
            return
        try:
            user = identities.tokens.verify(token)
        except TokenRejected as exc:
            raise HTTPException(401, str(exc)) from None
        if identities.owner(webrtc_id) != user:  # another's, or none: the same answer
            raise HTTPException(404, f"no voice connection '{webrtc_id}'")

    @router.get(f"{voice_path}/token")
    async def voice_token(request: Request, user: str | None = Query(None, max_length=256)) -> dict:
        """A short-lived token that lets a voice connection speak as you: send your API key,
        or, from a browser on a public server, the visitor cookie the page set."""
        if not identities.required:
            raise HTTPException(404, "this server has no identities (no API keys): voice needs no token")
        visitor = browser.of(request) if browser.public and "authorization" not in request.headers else None
        if visitor is not None:
            who = visitor
        elif browser.public and "authorization" not in request.headers:
            raise HTTPException(401, "no identity: open the page first (it sets your visitor cookie), "
                                     "or send your API key")
        else:
            who = end_user_id(await authenticate(request), user)
        return {"token": identities.tokens.issue(who), "expires_in": int(identities.tokens.ttl_s)}

    @router.post(f"{voice_path}/webrtc/offer")
    async def webrtc_offer(request: Request) -> Any:
        """FastRTC's offer route, with the identity check in front when there are identities."""
        try:
            body = await request.json()
        except ValueError:
            raise HTTPException(400, "the offer must be JSON") from None
        if not isinstance(body, dict) or not isinstance(body.get("webrtc_id"), str) \
                or not isinstance(body.get("type"), str) or len(body["webrtc_id"]) > 200:
            raise HTTPException(400, "the offer needs 'type' and 'webrtc_id'")
        webrtc_id, token = body["webrtc_id"], body.pop("token", None)
        if identities.required:
            try:
                if body["type"] == "offer" and identities.owner(webrtc_id) is None:
                    identities.bind(webrtc_id, token)
                elif identities.tokens.verify(token) != identities.owner(webrtc_id):
                    raise TokenRejected("the voice token is for another connection")
            except TokenRejected as exc:
                return JSONResponse(status_code=401, content={"status": "failed", "meta": {
                    "error": "unauthorized", "message": str(exc)}})
            except LimitReached as exc:
                return JSONResponse(status_code=429, content={"status": "failed", "meta": {
                    "error": "limit_reached", "message": str(exc)}})
        answer = await stream.handle_offer(body, set_outputs=stream.set_additional_outputs(webrtc_id))
        if body["type"] == "offer" and webrtc_id not in stream.pcs:
            identities.forget(webrtc_id)  # refused or failed: nothing holds the identity
        return answer

    @router.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "models": model_names, "voice_connections": slots.open_count(),
                "personas": [p.id for p in personas.all()]}

    def held_elsewhere(webrtc_id: str, request: Request) -> str | None:
        routes = identities.routes
        if routes is None or webrtc_id in stream.connections or webrtc_id in stream.additional_outputs:
            return None
        return routes.elsewhere(webrtc_id, request.headers)

    @router.get(f"{voice_path}/outputs")
    async def voice_outputs(request: Request, webrtc_id: str,
                            token: str | None = Query(None, max_length=1024)) -> StreamingResponse:
        """Server-sent events with the transcript and turn timings of one connection.

        FastRTC does not put AdditionalOutputs on the websocket, so a websocket or
        phone client reads them here (from whichever replica it reaches).
        """
        if holder := await asyncio.to_thread(held_elsewhere, webrtc_id, request):
            return await forward_events(f"{holder}{voice_path}/outputs", dict(request.query_params))
        owned_by_caller(webrtc_id, token)
        if webrtc_id not in stream.connections and webrtc_id not in stream.additional_outputs:
            raise HTTPException(404, f"no voice connection '{webrtc_id}'")

        async def events() -> AsyncIterator[str]:
            async for output in stream.output_stream(webrtc_id):
                transcript, turn = output.args
                yield f"data: {json.dumps({'transcript': transcript, 'turn': turn})}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @router.post(f"{voice_path}/settings")
    async def voice_settings(request: Request, body: VoiceSettingsBody) -> Any:
        """Pick the persona of a live voice connection (websocket and phone clients)."""
        if holder := await asyncio.to_thread(held_elsewhere, body.webrtc_id, request):
            return await forward_json(f"{holder}{voice_path}/settings", body.model_dump())
        owned_by_caller(body.webrtc_id, body.token)
        try:
            persona = personas.get(body.persona_id)
        except PersonaError as exc:
            raise HTTPException(404, str(exc)) from None
        if body.webrtc_id not in stream.connections:
            raise HTTPException(404, f"no voice connection '{body.webrtc_id}'")
        stream.set_input(body.webrtc_id, persona.id)
        return {"webrtc_id": body.webrtc_id, "persona_id": persona.id}

    return router
