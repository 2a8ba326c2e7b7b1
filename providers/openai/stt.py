"""Audio transcriptions on OpenAI or a compatible server: one WAV upload per turn."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from providers.base import AudioClip
from providers.errors import translate
from providers.languages import iso_language
from providers.openai.client import OpenAIConnection, make_client
from providers.pcm import wav_bytes

# Transcription APIs reject clips this short; the offline Whisper returns "" too.
MIN_AUDIO_S = 0.1


@dataclass(frozen=True)
class OpenAISTTSettings(OpenAIConnection):
    model: str = "gpt-transcribe"
    name: str = "openai"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "OpenAISTTSettings":
        return cls(**cls.connection_from_env(env),
                   model=env.get("COZY_OPENAI_STT_MODEL") or cls.model)


class OpenAISTT:
    def __init__(self, settings: OpenAISTTSettings):
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
            )
        except Exception as exc:
            raise translate(exc, self.name) from exc
        return (result.text or "").strip()
