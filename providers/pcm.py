"""Audio samples: the one home of int16/float conversion, resampling and the speech rate,
and raw audio on the wire (WAV uploads for STT, s16le PCM streams from TTS)."""
from __future__ import annotations

import io
import wave
from collections.abc import Iterable, Iterator

import numpy as np
import soxr

from providers.base import AudioClip

SPEECH_RATE = 16_000  # what the VAD, the turn detector and Whisper take; every input is resampled to it


def to_float32(samples: np.ndarray) -> np.ndarray:
    """int16 to [-1, 1] float32 (float audio passes through)."""
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        return samples.astype(np.float32) / 32768.0
    return samples.astype(np.float32, copy=False)


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    # Float audio is [-1, 1] by convention; clip before the cast so loud peaks do not wrap.
    samples = np.nan_to_num(np.asarray(samples, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample mono audio, keeping int16 as int16.

    soxr is used instead of librosa's default: same quality class, and no ~3 s
    first-call stall on the hot path.
    """
    if from_rate == to_rate or len(samples) == 0:
        return samples
    if samples.dtype == np.int16:
        return float_to_int16(soxr.resample(to_float32(samples), from_rate, to_rate))
    return soxr.resample(samples.astype(np.float32, copy=False), from_rate, to_rate)


def to_mono_int16(samples: np.ndarray) -> np.ndarray:
    """FastRTC hands frames as (channels, n) or (n,), int16 or float."""
    samples = np.asarray(samples)
    if samples.size == 0:
        return np.zeros(0, dtype=np.int16)
    if samples.ndim == 2:
        channel_axis = 0 if samples.shape[0] <= samples.shape[1] else 1
        samples = samples.mean(axis=channel_axis).astype(samples.dtype)
    if samples.dtype != np.int16:
        if np.issubdtype(samples.dtype, np.floating):
            return float_to_int16(samples)
        return samples.astype(np.int16)
    return samples


def rms_dbfs(samples: np.ndarray) -> float:
    """Loudness of int16 audio in dBFS (-inf for silence)."""
    if len(samples) == 0:
        return float("-inf")
    x = samples.astype(np.float64) / 32768.0
    rms = float(np.sqrt(np.mean(x * x)))
    return 20 * np.log10(rms) if rms > 0 else float("-inf")


def int16_samples(clip: AudioClip) -> np.ndarray:
    samples = np.asarray(clip.samples).reshape(-1)
    return samples if samples.dtype == np.int16 else float_to_int16(samples)


def wav_bytes(clip: AudioClip) -> bytes:
    """A mono 16-bit WAV file in memory: what every transcription API accepts."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(clip.sample_rate)
        wav.writeframes(int16_samples(clip).astype("<i2").tobytes())
    return buffer.getvalue()


def pcm_clips(chunks: Iterable[bytes], sample_rate: int) -> Iterator[AudioClip]:
    """Turn a stream of s16le byte chunks into AudioClips as the bytes arrive.

    Network chunks can split a sample in half; the odd byte waits for the next chunk.
    """
    carry = b""
    for chunk in chunks:
        if not chunk:
            continue
        data = carry + chunk
        usable = len(data) - len(data) % 2
        carry = data[usable:]
        if usable:
            yield AudioClip(sample_rate, np.frombuffer(data[:usable], dtype="<i2").astype(np.int16))
