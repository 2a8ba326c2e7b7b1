"""Fallback adapters: one provider per modality made from an ordered list of them.

A call goes to the first provider whose breaker admits it. Before any output
has reached the caller, a failure is safe to hide: retry the same provider
(transient errors only, with backoff) or move to the next one. Once text, a
tool call or audio has been handed out, nothing is retried — replaying would
repeat words — and the failure surfaces as ProviderInterrupted.
"""
from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from providers.base import AudioClip, CancelFlag, ChatDelta, ChatOptions
from providers.breakers import (
    BreakerEvent,
    BreakerEvents,
    CircuitOpen,
    ProviderPolicy,
    ProviderSlot,
)
from providers.call_log import CallLog, FailedAttempt, model_name
from providers.errors import (
    ModelBusy,
    ProviderError,
    ProviderInputError,
    ProviderInterrupted,
    ProviderRateLimited,
    ProviderStatusError,
    is_not_provider_fault,
    is_transient,
    translate,
)
from providers.local_queue import QUEUED, STARTED, QueuedSTT
from providers.pump import Got, StreamPump

T = TypeVar("T")

# Per-modality defaults: a transcript is one blocking call; speech and chat stream.
LLM_POLICY = ProviderPolicy(first_output_timeout_s=6.0, stall_timeout_s=6.0)
STT_POLICY = ProviderPolicy(first_output_timeout_s=8.0, stall_timeout_s=None)
TTS_POLICY = ProviderPolicy(first_output_timeout_s=5.0, stall_timeout_s=5.0)


class _Outcome(enum.Enum):
    """How one attempt ended, when not with an error (returned) or an interruption (raised)."""

    SERVED = 1
    SKIPPED = 2
    CANCELLED = 3


def failure_kind(error: ProviderError) -> str:
    """A few fixed words for why an attempt failed (metrics labels stay bounded)."""
    if isinstance(error, ProviderStatusError):
        return f"status_{error.status_code}"
    return type(error).__name__.removeprefix("Provider").lower() or "error"


