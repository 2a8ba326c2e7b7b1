"""Plain HTTP routes beside the mounted Stream: health, live turn outputs, settings."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, HTTPException
from fastapi.responses import StreamingResponse
from fastrtc import Stream
from pydantic import BaseModel, Field

from handlers.voice_slots import VoiceSlots
from personas.cards import PersonaCatalog, PersonaError


class VoiceSettingsBody(BaseModel):
    webrtc_id: str = Field(min_length=1, max_length=200)
    persona_id: str = Field(min_length=1, max_length=100)


def build_routes(stream: Stream, personas: PersonaCatalog, model_names: dict[str, str],
                 slots: VoiceSlots, voice_path: str = "/voice") -> APIRouter:
    router = APIRouter()

    @router.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "models": model_names, "voice_connections": slots.open_count(),
                "personas": [p.id for p in personas.all()]}

    @router.get(f"{voice_path}/outputs")
    async def voice_outputs(webrtc_id: str) -> StreamingResponse:
        """Server-sent events with the transcript and turn timings of one connection.

        FastRTC does not put AdditionalOutputs on the websocket, so a websocket or
        phone client reads them here.
        """
        if webrtc_id not in stream.connections and webrtc_id not in stream.additional_outputs:
            raise HTTPException(404, f"no voice connection '{webrtc_id}'")

        async def events() -> AsyncIterator[str]:
            async for output in stream.output_stream(webrtc_id):
                transcript, turn = output.args
                yield f"data: {json.dumps({'transcript': transcript, 'turn': turn})}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @router.post(f"{voice_path}/settings")
    async def voice_settings(body: VoiceSettingsBody) -> dict:
        """Pick the persona of a live voice connection (websocket and phone clients)."""
        try:
            persona = personas.get(body.persona_id)
        except PersonaError as exc:
            raise HTTPException(404, str(exc)) from None
        if body.webrtc_id not in stream.connections:
            raise HTTPException(404, f"no voice connection '{body.webrtc_id}'")
        stream.set_input(body.webrtc_id, persona.id)
        return {"webrtc_id": body.webrtc_id, "persona_id": persona.id}

    return router
