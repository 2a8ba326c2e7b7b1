"""A disk cache of synthesized speech for phrases the assistant says again and again.

diskcache pickles by default and unpickles on read, so anyone able to write
the cache files could run code in our process (CVE-2025-69872). This cache
keeps raw bytes only: `BytesOnlyDisk` refuses to store or load anything else,
keys are sha256 hex strings, and the directory is private (0700). `RedisTtsCache`
is the same cache shared by replicas in Redis, holding the same raw bytes.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import diskcache
import numpy as np
from redis import Redis, RedisError

from providers.base import AudioClip
from providers.call_log import CallLog, synthesize_logged
from storage.redis_state import PREFIX, UNREACHABLE, Fallback

log = logging.getLogger(__name__)

MAX_CACHED_CHARS = 200  # greetings, fillers, apologies; long answers rarely repeat
_MAGIC = b"CZPCM1"  # format tag + sample rate, then s16le mono samples
_HEADER = struct.Struct("<6sI")


class BytesOnlyDisk(diskcache.Disk):
    """A diskcache Disk that never pickles: str keys, bytes values, or an error."""

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is not str:
            raise TypeError("TTS cache keys must be str")
        return super().put(key)

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise ValueError("refusing a pickled key in the TTS cache")
        return super().get(key, raw)

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        if type(value) is not bytes:
            raise TypeError("TTS cache values must be bytes")
        return super().store(value, read, key)

    def fetch(self, mode: int, filename: Any, value: Any, read: bool) -> Any:
        if mode not in (diskcache.core.MODE_RAW, diskcache.core.MODE_BINARY):
            raise ValueError("refusing a non-bytes entry in the TTS cache")
        return super().fetch(mode, filename, value, read)


def _private_directory(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if directory.stat().st_uid != os.getuid():
        raise PermissionError(f"TTS cache directory {directory} belongs to another user")
    os.chmod(directory, 0o700)  # also tightens a directory made earlier with the umask
    return directory


def phrase_key(provider: str, voice: str | None, text: str) -> str:
    normalized = " ".join(text.split())  # spacing does not change the audio
    return hashlib.sha256(json.dumps([provider, voice or "", normalized]).encode()).hexdigest()


def encode_audio(sample_rate: int, samples: np.ndarray) -> bytes:
    return _HEADER.pack(_MAGIC, sample_rate) + samples.astype("<i2").tobytes()


def decode_audio(blob: bytes) -> AudioClip:
    magic, sample_rate = _HEADER.unpack_from(blob)
    if magic != _MAGIC or len(blob) % 2:
        raise ValueError("not cached TTS audio")
    return AudioClip(sample_rate, np.frombuffer(blob, dtype="<i2", offset=_HEADER.size).astype(np.int16))


class TtsCache:
    def __init__(self, directory: Path, size_limit_bytes: int = 64 * 1024 * 1024):
        self.directory = _private_directory(Path(directory))
        self._cache = diskcache.Cache(str(self.directory), disk=BytesOnlyDisk,
                                      size_limit=size_limit_bytes,
                                      eviction_policy="least-recently-used")

    def get(self, key: str) -> AudioClip | None:
        try:
            blob = self._cache.get(key)
            return decode_audio(blob) if blob is not None else None
        except Exception as exc:  # a damaged or planted entry: drop it and synthesize
            log.warning("ignoring unreadable TTS cache entry: %s", exc)
            self._cache.delete(key)
            return None

    def put(self, key: str, clip: AudioClip) -> None:
        try:
            self._cache.set(key, encode_audio(clip.sample_rate, np.asarray(clip.samples)))
        except Exception as exc:  # a full disk costs us the cache, never the reply
            log.warning("could not cache TTS audio: %s", exc)

    def __len__(self) -> int:
        return len(self._cache)

    def close(self) -> None:
        self._cache.close()


class RedisTtsCache:
    """TtsCache's interface over Redis, so every replica hears a phrase made by any of them.

    Bytes in, bytes out (encode_audio/decode_audio), never pickle. Each entry expires
    `ttl_s` after its last use, which also lets a `volatile-*` maxmemory policy evict
    phrases before anything else. An outage costs us the cache, never the reply."""

    def __init__(self, client: Redis, ttl_s: int = 7 * 24 * 3600, max_entry_bytes: int = 2 * 1024 * 1024):
        self._redis = client
        self.ttl_s = ttl_s
        self.max_entry_bytes = max_entry_bytes  # about 20 s at 48 kHz: far more than a short phrase
        self._prefix = f"{PREFIX}tts:"
        self._fallback = Fallback("the TTS phrase cache")

    def _name(self, key: str) -> str:
        if type(key) is not str:
            raise TypeError("TTS cache keys must be str")
        return self._prefix + key

    def get(self, key: str) -> AudioClip | None:
        name = self._name(key)
        if self._fallback.active():
            return None
        try:
            blob = self._redis.getex(name, ex=self.ttl_s)  # a phrase in use stays
            return decode_audio(blob) if blob is not None else None
        except UNREACHABLE as exc:
            self._fallback.failed(exc)
            return None
        except Exception as exc:  # a damaged or planted entry (WRONGTYPE too): drop it and synthesize
            log.warning("ignoring unreadable TTS cache entry: %s", exc)
            with contextlib.suppress(RedisError):
                self._redis.delete(name)
            return None

    def put(self, key: str, clip: AudioClip) -> None:
        if self._fallback.active():
            return
        try:
            name = self._name(key)
            blob = encode_audio(clip.sample_rate, np.asarray(clip.samples))
            if len(blob) > self.max_entry_bytes:
                return  # not a short phrase after all; not worth the shared memory
            self._redis.set(name, blob, ex=self.ttl_s)
        except UNREACHABLE as exc:
            self._fallback.failed(exc)
        except Exception as exc:  # a full Redis costs us the cache, never the reply
            log.warning("could not cache TTS audio: %s", exc)

    def __len__(self) -> int:
        return sum(1 for _ in self._redis.scan_iter(match=f"{self._prefix}*", count=1000))

    def close(self) -> None:
        pass  # the client is shared with the rest of the app, which closes it


class CachedTTS:
    """Serves repeated short phrases from the cache; synthesizes and remembers the rest.

    Wrap a single provider or a FallbackTTS. Over a chain, only audio made by the
    chain's primary provider is kept (and looked up), so a phrase spoken once by
    the offline voice during an outage is not replayed in that voice for good.
    """

    logs_calls = True  # a hit is served by "cache"; a miss by whoever the inner chain says

    def __init__(self, inner: Any, cache: TtsCache | RedisTtsCache, max_chars: int = MAX_CACHED_CHARS):
        self.inner = inner
        self.name = inner.name
        self._cache = cache
        self._max_chars = max_chars
        self.hits = 0
        self.misses = 0

    def synthesize(self, text: str, voice: str | None = None,
                   log: CallLog | None = None) -> Generator[AudioClip, None, str | None]:
        """Yields audio; the generator's return value is "cache" or the provider that spoke."""
        log = log if log is not None else CallLog()
        primary = getattr(self.inner, "primary_name", self.inner.name)
        cacheable = 0 < len(text.strip()) <= self._max_chars
        key = phrase_key(primary, voice, text) if cacheable else None
        if key is not None and (clip := self._cache.get(key)) is not None:
            self.hits += 1
            log.provider, log.model = "cache", primary
            yield clip
            return "cache"
        self.misses += 1
        clips: list[AudioClip] = []
        served_by = yield from _collect(synthesize_logged(self.inner, text, log, voice), clips)
        # Only a full synthesis by the primary is kept: an interrupted or failed one
        # raises (or the caller's close stops us) before this line.
        spoken_by_primary = (served_by or self.inner.name) == primary
        if key is not None and clips and spoken_by_primary and (whole := _joined(clips)) is not None:
            self._cache.put(key, whole)
        return served_by


def _collect(clips: Iterator[AudioClip], into: list[AudioClip]) -> Generator[AudioClip, None, Any]:
    """Pass clips through while keeping them; return what the inner generator returned."""
    iterator = iter(clips)
    try:
        while True:
            try:
                clip = next(iterator)
            except StopIteration as end:
                return end.value
            into.append(clip)
            yield clip
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()  # the caller stopped early: release the provider too


def _joined(clips: list[AudioClip]) -> AudioClip | None:
    rate = clips[0].sample_rate
    if any(c.sample_rate != rate for c in clips):
        return None  # not one recording; not worth keeping
    return AudioClip(rate, np.concatenate([np.asarray(c.samples, dtype=np.int16) for c in clips]))
