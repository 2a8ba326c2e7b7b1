"""Phone calls through your own Twilio number: the webhook, its one-time stream tokens, callers.

Twilio posts an incoming call to `POST /voice/telephone/incoming`; we answer TwiML that
connects the call's audio to `/voice/telephone/handler` over wss. The stream URL may carry
no query string, so the token rides as a `<Parameter>` and arrives in the media stream's
`start.customParameters`. A token is good for one stream, for a minute: the media route
is no longer open to anyone who finds it. With `TWILIO_AUTH_TOKEN` set, a webhook must be
signed by Twilio for the URL Twilio called (behind a proxy: `COZY_PUBLIC_URL`, or the
forwarded scheme and host).

A caller is their number, kept only as a keyed hash (`phone:<hmac>`), so they are
remembered from call to call while the number itself is never stored or logged.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, VoiceResponse

from config import PhoneSettings
from handlers.voice.identity import TokenRejected

log = logging.getLogger(__name__)

TOKEN_PARAMETER = "cozy_token"
MAX_OUTSTANDING_TOKENS = 10_000  # a flood of webhooks must not grow memory without bound


@dataclass(frozen=True)
class PhoneCaller:
    user_id: str
    persona_id: str | None = None


def caller_identity(secret: bytes, number: str | None, call_sid: str | None) -> str:
    """The caller's own identity: their number, keyed-hashed (numbers are few enough that
    a plain hash could be reversed). A withheld number is a caller of this one call."""
    known = (number or "").strip()
    subject = f"number:{known}" if known and known.lower() not in {"anonymous", "unknown"} \
        else f"call:{call_sid or secrets.token_hex(8)}"
    return "phone:" + hmac.new(secret, subject.encode(), hashlib.sha256).hexdigest()[:32]


class StreamTokens:
    """One-time, short-lived tokens: a webhook issues one, the media stream's `start` redeems it."""

    def __init__(self, ttl_s: float = 60.0):
        self.ttl_s = ttl_s
        self._issued: dict[str, tuple[float, PhoneCaller]] = {}
        self._lock = threading.Lock()

    def issue(self, caller: PhoneCaller) -> str:
        token = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            self._issued = {t: v for t, v in self._issued.items() if v[0] > now}
            if len(self._issued) >= MAX_OUTSTANDING_TOKENS:
                raise TokenRejected("too many calls are being set up; try again shortly")
            self._issued[token] = (now + self.ttl_s, caller)
        return token

    def redeem(self, token: object) -> PhoneCaller:
        if not isinstance(token, str) or not token:
            raise TokenRejected(f"a phone stream needs its '{TOKEN_PARAMETER}' parameter from the call's webhook")
        with self._lock:
            entry = self._issued.pop(token, None)
        if entry is None:
            raise TokenRejected("this phone stream token is unknown or was used already")
        expires_at, caller = entry
        if expires_at <= time.monotonic():
            raise TokenRejected("this phone stream token has expired")
        return caller


class PhoneLine:
    """What a phone call needs from the server: signatures, TwiML, tokens, callers."""

    def __init__(self, settings: PhoneSettings, secret: bytes, default_persona: str | None = None,
                 persona_ids: frozenset[str] = frozenset()):
        self.settings = settings
        self.secret = secret
        self.default_persona = default_persona
        self.persona_ids = persona_ids | {p for _, p in settings.personas_by_number}
        self.tokens = StreamTokens(settings.stream_token_ttl_s)
        self._personas = dict(settings.personas_by_number)
        self._validator = RequestValidator(settings.twilio_auth_token) if settings.twilio_auth_token else None

    def public_base(self, request: Request) -> str:
        """https://host as the caller's carrier reached us: configured, or as forwarded by a proxy."""
        if self.settings.public_url:
            return self.settings.public_url
        scheme = request.headers.get("x-forwarded-proto", request.url.scheme).split(",")[0].strip()
        host = request.headers.get("x-forwarded-host") or request.headers.get("host") or request.url.netloc
        return f"{scheme}://{host.split(',')[0].strip()}"

    def signed(self, request: Request, form: dict[str, str]) -> bool:
        if self._validator is None:
            return True
        url = self.public_base(request) + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        return self._validator.validate(url, form, request.headers.get("x-twilio-signature", ""))

    def caller_of(self, form: dict[str, str], persona_id: str | None = None) -> PhoneCaller:
        """The person on the line: who called in, or whom we called (an outbound call's
        `To`). The persona: the one the outbound call asked for, else the number called's."""
        outbound = (form.get("Direction") or "").startswith("outbound")
        person, ours = (form.get("To"), form.get("From")) if outbound else (form.get("From"), form.get("To"))
        persona = persona_id if persona_id in self.persona_ids else None
        persona = persona or self._personas.get((ours or "").strip()) or self.default_persona
        return PhoneCaller(caller_identity(self.secret, person, form.get("CallSid")), persona)

    def answer(self, request: Request, caller: PhoneCaller, handler_path: str) -> str:
        """TwiML that connects the call to the media route, with a fresh one-time token."""
        base = self.public_base(request)
        stream_url = "wss://" + base.split("://", 1)[-1] + handler_path
        if base.startswith("http://") and _is_loopback(base):
            stream_url = "ws://" + base.split("://", 1)[-1] + handler_path  # a local test or a dev tunnel-less run
        response, connect = VoiceResponse(), Connect()
        stream = connect.stream(url=stream_url)
        stream.parameter(name=TOKEN_PARAMETER, value=self.tokens.issue(caller))
        response.append(connect)
        return str(response)


def _is_loopback(base: str) -> bool:
    host = base.split("://", 1)[-1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
    return host in {"127.0.0.1", "localhost", "::1"}


def build_telephone_routes(line: PhoneLine, path: str = "/voice") -> APIRouter:
    """`POST {path}/telephone/incoming`; included before `stream.mount`, so it replaces FastRTC's."""
    router = APIRouter()

    @router.post(f"{path}/telephone/incoming", include_in_schema=False)
    async def incoming_call(request: Request) -> Response:
        try:
            form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        except Exception:  # noqa: BLE001 - not a form: Twilio always posts one
            return PlainTextResponse("a Twilio webhook posts application/x-www-form-urlencoded", status_code=400)
        if not line.signed(request, form):
            log.warning("refused a telephone webhook: bad or missing X-Twilio-Signature")
            return PlainTextResponse("bad or missing X-Twilio-Signature", status_code=403)
        try:
            caller = line.caller_of(form, request.query_params.get("persona"))
            twiml = line.answer(request, caller, f"{path}/telephone/handler")
        except TokenRejected as busy:
            return PlainTextResponse(str(busy), status_code=503, headers={"Retry-After": "5"})
        log.info("answering a phone call")  # never the number: it is the caller's identity
        return Response(twiml, media_type="application/xml")

    return router
