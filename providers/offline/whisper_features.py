"""Whisper log-mel features of 8 s of 16 kHz audio, in numpy: what Smart Turn v3 reads.

A port of Pipecat's `_whisper_features.py` (pipecat-ai 1.14.0, BSD-2-Clause, Copyright (c)
2024-2026 Daily), itself derived from Hugging Face Transformers' WhisperFeatureExtractor
(Apache-2.0, Copyright 2022-2023 The HuggingFace Inc. team). Ported rather than imported so
that neither pipecat's dependencies nor transformers are needed. Same math: zero-mean unit-
variance waveform, centred reflect-padded 400-point periodic-Hann STFT every 160 samples,
Slaney mel filterbank (80 bands, 0-8 kHz), log10 clamped to 8 below the peak, scaled.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

RATE = 16_000
WINDOW_S = 8  # the model sees the last 8 s of the turn
N_FFT = 400
HOP = 160
N_MELS = 80
_MEL_FLOOR = 1e-10
_EPS = 1e-7


def _hz_to_mel(freq: np.ndarray) -> np.ndarray:
    freq = np.atleast_1d(np.asarray(freq, dtype=np.float64))
    mels = 3.0 * freq / 200.0
    log_region = freq >= 1000.0
    mels[log_region] = 15.0 + np.log(freq[log_region] / 1000.0) * (27.0 / np.log(6.4))
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.atleast_1d(np.asarray(mels, dtype=np.float64))
    freq = 200.0 * mels / 3.0
    log_region = mels >= 15.0
    freq[log_region] = 1000.0 * np.exp(np.log(6.4) / 27.0 * (mels[log_region] - 15.0))
    return freq


def _mel_filterbank() -> np.ndarray:
    """(N_FFT // 2 + 1, N_MELS) Slaney-normalised triangles."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(0.0)[0], _hz_to_mel(RATE / 2)[0], N_MELS + 2))
    fft_freqs = np.linspace(0, RATE // 2, N_FFT // 2 + 1)
    slopes = edges[np.newaxis, :] - fft_freqs[:, np.newaxis]
    widths = np.diff(edges)
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    return filters * (2.0 / (edges[2:N_MELS + 2] - edges[:N_MELS]))[np.newaxis, :]


_HANN = np.hanning(N_FFT + 1)[:-1]  # periodic, as torch.hann_window
_MEL_T = _mel_filterbank().T.copy()


def last_window(audio: np.ndarray) -> np.ndarray:
    """The last 8 s as float32, zero-padded at the front when shorter (as Pipecat does)."""
    x = np.asarray(audio)
    x = x.astype(np.float32) / 32768.0 if x.dtype == np.int16 else x.astype(np.float32, copy=False)
    size = RATE * WINDOW_S
    if x.size >= size:
        return x[-size:]
    return np.pad(x, (size - x.size, 0))


def log_mel(window: np.ndarray) -> np.ndarray:
    """(80, 800) float32 features of exactly 8 s of audio."""
    x = (window - window.mean()) / np.sqrt(window.var() + _EPS)
    padded = np.pad(x.astype(np.float64), (N_FFT // 2, N_FFT // 2), mode="reflect")
    frames = sliding_window_view(padded, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * _HANN, axis=-1)) ** 2
    mel = np.log10(np.maximum(_MEL_FLOOR, _MEL_T @ power.T))[:, :-1]
    mel = np.maximum(mel, mel.max() - 8.0)
    return ((mel + 4.0) / 4.0).astype(np.float32)
