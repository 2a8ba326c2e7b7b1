"""Silero VAD v5 on onnxruntime, from a local file (no hub download).

One ONNX session is shared by every connection (onnxruntime sessions are safe to
run from several threads); each connection keeps its own recurrent state in a
`VadStream`, so speech is scored once, as it arrives, 32 ms at a time.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from providers.pcm import SPEECH_RATE, resample, to_float32

WINDOW = 512  # samples per decision at 16 kHz (32 ms), what v5 was trained on
CONTEXT = 64  # v5 looks at the tail of the previous window
# A window whose loudest sample is under -60 dBFS holds no speech: it scores 0 without the
# model. An open microphone that sends silence (a muted page, a quiet phone line) then
# costs almost nothing: the model is most of an idle connection's CPU.
QUIET_PEAK = 10 ** (-60 / 20)


class VadStream:
    """Speech probabilities of one audio stream, window by window."""

    def __init__(self, model: "SileroVad"):
        self._model = model
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def feed(self, samples_16k: np.ndarray) -> list[float]:
        """Score every complete window in the new samples; keep the remainder."""
        audio = np.concatenate([self._pending, to_float32(samples_16k).reshape(-1)])
        full = len(audio) // WINDOW * WINDOW
        probabilities = []
        for start in range(0, full, WINDOW):
            window = audio[start:start + WINDOW]
            if np.abs(window).max() < QUIET_PEAK:
                # As if the stream started here: after silence the model's state is its start.
                self._state = np.zeros_like(self._state)
                self._context = np.zeros_like(self._context)
                probabilities.append(0.0)
                continue
            x = np.concatenate([self._context, window])[np.newaxis, :]
            probability, self._state = self._model.run(x, self._state)
            self._context = window[-CONTEXT:]
            probabilities.append(probability)
        self._pending = audio[full:]
        return probabilities


class SileroVad:
    """Implements FastRTC's `PauseDetectionModel` protocol, plus streaming."""

    name = "silero-v5"

    def __init__(self, model_path: Path, threshold: float = 0.5):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # A 32 ms window is tiny: one thread avoids cross-core overhead, and leaves
        # the second core to the models that need it.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._sr = np.array(SPEECH_RATE, dtype=np.int64)
        self.threshold = threshold
        self._lock = threading.Lock()

    def run(self, x: np.ndarray, state: np.ndarray) -> tuple[float, np.ndarray]:
        output, new_state = self._session.run(None, {"input": x, "state": state, "sr": self._sr})
        return float(output[0][0]), new_state

    def stream(self) -> VadStream:
        return VadStream(self)

    def vad(self, audio: tuple[int, np.ndarray], options: Any = None) -> tuple[float, list[dict]]:
        """Seconds of speech in a clip, and the speech spans (in samples at 16 kHz)."""
        sample_rate, samples = audio
        samples = to_float32(np.asarray(samples).reshape(-1))
        if sample_rate != SPEECH_RATE:
            samples = resample(samples, sample_rate, SPEECH_RATE)
        probabilities = self.stream().feed(samples)
        spans: list[dict] = []
        for index, probability in enumerate(probabilities):
            if probability < self.threshold:
                continue
            start, end = index * WINDOW, (index + 1) * WINDOW
            if spans and spans[-1]["end"] == start:
                spans[-1]["end"] = end
            else:
                spans.append({"start": start, "end": end})
        speech_s = sum(s["end"] - s["start"] for s in spans) / SPEECH_RATE
        return speech_s, spans

    def warmup(self) -> None:
        self.vad((SPEECH_RATE, np.zeros(SPEECH_RATE, dtype=np.float32)))
