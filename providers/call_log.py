"""Who served one provider call, and who was tried before it, told to that call's caller.

A fallback chain is shared by every conversation, so it cannot say who answered
"last": two calls at once would read each other's answer. Instead the caller
passes a `CallLog` with the call; the chain fills it in as the call runs, and
only that caller reads it. A plain provider (not a chain) is its own server.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from providers.base import ChatOptions


@dataclass(frozen=True)
class FailedAttempt:
    provider: str
    reason: str  # the error's words, for a person reading the record
    kind: str  # a few fixed words (timeout, status_503, breaker_open...), for metrics labels


@dataclass
class CallLog:
    provider: str | None = None
    model: str | None = None
    fallbacks: list[FailedAttempt] = field(default_factory=list)

    def served(self, provider: Any) -> None:
        self.provider = provider.name
        self.model = model_name(provider)


def model_name(provider: Any) -> str:
    """The vendor's model id when the provider says it (`model_id`), else its own name."""
    return getattr(provider, "model_id", None) or provider.name


def logs_calls(provider: Any) -> bool:
    """Chains and caches fill in a CallLog themselves; a plain provider does not take one."""
    return bool(getattr(provider, "logs_calls", False))


def stream_logged(model: Any, messages: list[dict[str, Any]], options: ChatOptions, cancelled: Any,
                  log: CallLog) -> Any:
    if logs_calls(model):
        return model.stream(messages, options, cancelled, log=log)
    log.served(model)
    return model.stream(messages, options, cancelled)


def synthesize_logged(tts: Any, text: str, log: CallLog, voice: str | None = None) -> Any:
    if logs_calls(tts):
        return tts.synthesize(text, voice, log=log)
    log.served(tts)
    return tts.synthesize(text, voice)
