"""Replicas behind one load balancer, sharing state through a real redis-server: one
limit for all of them, a yes that counts once wherever it lands, and a phrase
synthesized once for everyone. Each replica is its own client, as its own process
would have."""
from __future__ import annotations

import os
import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import redis

from config import VisitorLimits
from handlers.api.errors import ApiError
from handlers.api.rate_limit import RateLimiter, RateLimits
from handlers.visitor_limits import LimitReached, VisitorLimiter
from providers.base import AudioClip
from providers.call_log import CallLog
from providers.tts_cache import CachedTTS, RedisTtsCache, encode_audio, phrase_key
from storage.redis_state import PREFIX, connect
from tests.conftest import free_port
from tests.fakes.providers import openai_tts
from tools.policy import ConfirmationBook, PolicyDenied, call_digest

pytest_plugins = ["tests.redis_service", "tests.fakes.fixtures"]  # redis_url; the fake vendor servers

PHRASE = "Just a moment, let me check."
FRESH = "needs a fresh confirmation"


@pytest.fixture
def replicas(redis_url):
    clients = [connect(redis_url), connect(redis_url)]
    yield clients
    for client in clients:
        client.close()


def refusal(call) -> tuple | None:
    try:
        call()
    except ApiError as exc:
        return exc.status, exc.message, exc.type, exc.param, exc.code, exc.headers
    return None


# rate limits ----------------------------------------------------------------------------
def test_two_replicas_enforce_one_request_limit_per_user(replicas):
    limits = RateLimits(requests_per_minute=4)
    one, two = (RateLimiter(limits, client) for client in replicas)
    for replica in (one, two, one, two):
        replica.request("alice")
    for replica in (one, two):  # whichever replica the fifth request reaches
        with pytest.raises(ApiError) as refused:
            replica.request("alice")
        assert refused.value.status == 429 and refused.value.headers == {"retry-after": "15"}
        assert refused.value.message == "Rate limit reached for requests: limit 4 per minute. Try again in 15s."
    one.request("bob")  # another user has a bucket of their own
    two.request("bob")
    assert one.remaining("alice") == pytest.approx(0, abs=0.1)
    assert two.remaining("bob") == pytest.approx(2, abs=0.1)
    assert one.remaining("carol") == 4


def test_an_emptied_bucket_refills_on_every_replica(replicas):
    one, two = (RateLimiter(RateLimits(audio_seconds_per_minute=120), client) for client in replicas)
    one.audio("alice", 120)
    assert refusal(lambda: two.audio("alice", 1))[5] == {"retry-after": "1"}
    deadline = time.monotonic() + 5
    while two.remaining("alice", "audio") < 1:  # two audio seconds a minute come back every second
        assert time.monotonic() < deadline, "the bucket never refilled"
        time.sleep(0.01)
    one.audio("alice", 1)


def test_a_burst_across_replicas_gets_exactly_the_limit(replicas):
    limiters = [RateLimiter(RateLimits(requests_per_minute=20), client) for client in replicas]
    start = threading.Barrier(8, timeout=10)

    def attempt(i: int) -> bool:
        if i < 8:
            start.wait()
        return refusal(lambda: limiters[i % 2].request("alice")) is None

    with ThreadPoolExecutor(8) as pool:
        served = sum(pool.map(attempt, range(60)))
    assert served == 20  # a token refills every 3 s; the burst takes milliseconds


def test_shared_limits_answer_exactly_what_one_process_answers(replicas):
    limits = RateLimits(requests_per_minute=2, audio_seconds_per_minute=60)

    def answers(limiter: RateLimiter) -> list[tuple | None]:
        return [refusal(call) for call in (
            lambda: limiter.request("u"), lambda: limiter.request("u"), lambda: limiter.request("u"),
            lambda: limiter.audio("u", 30, "file"), lambda: limiter.audio("u", 35, "file"),
            lambda: limiter.audio("u", 61, "file"))]

    shared, alone = answers(RateLimiter(limits, replicas[0])), answers(RateLimiter(limits))
    assert shared == alone
    assert [a and a[0] for a in shared] == [None, None, 429, None, 429, 413]
    assert shared[4][5] == {"retry-after": "5"}


# visitors -------------------------------------------------------------------------------
def test_two_replicas_share_a_visitors_messages_per_minute(replicas):
    one, two = (VisitorLimiter(VisitorLimits(messages_per_minute=3), redis=client) for client in replicas)
    one.message("visitor:a")
    two.message("visitor:a")
    one.message("visitor:a")
    for replica in (one, two):
        with pytest.raises(LimitReached) as refused:
            replica.message("visitor:a")
        assert str(refused.value) == "You've sent 3 messages in the last minute. Please wait 60 seconds."
    two.message("visitor:b")  # another visitor is not held back


# confirmations --------------------------------------------------------------------------
def test_a_yes_reaching_another_replica_counts_once(replicas):
    one, two = (ConfirmationBook(ttl_s=60, redis=client) for client in replicas)
    with pytest.raises(PolicyDenied, match="needs your confirmation first") as asked:
        one.require("s1", "delete_note", {"note_id": 1}, confirmed=False)
    assert asked.value.needs_confirmation
    with pytest.raises(PolicyDenied, match=FRESH):
        two.require("s1", "delete_note", {"note_id": 2}, confirmed=True)  # a different note
    with pytest.raises(PolicyDenied, match=FRESH):
        two.require("s2", "delete_note", {"note_id": 1}, confirmed=True)  # another session
    two.require("s1", "delete_note", {"note_id": 1}, confirmed=True)
    with pytest.raises(PolicyDenied, match=FRESH):
        one.require("s1", "delete_note", {"note_id": 1}, confirmed=True)  # a yes is spent once


