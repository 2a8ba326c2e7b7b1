"""Who a browser is, on a public server: a signed `cozy_visitor` cookie, or a Hugging Face login.

A visitor's first `GET /` gets an HttpOnly cookie naming a random identity, signed
with the server secret (HMAC); a missing, tampered or oversized cookie is simply
replaced by a new identity, never an error. Gradio runs page events on its queue,
away from the HTTP request, so page code reads the identity from the event's
`gr.Request` (`identity_of`); plain routes read it from the request's cookies.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from http.cookies import SimpleCookie
from typing import Any

COOKIE_NAME = "cozy_visitor"
COOKIE_MAX_AGE_S = 365 * 24 * 3600
MAX_COOKIE_CHARS = 200  # ours are ~90; anything longer was not written by us
VISITOR_PREFIX = "visitor:"
HF_PREFIX = "hf:"


class VisitorCookies:
    def __init__(self, secret: bytes):
        self._key = hashlib.sha256(b"cozyengine visitor cookie\0" + secret).digest()  # this use's own key

    def _sign(self, visitor_id: str) -> str:
        return hmac.new(self._key, visitor_id.encode(), hashlib.sha256).hexdigest()[:32]

    def issue(self) -> tuple[str, str]:
        """A new identity and the cookie value that carries it."""
        visitor_id = secrets.token_hex(16)
        return VISITOR_PREFIX + visitor_id, f"v1.{visitor_id}.{self._sign(visitor_id)}"

    def identity(self, value: str | None) -> str | None:
        """The identity a cookie value names, or None for anything we did not sign."""
        if not value or len(value) > MAX_COOKIE_CHARS or value.count(".") != 2:
            return None
        version, visitor_id, signature = value.split(".")
        if version != "v1" or len(visitor_id) != 32 or not hmac.compare_digest(signature, self._sign(visitor_id)):
            return None
        return VISITOR_PREFIX + visitor_id

    def from_cookies(self, cookies: Mapping[str, str]) -> str | None:
        return self.identity(cookies.get(COOKIE_NAME))


def _cookie_header(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    for name, value in headers:
        if name == b"cookie":
            jar = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # noqa: BLE001 - a garbled Cookie header is no identity, not an error
                return {}
            return {key: morsel.value for key, morsel in jar.items()}
    return {}


def _is_https(scope: dict[str, Any]) -> bool:
    # Spaces terminate TLS in front of us and say so in X-Forwarded-Proto.
    forwarded = dict(scope.get("headers") or []).get(b"x-forwarded-proto", b"")
    return scope.get("scheme") == "https" or forwarded.split(b",")[0].strip() == b"https"


class VisitorCookieMiddleware:
    """Gives every page load an identity. Pure ASGI, so websockets and streaming pass untouched.

    Behind HTTPS (a Space, which shows the page in an iframe) the cookie is
    `SameSite=None; Secure`, else `SameSite=Lax`: browsers drop Secure cookies on plain http.
    """

    def __init__(self, app: Any, cookies: VisitorCookies):
        self.app = app
        self.cookies = cookies

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD") or scope["path"] != "/":
            await self.app(scope, receive, send)
            return
        cookies = _cookie_header(scope.get("headers") or [])
        if self.cookies.from_cookies(cookies) is not None:
            await self.app(scope, receive, send)
            return
        _, value = self.cookies.issue()
        attributes = "SameSite=None; Secure" if _is_https(scope) else "SameSite=Lax"
        set_cookie = f"{COOKIE_NAME}={value}; Path=/; Max-Age={COOKIE_MAX_AGE_S}; HttpOnly; {attributes}"
        # This very load already speaks as the new visitor; other cookies (a login) pass on.
        cookies[COOKIE_NAME] = value
        headers = [(k, v) for k, v in scope["headers"] if k != b"cookie"]
        headers.append((b"cookie", "; ".join(f"{k}={v}" for k, v in cookies.items()).encode("latin-1")))

        async def send_with_cookie(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"set-cookie", set_cookie.encode())]}
            await send(message)

        await self.app({**scope, "headers": headers}, receive, send_with_cookie)


def hf_username(request: Any) -> str | None:
    """The Hugging Face account signed in on this browser (Gradio keeps it in the session)."""
    try:
        session = request.session
    except (AttributeError, AssertionError):  # no SessionMiddleware: no OAuth on this server
        return None
    info = (session or {}).get("oauth_info") or {}
    name = (info.get("userinfo") or {}).get("preferred_username")
    return name if isinstance(name, str) and name else None


class BrowserIdentity:
    """Whose page this is: signed-in HF account, else the visitor cookie; None when neither."""

    def __init__(self, cookies: VisitorCookies | None, fixed_user: str | None = None):
        self.cookies = cookies
        self.fixed_user = fixed_user  # a local console: everyone is this one user

    @property
    def public(self) -> bool:
        return self.fixed_user is None

    def of(self, request: Any) -> str | None:
        if self.fixed_user is not None:
            return self.fixed_user
        if request is None:
            return None
        username = hf_username(request)
        if username:
            return HF_PREFIX + username
        assert self.cookies is not None
        return self.cookies.from_cookies(dict(getattr(request, "cookies", {}) or {}))
