"""POST /v1/chat/completions: a persona behind OpenAI's chat API, streamed or not.

`model` picks the persona. The conversation is the session named by the
`X-Session-Id` header or by the `user` field; without either, each request is a
new session. A client that sends its whole history has it used as the prompt's
history; one that sends only the new message gets the stored history.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse

from handlers.api.auth import end_user_id
from handlers.api.errors import ApiError, busy_error, error_body
from handlers.api.schemas import (ERROR_RESPONSES, UNAVAILABLE_RESPONSE, AssistantMessage, ChatCompletion,
                                  ChatCompletionRequest, ChatMessage, Choice, MessageToolCall, Usage,
                                  chat_stream_content)
from handlers.api.turn_bridge import run_turn
from orchestrator.services import ChatServices
from orchestrator.turns import OverBudget, TurnDelta, TurnDone, TurnRequest, TurnToolCall
from personas.cards import Persona, PersonaError
from providers.errors import ModelBusy, ProviderError, is_context_overflow, is_input_error
from storage.conversations import SessionNotFound

log = logging.getLogger(__name__)
FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter"}


def turn_failure(exc: ProviderError) -> ApiError:
    """A provider failure as the client should see it (anything else is a bug: a 500)."""
    if isinstance(exc, ModelBusy):
        return busy_error(exc, "language model")
    if is_context_overflow(exc):
        return ApiError(400, "The messages are too long for this model's context window; send fewer or "
                        "shorter messages, or ask for fewer max_tokens.", param="messages",
                        code="context_length_exceeded")
    if is_input_error(exc):
        return ApiError(400, "The model cannot take this request as sent (for example a tool schema nested "
                        "too deeply); simplify it and try again.", code="invalid_request")
    log.warning("chat turn failed: %s", exc)
    return ApiError(503, "The language model is unavailable right now; try again shortly.", "server_error")


def message_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.text for part in content if part.type == "text" and part.text)


def _as_dict(message: ChatMessage) -> dict[str, Any]:
    converted: dict[str, Any] = {"role": message.role, "content": message_text(message.content)}
    # Tool calls belong to assistant messages and call ids to tool results; elsewhere they are noise.
    if message.tool_calls and message.role == "assistant":
        converted["tool_calls"] = [call.model_dump() for call in message.tool_calls]
        converted["content"] = converted["content"] or None
    if message.tool_call_id and message.role == "tool":
        converted["tool_call_id"] = message.tool_call_id
    return converted


def to_turn_request(body: ChatCompletionRequest, user_id: str, persona: Persona,
                    session_id: str | None) -> TurnRequest:
    instructions = "\n".join(message_text(m.content) for m in body.messages if m.role in ("system", "developer"))
    conversation = [_as_dict(m) for m in body.messages if m.role not in ("system", "developer")]
    if not conversation:
        raise ApiError(400, "'messages' needs at least one user message.", param="messages")
    last = conversation[-1]
    if last["role"] == "user":
        text = last["content"].strip()
        if not text:
            raise ApiError(400, "The last user message has no text.", param="messages")
        history = conversation[:-1] or None
    elif last["role"] == "tool":
        text, history = "", conversation
    else:
        raise ApiError(400, "The last message must be from the user, or a tool result.", param="messages")
    client_tools = [] if body.tool_choice == "none" else [t.model_dump(exclude_none=True) for t in body.tools or []]
    return TurnRequest(text=text, user_id=user_id, session_id=session_id, persona_id=persona.id, channel="api",
                       conversation=history, app_instructions=instructions or None, client_tools=client_tools,
                       temperature=body.temperature, max_tokens=body.max_completion_tokens or body.max_tokens,
                       seed=body.seed)


def _tool_call_json(call: TurnToolCall, index: int | None = None) -> dict[str, Any]:
    data = {"id": call.call.id, "type": "function",
            "function": {"name": call.call.name, "arguments": call.call.arguments}}
    return data if index is None else {"index": index, **data}


def _usage(done: TurnDone) -> Usage:
    """The model's own counts (the vendor's, or the local tokenizer's), summed over the
    turn's model calls; the prompt estimate only when the model reported none."""
    prompt, completion = done.record.tokens_in or done.metrics.prompt_tokens, done.record.tokens_out
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def over_budget(exc: OverBudget) -> ApiError:
    return ApiError(429, str(exc), "insufficient_quota", code="insufficient_quota")  # OpenAI's shape


