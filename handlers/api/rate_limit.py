"""Per-user rate limits: requests per minute and seconds of audio per minute.

Token buckets refill continuously; an empty bucket answers 429 in OpenAI's shape,
with `retry-after` saying when the next unit is available. A limit of 0 (or less)
turns that limit off.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from config import ApiSettings
from handlers.api.errors import ApiError


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
    def __init__(self, limits: RateLimits):
        self.limits = limits
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()

    def _take(self, user: str, kind: str, per_minute: float, amount: float, what: str, param: str | None) -> None:
        if per_minute <= 0:
            return
        if amount > per_minute:
            # No amount of waiting makes this fit, so a 429 with retry-after would be a lie.
            raise ApiError(413, f"This request needs {amount:.1f} {what}, more than the limit of {per_minute:g} "
                           f"{what} per minute.", param=param, code="rate_limit_request_too_large")
        with self._lock:
            bucket = self._buckets.setdefault((user, kind), _Bucket(per_minute))
            wait = bucket.take(amount)
        if wait:
            seconds = max(1, math.ceil(wait))
            raise ApiError(429, f"Rate limit reached for {what}: limit {per_minute:g} per minute. "
                           f"Try again in {seconds}s.", "requests", code="rate_limit_exceeded",
                           headers={"retry-after": str(seconds)})

    def remaining(self, user: str, kind: str = "requests") -> float:
        """What is left of a user's bucket now (the Realtime API's rate_limits.updated)."""
        per_minute = self.limits.requests_per_minute if kind == "requests" else self.limits.audio_seconds_per_minute
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
