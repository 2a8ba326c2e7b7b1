"""The Realtime API's audio formats on the wire: 24 kHz 16-bit PCM, and 8 kHz G.711
mu-law and A-law, as numpy so no deprecated `audioop` is needed (it leaves Python 3.13)."""
from __future__ import annotations

import numpy as np

PCM, PCMU, PCMA = "audio/pcm", "audio/pcmu", "audio/pcma"
RATES = {PCM: 24_000, PCMU: 8_000, PCMA: 8_000}
_BYTES_PER_SAMPLE = {PCM: 2, PCMU: 1, PCMA: 1}


class NotAudio(ValueError):
    """Bytes that cannot be audio of the session's format."""


def _mulaw_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent, mantissa = (u >> 4) & 7, u & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def _alaw_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    exponent, mantissa = (a >> 4) & 7, a & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(a & 0x80, magnitude, -magnitude).astype(np.int16)


_MULAW_DECODE, _ALAW_DECODE = _mulaw_table(), _alaw_table()


def _segment(magnitude: np.ndarray) -> np.ndarray:
    """G.711's exponent: the position of the highest set bit above bit 7 (0 for small values)."""
    exponent = np.zeros(magnitude.shape, dtype=np.int32)
    for bit in range(8, 15):
        exponent[magnitude >= (1 << bit)] = bit - 7
    return exponent


def _mulaw_encode(samples: np.ndarray) -> np.ndarray:
    # The CCITT reference (14-bit input, bias 0x21), bit-exact with audioop and Twilio's.
    x = samples.astype(np.int32) >> 2
    mask = np.where(x < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(x), 8159) + 0x21
    segment = np.zeros(magnitude.shape, dtype=np.int32)
    for bound in (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF):
        segment += magnitude > bound
    code = np.where(segment >= 8, 0x7F, (segment << 4) | ((magnitude >> (segment + 1)) & 0x0F))
    return (code ^ mask).astype(np.uint8)


def _alaw_encode(samples: np.ndarray) -> np.ndarray:
    x = samples.astype(np.int32)
    sign = np.where(x >= 0, 0x80, 0)
    magnitude = np.minimum(np.where(x >= 0, x, -x - 1), 32767)
    exponent = _segment(magnitude)
    mantissa = np.where(exponent == 0, magnitude >> 4, (magnitude >> (exponent + 3)) & 0x0F)
    return ((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8)


def decode(format_type: str, data: bytes) -> np.ndarray:
    """int16 samples at RATES[format_type]."""
    if len(data) % _BYTES_PER_SAMPLE[format_type]:
        raise NotAudio(f"{format_type} audio is 16-bit samples: an odd number of bytes cannot be it")
    raw = np.frombuffer(data, dtype=np.uint8)
    if format_type == PCMU:
        return _MULAW_DECODE[raw]
    if format_type == PCMA:
        return _ALAW_DECODE[raw]
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


def encode(format_type: str, samples_int16: np.ndarray) -> bytes:
    """Samples already at RATES[format_type]."""
    if format_type == PCMU:
        return _mulaw_encode(samples_int16).tobytes()
    if format_type == PCMA:
        return _alaw_encode(samples_int16).tobytes()
    return samples_int16.astype("<i2").tobytes()
