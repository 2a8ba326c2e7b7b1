"""The offline voices as one TTS provider: Piper, Kokoro and espeak-ng, chosen by voice id.

A voice is "engine:id" ("kokoro:zf_xiaobei", "piper:en_US-joe-medium", "espeak:en-us") or a
bare id. Chinese text given an English voice is read by the default Chinese voice, since an
English voice cannot say it. When Kokoro is missing or fails, Chinese falls back to espeak-ng
through pinyin (its `cmn` voice would read tone digits in English) and English to Piper.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from providers.base import AudioClip
from providers.model_files import KOKORO_VOICES
from providers.offline.kokoro import voice_language
from providers.offline.lazy import Lazy
from providers.languages import is_chinese
from providers.offline.phonemes import pinyin

log = logging.getLogger(__name__)

DEFAULT_VOICE = "piper:en_US-joe-medium"
CHINESE_VOICE = "kokoro:zf_xiaobei"
ESPEAK_CHINESE = "cmn-latn-pinyin"
_ASCII_PUNCTUATION = str.maketrans({"。": ". ", "，": ", ", "！": "! ", "？": "? ", "；": "; ", "：": ": ",
                                    "、": ", "})


@dataclass(frozen=True)
class Voice:
    engine: str  # piper | kokoro | espeak
    id: str

    @property
    def language(self) -> str:
        if self.engine == "kokoro":
            return voice_language(self.id)
        if self.engine == "espeak":
            return "zh" if self.id.startswith("cmn") else "en"
        return "en"

    def __str__(self) -> str:
        return f"{self.engine}:{self.id}"


class OfflineVoices:
    name = "offline"

    def __init__(self, piper: dict, espeak, kokoro: Lazy | None = None, default_voice: str = DEFAULT_VOICE):
        self._piper = piper  # voice id -> PiperTTS
        self._espeak = espeak
        self._kokoro = kokoro
        engine, _, voice_id = default_voice.partition(":")
        self.default_voice = Voice(engine, voice_id)
        self.sample_rate = next(iter(piper.values())).sample_rate

    def parse(self, voice: str | None) -> Voice:
        """An "engine:id", or a bare Piper or Kokoro id; anything else (a vendor's voice name such
        as "alloy", given to every provider) is the default voice."""
        if not voice:
            return self.default_voice
        engine, _, voice_id = voice.partition(":")
        if voice_id and engine in ("piper", "kokoro", "espeak"):
            return Voice(engine, voice_id)
        if voice in self._piper:
            return Voice("piper", voice)
        if voice in KOKORO_VOICES:
            return Voice("kokoro", voice)
        return self.default_voice

    def choose(self, text: str, voice: str | None) -> Voice:
        """The voice that will read this text."""
        chosen = self.parse(voice)
        if is_chinese(text) and chosen.language != "zh":
            return self.parse(CHINESE_VOICE)
        return chosen

    def synthesize(self, text: str, voice: str | None = None) -> Iterator[AudioClip]:
        chosen = self.choose(text, voice)
        if chosen.engine == "kokoro" and self._kokoro is not None:
            try:
                kokoro = self._kokoro.get()
                if chosen.id in kokoro.voices:
                    yield from kokoro.synthesize(text, chosen.id)
                    return
                log.warning("Kokoro voice %s is not installed; using a fallback voice", chosen.id)
            except Exception:
                log.warning("Kokoro failed; %s falls back to a quicker voice", chosen, exc_info=True)
        if chosen.language == "zh":
            yield from self._espeak.synthesize(pinyin(text.translate(_ASCII_PUNCTUATION)), ESPEAK_CHINESE)
            return
        if chosen.engine == "espeak":
            yield from self._espeak.synthesize(text, chosen.id)
            return
        piper = self._piper.get(chosen.id) or next(iter(self._piper.values()))
        yield from piper.synthesize(text)

    def warmup(self) -> None:
        for piper in self._piper.values():
            piper.warmup()
