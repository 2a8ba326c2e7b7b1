"""Speech from OpenAI's audio/speech endpoint, streamed as raw 24 kHz PCM."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from providers.base import AudioClip
from providers.errors import translate
from providers.openai.client import OpenAIConnection, make_client
from providers.pcm import pcm_clips

# response_format="pcm" is fixed by the API: 24 kHz, signed 16-bit little-endian, mono.
PCM_RATE = 24_000


@dataclass(frozen=True)
class OpenAITTSSettings(OpenAIConnection):
    model: str = "gpt-4o-mini-tts"
    voice: str = "alloy"
    instructions: str | None = None  # speaking style; only gpt-4o-mini-tts reads it
    name: str = "openai"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "OpenAITTSSettings":
        return cls(**cls.connection_from_env(env),
                   model=env.get("COZY_OPENAI_TTS_MODEL") or cls.model,
                   voice=env.get("COZY_OPENAI_TTS_VOICE") or cls.voice)


class OpenAITTS:
    sample_rate = PCM_RATE

    def __init__(self, settings: OpenAITTSSettings):
        self.name = settings.name
        self.model_id = settings.model  # what a turn record names as the model
        self._settings = settings
        self._client = make_client(settings)

    def synthesize(self, text: str, voice: str | None = None) -> Iterator[AudioClip]:
        if not text.strip():
            return
        arguments = {"model": self._settings.model, "voice": voice or self._settings.voice,
                     "input": text, "response_format": "pcm"}
        if self._settings.instructions:
            arguments["instructions"] = self._settings.instructions
        try:
            # Streaming response: audio reaches the caller while the rest is still being made.
            with self._client.audio.speech.with_streaming_response.create(**arguments) as response:
                yield from pcm_clips(response.iter_bytes(), PCM_RATE)
        except Exception as exc:
            raise translate(exc, self.name) from exc
