"""Whisper on CTranslate2 (faster-whisper), from a local model folder."""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from providers.base import AudioClip
from providers.pcm import SPEECH_RATE, resample, to_float32


class WhisperSTT:
    name = "offline-whisper"

    def __init__(self, model_dir: Path, threads: int = 2):
        from faster_whisper import WhisperModel

        if not (model_dir / "tokenizer.json").is_file():
            raise FileNotFoundError(f"{model_dir} has no tokenizer.json; point COZY_STT_PATH at a "
                                    "faster-whisper model folder")
        self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8",
                                   cpu_threads=threads, local_files_only=True)
        # CTranslate2 releases the GIL but one model object decodes one request at a time.
        self._lock = threading.Lock()

    def transcribe(self, audio: AudioClip, language: str = "en") -> str:
        samples = resample(to_float32(audio.samples), audio.sample_rate, SPEECH_RATE)
        if len(samples) < SPEECH_RATE // 10:
            return ""
        with self._lock:
            segments, _ = self._model.transcribe(
                samples, language=language, beam_size=1, temperature=0.0,
                without_timestamps=True, condition_on_previous_text=False,
                vad_filter=False,
            )
            return " ".join(s.text.strip() for s in segments).strip()

    def warmup(self) -> None:
        self.transcribe(AudioClip(SPEECH_RATE, np.zeros(SPEECH_RATE, dtype=np.int16)))
