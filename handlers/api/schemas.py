"""Request and response bodies of the OpenAI-compatible API, as pydantic models.

Requests ignore fields we do not use (OpenAI keeps adding some); responses carry
every field OpenAI's own schema requires, so strict clients accept them.
"""
from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from handlers.api.errors import ApiError


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _first_invalid_text(data: Any) -> str | None:
    """Where a JSON body holds a lone UTF-16 surrogate ("\\ud800"): JSON allows the escape,
    but it is not text, and left in it fails deep inside a provider or the database."""
    pending: list[tuple[str, Any]] = [("", data)]
    while pending:  # iterative: a deeply nested body must not blow the stack here
        path, value = pending.pop()
        if isinstance(value, str) and not _is_text(value):
            return path
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and not _is_text(key):
                    return path
                pending.append((f"{path}.{key}".lstrip("."), item))
        elif isinstance(value, list):
            pending.extend((f"{path}.{index}".lstrip("."), item) for index, item in enumerate(value))
    return None


class ApiRequest(BaseModel):
    """A request body: its text must be real Unicode."""

    @model_validator(mode="before")
    @classmethod
    def _reject_lone_surrogates(cls, data: Any) -> Any:
        where = _first_invalid_text(data)
        if where is not None:
            # An ApiError rather than a ValueError, so that the 400 names the field.
            raise ApiError(400, f"Invalid value for '{where or 'body'}': the text is not valid Unicode "
                           "(it holds a lone surrogate).", param=where or None)
        return data


# --- chat completions: request --------------------------------------------------------


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str
    text: str | None = None


class FunctionCall(BaseModel):
    name: str = Field(max_length=64)
    arguments: str = Field(max_length=100_000)


class MessageToolCall(BaseModel):
    id: str = Field(max_length=200)
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = Field(None, max_length=64)
    tool_calls: list[MessageToolCall] | None = Field(None, max_length=64)
    tool_call_id: str | None = Field(None, max_length=200)


# A tool's JSON schema is the client's to write, and deep nesting blows the stack of a
# template engine or parser far below us: checked here, so it is the client's 400
# and never a provider failure.
MAX_SCHEMA_DEPTH = 32
MAX_SCHEMA_CHARS = 64_000


def _nesting_depth(value: Any) -> int:
    deepest, pending = 0, [(value, 1)]
    while pending:  # iterative, like the surrogate check
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = Field(None, max_length=8_000)
    parameters: dict[str, Any] | None = None

    @field_validator("parameters")
    @classmethod
    def _bounded_schema(cls, parameters: dict[str, Any] | None) -> dict[str, Any] | None:
        if parameters is None:
            return None
        if _nesting_depth(parameters) > MAX_SCHEMA_DEPTH:
            raise ValueError(f"the schema is nested more than {MAX_SCHEMA_DEPTH} levels deep")
        if len(json.dumps(parameters)) > MAX_SCHEMA_CHARS:
            raise ValueError(f"the schema is longer than {MAX_SCHEMA_CHARS} characters")
        return parameters


class ToolSpec(BaseModel):
    type: Literal["function"]
    function: FunctionSpec


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool | None = False


class ChatCompletionRequest(ApiRequest):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=128, description="A persona id (see GET /v1/models)")
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    seed: int | None = Field(None, ge=-(2 ** 31), le=2 ** 31 - 1, description="Repeatable sampling for the same prompt")
    n: int | None = Field(None, ge=1, le=1, description="Only one choice is generated")
    tools: list[ToolSpec] | None = Field(None, max_length=64)
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None
    user: str | None = Field(None, max_length=256,
                             description="An end user of yours: memory, profile and conversations of their own")
    safety_identifier: str | None = Field(None, max_length=256,
                                          description="OpenAI's newer name for `user`; `user` wins when both are set")

    @property
    def end_user(self) -> str | None:
        return self.user or self.safety_identifier


# --- chat completions: response -------------------------------------------------------


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None
    tool_calls: list[MessageToolCall] | None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter", "function_call"]
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    system_fingerprint: str | None = None


# --- chat completions: streamed chunks -----------------------------------------------------


class ChunkFunction(BaseModel):
    name: str | None = None
    arguments: str | None = None


class ChunkToolCall(BaseModel):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: ChunkFunction | None = None


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ChunkToolCall] | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: ChunkDelta
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter", "function_call"] | None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


def chat_stream_content() -> dict[str, Any]:
    """text/event-stream of chat completions, for the OpenAPI document.

    Before OpenAPI 3.2 (`itemSchema`), tools read an event stream's `schema` as the
    schema of each event: its `data` is a JSON chunk (or an error), then "[DONE]".
    The referenced components are added by `handlers.api.openapi`."""
    chunk_or_error = {"anyOf": [{"$ref": "#/components/schemas/ChatCompletionChunk"},
                                {"$ref": "#/components/schemas/ErrorBody"}]}
    return {"schema": {
        "type": "object", "required": ["data"],
        "description": "One server-sent event: a chat.completion.chunk, an error, or the final [DONE]",
        "properties": {"data": {"anyOf": [
            {"const": "[DONE]"},
            {"type": "string", "contentMediaType": "application/json", "contentSchema": chunk_or_error}]}}}}


# --- models, personas, sessions --------------------------------------------------------


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "cozyengine"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Personality(BaseModel):
    id: str
    name: str
    language: str
    greeting: str
    allowed_tools: list[str]
    voices: dict[str, str]
    deleted: bool = False  # kept for the conversations that had it; no new turn can use it


class PersonalityList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Personality]


class SessionCreate(ApiRequest):
    model_config = ConfigDict(extra="ignore")
    persona_id: str | None = Field(None, min_length=1, max_length=128)
    title: str | None = Field(None, max_length=200)
    user: str | None = Field(None, max_length=256, description="The end user it belongs to")


class Session(BaseModel):
    id: str
    object: Literal["chat.session"] = "chat.session"
    persona_id: str
    title: str | None
    created_at: int
    updated_at: int
    message_count: int


class SessionList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Session]


class SessionMessage(BaseModel):
    id: str
    role: str
    content: str
    created_at: int


class SessionMessageList(BaseModel):
    object: Literal["list"] = "list"
    data: list[SessionMessage]


class Deleted(BaseModel):
    id: str
    object: str
    deleted: bool


# --- audio -------------------------------------------------------------------------------


class SpeechRequest(ApiRequest):
    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=128)
    input: str = Field(min_length=1, max_length=4096)
    voice: str | dict[str, Any] = "alloy"
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] = "mp3"
    speed: float | None = Field(None, ge=0.25, le=4.0)
    instructions: str | None = Field(None, max_length=4096)
    stream_format: Literal["audio", "sse"] | None = None


class Transcription(BaseModel):
    text: str


class VerboseTranscription(BaseModel):
    task: Literal["transcribe"] = "transcribe"
    language: str
    duration: float
    text: str


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in ((400, "Invalid request"), (401, "Missing or invalid token"),
                                (404, "Not found"), (413, "Body too large"), (429, "Rate limited"))
}
UNAVAILABLE_RESPONSE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "The model behind this route is unavailable; try again shortly"}}
