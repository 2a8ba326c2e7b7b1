"""Vendor payloads as they appear on the wire, built the way the real APIs build them."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi.responses import JSONResponse


@dataclass(frozen=True)
class ToolScript:
    """A tool call the fake model makes, its arguments streamed in these fragments."""

    id: str
    name: str
    argument_fragments: tuple[str, ...]

    @property
    def arguments(self) -> str:
        return "".join(self.argument_fragments)


def error_response(status: int, message: str, elevenlabs: bool,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    if elevenlabs:
        body: dict[str, Any] = {"detail": {"status": "error", "message": message}}
    else:
        kind = {401: "invalid_request_error", 429: "rate_limit_error"}.get(
            status, "server_error" if status >= 500 else "invalid_request_error")
        body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def check_chat_request(body: dict[str, Any]) -> str | None:
    """What a real chat-completions endpoint would reject with a 400."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model is required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all("role" in m for m in messages):
        return "messages must be a non-empty list of {role, content}"
    if body.get("stream") is not True:
        return "this fake only streams"
    for tool in body.get("tools", []):
        if tool.get("type") != "function" or not tool.get("function", {}).get("name"):
            return "tools must be function tools with a name"
    if "tools" in body and not body["tools"]:
        return "tools must not be empty"
    return None


def chat_sse_events(body: dict[str, Any], text_pieces: list[str], tool_calls: list[ToolScript],
                    groq: bool) -> list[bytes]:
    """One SSE event per body chunk: role, text, tool-call fragments, finish, usage, [DONE]."""
    created = int(time.time())
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created,
            "model": body["model"], "system_fingerprint": "fp_fake"}

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
        payload = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                        "finish_reason": finish}], **extra}
        if not groq and _wants_usage(body):
            payload.setdefault("usage", None)
        return payload

    first_extra = {"x_groq": {"id": "req_fake"}} if groq else {}
    chunks = [chunk({"role": "assistant", "content": ""}, **first_extra)]
    chunks += [chunk({"content": piece}) for piece in text_pieces]
    calling = tool_calls if body.get("tools") else []
    for index, call in enumerate(calling):
        chunks.append(chunk({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                                             "function": {"name": call.name, "arguments": ""}}]}))
        chunks += [chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
                   for fragment in call.argument_fragments]
    usage = {"prompt_tokens": sum(len(str(m.get("content", "")).split()) for m in body["messages"]),
             "completion_tokens": len(text_pieces) + sum(len(c.argument_fragments) for c in calling)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    finish = "tool_calls" if calling else "stop"
    if groq:
        chunks.append(chunk({}, finish, x_groq={"id": "req_fake", "usage": usage}))
    else:
        chunks.append(chunk({}, finish))
        if _wants_usage(body):
            chunks.append({**base, "choices": [], "usage": usage})
    return [f"data: {json.dumps(c)}\n\n".encode() for c in chunks] + [b"data: [DONE]\n\n"]


def _wants_usage(body: dict[str, Any]) -> bool:
    return bool((body.get("stream_options") or {}).get("include_usage"))


MODERATION_CATEGORIES = ("harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
                         "illicit/violent", "self-harm", "self-harm/instructions", "self-harm/intent", "sexual",
                         "sexual/minors", "violence", "violence/graphic")
_IMAGE_TOO = {"self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "violence", "violence/graphic"}


def moderation_response(model: str, inputs: list[str], scripted: dict[str, dict[str, float]]) -> dict[str, Any]:
    """CreateModerationResponse: every category scored, flagged at 0.5 and above."""
    results = []
    for text in inputs:
        scores = dict.fromkeys(MODERATION_CATEGORIES, 0.0001)
        for trigger, given in scripted.items():
            if trigger.lower() in text.lower():
                scores.update(given)
        categories = {name: score >= 0.5 for name, score in scores.items()}
        results.append({
            "flagged": any(categories.values()), "categories": categories, "category_scores": scores,
            "category_applied_input_types": {name: ["text", "image"] if name in _IMAGE_TOO else ["text"]
                                             for name in MODERATION_CATEGORIES}})
    return {"id": f"modr-fake{int(time.time() * 1000)}", "model": model, "results": results}


def speech_pcm(text: str, sample_rate: int, ms_per_char: int) -> bytes:
    """A 220 Hz tone as long as the text would take to say, as s16le mono."""
    count = max(sample_rate // 10, sample_rate * ms_per_char * len(text) // 1000)
    t = np.arange(count) / sample_rate
    return (np.sin(2 * np.pi * 220 * t) * 3000).astype("<i2").tobytes()


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]
