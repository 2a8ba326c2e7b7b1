"""Chat completions on Groq: the OpenAI wire format under /openai/v1, via the groq SDK."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from providers.base import CancelFlag, ChatDelta, ChatOptions
from providers.errors import translate
from providers.groq.client import GroqConnection, make_client
from providers.openai.chat_stream import chat_deltas, request_arguments


@dataclass(frozen=True)
class GroqChatSettings(GroqConnection):
    model: str = "llama-3.1-8b-instant"
    name: str = "groq"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "GroqChatSettings":
        return cls(**cls.connection_from_env(env),
                   model=env.get("COZY_GROQ_LLM_MODEL") or cls.model)


def _usage(chunk: Any) -> Any:
    # Groq reports usage in its own x_groq block on the last chunk.
    x_groq = getattr(chunk, "x_groq", None)
    return getattr(chunk, "usage", None) or getattr(x_groq, "usage", None)


def _stream_error(chunk: Any) -> str | None:
    return getattr(getattr(chunk, "x_groq", None), "error", None)


class GroqChatModel:
    def __init__(self, settings: GroqChatSettings):
        self.name = settings.name
        self.model_id = settings.model  # what a turn record names as the model
        self._settings = settings
        self._client = make_client(settings)

    def stream(self, messages: list[dict[str, Any]], options: ChatOptions,
               cancelled: CancelFlag | None = None) -> Iterator[ChatDelta]:
        arguments = request_arguments(messages, options, self._settings.model, "max_completion_tokens")
        try:
            with self._client.chat.completions.create(**arguments) as chunks:
                yield from chat_deltas(chunks, cancelled, usage_of=_usage, stream_error_of=_stream_error)
        except Exception as exc:  # the engine never sees a vendor exception
            raise translate(exc, self.name) from exc
