"""A request id on every request and log line, and structured JSON logs.

The id comes from the caller's `X-Request-ID` (if sane) or is made here, goes back
in the response header, and is stamped on every log record made while serving it.
"""
from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid

from handlers.api.metrics import HTTP_LATENCY, HTTP_REQUESTS

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
access_log = logging.getLogger("cozyengine.access")


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname, "logger": record.name,
                 "message": record.getMessage(), "request_id": getattr(record, "request_id", "-")}
        for key in ("route", "method", "status", "duration_ms", "user_id"):
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str, json_logs: bool) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if json_logs else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for chatty in ("httpx", "httpx2", "mcp.client", "mcp.server"):  # per-request lines, URLs included
        logging.getLogger(chatty).setLevel(logging.WARNING)


_PLAIN_ROUTES = ("/metrics",)  # routes that leave no route object in the scope
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}  # a client may send any token


def _route_of(scope: dict) -> str:
    """A route template, never a raw path: a label per session id, or per made-up URL,
    would grow the metrics without bound."""
    path = getattr(scope.get("route"), "path", None)
    if path:
        return path
    raw = scope.get("path", "")
    if raw in _PLAIN_ROUTES:
        return raw
    return "/v1/{unknown}" if raw.startswith("/v1/") else "other"


class RequestIdMiddleware:
    """Pure ASGI, so streamed responses and websockets pass through untouched."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        given = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _SAFE_ID.match(given) else uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = {"code": 500}

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http":
                route = _route_of(scope)
                method = scope.get("method") if scope.get("method") in _METHODS else "OTHER"
                elapsed = time.perf_counter() - started
                HTTP_REQUESTS.labels(route, method, str(status["code"])).inc()
                HTTP_LATENCY.labels(route, method).observe(elapsed)
                if route != "other":
                    access_log.info("%s %s -> %s", method, scope.get("path"), status["code"], extra={
                        "route": route, "method": method, "status": status["code"],
                        "duration_ms": round(elapsed * 1000, 1)})
            REQUEST_ID.reset(token)
