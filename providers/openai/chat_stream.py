"""The chat-completions streaming wire format, shared by every vendor that speaks it.

OpenAI, Groq, Ollama, vLLM and llama.cpp's server all stream
`chat.completion.chunk` objects; only the client object and where usage is
reported differ. This module turns those chunks into ChatDeltas and assembles
tool calls, which arrive as fragments keyed by `index`, into whole ToolCalls.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from providers.base import CancelFlag, ChatDelta, ChatOptions, ToolCall
from providers.errors import ProviderError

# Vendors may use the deprecated name for the same thing.
_FINISH_ALIASES = {"function_call": "tool_calls"}


def request_arguments(messages: list[dict[str, Any]], options: ChatOptions, model: str,
                      token_limit_param: str) -> dict[str, Any]:
    """Keyword arguments for `chat.completions.create(stream=True, ...)`."""
    arguments: dict[str, Any] = {
        "model": options.model or model,
        "messages": messages,
        "stream": True,
        "temperature": options.temperature,
        token_limit_param: options.max_tokens,
    }
    if options.seed is not None:
        arguments["seed"] = options.seed
    if options.tools:  # an empty list is rejected by some servers
        arguments["tools"] = options.tools
    return arguments


class ToolCallAssembler:
    """Collects tool-call fragments until the stream says the calls are complete."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, fragments: Iterable[Any]) -> None:
        for fragment in fragments:
            call = self._calls.setdefault(fragment.index, {"id": "", "name": "", "arguments": []})
            # Some servers repeat the id and name on every fragment, and none
            # split them, so the first value wins while arguments accumulate.
            if fragment.id and not call["id"]:
                call["id"] = fragment.id
            function = fragment.function
            if function is not None:
                if function.name and not call["name"]:
                    call["name"] = function.name
                if function.arguments:
                    call["arguments"].append(function.arguments)

    def take(self) -> tuple[ToolCall, ...]:
        calls = tuple(
            ToolCall(id=call["id"] or f"call_{index}", name=call["name"],
                     arguments="".join(call["arguments"]) or "{}")
            for index, call in sorted(self._calls.items())
        )
        self._calls.clear()
        return calls


def chat_deltas(chunks: Iterable[Any], cancelled: CancelFlag | None,
                usage_of: Callable[[Any], Any] = lambda chunk: getattr(chunk, "usage", None),
                stream_error_of: Callable[[Any], str | None] = lambda chunk: None,
                ) -> Iterator[ChatDelta]:
    """ChatDeltas from streamed chunks: text as it comes, tool calls whole, then the finish.

    `usage_of` and `stream_error_of` let a vendor say where it reports token
    counts and in-band stream errors.
    """
    tool_calls = ToolCallAssembler()
    finish_reason: str | None = None
    usage = None
    for chunk in chunks:
        if cancelled is not None and cancelled.is_set():
            finish_reason = "cancelled"
            break
        if (error := stream_error_of(chunk)):
            raise ProviderError(f"stream stopped by the server: {error}")
        usage = usage_of(chunk) or usage
        for choice in chunk.choices or ():
            if choice.index:  # we never ask for n > 1
                continue
            delta = choice.delta
            if delta is not None:
                text = (delta.content or "") + (getattr(delta, "refusal", None) or "")
                if text:
                    yield ChatDelta(text=text)
                if delta.tool_calls:
                    tool_calls.add(delta.tool_calls)
            if choice.finish_reason:
                finish_reason = _FINISH_ALIASES.get(choice.finish_reason, choice.finish_reason)
    calls = tool_calls.take()
    # A call cut off by the token limit has half its JSON: never hand it out.
    if calls and finish_reason not in ("cancelled", "length"):
        yield ChatDelta(tool_calls=calls)
        finish_reason = "tool_calls"
    yield ChatDelta(
        finish_reason=finish_reason or "stop",
        prompt_tokens=getattr(usage, "prompt_tokens", None),
        completion_tokens=getattr(usage, "completion_tokens", None),
    )
