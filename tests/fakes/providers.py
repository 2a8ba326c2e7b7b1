"""Real vendor providers pointed at a fake server, and scripted in-process providers.

The scripted ones stand in for the offline models (which take seconds to load)
wherever a chain needs a last resort; like LiveKit's fake_llm/fake_tts they
implement our protocols, they do not patch anything.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from providers.base import AudioClip, CancelFlag, ChatDelta, ChatOptions
from providers.elevenlabs.tts import ElevenLabsTTS, ElevenLabsTTSSettings
from providers.groq.llm import GroqChatModel, GroqChatSettings
from providers.groq.stt import GroqSTT, GroqSTTSettings
from providers.openai.llm import OpenAIChatModel, OpenAIChatSettings
from providers.openai.stt import OpenAISTT, OpenAISTTSettings
from providers.openai.tts import OpenAITTS, OpenAITTSSettings
from tests.fakes.vendor_server import FakeVendorServer

# Short SDK backstops, so threads abandoned by a fallback deadline end quickly.
SDK_TIMEOUT_S = 2.0


def openai_llm(server: FakeVendorServer, name: str = "openai", **settings: Any) -> OpenAIChatModel:
    settings = {"timeout_s": SDK_TIMEOUT_S, **settings}
    return OpenAIChatModel(OpenAIChatSettings(api_key=server.api_key, base_url=f"{server.url}/v1",
                                              name=name, **settings))


def groq_llm(server: FakeVendorServer, name: str = "groq", **settings: Any) -> GroqChatModel:
    settings = {"timeout_s": SDK_TIMEOUT_S, **settings}
    return GroqChatModel(GroqChatSettings(api_key=server.api_key, base_url=server.url,
                                          name=name, **settings))


def openai_stt(server: FakeVendorServer, name: str = "openai") -> OpenAISTT:
    return OpenAISTT(OpenAISTTSettings(api_key=server.api_key, base_url=f"{server.url}/v1",
                                       timeout_s=SDK_TIMEOUT_S, name=name))


def groq_stt(server: FakeVendorServer, name: str = "groq") -> GroqSTT:
    return GroqSTT(GroqSTTSettings(api_key=server.api_key, base_url=server.url,
                                   timeout_s=SDK_TIMEOUT_S, name=name))


def openai_tts(server: FakeVendorServer, name: str = "openai") -> OpenAITTS:
    return OpenAITTS(OpenAITTSSettings(api_key=server.api_key, base_url=f"{server.url}/v1",
                                       timeout_s=SDK_TIMEOUT_S, name=name))


def elevenlabs_tts(server: FakeVendorServer, name: str = "elevenlabs",
                   output_format: str = "pcm_24000") -> ElevenLabsTTS:
    return ElevenLabsTTS(ElevenLabsTTSSettings(api_key=server.api_key, base_url=server.url,
                                               timeout_s=SDK_TIMEOUT_S, name=name,
                                               output_format=output_format))


def speech(seconds: float = 1.0, sample_rate: int = 16_000) -> AudioClip:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return AudioClip(sample_rate, (np.sin(2 * np.pi * 180 * t) * 4000).astype(np.int16))


class ScriptedChatModel:
    """Writes `text` a word at a time: the first after `first_token_s`, each next after
    `word_s` (a model's pace, so a turn's timing can be scripted). `words_written` counts
    what it produced, so a test sees a cancelled reply stop being generated."""

    def __init__(self, name: str = "offline-llm", text: str = "Offline here.", first_token_s: float = 0.0,
                 word_s: float = 0.0):
        self.name = name
        self.text = text
        self.first_token_s = first_token_s
        self.word_s = word_s
        self.calls = 0
        self.words_written = 0
        self._lock = threading.Lock()

    def stream(self, messages: list[dict[str, Any]], options: ChatOptions,
               cancelled: CancelFlag | None = None) -> Iterator[ChatDelta]:
        with self._lock:
            self.calls += 1
        for index, word in enumerate(self.text.split(" ")):
            time.sleep(self.first_token_s if index == 0 else self.word_s)
            if cancelled is not None and cancelled.is_set():
                return  # as the local model does: a cancelled reply stops being written
            with self._lock:
                self.words_written += 1
            yield ChatDelta(text=word + " ")
        yield ChatDelta(finish_reason="stop")


class ScriptedSTT:
    def __init__(self, name: str = "offline-stt", text: str = "offline transcript", seconds: float = 0.0):
        self.name = name
        self.text = text
        self.seconds = seconds  # how long a transcription takes
        self.calls = 0

    def transcribe(self, audio: AudioClip, language: str = "en") -> str:
        self.calls += 1
        if self.seconds:
            time.sleep(self.seconds)
        return self.text


class ScriptedTTS:
    sample_rate = 22_050

    def __init__(self, name: str = "offline-tts"):
        self.name = name
        self.calls = 0

    def synthesize(self, text: str, voice: str | None = None) -> Iterator[AudioClip]:
        self.calls += 1
        yield AudioClip(self.sample_rate, np.full(self.sample_rate // 10, 7, dtype=np.int16))


class RecordingTTS:
    """Speaks a tone per text (`audio_s_per_word` of it, at least 50 ms) after
    `first_audio_s`, and keeps every text it was asked to say."""

    name = "recording-tts"

    def __init__(self, first_audio_s: float = 0.0, audio_s_per_word: float = 0.0):
        self.texts: list[str] = []
        self.first_audio_s = first_audio_s
        self.audio_s_per_word = audio_s_per_word

    def synthesize(self, text: str, voice: str | None = None) -> Iterator[AudioClip]:
        self.texts.append(text)
        if self.first_audio_s:
            time.sleep(self.first_audio_s)
        yield speech(max(0.05, self.audio_s_per_word * len(text.split())), 24_000)
