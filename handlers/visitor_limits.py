"""Per-visitor abuse limits of a public server, each refusal said in words.

Voice minutes per hour, open voice connections, messages per minute; upload size
is checked where files arrive. These sit under the global limits (voice slots,
the models' fair queues), which still hold for everyone together. Counts live in
memory: a restart forgives everyone, which is the right failure for a limit.
"""
from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable

from config import VisitorLimits

HOUR_S = 3600.0
MINUTE_S = 60.0


class LimitReached(Exception):
    """The message is for the visitor (short enough for a websocket close reason)."""


class VisitorLimiter:
    def __init__(self, limits: VisitorLimits, clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self._clock = clock
        self._lock = threading.Lock()
        self._messages: dict[str, deque[float]] = defaultdict(deque)
        self._voice_used: dict[str, deque[tuple[float, float]]] = defaultdict(deque)  # (ended_at, seconds)
        self._voice_open: dict[str, tuple[str, float]] = {}  # connection id -> (identity, opened_at)

    def message(self, identity: str) -> None:
        """Count one message (typed or spoken); refuse it over the per-minute limit."""
        now = self._clock()
        with self._lock:
            sent = self._messages[identity]
            while sent and now - sent[0] >= MINUTE_S:
                sent.popleft()
            if len(sent) >= self.limits.messages_per_minute:
                wait_s = max(1, math.ceil(MINUTE_S - (now - sent[0])))
                raise LimitReached(f"You've sent {self.limits.messages_per_minute} messages in the last minute. "
                                   f"Please wait {wait_s} seconds.")
            sent.append(now)

    def voice_minutes_used(self, identity: str) -> float:
        with self._lock:
            return self._used_s(identity, self._clock()) / 60

    def _used_s(self, identity: str, now: float) -> float:
        used = self._voice_used[identity]
        while used and now - used[0][0] >= HOUR_S:
            used.popleft()
        ended = sum(seconds for _, seconds in used)
        live = sum(now - opened for owner, opened in self._voice_open.values() if owner == identity)
        return ended + live

    def _check_minutes(self, identity: str, now: float) -> None:
        limit = self.limits.voice_minutes_per_hour
        if self._used_s(identity, now) >= limit * 60:
            raise LimitReached(f"You've used your {limit:g} voice minutes for this hour. You can still type.")

    def voice_open(self, identity: str, connection_id: str) -> None:
        now = self._clock()
        with self._lock:
            mine = sum(1 for owner, _ in self._voice_open.values() if owner == identity)
            if mine >= self.limits.voice_connections:
                raise LimitReached("You already have a voice connection open. Hang up the other one first.")
            self._check_minutes(identity, now)
            self._voice_open[connection_id] = (identity, now)

    def voice_turn(self, identity: str) -> None:
        """Before each spoken reply: a long call runs out of minutes too."""
        with self._lock:
            self._check_minutes(identity, self._clock())

    def voice_closed(self, connection_id: str) -> None:
        now = self._clock()
        with self._lock:
            opened = self._voice_open.pop(connection_id, None)
            if opened is not None:
                identity, opened_at = opened
                self._voice_used[identity].append((now, now - opened_at))
