"""Refuse oversized request bodies before reading them into memory (413, OpenAI shape)."""
from __future__ import annotations

import json

DEFAULT_LIMIT = 1 * 1024 * 1024
UPLOAD_LIMIT = 26 * 1024 * 1024  # a 25 MB audio file plus its multipart envelope


def _limit_for(path: str) -> int:
    return UPLOAD_LIMIT if path.startswith("/v1/audio/transcriptions") else DEFAULT_LIMIT


class BodyLimitMiddleware:
    """A declared length over the limit is refused before reading. A body without one
    (chunked) is read here, up to the limit, before the route sees it: a limit hit
    inside the route's own body parsing would come out as a 400 parse error."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope.get("path", "").startswith("/v1/"):
            return await self.app(scope, receive, send)
        limit = _limit_for(scope["path"])
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > limit:
                return await _too_large(send, limit)
            return await self.app(scope, receive, send)  # the HTTP server delivers no more than declared
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away mid-body: nobody to answer
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > limit:
                return await _too_large(send, limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send)


async def _too_large(send, limit: int) -> None:
    body = json.dumps({"error": {"message": f"The request body is larger than {limit // (1024 * 1024)} MB.",
                                 "type": "invalid_request_error", "param": None,
                                 "code": "request_too_large"}}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
