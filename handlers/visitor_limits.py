"""Per-visitor abuse limits of a public server, each refusal said in words.

Voice minutes per hour, open voice connections, messages per minute; upload size
is checked where files arrive. These sit under the global limits (voice slots,
the models' fair queues), which still hold for everyone together. Counts live in
memory: a restart forgives everyone, which is the right failure for a limit. With a
Redis client the messages per minute are counted in Redis, once for all replicas.
"""
from __future__ import annotations

import math
import os
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable

from redis import Redis, RedisError

from config import VisitorLimits
from storage.redis_state import PREFIX, Fallback

HOUR_S = 3600.0
MINUTE_S = 60.0

# A sliding window of the last minute's messages (microsecond scores, Redis' clock), checked
# and added to in one step (the member is random: two replicas may count in the same
# microsecond). Returns {1, 0} when counted, {0, wait_us} when refused.
_MESSAGE = """
local limit, window_us = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window_us)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = tonumber(redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')[2] or now)
  return {0, window_us - (now - oldest)}
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(window_us / 1000) + 1000)
return {1, 0}
"""


class LimitReached(Exception):
    """The message is for the visitor (short enough for a websocket close reason)."""


class VisitorLimiter:
    def __init__(self, limits: VisitorLimits, clock: Callable[[], float] = time.monotonic,
                 redis: Redis | None = None):
        self.limits = limits
        self._clock = clock  # the in-memory counts' clock; shared counts use Redis' own
        self._lock = threading.Lock()
        self._message_script = redis.register_script(_MESSAGE) if redis is not None else None
        self._fallback = Fallback("visitor limits")
        self._messages: dict[str, deque[float]] = defaultdict(deque)
        # Voice minutes and open connections stay in memory even with Redis: a voice connection
        # lives on the one replica holding its websocket/WebRTC peer, which also times it.
        self._voice_used: dict[str, deque[tuple[float, float]]] = defaultdict(deque)  # (ended_at, seconds)
        self._voice_open: dict[str, tuple[str, float]] = {}  # connection id -> (identity, opened_at)

    def message(self, identity: str) -> None:
        """Count one message (typed or spoken); refuse it over the per-minute limit."""
        wait_s = self._shared_wait(identity)
        if wait_s is None:
            wait_s = self._local_wait(identity)
        if wait_s:
            raise LimitReached(f"You've sent {self.limits.messages_per_minute} messages in the last minute. "
                               f"Please wait {max(1, math.ceil(wait_s))} seconds.")

    def _local_wait(self, identity: str) -> float:
        """0 if counted, else the seconds until the oldest message leaves the window."""
        now = self._clock()
        with self._lock:
            sent = self._messages[identity]
            while sent and now - sent[0] >= MINUTE_S:
                sent.popleft()
            if len(sent) >= self.limits.messages_per_minute:
                return MINUTE_S - (now - sent[0]) if sent else MINUTE_S
            sent.append(now)
            return 0.0

    def _shared_wait(self, identity: str) -> float | None:
        """The same, counted in Redis for all replicas; None when Redis is off or down."""
        if self._message_script is None or self._fallback.active():
            return None
        try:
            counted, wait_us = self._message_script(
                keys=[f"{PREFIX}visitor:messages:{identity}"],
                args=[self.limits.messages_per_minute, int(MINUTE_S * 1_000_000), os.urandom(8).hex()])
        except RedisError as exc:  # an outage: this replica counts on its own rather than not at all
            self._fallback.failed(exc)
            return None
        return 0.0 if counted else wait_us / 1_000_000

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