class FallbackAdapter(Generic[T]):
    """The chain machinery the three modality adapters share.

    Who served a call is told to its caller through the CallLog it passes in
    (providers/call_log.py), never kept here: the chain is shared by every conversation."""

    logs_calls = True

    def __init__(self, providers: Sequence[Any], policy: ProviderPolicy,
                 policies: Mapping[str, ProviderPolicy] | None, name: str):
        if not providers:
            raise ValueError(f"{name}: a fallback chain needs at least one provider")
        names = [p.name for p in providers]
        if len(set(names)) != len(names):
            raise ValueError(f"{name}: provider names must be unique, got {names}")
        self.name = name
        self._events = BreakerEvents(name)
        self._slots = [ProviderSlot(p, (policies or {}).get(p.name, policy), self._events)
                       for p in providers]

    # -- what the UI and metrics read -------------------------------------------------

    @property
    def provider_names(self) -> list[str]:
        return [slot.name for slot in self._slots]

    def breaker_states(self) -> dict[str, str]:
        """Each provider's breaker: "closed", "open" or "half-open"."""
        return {slot.name: slot.breaker.current_state for slot in self._slots}

    def stats(self) -> dict[str, dict[str, int]]:
        """Per provider: calls, successes, failures, skipped (counters, for Prometheus)."""
        return {slot.name: slot.counters_snapshot() for slot in self._slots}

    def recent_breaker_events(self) -> list[BreakerEvent]:
        return list(self._events.recent)

    def add_state_listener(self, listener: Callable[[BreakerEvent], None]) -> None:
        """Called on every breaker state change of this chain (from the calling thread)."""
        self._events.listeners.append(listener)

    # -- the call ---------------------------------------------------------------------

    def _run(self, open_stream: Callable[[Any], Iterable[T]], has_output: Callable[[T], bool],
             cancelled: CancelFlag | None = None, log: CallLog | None = None) -> Generator[T, None, str | None]:
        """Yield one provider's output; return its name, or None if the caller cancelled."""
        log = log if log is not None else CallLog()
        failures: list[str] = []
        refusal: ProviderError | None = None  # the last attempt's, when it was no provider's fault
        for slot in self._slots:
            for attempt in range(slot.policy.retries + 1):
                if cancelled is not None and cancelled.is_set():
                    return None
                outcome = yield from self._attempt(slot, open_stream, has_output, cancelled, log)
                if outcome is _Outcome.SERVED:
                    return slot.name
                if outcome is _Outcome.CANCELLED:
                    return None
                if outcome is _Outcome.SKIPPED:
                    failures.append(f"{slot.name}: skipped (breaker open)")
                    log.fallbacks.append(FailedAttempt(slot.name, "breaker open", "breaker_open"))
                    break
                refusal = outcome if is_not_provider_fault(outcome) else None
                failures.append(str(outcome))
                log.fallbacks.append(FailedAttempt(slot.name, str(outcome), failure_kind(outcome)))
                delay = self._retry_delay(slot, outcome, attempt)
                if delay is None:
                    break
                time.sleep(delay)
        if isinstance(refusal, ModelBusy):  # the last resort is only busy: come back shortly
            raise ModelBusy(f"{self.name}: " + "; ".join(failures), refusal.retry_after_s, refusal.provider,
                            refusal.per_requester)
        if refusal is not None:  # the request itself cannot be served as asked
            raise ProviderInputError(f"{self.name}: {refusal}", refusal.provider)
        raise ProviderError(f"{self.name}: every provider failed: " + "; ".join(failures))

    def _attempt(self, slot: ProviderSlot, open_stream: Callable[[Any], Iterable[T]],
                 has_output: Callable[[T], bool], cancelled: CancelFlag | None, log: CallLog,
                 ) -> Generator[T, None, _Outcome | ProviderError]:
        policy = slot.policy
        pump: StreamPump[T] | None = None
        delivered = False
        queued = False  # waiting in a local model's queue: no deadline (the queue bounds the wait)
        try:
            with slot.admitted():
                slot.count("calls")
                pump = StreamPump(lambda: open_stream(slot.provider))
                held: list[T] = []  # metadata-only items, kept until output starts
                while True:
                    timeout = None if queued else (
                        policy.stall_timeout_s if delivered else policy.first_output_timeout_s)
                    got, item = pump.get(timeout, cancelled, slot.name)
                    if got is Got.CANCELLED:
                        return _Outcome.CANCELLED
                    if got is Got.END:
                        break
                    if item is QUEUED or item is STARTED:
                        # The deadlines count from when the model starts on this request.
                        queued = item is QUEUED
                        continue
                    if not delivered and not has_output(item):
                        held.append(item)
                        continue
                    if not delivered:
                        delivered = True
                        log.provider, log.model = slot.name, model_name(slot.provider)
                        yield from held
                        held.clear()
                    yield item
                yield from held  # a stream with no output at all, e.g. an empty reply
            slot.count("successes")
            log.provider, log.model = slot.name, model_name(slot.provider)
            return _Outcome.SERVED
        except CircuitOpen:
            slot.count("skipped")
            return _Outcome.SKIPPED
        except Exception as exc:
            error = translate(exc, slot.name)
            slot.count("refused" if is_not_provider_fault(error) else "failures")
            if delivered:
                raise ProviderInterrupted(f"{self.name}: {slot.name} failed after output had "
                                          f"started: {error}", slot.name) from error
            return error
        finally:
            if pump is not None:
                pump.stop()

    @staticmethod
    def _retry_delay(slot: ProviderSlot, error: ProviderError, attempt: int) -> float | None:
        """Seconds to wait before retrying the same provider, or None to move on."""
        policy = slot.policy
        if attempt >= policy.retries or slot.is_open or not is_transient(error):
            return None
        delay = min(policy.max_backoff_s, policy.backoff_s * 2 ** attempt) * random.uniform(0.5, 1.0)
        if isinstance(error, ProviderRateLimited):
            # Waiting out a rate limit only pays when the vendor says it is brief.
            if error.retry_after_s is None or error.retry_after_s > policy.max_backoff_s:
                return None
            delay = max(delay, error.retry_after_s)
        return delay


