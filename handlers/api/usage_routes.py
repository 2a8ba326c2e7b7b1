"""GET /v1/usage: what the caller used, per day, provider and model, and what it cost.
An admin (COZY_ADMINS) may ask about another user with ?user=; anyone else gets 403."""
from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from handlers.api.errors import ApiError
from handlers.api.schemas import ERROR_RESPONSES, ErrorBody
from storage.usage import UsageStore


class UsageRow(BaseModel):
    date: str  # YYYY-MM-DD, a UTC day
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    audio_seconds_in: float
    audio_seconds_out: float
    characters: int
    cost_usd: float


class UsageList(BaseModel):
    object: Literal["list"] = "list"
    data: list[UsageRow]


def build_usage_router(usage: UsageStore, authenticator, limiter) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/usage", response_model=UsageList, responses={**ERROR_RESPONSES, 403: {"model": ErrorBody, "description": "Not an admin"}},
                operation_id="listMyUsage")
    async def list_usage(request: Request, user_id: str = Depends(authenticator),
                         user: str | None = Query(None, max_length=512, description="Another user (admins only)")):
        limiter.request(user_id)
        if user is not None and user != user_id:
            if not request.state.is_admin:
                raise ApiError(403, "Only an admin (COZY_ADMINS, or a JWT with \"admin\": true) may read "
                               "another user's usage.",
                               "permission_error", param="user")
            user_id = user
        rows = await asyncio.to_thread(usage.rows, user_id)
        return UsageList(data=[UsageRow(**row) for row in rows])

    return router
