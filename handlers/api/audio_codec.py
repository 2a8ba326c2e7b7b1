"""Audio in and out of the HTTP API: decode any upload, encode replies as they stream.

Decoding goes through PyAV (FFmpeg), which reads what people actually upload
(wav, mp3, m4a, ogg/opus, webm, flac); anything it cannot read is a clear 400.
Encoding is incremental, so the first bytes leave before the whole text is spoken.
"""
from __future__ import annotations

import io
import struct
from collections.abc import Iterator

import av
import numpy as np

from providers.pcm import SPEECH_RATE, resample

MAX_DECODED_SECONDS = 30 * 60  # what one upload may expand to; guards against decompression bombs


class AudioDecodeError(ValueError):
    pass


def decode_audio(data: bytes, target_rate: int = SPEECH_RATE) -> np.ndarray:
    """Mono int16 at `target_rate`."""
    if not data:
        raise AudioDecodeError("the audio file is empty")
    pieces: list[np.ndarray] = []
    total = 0
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise AudioDecodeError("the file has no audio track")
            resampler = av.AudioResampler(format="s16", layout="mono", rate=target_rate)
            for frame in _frames(container):
                for out in resampler.resample(frame):
                    samples = out.to_ndarray().reshape(-1)
                    total += len(samples)
                    if total > MAX_DECODED_SECONDS * target_rate:
                        raise AudioDecodeError(f"the audio is longer than {MAX_DECODED_SECONDS // 60} minutes")
                    pieces.append(samples)
            for out in resampler.resample(None):
                pieces.append(out.to_ndarray().reshape(-1))
    except AudioDecodeError:
        raise
    except (av.FFmpegError, ValueError, IndexError, OSError) as exc:
        raise AudioDecodeError("the file could not be decoded as audio") from exc
    if not pieces:
        raise AudioDecodeError("the file contains no audio samples")
    return np.concatenate(pieces).astype(np.int16)


def _frames(container) -> Iterator[av.AudioFrame]:
    """Decoded frames; a damaged packet is skipped as FFmpeg's own tools do (an MP3's
    leading info frame, say), but a file where nothing decodes is an error."""
    stream = container.streams.audio[0]
    decoded = failed = 0
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            failed += 1
            continue
        for frame in frames:
            decoded += 1
            yield frame
    if not decoded and failed:
        raise AudioDecodeError("the file could not be decoded as audio")


def wav_header(sample_rate: int, data_bytes: int = 0xFFFFFFFF - 36) -> bytes:
    """A streaming WAV header: the size is unknown up front, so it says 'as much as follows'."""
    return (b"RIFF" + struct.pack("<I", min(data_bytes + 36, 0xFFFFFFFF)) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, sample_rate * 2, 2, 16)
            + b"data" + struct.pack("<I", data_bytes))


_CONTAINERS = {"mp3": ("mp3", "libmp3lame", 24_000), "opus": ("ogg", "libopus", 48_000),
               "aac": ("adts", "aac", 24_000), "flac": ("flac", "flac", 24_000)}
MEDIA_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
               "wav": "audio/wav", "pcm": "audio/pcm"}


class StreamEncoder:
    """Feed int16 chunks at `sample_rate`; read encoded bytes as they are ready."""

    def __init__(self, response_format: str, sample_rate: int):
        self.format = response_format
        self.sample_rate = sample_rate
        self._header_sent = False
        if response_format in _CONTAINERS:
            container_format, codec, codec_rate = _CONTAINERS[response_format]
            self._buffer = io.BytesIO()
            self._container = av.open(self._buffer, mode="w", format=container_format)
            self._stream = self._container.add_stream(codec, rate=codec_rate, layout="mono")
            self._codec_rate = codec_rate
            self._pts = 0

    def _drain(self) -> bytes:
        data = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return data

    def encode(self, samples: np.ndarray) -> bytes:
        if self.format == "pcm":
            return samples.astype("<i2").tobytes()
        if self.format == "wav":
            header = b"" if self._header_sent else wav_header(self.sample_rate)
            self._header_sent = True
            return header + samples.astype("<i2").tobytes()
        samples = resample(samples, self.sample_rate, self._codec_rate)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self._codec_rate
        frame.pts = self._pts
        self._pts += frame.samples
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        return self._drain()

    def finish(self) -> bytes:
        if self.format == "wav" and not self._header_sent:
            return wav_header(self.sample_rate, 0)
        if self.format not in _CONTAINERS:
            return b""
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        return self._drain()


def encode_all(chunks: Iterator[np.ndarray], response_format: str, sample_rate: int) -> Iterator[bytes]:
    encoder = StreamEncoder(response_format, sample_rate)
    for chunk in chunks:
        data = encoder.encode(chunk)
        if data:
            yield data
    tail = encoder.finish()
    if tail:
        yield tail