def _chat_has_output(delta: ChatDelta) -> bool:
    return bool(delta.text or delta.tool_calls)


def _audio_has_output(clip: AudioClip) -> bool:
    return len(clip.samples) > 0


def voice_for(provider_name: str, voice: str | None) -> str | None:
    """The voice meant for one provider.

    Voice ids are vendor-specific, so a voice may be given per provider:
    "elevenlabs=JBFqnCBsd6RMkjVDRZzb,openai=coral". A provider without an entry
    gets None (its default). A plain string goes to every provider as is.
    """
    if not voice or "=" not in voice:
        return voice
    return voice_entries(voice).get(provider_name) or None


def voice_entries(voice: str | None) -> dict[str, str]:
    """A per-provider voice ("elevenlabs=JBF…,openai=coral") as {provider: voice}; a plain one as {}."""
    entries: dict[str, str] = {}
    for entry in (voice or "").split(","):
        name, sep, value = entry.partition("=")
        if sep and name.strip() and name.strip() not in entries:  # the first entry wins, as it always has
            entries[name.strip()] = value.strip()
    return entries


class FallbackChatModel(FallbackAdapter[ChatDelta]):
    def __init__(self, providers: Sequence[Any], policy: ProviderPolicy = LLM_POLICY,
                 policies: Mapping[str, ProviderPolicy] | None = None, name: str = "llm"):
        super().__init__(providers, policy, policies, name)

    def stream(self, messages: list[dict[str, Any]], options: ChatOptions,
               cancelled: CancelFlag | None = None, log: CallLog | None = None,
               ) -> Generator[ChatDelta, None, str | None]:
        served_by = yield from self._run(lambda p: p.stream(messages, options, cancelled),
                                         _chat_has_output, cancelled, log)
        if served_by is None:
            yield ChatDelta(finish_reason="cancelled")
        return served_by


class FallbackSTT(FallbackAdapter[str]):
    def __init__(self, providers: Sequence[Any], policy: ProviderPolicy = STT_POLICY,
                 policies: Mapping[str, ProviderPolicy] | None = None, name: str = "stt"):
        super().__init__(providers, policy, policies, name)

    def transcribe(self, audio: AudioClip, language: str | None = "en", requester: str | None = None,
                   cancelled: CancelFlag | None = None, log: CallLog | None = None) -> str:
        # The pump reads on a helper thread, which is what enforces the deadline.
        def open_stream(provider: Any) -> Iterable[str]:
            steps = getattr(provider, "transcribe_steps", None)  # a queued local model
            if steps is not None:
                return steps(audio, language, requester, cancelled)
            return (provider.transcribe(audio, language),)

        texts = list(self._run(open_stream, lambda text: True, cancelled, log))
        return texts[-1] if texts else ""


class FallbackTTS(FallbackAdapter[AudioClip]):
    def __init__(self, providers: Sequence[Any], policy: ProviderPolicy = TTS_POLICY,
                 policies: Mapping[str, ProviderPolicy] | None = None, name: str = "tts"):
        super().__init__(providers, policy, policies, name)

    @property
    def primary_name(self) -> str:
        """The provider that serves when all is well (its audio is what a cache should keep)."""
        return self._slots[0].name

    def synthesize(self, text: str, voice: str | None = None,
                   log: CallLog | None = None) -> Generator[AudioClip, None, str | None]:
        """Yields audio; the generator's return value names the provider that spoke."""
        return (yield from self._run(lambda p: p.synthesize(text, voice_for(p.name, voice)),
                                     _audio_has_output, log=log))


def transcribe_as(stt: Any, audio: AudioClip, requester: str, language: str | None = "en",
                  log: CallLog | None = None) -> str:
    """Transcribe for this requester: a chain or a queued local model serves requesters
    fairly; a plain provider has no queue to be fair in."""
    if isinstance(stt, FallbackSTT):
        return stt.transcribe(audio, language, requester=requester, log=log)
    if log is not None:
        log.served(stt)
    if isinstance(stt, QueuedSTT):
        return stt.transcribe(audio, language, requester=requester)
    return stt.transcribe(audio, language)
