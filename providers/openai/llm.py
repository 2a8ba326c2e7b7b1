"""Chat completions on OpenAI or any OpenAI-compatible server (Ollama, vLLM, llama.cpp)."""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from providers.base import CancelFlag, ChatDelta, ChatOptions
from providers.errors import translate
from providers.openai.chat_stream import chat_deltas, request_arguments
from providers.openai.client import OpenAIConnection, make_client


@dataclass(frozen=True)
class OpenAIChatSettings(OpenAIConnection):
    model: str = "gpt-4.1-mini"
    # OpenAI wants max_completion_tokens; compatible servers all know max_tokens.
    token_limit_param: str = "max_completion_tokens"
    include_usage: bool = True
    name: str = "openai"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "OpenAIChatSettings":
        connection = cls.connection_from_env(env)
        custom = OpenAIConnection(**connection).is_custom_server
        return cls(
            **connection,
            model=env.get("COZY_OPENAI_LLM_MODEL") or cls.model,
            token_limit_param="max_tokens" if custom else cls.token_limit_param,
        )


class OpenAIChatModel:
    def __init__(self, settings: OpenAIChatSettings):
        self.name = settings.name
        self.model_id = settings.model  # what a turn record names as the model
        self._settings = settings
        self._client = make_client(settings)

    def stream(self, messages: list[dict[str, Any]], options: ChatOptions,
               cancelled: CancelFlag | None = None) -> Iterator[ChatDelta]:
        arguments = request_arguments(messages, options, self._settings.model,
                                      self._settings.token_limit_param)
        if self._settings.include_usage:
            arguments["stream_options"] = {"include_usage": True}
        try:
            with self._client.chat.completions.create(**arguments) as chunks:
                yield from chat_deltas(chunks, cancelled)
        except Exception as exc:  # the engine never sees a vendor exception
            raise translate(exc, self.name) from exc
