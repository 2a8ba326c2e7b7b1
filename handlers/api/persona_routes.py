"""Admins manage persona cards: POST /v1/personalities, PUT/PATCH/DELETE
/v1/personalities/{id}. A card is the YAML card's fields as JSON; a bad one is a 400 that
names the field; others get 403. Changes reach the page, the voice Stream and the API at
their next turn (personas/editor.py)."""
from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import APIRouter, Body, Depends, Request

from handlers.api.catalog_routes import personality
from handlers.api.errors import ApiError
from handlers.api.schemas import ERROR_RESPONSES, ErrorBody, Personality
from personas.editor import PersonaConflict, PersonaEditor, PersonaError, PersonaMissing

_FIELD = re.compile(r"field '([\w.]+)'")
ADMIN_RESPONSES = {**ERROR_RESPONSES, 403: {"model": ErrorBody, "description": "Not an admin"},
                   409: {"model": ErrorBody, "description": "The id is taken, or the change is not allowed"}}
CARD = Body(..., description="The card's fields, as in personas/*.yaml: id, name, system_prompt, greeting, "
                             "language, voices, model, temperature, max_reply_tokens, allowed_tools, memory, "
                             "moderation, refusal, turn_taking, examples, reply_style")


def _as_api_error(exc: PersonaError, persona_id: str | None = None) -> ApiError:
    if isinstance(exc, PersonaMissing):
        return ApiError(404, str(exc), param="persona_id", code="model_not_found")
    if isinstance(exc, PersonaConflict):
        return ApiError(409, str(exc), param="id", code="conflict")
    named = _FIELD.search(str(exc))
    return ApiError(400, str(exc), param=named.group(1) if named else None, code="invalid_persona")


def build_persona_router(editor: PersonaEditor, authenticate, limiter) -> APIRouter:
    router = APIRouter()

    def admin_only(request: Request) -> None:
        if not getattr(request.state, "is_admin", False):
            raise ApiError(403, "Only an admin (COZY_ADMINS, or a JWT with \"admin\": true) may change personas.",
                           "permission_error")

    async def change(request: Request, user_id: str, work, *args: Any) -> Personality:
        limiter.request(user_id)
        admin_only(request)
        try:
            return personality(await asyncio.to_thread(work, *args))
        except PersonaError as exc:
            raise _as_api_error(exc) from None

    @router.post("/v1/personalities", response_model=Personality, status_code=201, responses=ADMIN_RESPONSES,
                 operation_id="createPersonality")
    async def create_personality(request: Request, card: dict[str, Any] = CARD,
                                 user_id: str = Depends(authenticate)) -> Personality:
        return await change(request, user_id, editor.create, card)

    @router.put("/v1/personalities/{persona_id}", response_model=Personality, responses=ADMIN_RESPONSES,
                operation_id="replacePersonality")
    async def replace_personality(persona_id: str, request: Request, card: dict[str, Any] = CARD,
                                  user_id: str = Depends(authenticate)) -> Personality:
        return await change(request, user_id, editor.replace, persona_id, card)

    @router.patch("/v1/personalities/{persona_id}", response_model=Personality, responses=ADMIN_RESPONSES,
                  operation_id="updatePersonality")
    async def update_personality(persona_id: str, request: Request, changes: dict[str, Any] = CARD,
                                 user_id: str = Depends(authenticate)) -> Personality:
        return await change(request, user_id, editor.update, persona_id, changes)

    @router.delete("/v1/personalities/{persona_id}", response_model=Personality, responses=ADMIN_RESPONSES,
                   operation_id="deletePersonality")
    async def delete_personality(persona_id: str, request: Request,
                                 user_id: str = Depends(authenticate)) -> Personality:
        deleted = await change(request, user_id, editor.delete, persona_id)
        return deleted.model_copy(update={"deleted": True})

    return router
