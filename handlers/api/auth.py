"""Who is calling: bearer tokens, as static API keys or HS256 JWTs carrying the user id.

    COZY_API_KEYS="key1=alice,key2=bob"   (a key without "=user" acts as user "key-<hash>")
    COZY_JWT_SECRET=...                   (HS256; the user is the `sub` claim; `exp` is honoured)
    COZY_ADMINS="alice"                   (users who may read others' usage: GET /v1/usage?user=)

With neither set, every caller is the local user, and the server refuses to listen
anywhere but loopback (see `check_bind_address`), unless it runs in public mode
(COZY_PUBLIC=1, or on a Hugging Face Space): then every route is behind an identity,
and the API without keys answers 401.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
from dataclasses import dataclass, field

import jwt
from fastapi import Request

from config import ApiSettings
from handlers.api.errors import ApiError

LOCAL_USER = "local"
MIN_JWT_SECRET_BYTES = 32
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuthConfig:
    api_keys: dict[str, str] = field(default_factory=dict)  # key -> user id
    jwt_secret: str | None = None
    admins: frozenset[str] = frozenset()  # user ids

    @property
    def enabled(self) -> bool:
        return bool(self.api_keys or self.jwt_secret)

    @classmethod
    def from_settings(cls, api: ApiSettings) -> AuthConfig:
        return cls(dict(api.api_keys), api.jwt_secret, api.admins)


END_USER_SEPARATOR = "#"


def end_user_id(principal: str, end_user: str | None) -> str:
    """Whose data a request is about. OpenAI's `user` (or `safety_identifier`) names an end
    user of the calling principal, e.g. one customer of the app that holds the key: each
    gets memory, profile and conversations of their own, inside that principal's."""
    if not end_user:
        return principal
    return f"{principal}{END_USER_SEPARATOR}{end_user}"


def check_bind_address(host: str, auth: AuthConfig, public: bool = False) -> None:
    """Refuse to expose an unauthenticated server beyond this machine (public mode has identities)."""
    if auth.enabled or public:
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SystemExit(f"Refusing to listen on {host} without authentication: set COZY_API_KEYS or "
                         "COZY_JWT_SECRET, serve in public mode (COZY_PUBLIC=1), or listen on 127.0.0.1.")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, message, "invalid_request_error", code="invalid_api_key",
                    headers={"WWW-Authenticate": "Bearer"})


class Authenticator:
    """`public`: a server open to the internet has no anonymous local user; without
    keys configured its API answers no one."""

    def __init__(self, config: AuthConfig, public: bool = False):
        self.config = config
        self.public = public
        if config.jwt_secret and len(config.jwt_secret.encode()) < MIN_JWT_SECRET_BYTES:
            # RFC 7518: an HS256 key shorter than the hash can be brute-forced offline from one token.
            log.warning("COZY_JWT_SECRET is shorter than %d bytes; anyone holding one token can try to "
                        "guess it offline", MIN_JWT_SECRET_BYTES)

    def user_for(self, authorization: str | None) -> str:
        return self.identify(authorization)[0]

    def identify(self, authorization: str | None) -> tuple[str, bool]:
        """The caller's user id, and whether they are an admin (in COZY_ADMINS, or a JWT
        with `"admin": true`; with no auth configured, the local owner is)."""
        if not self.config.enabled:
            if self.public:
                raise _unauthorized("This is a public server: its API needs an API key, and none is configured "
                                    "(the owner sets COZY_API_KEYS or COZY_JWT_SECRET).")
            return LOCAL_USER, True
        if not authorization or not authorization.lower().startswith("bearer "):
            raise _unauthorized("Missing bearer token: send 'Authorization: Bearer <your API key>'.")
        token = authorization[7:].strip()
        for key, user in self.config.api_keys.items():
            if hmac.compare_digest(token.encode(), key.encode()):
                return user, user in self.config.admins
        if self.config.jwt_secret and token.count(".") == 2:
            try:
                claims = jwt.decode(token, self.config.jwt_secret, algorithms=["HS256"],
                                    options={"require": ["sub"]})
            except jwt.ExpiredSignatureError:
                raise _unauthorized("The token has expired.") from None
            except jwt.InvalidTokenError:
                raise _unauthorized("The token is not valid.") from None
            if isinstance(claims.get("sub"), str) and claims["sub"]:
                return claims["sub"], claims.get("admin") is True or claims["sub"] in self.config.admins
        raise _unauthorized("Incorrect API key provided.")

    async def __call__(self, request: Request) -> str:
        user, admin = self.identify(request.headers.get("authorization"))
        request.state.user_id = user
        request.state.is_admin = admin
        return user
