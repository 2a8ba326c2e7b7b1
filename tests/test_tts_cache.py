"""The TTS phrase cache: repeated phrases skip the vendor; only raw bytes touch the disk."""
from __future__ import annotations

import os
import stat

import diskcache
import numpy as np
import pytest

from providers.breakers import ProviderPolicy
from providers.call_log import CallLog
from providers.errors import ProviderError
from providers.fallback import FallbackTTS
from providers.tts_cache import BytesOnlyDisk, CachedTTS, TtsCache, phrase_key
from tests.fakes.providers import elevenlabs_tts, openai_tts
from tests.fakes.vendor_server import Fault

pytest_plugins = ["tests.fakes.fixtures"]  # the fake vendor servers

PHRASE = "Just a moment, let me check."
FAST = ProviderPolicy(fail_max=1, reset_timeout_s=60, first_output_timeout_s=1.5,
                      stall_timeout_s=1.5, retries=0)


@pytest.fixture
def cache(tmp_path):
    cache = TtsCache(tmp_path / "tts-cache")
    yield cache
    cache.close()


def samples(clips) -> np.ndarray:
    return np.concatenate([c.samples for c in clips])


def test_a_repeated_phrase_is_served_without_a_request(vendor, cache):
    tts = CachedTTS(openai_tts(vendor), cache)
    first = list(tts.synthesize(PHRASE))
    assert vendor.hits() == 1

    log = CallLog()
    again = list(tts.synthesize(PHRASE, log=log))
    assert vendor.hits() == 1  # the fake never saw the second request
    assert {c.sample_rate for c in again} == {24_000}
    assert np.array_equal(samples(again), samples(first))
    assert (tts.hits, tts.misses) == (1, 1) and log.provider == "cache"


def test_key_covers_provider_voice_and_text(vendor, cache):
    tts = CachedTTS(openai_tts(vendor), cache)
    list(tts.synthesize(PHRASE))
    list(tts.synthesize(PHRASE, voice="coral"))
    list(tts.synthesize("Something else."))
    list(tts.synthesize("  Just a moment,   let me check. "))  # same words, same audio
    assert vendor.hits() == 3
    assert phrase_key("openai", None, PHRASE) != phrase_key("elevenlabs", None, PHRASE)


def test_long_text_is_not_cached(vendor, cache):
    tts = CachedTTS(openai_tts(vendor), cache)
    long_text = "word " * 50
    list(tts.synthesize(long_text))
    list(tts.synthesize(long_text))
    assert vendor.hits() == 2 and len(cache) == 0


def test_unfinished_speech_is_not_cached(vendor, cache):
    tts = CachedTTS(openai_tts(vendor), cache)
    stream = tts.synthesize(PHRASE)
    next(stream)
    stream.close()  # barge-in after the first clip
    assert len(cache) == 0

    vendor.fail_next(Fault(drop_after_chunks=1))
    with pytest.raises(ProviderError):
        list(tts.synthesize(PHRASE))
    assert len(cache) == 0


def test_over_a_chain_only_the_primary_voice_is_kept(vendors, cache):
    primary, secondary = vendors
    chain = FallbackTTS([openai_tts(primary), elevenlabs_tts(secondary)], FAST)
    tts = CachedTTS(chain, cache)

    primary.fail_next(Fault(status=500))
    log = CallLog()
    assert list(tts.synthesize(PHRASE, log=log))
    assert log.provider == "elevenlabs" and len(cache) == 0  # the stand-in voice is not kept

    chain_healthy = CachedTTS(FallbackTTS([openai_tts(primary), elevenlabs_tts(secondary)], FAST), cache)
    list(chain_healthy.synthesize(PHRASE))
    assert len(cache) == 1

    primary.fail_always(Fault(status=500))
    hits_before = (primary.hits(), secondary.hits())
    assert list(chain_healthy.synthesize(PHRASE))  # the primary is down, its cached voice still plays
    assert (primary.hits(), secondary.hits()) == hits_before


def test_cache_directory_is_private(tmp_path):
    directory = tmp_path / "loose"
    directory.mkdir(mode=0o755)
    cache = TtsCache(directory)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    cache.close()


def test_only_bytes_are_stored(cache):
    raw = diskcache.Cache(str(cache.directory), disk=BytesOnlyDisk)
    with pytest.raises(TypeError):
        raw.set("k", {"not": "bytes"})
    with pytest.raises(TypeError):
        raw.set(("tuple", "key"), b"x")
    raw.close()


def test_a_planted_pickle_is_never_loaded(vendor, cache, tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    key = phrase_key("openai", None, PHRASE)
    attacker = diskcache.Cache(str(cache.directory))  # the stock Disk pickles
    attacker.set(key, Exploit())
    attacker.close()

    tts = CachedTTS(openai_tts(vendor), cache)
    assert list(tts.synthesize(PHRASE))
    assert not marker.exists()
    assert vendor.hits() == 1  # treated as a miss, synthesized afresh
    assert list(tts.synthesize(PHRASE)) and vendor.hits() == 1  # and replaced by a clean entry
