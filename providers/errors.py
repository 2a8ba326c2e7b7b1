"""The few error types the engine sees from any provider, and vendor translation.

Vendor SDKs raise their own exception trees (openai on httpx2, groq on httpx,
elevenlabs' `ApiError`, and raw transport errors mid-stream). Vendor files pass
anything they catch through `translate()`, so the rest of the engine only ever
handles a `ProviderError`. Messages carry the status and a short vendor reason,
never headers, bodies or keys.
"""
from __future__ import annotations

import email.utils
import re
import sys
import time
from typing import Any


class ProviderError(Exception):
    """A provider could not produce its output."""

    def __init__(self, message: str, provider: str | None = None):
        super().__init__(message)
        self.provider = provider


class ProviderTimeout(ProviderError):
    """No answer (or no next chunk) in time."""


class ProviderConnectionError(ProviderError):
    """The connection failed or broke, including mid-stream drops."""


class ProviderStatusError(ProviderError):
    def __init__(self, message: str, status_code: int, provider: str | None = None):
        super().__init__(message, provider)
        self.status_code = status_code


class ProviderRateLimited(ProviderStatusError):
    def __init__(self, message: str, retry_after_s: float | None, provider: str | None = None):
        super().__init__(message, 429, provider)
        self.retry_after_s = retry_after_s  # None when the vendor did not say


class ProviderInputError(ProviderError):
    """This request cannot be served as asked (e.g. longer than the model's context
    window). It says nothing about the provider's health, so it never counts
    towards opening its circuit breaker."""


class ModelBusy(ProviderError):
    """A local model's queue is full (or this requester already has its share
    waiting): refused at once, with an estimate of when to try again. Load is not
    a fault, so it never counts towards the provider's breaker."""

    def __init__(self, message: str, retry_after_s: float, provider: str | None = None,
                 per_requester: bool = False):
        super().__init__(message, provider)
        self.retry_after_s = retry_after_s
        self.per_requester = per_requester  # True: this caller's own requests fill its share


# How llama.cpp and OpenAI-style vendors word "the prompt does not fit".
_TOO_LONG_MARKERS = ("context window", "context_length_exceeded", "maximum context length")


def is_context_overflow(exc: BaseException) -> bool:
    """The prompt does not fit the model's context window."""
    return any(marker in str(exc) for marker in _TOO_LONG_MARKERS)


def is_input_error(exc: BaseException) -> bool:
    """The caller's request is at fault, not the provider."""
    if isinstance(exc, (ProviderInputError, RecursionError)):  # a schema nested past what a parser takes
        return True
    if isinstance(exc, ProviderStatusError):
        return exc.status_code in (400, 413, 422)
    return is_context_overflow(exc)


def is_not_provider_fault(exc: BaseException) -> bool:
    """pybreaker's exclude hook: only the provider's own faults count towards its breaker."""
    return isinstance(exc, ModelBusy) or is_input_error(exc)


class ProviderInterrupted(ProviderError):
    """Failed after output had reached the caller; nothing was retried.

    The voice layer turns this into a spoken apology instead of leaving the
    listener with a sentence cut in half.
    """


def is_transient(error: ProviderError) -> bool:
    """Worth retrying on the same provider: the same request may well succeed."""
    if isinstance(error, ProviderStatusError):
        return error.status_code in (408, 409, 429) or error.status_code >= 500
    # A timeout already cost the caller its patience: move on rather than wait twice.
    return isinstance(error, ProviderConnectionError)


# Vendor classes, looked up in modules already imported: an exception can only
# come from an SDK that is loaded, so translation never imports a vendor itself.
# Order matters: the SDKs' timeout classes subclass their connection classes.
_TIMEOUT_CLASSES = (("openai", "APITimeoutError"), ("groq", "APITimeoutError"),
                    ("httpx", "TimeoutException"), ("httpx2", "TimeoutException"))
_CONNECTION_CLASSES = (("openai", "APIConnectionError"), ("groq", "APIConnectionError"),
                       ("httpx", "TransportError"), ("httpx2", "TransportError"))
_STATUS_CLASSES = (("openai", "APIStatusError"), ("groq", "APIStatusError"),
                   ("elevenlabs.core.api_error", "ApiError"),
                   ("httpx", "HTTPStatusError"), ("httpx2", "HTTPStatusError"))


def _loaded(names: tuple[tuple[str, str], ...]) -> tuple[type[BaseException], ...]:
    found = []
    for module_name, class_name in names:
        module = sys.modules.get(module_name)
        cls = getattr(module, class_name, None) if module is not None else None
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


def translate(exc: BaseException, provider: str) -> ProviderError:
    """Map any exception a vendor SDK (or its transport) raised to a ProviderError."""
    if isinstance(exc, ProviderError):
        if exc.provider is None:
            exc.provider = provider
        return exc
    if isinstance(exc, (TimeoutError, *_loaded(_TIMEOUT_CLASSES))):
        return ProviderTimeout(f"{provider}: timed out", provider)
    if isinstance(exc, _loaded(_STATUS_CLASSES)):
        return _status_error(exc, provider)
    if isinstance(exc, (ConnectionError, *_loaded(_CONNECTION_CLASSES))):
        return ProviderConnectionError(f"{provider}: connection failed ({type(exc).__name__})", provider)
    if is_input_error(exc):  # e.g. llama.cpp's ValueError for a prompt over its context window
        return ProviderInputError(f"{provider}: {_short(str(exc))}", provider)
    # SDK errors without a status (e.g. an error event inside a stream) and our own bugs alike.
    return ProviderError(f"{provider}: {type(exc).__name__}: {_short(_vendor_message(exc))}", provider)


def _status_error(exc: BaseException, provider: str) -> ProviderStatusError:
    response = getattr(exc, "response", None)
    status = getattr(exc, "status_code", None) or getattr(response, "status_code", None) or 0
    headers = getattr(response, "headers", None) or getattr(exc, "headers", None) or {}
    reason = _short(_vendor_message(exc))
    message = f"{provider}: HTTP {status}" + (f" ({reason})" if reason else "")
    if status == 429:
        return ProviderRateLimited(message, retry_after_s(headers), provider)
    return ProviderStatusError(message, int(status), provider)


def retry_after_s(headers: Any) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    def header(name: str) -> str | None:
        value = headers.get(name)
        if value is None and hasattr(headers, "items"):  # a plain dict keeps the vendor's casing
            value = next((v for k, v in headers.items() if k.lower() == name), None)
        return value

    if (ms := header("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    raw = header("retry-after")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(raw) if raw.strip() else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _vendor_message(exc: BaseException) -> str:
    """The vendor's own one-line reason from an error body, if it gave one."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") or body.get("detail") or body
        if isinstance(inner, dict):
            return str(inner.get("message") or inner.get("status") or "")
        if isinstance(inner, str):
            return inner
    message = getattr(exc, "message", None)
    if isinstance(message, str):
        return message
    # elevenlabs' ApiError.__str__ dumps every header: never use it.
    return "" if "elevenlabs" in type(exc).__module__ else str(exc)


_SECRET_LIKE = re.compile(r"\b(sk|gsk|xi|key|sess)[-_][A-Za-z0-9_\-*]{6,}", re.IGNORECASE)


def _short(text: str, limit: int = 160) -> str:
    text = _SECRET_LIKE.sub("[redacted]", " ".join(text.split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"
