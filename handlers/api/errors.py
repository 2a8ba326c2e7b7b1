"""Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}}.

Bad input is a 4xx with a message that says what to fix, never a 500; a real bug
is still a 500 in the same shape (and a trace in the log).
"""
from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from providers.errors import ModelBusy

log = logging.getLogger(__name__)
_LOCATIONS = {"body", "query", "path", "header"}
# pydantic names the member of a union it tried ('str', 'list[ContentPart]', ...): not a field.
_UNION_TAG = re.compile(r"^(str|int|float|bool|none|dict|list)$|[\[\-]")
_HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
CATCH_ALL_PATH = "/v1/{path:path}"


class ApiError(Exception):
    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code
        self.headers = headers or {}


def busy_error(exc: ModelBusy, what: str) -> ApiError:
    """A local model's full queue: 429 when this caller's own requests fill its share,
    503 when everyone's do; both say when to come back."""
    retry = str(max(1, int(round(exc.retry_after_s))))
    if exc.per_requester:
        return ApiError(429, f"You already have requests waiting for the {what}; try again in about {retry}s.",
                        "requests", code="rate_limit_exceeded", headers={"retry-after": retry})
    return ApiError(503, f"The {what} is busy with other requests; try again in about {retry}s.",
                    "server_error", code="server_busy", headers={"retry-after": retry})


def error_body(message: str, type_: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(status: int, message: str, type_: str = "invalid_request_error",
                   param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, type_, param, code), status_code=status, headers=headers)


def _field_path(loc: tuple) -> list[str]:
    names = [part for part in loc if part not in _LOCATIONS]
    # The first name is the field or header itself ("x-session-id"), never a union's tag.
    return [str(part) for index, part in enumerate(names)
            if index == 0 or not (isinstance(part, str) and _UNION_TAG.search(part))]


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "Invalid request.", None
    if any(e.get("type") == "json_invalid" for e in errors):
        return "The request body is not valid JSON.", None
    # Of a union's failed alternatives, the deepest one says most about what to fix.
    first = max(errors, key=lambda e: len(_field_path(e.get("loc", ()))))
    param = ".".join(_field_path(first.get("loc", ()))) or None
    detail = first.get("msg", "invalid request")
    return (f"Invalid value for '{param}': {detail}" if param else f"Invalid request: {detail}"), param


def _allowed_methods(request: Request) -> list[str]:
    """The methods other routes serve at this path, for a 405 instead of a 404."""
    routes = [route for route in request.app.router.routes
              if not isinstance(route, Mount) and getattr(route, "path", None) != CATCH_ALL_PATH]
    return [method for method in _HTTP_METHODS
            if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)]


class UnknownV1Route:
    """Everything under /v1 that no API route serves, whatever the method. Without
    this the Gradio app mounted at "/" answers, in its own 404 shape and never 405.
    (An ASGI object, not a function: Starlette routes a function endpoint for GET only.)"""

    async def __call__(self, scope, receive, send) -> None:
        request = Request(scope, receive)
        allowed = _allowed_methods(request)
        if allowed:
            response = error_response(405, f"Method {request.method} is not allowed on {request.url.path}; use "
                                      f"{', '.join(allowed)}.", code="method_not_allowed",
                                      headers={"Allow": ", ".join(allowed)})
        else:
            response = error_response(404, f"Invalid URL ({request.method} {request.url.path}).",
                                      code="unknown_url")
        await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.type, exc.param, exc.code, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return error_response(400, message, param=param)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if not request.url.path.startswith("/v1/"):
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)
        type_ = "invalid_request_error" if exc.status_code < 500 else "server_error"
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return error_response(exc.status_code, str(exc.detail), type_, code=code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the trace itself after this answer; the caller gets OpenAI's shape.
        if not request.url.path.startswith("/v1/"):
            return JSONResponse({"detail": "Internal Server Error"}, status_code=500)
        return error_response(500, "The server had an error while processing your request.", "server_error")
