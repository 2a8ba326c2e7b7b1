"""Smart Turn v3.2 on onnxruntime: has the speaker finished their turn, judged from the audio.

The model (Pipecat's, BSD-2-Clause, Copyright (c) 2024-2026 Daily; shipped in the
pipecat-ai 1.14.0 wheel, installed without its dependencies) is a Whisper-tiny encoder
with a linear head. It reads the last 8 s of the turn as Whisper log-mel features and
returns the probability that the turn is complete: intonation and a finished phrase say
"done", a trailing "for..." or "um" says "still going", which a silence timer cannot tell.

One session is shared by every connection (onnxruntime runs are thread-safe).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from providers.offline.whisper_features import last_window, log_mel

log = logging.getLogger(__name__)


class EndOfTurnModel(Protocol):
    name: str

    def probability(self, samples_16k: np.ndarray) -> float:
        """Probability that the speech in these samples (16 kHz mono) is a finished turn."""
        ...


class SmartTurn:
    name = "smart-turn-v3.2"

    def __init__(self, model_path: Path, threads: int = 1):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        # One thread: the check runs while STT and the LLM may want the other core.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"])

    def probability(self, samples_16k: np.ndarray) -> float:
        features = log_mel(last_window(samples_16k))[np.newaxis, :, :]
        output = self._session.run(None, {"input_features": features})[0]
        return float(np.asarray(output).reshape(-1)[0])

    def warmup(self) -> float:
        """First run allocates; returns ms of a warm run, for the start-up log."""
        silence = np.zeros(16_000, dtype=np.int16)
        self.probability(silence)
        began = time.perf_counter()
        self.probability(silence)
        return (time.perf_counter() - began) * 1000


def load_smart_turn(model_path: Path | None, load_error: str = "") -> SmartTurn | None:
    """The model, or None (silence-only turn ends) with a warning when it cannot load."""
    if model_path is None:
        log.warning("end-of-turn model unavailable (%s): turns end on silence alone", load_error)
        return None
    try:
        model = SmartTurn(model_path)
        log.info("end-of-turn model %s ready (%.0f ms a check)", model.name, model.warmup())
        return model
    except Exception as exc:  # noqa: BLE001 - a broken file must not stop the voice
        log.warning("end-of-turn model %s failed to load (%s): turns end on silence alone",
                    model_path, exc)
        return None
