"""One circuit breaker, policy and set of counters per provider in a fallback chain.

pybreaker is synchronous and thread-safe for state changes; our providers are
called from worker threads, so `breaker.calling()` around the whole call
(including a stream being read) is the right use. Two things it does not do
for us, done here:
- a caller that stops reading early (GeneratorExit) is not a provider failure
  (pybreaker counts an excluded exception as a success);
- in half-open it lets every caller through; we let exactly one trial call through
  and skip the provider for the others until that trial has answered.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import pybreaker

from providers.errors import is_not_provider_fault

from config import env_float

log = logging.getLogger(__name__)

CircuitOpen = pybreaker.CircuitBreakerError


@dataclass(frozen=True)
class ProviderPolicy:
    fail_max: int = 3  # consecutive failures that open the breaker
    reset_timeout_s: float = 30.0  # open this long, then one trial call
    first_output_timeout_s: float | None = 5.0  # call start to first text/audio/transcript
    stall_timeout_s: float | None = 5.0  # gap between items once output has started
    retries: int = 1  # same-provider retries, only before any output and only for transient errors
    backoff_s: float = 0.2  # first retry delay, doubled per retry
    max_backoff_s: float = 1.0  # waits longer than this (e.g. a long Retry-After) go to the next provider

    def with_env(self, env: Mapping[str, str]) -> "ProviderPolicy":
        """The breaker knobs from COZY_BREAKER_FAIL_MAX and COZY_BREAKER_RESET_S."""
        return ProviderPolicy(**{
            **asdict(self),
            "fail_max": int(env_float(env, "COZY_BREAKER_FAIL_MAX", self.fail_max)),
            "reset_timeout_s": env_float(env, "COZY_BREAKER_RESET_S", self.reset_timeout_s),
        })


@dataclass
class ProviderCounters:
    calls: int = 0  # attempts that reached the provider (retries included)
    successes: int = 0
    failures: int = 0
    skipped: int = 0  # not called: breaker open, or its one trial call already in flight
    refused: int = 0  # the caller's fault (bad input) or a full local queue: not a failure


@dataclass(frozen=True)
class BreakerEvent:
    at: float  # time.time()
    chain: str
    provider: str
    old_state: str | None
    new_state: str


StateListener = Callable[[BreakerEvent], None]


class BreakerEvents(pybreaker.CircuitBreakerListener):
    """Logs every state change of a chain's breakers and keeps the recent ones."""

    def __init__(self, chain: str, keep: int = 50):
        self.chain = chain
        self.recent: deque[BreakerEvent] = deque(maxlen=keep)
        self.listeners: list[StateListener] = []

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        event = BreakerEvent(time.time(), self.chain, cb.name or "?",
                             getattr(old_state, "name", None), new_state.name)
        level = logging.WARNING if event.new_state == pybreaker.STATE_OPEN else logging.INFO
        log.log(level, "%s: %s breaker %s -> %s", self.chain, event.provider,
                event.old_state, event.new_state)
        self.recent.append(event)
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:  # a UI hook must never break a call
                log.exception("breaker state listener failed")


class ProviderSlot:
    """A provider as a fallback chain holds it: breaker, policy and counters."""

    def __init__(self, provider: Any, policy: ProviderPolicy, events: BreakerEvents):
        self.provider = provider
        self.name: str = provider.name
        self.policy = policy
        self.counters = ProviderCounters()
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=policy.fail_max,
            reset_timeout=policy.reset_timeout_s,
            # The caller closing a stream early, sending a prompt that does not
            # fit, or a local model's full queue is not the provider failing.
            exclude=[GeneratorExit, is_not_provider_fault],
            listeners=[events],
            name=self.name,
            # Re-raise the real error when a failure trips the breaker, so the
            # chain still knows what went wrong (and that it may try the next one).
            throw_new_error_on_trip=False,
        )
        self._trial = threading.Lock()
        self._counter_lock = threading.Lock()

    @contextmanager
    def admitted(self) -> Iterator[None]:
        """One call through the breaker; raises CircuitOpen when the provider must be skipped."""
        if self.breaker.current_state == pybreaker.STATE_CLOSED:
            with self.breaker.calling():
                yield
            return
        # Open (maybe past its reset timeout) or half-open: one trial at a time.
        if not self._trial.acquire(blocking=False):
            raise CircuitOpen(f"{self.name}: trial call already in flight")
        try:
            with self.breaker.calling():
                yield
        finally:
            self._trial.release()

    @property
    def is_open(self) -> bool:
        return self.breaker.current_state == pybreaker.STATE_OPEN

    def count(self, what: str) -> None:
        with self._counter_lock:
            setattr(self.counters, what, getattr(self.counters, what) + 1)

    def counters_snapshot(self) -> dict[str, int]:
        with self._counter_lock:
            return asdict(self.counters)
