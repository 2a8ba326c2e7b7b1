"""Per-user rate limits: requests per minute and seconds of audio per minute.

Token buckets refill continuously; an empty bucket answers 429 in OpenAI's shape,
with `retry-after` saying when the next unit is available. A limit of 0 (or less)
turns that limit off. With a Redis client the buckets live in Redis, so every
replica takes from the same one (storage/redis_state.py).
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from redis import Redis, RedisError

from config import ApiSettings
from handlers.api.errors import ApiError
from storage.redis_state import PREFIX, Fallback

_IDLE_MS = 120_000  # a bucket is full again after 60 s idle; its key may go a while after that

# _Bucket.take in one step, on Redis' clock (replicas' clocks differ). Numbers go back as
# strings: Lua numbers would come back as integers. Asking for 0 leaves no trace.
_TAKE = """
local capacity, rate, amount = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local elapsed = math.max(0, now - (tonumber(state[2]) or now))  -- a clock step back refills nothing
local tokens = math.min(capacity, (tonumber(state[1]) or capacity) + elapsed * rate)
local wait = 0
if tokens >= amount then tokens = tokens - amount else wait = (amount - tokens) / rate end
if state[1] or amount > 0 then
  redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'stamp', string.format('%.17g', now))
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
end
return {string.format('%.17g', tokens), string.format('%.17g', wait)}
"""


@dataclass(frozen=True)
class RateLimits:
    requests_per_minute: float = 120
    audio_seconds_per_minute: float = 600

    @classmethod
    def from_settings(cls, api: ApiSettings) -> RateLimits:
        return cls(api.requests_per_minute, api.audio_seconds_per_minute)


class _Bucket:
    def __init__(self, per_minute: float):
        self.capacity = per_minute
        self.rate = per_minute / 60.0
        self.tokens = per_minute
        self.stamp = time.monotonic()

    def take(self, amount: float) -> float:
        """0 if taken; otherwise the seconds until `amount` will be available.

        The caller makes sure `amount` fits the bucket at all, so the wait is finite
        and a client that waits it out gets served."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= amount:
            self.tokens -= amount
            return 0.0
        return (amount - self.tokens) / self.rate


class RateLimiter:
    def __init__(self, limits: RateLimits, redis: Redis | None = None):
        self.limits = limits
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()
        self._take_script = redis.register_script(_TAKE) if redis is not None else None
        self._fallback = Fallback("rate limits")

    def _shared(self, user: str, kind: str, per_minute: float, amount: float) -> tuple[float, float] | None:
        """(tokens left, wait) from the shared bucket; None when Redis is off or down."""
        if self._take_script is None or self._fallback.active():
            return None
        try:
            tokens, wait = self._take_script(keys=[f"{PREFIX}rate:{kind}:{user}"],
                                             args=[per_minute, per_minute / 60.0, amount, _IDLE_MS])
            return float(tokens), float(wait)
        except RedisError as exc:  # an outage: each replica limits on its own rather than not at all
            self._fallback.failed(exc)
            return None

    def _take(self, user: str, kind: str, per_minute: float, amount: float, what: str, param: str | None) -> None:
        if per_minute <= 0:
            return
        if amount > per_minute:
            # No amount of waiting makes this fit, so a 429 with retry-after would be a lie.
            raise ApiError(413, f"This request needs {amount:.1f} {what}, more than the limit of {per_minute:g} "
                           f"{what} per minute.", param=param, code="rate_limit_request_too_large")
        if (shared := self._shared(user, kind, per_minute, amount)) is not None:
            wait = shared[1]
        else:
            with self._lock:
                wait = self._buckets.setdefault((user, kind), _Bucket(per_minute)).take(amount)
        if wait:
            seconds = max(1, math.ceil(wait))
            raise ApiError(429, f"Rate limit reached for {what}: limit {per_minute:g} per minute. "
                           f"Try again in {seconds}s.", "requests", code="rate_limit_exceeded",
                           headers={"retry-after": str(seconds)})

    def remaining(self, user: str, kind: str = "requests") -> float:
        """What is left of a user's bucket now (the Realtime API's rate_limits.updated)."""
        per_minute = self.limits.requests_per_minute if kind == "requests" else self.limits.audio_seconds_per_minute
        if per_minute > 0 and (shared := self._shared(user, kind, per_minute, 0)) is not None:
            return shared[0]
        with self._lock:
            bucket = self._buckets.get((user, kind))
            if bucket is None:
                return per_minute
            bucket.take(0)  # takes nothing; brings the bucket up to now
            return bucket.tokens

    def request(self, user: str) -> None:
        self._take(user, "requests", self.limits.requests_per_minute, 1, "requests", None)

    def audio(self, user: str, seconds: float, param: str | None = None) -> None:
        self._take(user, "audio", self.limits.audio_seconds_per_minute, seconds, "audio seconds", param)
