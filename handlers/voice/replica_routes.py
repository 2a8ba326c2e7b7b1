"""Which replica holds which voice connection, so its side routes reach it.

A voice connection (WebRTC or websocket) lives in one process, but a client without the
balancer's route cookie may send `/voice/outputs` or `/voice/settings` to any replica.
Each replica files the connections it holds in Redis (`cozy:voice:<id>` -> its own URL);
one that gets a request for a connection held elsewhere passes it on, once (a marked
request is never passed on again, so two replicas cannot bounce it between them).
"""
from __future__ import annotations

import json
import logging
from typing import Any

import httpx
from fastapi import HTTPException
from fastapi.responses import JSONResponse, StreamingResponse

from storage.redis_state import PREFIX

log = logging.getLogger(__name__)
FORWARDED = "x-cozy-forwarded"
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class VoiceRoutes:
    def __init__(self, redis: Any, own_url: str, ttl_s: int = 6 * 3600):
        self.redis = redis
        self.own_url = own_url.rstrip("/")
        self.ttl_s = ttl_s  # a connection outliving it is a lost one: its key goes by itself
        self._release = redis.register_script(_RELEASE)

    def _key(self, connection_id: str) -> str:
        return f"{PREFIX}voice:{connection_id}"

    def claim(self, connection_id: str) -> None:
        self.redis.set(self._key(connection_id), self.own_url.encode(), ex=self.ttl_s)

    def release(self, connection_id: str) -> None:
        """Only our own entry: the id may since have been claimed by the replica a client moved to."""
        self._release(keys=[self._key(connection_id)], args=[self.own_url.encode()])

    def elsewhere(self, connection_id: str, headers: Any) -> str | None:
        """The URL of the replica holding this connection, when that is not us."""
        if FORWARDED in headers:
            return None
        held_by = self.redis.get(self._key(connection_id))
        url = held_by.decode() if held_by else None
        return url if url and url != self.own_url else None


async def forward_events(url: str, params: dict[str, Any]) -> StreamingResponse:
    """The holder's event stream, relayed as it comes."""
    client = httpx.AsyncClient(timeout=httpx.Timeout(10, read=None))
    try:
        response = await client.send(client.build_request("GET", url, params=params, headers={FORWARDED: "1"}),
                                     stream=True)
    except httpx.HTTPError:
        await client.aclose()
        raise _holder_gone() from None
    if response.status_code != 200:
        body = await response.aread()
        await response.aclose()
        await client.aclose()
        raise HTTPException(response.status_code, _detail(body))

    async def relay():
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        finally:
            await response.aclose()
            await client.aclose()
    return StreamingResponse(relay(), media_type="text/event-stream")


async def forward_json(url: str, body: dict[str, Any]) -> JSONResponse:
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(url, json=body, headers={FORWARDED: "1"})
    except httpx.HTTPError:
        raise _holder_gone() from None
    try:
        content = response.json()
    except ValueError:
        content = {"detail": response.text}
    return JSONResponse(content, status_code=response.status_code)


def _holder_gone() -> HTTPException:
    # The replica holding it stopped: so did the connection; the client reconnects.
    return HTTPException(404, "that voice connection has ended (its server stopped); reconnect")


def _detail(body: bytes) -> str:
    try:
        return json.loads(body).get("detail") or body.decode(errors="replace")
    except (ValueError, AttributeError):
        return body.decode(errors="replace")
