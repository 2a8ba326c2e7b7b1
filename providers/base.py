"""One interface per modality. Anything with these methods plugs in.

Vendor files only translate these calls to a vendor's wire protocol; fallback,
breakers and caches wrap a provider from outside.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class AudioClip:
    """Mono audio: int16 samples at `sample_rate`."""

    sample_rate: int
    samples: np.ndarray

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate if self.sample_rate else 0.0


@dataclass
class ChatOptions:
    temperature: float = 0.7
    max_tokens: int = 256
    tools: list[dict[str, Any]] = field(default_factory=list)  # OpenAI function-tool schemas
    model: str | None = None  # a vendor model name; None means the provider's default
    seed: int | None = None  # the same seed and prompt sample the same reply (None: random)
    # Who asks, for the fair queue of a local model; never sent to a vendor.
    requester: str | None = None


@dataclass(frozen=True)
class ToolCall:
    """A complete tool call the model asked for; `arguments` is the raw JSON text."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ChatDelta:
    """A piece of a streamed reply: text, complete tool calls, and/or the finish.

    Vendors stream tool-call arguments in fragments; providers assemble them and
    yield each call whole, so callers never parse half a JSON object.
    """

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None  # stop | length | tool_calls | cancelled
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@runtime_checkable
class SpeechToText(Protocol):
    name: str

    def transcribe(self, audio: AudioClip, language: str | None = "en") -> str: ...


@runtime_checkable
class TextToSpeech(Protocol):
    name: str

    def synthesize(self, text: str, voice: str | None = None) -> Iterator[AudioClip]:
        """Yield audio as it is made, so playback can start before the text is done."""
        ...


@runtime_checkable
class ChatModel(Protocol):
    name: str

    def stream(self, messages: list[dict[str, Any]], options: ChatOptions,
               cancelled: "CancelFlag | None" = None) -> Iterator[ChatDelta]: ...


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...
