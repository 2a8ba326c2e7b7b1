"""Whisper on CTranslate2 (faster-whisper), from local model folders.

English goes to tiny.en, the fastest; any other language, or "auto" (detect it), to the
multilingual base model, loaded when first needed.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from providers.base import AudioClip
from providers.languages import SPOKEN_LANGUAGES, iso_language
from providers.offline.lazy import Lazy
from providers.pcm import SPEECH_RATE, resample, to_float32

# Greedy decoding serves English; Chinese from the small base model needs the beam (on
# espeak-ng's Mandarin it found 首都 in 5 of 6 clips with it, 1 of 6 without).
# Whisper writes Chinese in traditional or simplified characters as it likes; a simplified
# prompt steers it to simplified, what a zh-CN user reads (and what the persona writes).
_PROMPTS = {"zh": "以下是普通话的句子。"}
# "auto" chooses among the languages the offline voices speak: Whisper base alone would
# call a short English phrase Welsh or Nynorsk now and then.
AUTO_LANGUAGES = tuple(SPOKEN_LANGUAGES)


def _most_tokens(seconds: float) -> int:
    """A cap on what one window may say: speech is under ~10 tokens a second, and Whisper
    on unclear audio can loop ("帮你帮我帮你…") until its 448-token limit."""
    return int(min(440, 16 + 12 * min(seconds, 30.0)))


class WhisperSTT:
    name = "offline-whisper"

    def __init__(self, model_dir: Path, threads: int = 2):
        from faster_whisper import WhisperModel

        if not (model_dir / "tokenizer.json").is_file():
            raise FileNotFoundError(f"{model_dir} has no tokenizer.json; point COZY_STT_PATH at a "
                                    "faster-whisper model folder")
        self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8",
                                   cpu_threads=threads, local_files_only=True)
        self.multilingual = self._model.model.is_multilingual
        # CTranslate2 releases the GIL but one model object decodes one request at a time.
        self._lock = threading.Lock()

    def transcribe(self, audio: AudioClip, language: str | None = "en") -> str:
        return self.transcribe_detecting(audio, language)[0]

    def transcribe_detecting(self, audio: AudioClip, language: str | None = "en") -> tuple[str, str]:
        """(text, the language Whisper heard or was told)."""
        code = iso_language(language) if self.multilingual else "en"
        samples = resample(to_float32(audio.samples), audio.sample_rate, SPEECH_RATE)
        if len(samples) < SPEECH_RATE // 10:
            return "", code or "en"
        with self._lock:
            if code is None:
                _, _, probabilities = self._model.detect_language(samples)
                likely = dict(probabilities)
                code = max(AUTO_LANGUAGES, key=lambda lang: likely.get(lang, 0.0))
            segments, _ = self._model.transcribe(
                samples, language=code, beam_size=1 if code == "en" else 5, temperature=0.0,
                without_timestamps=True, condition_on_previous_text=False,
                vad_filter=False, initial_prompt=_PROMPTS.get(code),
                max_new_tokens=_most_tokens(len(samples) / SPEECH_RATE),
            )
            return " ".join(s.text.strip() for s in segments).strip(), code

    def warmup(self) -> None:
        self.transcribe(AudioClip(SPEECH_RATE, np.zeros(SPEECH_RATE, dtype=np.int16)))


class OfflineWhisper:
    """tiny.en for English; the multilingual model for the rest and for detection."""

    name = "offline-whisper"

    def __init__(self, english: WhisperSTT, multilingual: Lazy | None = None):
        self._english = english
        self._multilingual = multilingual

    def _model_for(self, language: str | None) -> WhisperSTT:
        if iso_language(language) == "en" or self._multilingual is None:
            return self._english
        try:
            return self._multilingual.get()
        except Exception:
            if iso_language(language) is None:
                return self._english  # detection unavailable: English is the best guess
            raise

    def transcribe(self, audio: AudioClip, language: str | None = "en") -> str:
        return self._model_for(language).transcribe(audio, language)

    def transcribe_detecting(self, audio: AudioClip, language: str | None = "en") -> tuple[str, str]:
        return self._model_for(language).transcribe_detecting(audio, language)

    def warmup(self) -> None:
        self._english.warmup()
