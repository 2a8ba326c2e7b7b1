"""What replicas behind one load balancer share, in Redis (COZY_REDIS_URL).

Each replica alone would enforce its own copy of a limit (N replicas, N times
the limit) and forget a "yes" the user said to another replica. So Redis holds
the per-user rate-limit buckets, visitors' messages per minute, pending tool
confirmations and the TTS phrase cache. Every check-and-update is one atomic
step (a Lua script on Redis' own clock, or GETDEL), however many replicas ask.
Values are numbers and raw bytes only, never pickles: whoever can write to Redis
must not be able to run code in our process. Without a URL it all stays in memory.
"""
from __future__ import annotations

import logging
import time

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from storage.urls import without_password

log = logging.getLogger(__name__)

PREFIX = "cozy:"  # every key we write starts with it
UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)  # no answer, unlike an error Redis answers (OOM)
_WARN_EVERY_S = 60.0


def connect(url: str) -> redis.Redis:
    """A client for `url`, checked once: a wrong URL fails at start, not on a user's request."""
    client = redis.Redis.from_url(
        url, decode_responses=False, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30,
        # Ride out a blip, but fail fast in an outage: these calls sit on every request's path.
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1))
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        raise RuntimeError(f"Redis at {without_password(url)} is not reachable ({type(exc).__name__}: {exc}); "
                           f"check COZY_REDIS_URL and that Redis is running") from None
    return client


class Fallback:
    """After a Redis error, a replica does without Redis for a while (its own memory, or no
    cache) instead of making every request wait out the timeouts; logged once a minute."""

    def __init__(self, what: str, pause_s: float = 10.0):
        self.what = what
        self.pause_s = pause_s
        self._until = 0.0
        self._warned = -_WARN_EVERY_S

    def active(self) -> bool:
        return time.monotonic() < self._until

    def failed(self, exc: Exception) -> None:
        now = time.monotonic()
        self._until = now + self.pause_s
        if now - self._warned >= _WARN_EVERY_S:
            self._warned = now
            log.warning("Redis unavailable for %s (%s: %s); this replica goes on without it for %gs",
                        self.what, type(exc).__name__, exc, self.pause_s)