def test_a_confirmation_expires_on_every_replica(replicas):
    one, two = (ConfirmationBook(ttl_s=0.05, redis=client) for client in replicas)
    with pytest.raises(PolicyDenied):
        one.require("s1", "delete_note", {"note_id": 1}, confirmed=False)
    pending = f"{PREFIX}confirm:s1:{call_digest('delete_note', {'note_id': 1})}"
    deadline = time.monotonic() + 5
    while replicas[1].exists(pending):  # Redis' own expiry, not a guess at how long it takes
        assert time.monotonic() < deadline, "the pending confirmation never expired"
        time.sleep(0.005)
    with pytest.raises(PolicyDenied, match="expired"):
        two.require("s1", "delete_note", {"note_id": 1}, confirmed=True)


# TTS phrase cache -----------------------------------------------------------------------
def test_a_phrase_synthesized_on_one_replica_is_served_by_another(vendor, replicas):
    caches = [RedisTtsCache(client) for client in replicas]
    one, two = (CachedTTS(openai_tts(vendor), cache) for cache in caches)
    first = list(one.synthesize(PHRASE))
    log = CallLog()
    again = list(two.synthesize(PHRASE, log=log))
    assert vendor.hits() == 1 and log.provider == "cache"  # the vendor never saw the second request
    assert {c.sample_rate for c in again} == {c.sample_rate for c in first}
    assert np.array_equal(np.concatenate([c.samples for c in again]), np.concatenate([c.samples for c in first]))
    assert len(caches[0]) == len(caches[1]) == 1


def test_a_cached_clip_reads_back_identical_on_another_replica(replicas):
    one, two = (RedisTtsCache(client) for client in replicas)
    clip = AudioClip(22_050, np.array([0, 1, -1, 32767, -32768, 1234], dtype=np.int16))
    one.put("k", clip)
    read = two.get("k")
    assert read is not None and read.sample_rate == 22_050 and read.samples.dtype == np.int16
    assert np.array_equal(read.samples, clip.samples)
    assert two.get("missing") is None
    assert 0 < replicas[0].ttl(f"{PREFIX}tts:k") <= 7 * 24 * 3600  # phrases do not stay for good


def test_a_value_that_is_not_our_audio_reads_as_a_miss(replicas, tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    cache = RedisTtsCache(replicas[0])
    key = phrase_key("openai", None, PHRASE)
    name = f"{PREFIX}tts:{key}"
    for planted in (pickle.dumps(Exploit()), b"not audio", encode_audio(16_000, np.zeros(4)) + b"\x00"):
        replicas[1].set(name, planted)
        assert cache.get(key) is None
        assert not replicas[1].exists(name)  # dropped, so the next reply re-caches it
    assert not marker.exists()
    replicas[1].hset(name, "not", "a string")
    assert cache.get(key) is None and not replicas[1].exists(name)


def test_an_oversized_clip_is_not_cached(replicas):
    cache = RedisTtsCache(replicas[0], max_entry_bytes=1000)
    cache.put("long", AudioClip(16_000, np.zeros(16_000, dtype=np.int16)))
    assert cache.get("long") is None and len(cache) == 0


# when Redis is not there ---------------------------------------------------------------
def test_connect_says_which_redis_it_could_not_reach_without_the_password():
    port = free_port()
    with pytest.raises(RuntimeError, match=rf"Redis at redis://:\*\*\*@127\.0\.0\.1:{port}/0 is not reachable") \
            as failed:
        connect(f"redis://:hunter2@127.0.0.1:{port}/0")
    assert "hunter2" not in str(failed.value) and "COZY_REDIS_URL" in str(failed.value)


def test_when_redis_goes_away_each_replica_still_limits_and_speaks(tmp_path, vendor):
    from tests.redis_service import redis_server  # not at the top: pytest_plugins must load the module first

    with redis_server(tmp_path / "redis") as url:
        client = connect(url)
        limiter = RateLimiter(RateLimits(requests_per_minute=2), client)
        visitors = VisitorLimiter(VisitorLimits(messages_per_minute=1), redis=client)
        book = ConfirmationBook(ttl_s=60, redis=client)
        tts = CachedTTS(openai_tts(vendor), RedisTtsCache(client))
        limiter.request("alice")
    # Redis is gone: this replica's own limits, never none and never a 500.
    limiter.request("alice")
    limiter.request("alice")
    assert refusal(lambda: limiter.request("alice"))[0] == 429
    visitors.message("visitor:a")
    with pytest.raises(LimitReached):
        visitors.message("visitor:a")
    assert list(tts.synthesize(PHRASE)) and vendor.hits() == 1  # no cache, still a reply
    with pytest.raises(redis.RedisError):  # a yes is never taken on trust (the gateway refuses the call)
        book.require("s1", "delete_note", {"note_id": 1}, confirmed=True)
    client.close()
