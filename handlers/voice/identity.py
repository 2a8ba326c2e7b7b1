"""Who is on a voice connection, when the server has identities at all.

With API keys or JWTs configured, a voice client first asks `GET /voice/token`
(with its key) for a short-lived signed token, and sends it in the websocket
`start` frame or the WebRTC offer body as `"token"`. The connection then speaks
as that identity (its memory, profile and conversations), and only that identity
may read its outputs or change its settings. Without auth (a local console) no
token is needed and everything is the local user, as before.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from typing import Any
from pathlib import Path

from handlers.visitor_limits import VisitorLimiter

TOKEN_TTL_S = 300  # long enough to open a connection; the connection itself may last longer
MAX_TOKEN_CHARS = 1024


class TokenRejected(ValueError):
    """Missing, forged, expired or malformed; the message says which, never what was expected."""


def load_secret(configured: str | None, data_dir: Path) -> bytes:
    """COZY_SECRET when set, else a random key made once in the data dir (0600)."""
    if configured:
        return configured.encode()
    path = data_dir / "secret.key"
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise SystemExit(f"Cannot read the signing key {path} ({exc.strerror}); set COZY_SECRET or make "
                         f"{data_dir} a writable folder") from exc
    except ValueError as exc:
        raise SystemExit(f"{path} is not a key this server wrote; remove it or set COZY_SECRET") from exc
    key = secrets.token_bytes(32)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return load_secret(None, data_dir)
    except OSError as exc:
        raise SystemExit(f"Cannot create the signing key {path} ({exc.strerror}); set COZY_SECRET or make "
                         f"{data_dir} a writable folder") from exc
    with os.fdopen(fd, "w") as handle:
        handle.write(key.hex())
    return key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class VoiceTokens:
    def __init__(self, secret: bytes, ttl_s: float = TOKEN_TTL_S):
        self._key = hashlib.sha256(b"cozyengine voice token\0" + secret).digest()  # this use's own key
        self.ttl_s = ttl_s

    def issue(self, user_id: str) -> str:
        claims = {"sub": user_id, "exp": int(time.time() + self.ttl_s), "n": secrets.token_hex(8)}
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        return f"{body}.{_b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())}"

    def verify(self, token: object) -> str:
        if not isinstance(token, str) or not token:
            raise TokenRejected("a voice token is required: GET /voice/token")
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            raise TokenRejected("the voice token is malformed")
        body, signature = token.split(".")
        expected = _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(signature, expected):
            raise TokenRejected("the voice token is not valid")
        try:
            claims = json.loads(_unb64(body))
        except ValueError:
            raise TokenRejected("the voice token is malformed") from None
        if not isinstance(claims, dict) or not isinstance(claims.get("sub"), str) \
                or not isinstance(claims.get("exp"), int):
            raise TokenRejected("the voice token is malformed")
        if claims["exp"] < time.time():
            raise TokenRejected("the voice token has expired: get a new one")
        return claims["sub"]


class VoiceIdentities:
    """connection id -> the identity it speaks as; None `tokens` means no identities (local console).

    With a `limiter` (a public server), opening a connection and each spoken turn
    also count against that identity's voice limits."""

    def __init__(self, tokens: VoiceTokens | None, limiter: VisitorLimiter | None = None, routes: Any = None):
        self.tokens = tokens
        self.limiter = limiter
        self.routes = routes  # handlers/voice/replica_routes.VoiceRoutes, with replicas
        self._owners: dict[str, str] = {}
        self._personas: dict[str, str] = {}  # a phone call's persona, chosen by the number called
        self._lock = threading.Lock()

    @property
    def required(self) -> bool:
        return self.tokens is not None

    def bind(self, connection_id: str, token: object) -> str:
        """The token's identity, once its signature and age check out (TokenRejected, LimitReached)."""
        assert self.tokens is not None
        user = self.tokens.verify(token)
        self.bind_user(connection_id, user)
        return user

    def bind_user(self, connection_id: str, user: str, persona_id: str | None = None) -> None:
        """For a caller the server identified itself (the page's own WebRTC, from its cookie;
        a phone call, from its webhook's token)."""
        with self._lock:
            if self._owners.get(connection_id) == user:
                return  # FastRTC re-sends a page's inputs on every change
            if connection_id in self._owners:
                raise TokenRejected("this voice connection belongs to someone else")
            if self.limiter is not None:
                self.limiter.voice_open(user, connection_id)
            self._owners[connection_id] = user
            if persona_id:
                self._personas[connection_id] = persona_id
        if self.routes is not None:
            self.routes.claim(connection_id)

    def persona(self, connection_id: str) -> str | None:
        with self._lock:
            return self._personas.get(connection_id)

    def owner(self, connection_id: str) -> str | None:
        with self._lock:
            return self._owners.get(connection_id)

    def check_turn(self, user: str) -> None:
        """Raises LimitReached when this identity may not have another spoken reply now."""
        if self.limiter is not None:
            self.limiter.voice_turn(user)
            self.limiter.message(user)

    def forget(self, connection_id: str) -> None:
        with self._lock:
            held = self._owners.pop(connection_id, None)
            self._personas.pop(connection_id, None)
        if held is not None and self.routes is not None:
            self.routes.release(connection_id)
        if self.limiter is not None:
            self.limiter.voice_closed(connection_id)
