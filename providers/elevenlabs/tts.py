"""ElevenLabs streaming speech: POST /v1/text-to-speech/{voice_id}/stream, raw PCM out."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from config import env_float
from providers.base import AudioClip
from providers.errors import translate
from providers.pcm import pcm_clips
from providers.sdk import import_sdk

ELEVENLABS_PIP = "elevenlabs==2.78.0"
ELEVENLABS_API_URL = "https://api.elevenlabs.io"


@dataclass(frozen=True)
class ElevenLabsTTSSettings:
    api_key: str | None = None
    base_url: str | None = None
    voice_id: str = "JBFqnCBsd6RMkjVDRZzb"  # "George", a stock voice every account has
    model_id: str = "eleven_flash_v2_5"  # the low-latency model
    output_format: str = "pcm_24000"  # pcm_<rate>: s16le mono; pcm_22050 and others work too
    optimize_streaming_latency: int | None = None
    timeout_s: float = 30.0
    name: str = "elevenlabs"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "ElevenLabsTTSSettings":
        return cls(
            api_key=env.get("ELEVENLABS_API_KEY") or None,
            base_url=env.get("ELEVENLABS_BASE_URL") or None,
            voice_id=env.get("COZY_ELEVENLABS_VOICE_ID") or cls.voice_id,
            model_id=env.get("COZY_ELEVENLABS_MODEL") or cls.model_id,
            timeout_s=env_float(env, "COZY_ELEVENLABS_TIMEOUT_S", cls.timeout_s),
        )

    @property
    def sample_rate(self) -> int:
        kind, _, rate = self.output_format.partition("_")
        if kind != "pcm" or not rate.isdigit():
            raise ValueError(f"output_format must be pcm_<rate> (raw audio), got {self.output_format!r}")
        return int(rate)


class ElevenLabsTTS:
    def __init__(self, settings: ElevenLabsTTSSettings):
        if not settings.api_key:
            raise ValueError("ElevenLabs needs ELEVENLABS_API_KEY")
        client_module = import_sdk("elevenlabs.client", ELEVENLABS_PIP)
        self.name = settings.name
        self.model_id = settings.model_id  # what a turn record names as the model
        self.sample_rate = settings.sample_rate
        self._settings = settings
        self._client = client_module.ElevenLabs(
            api_key=settings.api_key,
            base_url=settings.base_url or ELEVENLABS_API_URL,
            timeout=settings.timeout_s,
        )

    def synthesize(self, text: str, voice: str | None = None) -> Iterator[AudioClip]:
        if not text.strip():
            return
        settings = self._settings
        try:
            chunks = self._client.text_to_speech.stream(
                voice or settings.voice_id,
                text=text,
                model_id=settings.model_id,
                output_format=settings.output_format,
                optimize_streaming_latency=settings.optimize_streaming_latency,
                # The fallback layer owns retries.
                request_options={"max_retries": 0},
            )
            try:
                yield from pcm_clips(chunks, self.sample_rate)
            finally:
                chunks.close()  # a caller that stops early must release the connection
        except Exception as exc:
            raise translate(exc, self.name) from exc
