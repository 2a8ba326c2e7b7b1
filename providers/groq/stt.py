"""Whisper on Groq: one WAV upload per turn to /openai/v1/audio/transcriptions."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from providers.base import AudioClip
from providers.errors import translate
from providers.languages import iso_language
from providers.groq.client import GroqConnection, make_client
from providers.pcm import wav_bytes

MIN_AUDIO_S = 0.1  # shorter clips are rejected; the offline Whisper returns "" too


@dataclass(frozen=True)
class GroqSTTSettings(GroqConnection):
    model: str = "whisper-large-v3-turbo"
    name: str = "groq"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "GroqSTTSettings":
        return cls(**cls.connection_from_env(env),
                   model=env.get("COZY_GROQ_STT_MODEL") or cls.model)


class GroqSTT:
    def __init__(self, settings: GroqSTTSettings):
        self.name = settings.name
        self.model_id = settings.model  # what a turn record names as the model
        self._settings = settings
        self._client = make_client(settings)

    def transcribe(self, audio: AudioClip, language: str | None = "en") -> str:
        if audio.duration_s < MIN_AUDIO_S:
            return ""
        try:
            result = self._client.audio.transcriptions.create(
                file=("speech.wav", wav_bytes(audio), "audio/wav"),
                model=self._settings.model,
                **({"language": code} if (code := iso_language(language)) else {}),
                response_format="json",
                temperature=0.0,
            )
        except Exception as exc:
            raise translate(exc, self.name) from exc
        return (result.text or "").strip()