def build_chat_router(services: ChatServices, authenticate, limiter) -> APIRouter:
    router = APIRouter()
    personas = services.orchestrator.personas

    def resolve(body: ChatCompletionRequest, user_id: str, session_header: str | None) -> TurnRequest:
        try:
            persona = personas.get(body.model)
        except PersonaError:
            raise ApiError(404, f"The model '{body.model}' does not exist; GET /v1/models lists the personas.",
                           param="model", code="model_not_found") from None
        user_id = end_user_id(user_id, body.end_user)
        turn = to_turn_request(body, user_id, persona, session_header)  # checked before a session is stored
        turn.session_key = body.end_user  # the end user's own ongoing conversation with this persona
        refusal = services.orchestrator.budget_refusal(user_id)
        if refusal:  # before a session is made for a request that gets no reply
            raise over_budget(OverBudget(refusal))
        try:  # stateless clients get a session per request, named in the response header
            services.orchestrator.resolve_session(turn, persona.id)
        except SessionNotFound:
            raise ApiError(404, f"No session '{session_header}'.", param="X-Session-Id",
                           code="session_not_found") from None
        return turn

    @router.post("/v1/chat/completions", response_model=ChatCompletion, operation_id="createChatCompletion",
                 responses={**ERROR_RESPONSES, **UNAVAILABLE_RESPONSE, 200: {
                     "description": "A completion, or with stream=true a stream of chat.completion.chunk events",
                     "content": {"text/event-stream": chat_stream_content()}}})
    async def create_chat_completion(body: ChatCompletionRequest, request: Request,
                                     user_id: str = Depends(authenticate),
                                     x_session_id: str | None = Header(None, max_length=64)):
        limiter.request(user_id)
        # DuckDB is not called on the event loop: one slow query would stall every stream.
        turn_request = await asyncio.to_thread(resolve, body, user_id, x_session_id)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(time.time())
        session_headers = {"x-session-id": turn_request.session_id}
        events = run_turn(services.orchestrator, turn_request)
        stateless = not x_session_id and not body.end_user

        async def refused(exc: ProviderError | OverBudget) -> ApiError:
            if stateless:  # its session was made for this request alone: nothing is left behind
                await asyncio.to_thread(services.conversations.discard_if_empty, turn_request.user_id,
                                        turn_request.session_id)
            return over_budget(exc) if isinstance(exc, OverBudget) else turn_failure(exc)

        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            try:
                first = await anext(events)  # errors before any output become proper HTTP errors
            except (ProviderError, OverBudget) as exc:
                raise await refused(exc) from None
            stream = _sse(first, events, completion_id, created, body.model, include_usage)
            return StreamingResponse(stream, media_type="text/event-stream", headers={
                "cache-control": "no-cache", "x-accel-buffering": "no", **session_headers})
        text, calls, done = [], [], None
        try:
            async for item in events:
                if isinstance(item, TurnDelta):
                    text.append(item.text)
                elif isinstance(item, TurnToolCall) and item.for_client:
                    calls.append(MessageToolCall(**_tool_call_json(item)))
                elif isinstance(item, TurnDone):
                    done = item
        except (ProviderError, OverBudget) as exc:
            if text or calls:
                raise turn_failure(exc) from None
            raise await refused(exc) from None
        if done is None:
            raise RuntimeError("the turn ended without a TurnDone")
        message = AssistantMessage(content="".join(text).strip() or (None if calls else ""),
                                   tool_calls=calls or None)
        completion = ChatCompletion(id=completion_id, created=created, model=body.model, usage=_usage(done),
                                    choices=[Choice(message=message, finish_reason=FINISH.get(done.finish_reason,
                                                                                              "stop"))])
        # OpenAI's schema has system_fingerprint as a string when present, never null.
        response = completion.model_dump(exclude={"system_fingerprint"})
        response["choices"][0]["message"] = {k: v for k, v in response["choices"][0]["message"].items()
                                             if v is not None or k in ("content", "refusal")}
        return JSONResponse(response, headers=session_headers)

    return router


async def _sse(first: Any, events: AsyncIterator[Any], completion_id: str, created: int, model: str,
               include_usage: bool) -> AsyncIterator[str]:
    def chunk(delta: dict, finish: str | None = None, **extra) -> str:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}], **extra}
        if include_usage:
            body.setdefault("usage", None)
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    tool_index = 0
    done: TurnDone | None = None

    async def items() -> AsyncIterator[Any]:
        yield first
        async for item in events:
            yield item

    try:
        async for item in items():
            if isinstance(item, TurnDelta) and item.text:
                yield chunk({"content": item.text})
            elif isinstance(item, TurnToolCall) and item.for_client:
                yield chunk({"tool_calls": [_tool_call_json(item, tool_index)]})
                tool_index += 1
            elif isinstance(item, TurnDone):
                done = item
    except Exception as exc:  # mid-stream: say so in the stream, as OpenAI does
        if not isinstance(exc, ProviderError):
            log.exception("chat stream failed")
        yield f"data: {json.dumps(error_body(f'The reply failed: {type(exc).__name__}', 'server_error'))}\n\n"
        yield "data: [DONE]\n\n"
        return
    if done is None:  # cannot happen unless the orchestrator breaks its contract; end the stream cleanly
        log.error("chat stream ended without a TurnDone")
        yield "data: [DONE]\n\n"
        return
    yield chunk({}, FINISH.get(done.finish_reason, "stop"))
    if include_usage:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [], "usage": _usage(done).model_dump()}
        yield f"data: {json.dumps(body)}\n\n"
    yield "data: [DONE]\n\n"
