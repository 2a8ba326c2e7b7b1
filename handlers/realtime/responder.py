"""One Realtime response: the conversation's items to the orchestrator, its reply back
as the GA events, spoken clause by clause as the voice route speaks it.

The persona's own MCP tools run inside the orchestrator (security gateway, audit);
the client's function tools come back as function_call items for the client to run.
A cancelled response (response.cancel, or the user talking over it) keeps the words
that were sent, in the item and in the stored conversation.
"""
from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from handlers.api.turn_bridge import iterate_in_thread, run_turn
from handlers.realtime.audio_formats import RATES, encode
from handlers.realtime.items import ConversationItems, new_item_id, public
from handlers.voice.playback import SpokenReply
from handlers.voice.sentences import FIRST_PIECE_WORDS, SentenceChunker
from orchestrator.chat import ChatOrchestrator
from orchestrator.turns import OverBudget, TurnDelta, TurnDone, TurnRequest, TurnToolCall
from providers.base import TextToSpeech
from providers.call_log import CallLog, synthesize_logged
from providers.errors import ModelBusy
from providers.fallback import voice_entries
from providers.pcm import resample

log = logging.getLogger(__name__)

Emit = Callable[..., Awaitable[None]]
DELTA_SECONDS = 0.2  # audio per output_audio.delta: small enough to start playing at once
OPENAI_VOICES = frozenset("alloy ash ballad coral echo sage shimmer verse marin cedar".split())


class NoInput(ValueError):
    """Nothing for the model to answer: the conversation does not end on the user or a tool result."""


@dataclass
class ResponsePlan:
    """The session's settings with the response.create overrides applied."""

    persona_id: str
    modalities: list[str]
    instructions: str
    tools: list[dict[str, Any]]
    tool_choice: str
    max_output_tokens: int | str
    voice: str | None  # for the TTS chain ("offline=kokoro:af_heart,openai=nova")
    voice_name: str  # as the client named it
    output_format: dict[str, Any]
    metadata: dict[str, Any] | None = None
    add_to_conversation: bool = True  # response.conversation "none": an out-of-band reply


def tts_voice(client_voice: str, persona_voice: str | None) -> str | None:
    """The persona's voice, unless the client chose one: an OpenAI name goes to OpenAI (the
    offline voice stays the persona's), an "engine:id" (kokoro:af_heart) to the offline voice."""
    if client_voice == "persona" or not client_voice:
        return persona_voice
    entries = voice_entries(persona_voice)
    if ":" in client_voice:
        entries["offline"] = client_voice
    elif client_voice in OPENAI_VOICES:
        entries["openai"] = client_voice
    return ",".join(f"{k}={v}" for k, v in entries.items()) or None


def turn_request(items: ConversationItems, plan: ResponsePlan, user_id: str, session_id: str | None) -> TurnRequest:
    history, system_text = items.history()
    if not history or history[-1]["role"] not in ("user", "tool"):
        raise NoInput("There is nothing to respond to: add a user message (or a function_call_output) first.")
    if history[-1]["role"] == "user":
        text, history = history[-1]["content"], history[:-1]
    else:
        text = ""
    instructions = "\n".join(t for t in (plan.instructions, system_text) if t)
    client_tools = [] if plan.tool_choice == "none" else [
        {"type": "function", "function": {"name": t["name"], "description": t["description"],
                                          "parameters": t["parameters"]}} for t in plan.tools]
    return TurnRequest(text=text, user_id=user_id, session_id=session_id, persona_id=plan.persona_id,
                       channel="realtime", conversation=history, app_instructions=instructions or None,
                       client_tools=client_tools, restart_missing_session=True,
                       max_tokens=plan.max_output_tokens if isinstance(plan.max_output_tokens, int) else None)


@dataclass
class Response:
    """A response's state while it runs; `cancel()` is what response.cancel and barge-in call."""

    plan: ResponsePlan
    id: str = field(default_factory=lambda: f"resp_{uuid.uuid4().hex[:24]}")
    status: str = "in_progress"
    cancel_reason: str | None = None
    output: list[dict[str, Any]] = field(default_factory=list)
    first_audio_at: float | None = None  # loop time of the first audio delta sent
    audio_sent_s: float = 0.0
    _cancelled: asyncio.Event = field(default_factory=asyncio.Event)

    def cancel(self, reason: str) -> None:
        if self.cancel_reason is None:
            self.cancel_reason = reason
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def playing_until(self) -> float:
        """Loop time by which the client will have played the audio sent (it plays in real time)."""
        return (self.first_audio_at or 0.0) + self.audio_sent_s

    def as_object(self, conversation_id: str, usage: dict[str, Any] | None = None,
                  status_details: dict[str, Any] | None = None) -> dict[str, Any]:
        shown = {"id": self.id, "object": "realtime.response", "status": self.status,
                 "output": [public(i) for i in self.output],
                 "conversation_id": conversation_id if self.plan.add_to_conversation else None,
                 "output_modalities": list(self.plan.modalities), "max_output_tokens": self.plan.max_output_tokens,
                 "audio": {"output": {"format": dict(self.plan.output_format), "voice": self.plan.voice_name}},
                 "metadata": self.plan.metadata}
        # Objects or absent in the spec, never null.
        for key, value in (("usage", usage), ("status_details", status_details)):
            if value is not None:
                shown[key] = value
        return shown


def usage_of(done: TurnDone | None) -> dict[str, Any]:
    tokens_in = (done.record.tokens_in or done.metrics.prompt_tokens) if done else 0
    tokens_out = done.record.tokens_out if done else 0
    return {"total_tokens": tokens_in + tokens_out, "input_tokens": tokens_in, "output_tokens": tokens_out,
            "input_token_details": {"text_tokens": tokens_in, "audio_tokens": 0, "image_tokens": 0,
                                    "cached_tokens": 0, "cached_tokens_details": {"text_tokens": 0,
                                                                                  "audio_tokens": 0,
                                                                                  "image_tokens": 0}},
            "output_token_details": {"text_tokens": tokens_out, "audio_tokens": 0}}


class Responder:
    def __init__(self, orchestrator: ChatOrchestrator, tts: TextToSpeech):
        self.orchestrator = orchestrator
        self.tts = tts

    async def run(self, response: Response, request: TurnRequest, items: ConversationItems, emit: Emit,
                  conversation_id: str) -> TurnDone | None:
        """Streams the response's events; returns the orchestrator's TurnDone (None if it failed)."""
        plan = response.plan
        await emit("response.created", response=response.as_object(conversation_id))
        writer = _MessageWriter(response, items, emit, audio="audio" in plan.modalities)
        sent = writer.sent_text
        request.heard_reply = lambda: sent() if response.cancelled else None
        done: TurnDone | None = None
        failure: dict[str, Any] | None = None
        chunker = SentenceChunker(first_piece_words=FIRST_PIECE_WORDS)
        events = run_turn(self.orchestrator, request)
        try:
            async for item in _until_cancelled(events, response):
                if isinstance(item, TurnDelta) and item.text:
                    if writer.audio:
                        for piece in (chunker.push_whole(item.text) if item.whole else chunker.push(item.text)):
                            await self._speak(piece, writer, response)
                    else:
                        await writer.text_delta(item.text)
                elif isinstance(item, TurnToolCall) and item.for_client:
                    await writer.function_call(item)
                elif isinstance(item, TurnDone):
                    done = item
                    for piece in chunker.flush() if writer.audio else []:
                        await self._speak(piece, writer, response)
        except ModelBusy as exc:
            failure = {"type": "server_error", "code": "server_busy", "message": str(exc)}
        except OverBudget as exc:
            failure = {"type": "insufficient_quota", "code": "insufficient_quota", "message": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a failed response is reported in it; the session goes on
            log.exception("realtime response failed")
            failure = {"type": "server_error", "code": "server_error",
                       "message": f"The reply failed: {type(exc).__name__}"}
        finally:
            await events.aclose()
        if done is not None and response.cancelled and done.message_id and writer.message_item is not None:
            # Saved whole before the cut: keep what was sent.
            await asyncio.to_thread(self.orchestrator.conversations.keep_heard, done.message_id, sent())
        if done is not None and done.message_id and writer.message_item is not None:
            items.stored_message[writer.message_item["id"]] = done.message_id
        if response.cancelled:
            response.status, details = "cancelled", {"type": "cancelled", "reason": response.cancel_reason}
        elif failure is not None:
            response.status, details = "failed", {"type": "failed", "error": failure}
        else:
            response.status, details = "completed", None
        await writer.finish("completed" if response.status == "completed" else "incomplete")
        await emit("response.done", response=response.as_object(conversation_id, usage_of(done), details))
        return done

    async def _speak(self, piece: str, writer: _MessageWriter, response: Response) -> None:
        if response.cancelled:
            return
        await writer.transcript_delta(piece)
        rate = RATES[response.plan.output_format["type"]]
        voice_log = CallLog()
        clips = iterate_in_thread(lambda _cancel: synthesize_logged(self.tts, piece, voice_log, response.plan.voice))
        try:
            async for clip in _until_cancelled(clips, response):
                samples = resample(clip.samples, clip.sample_rate, rate)
                await writer.audio_delta(piece, samples, rate)
        finally:
            await clips.aclose()


async def _until_cancelled(events: Any, response: Response) -> Any:
    """The items of an async iterator, until the response is cancelled (checked between items,
    and while waiting for the next, so a cancel does not wait for the model's next token)."""
    cancelled = asyncio.ensure_future(response._cancelled.wait())
    try:
        while not response.cancelled:
            step = asyncio.ensure_future(anext(events))
            await asyncio.wait({step, cancelled}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():
                step.cancel()
                try:
                    await step
                except (asyncio.CancelledError, StopAsyncIteration):
                    pass
                return
            try:
                item = step.result()
            except StopAsyncIteration:
                return
            yield item
    finally:
        cancelled.cancel()


def event_part(part: dict[str, Any]) -> dict[str, Any]:
    """A content part as response.content_part.* carry it: the spec names its types "audio" and
    "text" there, though the item's own content says "output_audio" and "output_text"."""
    return {**part, "type": part["type"].removeprefix("output_")}


class _MessageWriter:
    """The response's output items and their events, in the documented order."""

    def __init__(self, response: Response, items: ConversationItems, emit: Emit, audio: bool):
        self.response, self.items, self.emit, self.audio = response, items, emit, audio
        self.message_item: dict[str, Any] | None = None
        self.spoken = SpokenReply()
        self._text: list[str] = []
        self._loop = asyncio.get_running_loop()

    def sent_text(self) -> str:
        return " ".join(p for p, _ in self.spoken.pieces) if self.audio else "".join(self._text).strip()

    async def _add_item(self, item: dict[str, Any]) -> int:
        response = self.response
        output_index = len(response.output)
        response.output.append(item)
        await self.emit("response.output_item.added", response_id=response.id, output_index=output_index,
                        item=public(item))
        if response.plan.add_to_conversation:
            previous = self.items.add(item)
            await self.emit("conversation.item.added", previous_item_id=previous, item=public(item))
        return output_index

    async def _message(self) -> dict[str, Any]:
        if self.message_item is None:
            self.message_item = {"id": new_item_id(), "object": "realtime.item", "type": "message",
                                 "status": "in_progress", "role": "assistant", "content": []}
            self._index = await self._add_item(self.message_item)
            part = {"type": "output_audio", "transcript": ""} if self.audio else {"type": "output_text", "text": ""}
            self.message_item["content"].append(part)
            await self.emit("response.content_part.added", response_id=self.response.id,
                            item_id=self.message_item["id"], output_index=self._index, content_index=0,
                            part=event_part(part))
            if self.audio:
                self.items.spoken[self.message_item["id"]] = self.spoken
        return self.message_item

    def _where(self) -> dict[str, Any]:
        return {"response_id": self.response.id, "item_id": self.message_item["id"], "output_index": self._index,
                "content_index": 0}

    async def text_delta(self, text: str) -> None:
        item = await self._message()
        self._text.append(text)
        item["content"][0]["text"] += text
        await self.emit("response.output_text.delta", **self._where(), delta=text)

    async def transcript_delta(self, piece: str) -> None:
        item = await self._message()
        part = item["content"][0]
        delta = piece if not part["transcript"] else f" {piece}"
        part["transcript"] += delta
        await self.emit("response.output_audio_transcript.delta", **self._where(), delta=delta)

    async def audio_delta(self, piece: str, samples: np.ndarray, rate: int) -> None:
        await self._message()
        step = max(1, int(rate * DELTA_SECONDS))
        for start in range(0, samples.size, step):
            if self.response.cancelled:
                return
            chunk = samples[start:start + step]
            if self.response.first_audio_at is None:
                self.response.first_audio_at = self._loop.time()
            seconds = chunk.size / rate
            self.spoken.add(piece, seconds)
            self.response.audio_sent_s += seconds
            data = base64.b64encode(encode(self.response.plan.output_format["type"], chunk)).decode()
            await self.emit("response.output_audio.delta", **self._where(), delta=data)

    async def function_call(self, call: TurnToolCall) -> None:
        item = {"id": new_item_id(), "object": "realtime.item", "type": "function_call", "status": "in_progress",
                "call_id": call.call.id, "name": call.call.name, "arguments": ""}
        index = await self._add_item(item)
        where = {"response_id": self.response.id, "item_id": item["id"], "output_index": index,
                 "call_id": call.call.id}
        await self.emit("response.function_call_arguments.delta", **where, delta=call.call.arguments)
        item["arguments"], item["status"] = call.call.arguments, "completed"
        await self.emit("response.function_call_arguments.done", **where, name=call.call.name,
                        arguments=call.call.arguments)
        await self._item_done(item, index)

    async def _item_done(self, item: dict[str, Any], index: int) -> None:
        await self.emit("response.output_item.done", response_id=self.response.id, output_index=index,
                        item=public(item))
        if self.response.plan.add_to_conversation:
            await self.emit("conversation.item.done", item=public(item))

    async def finish(self, status: str) -> None:
        """Close the message item: what was sent is what it holds."""
        item = self.message_item
        if item is None:
            return
        part = item["content"][0]
        if self.audio:
            part["transcript"] = self.sent_text()
            await self.emit("response.output_audio.done", **self._where())
            await self.emit("response.output_audio_transcript.done", **self._where(), transcript=part["transcript"])
        else:
            await self.emit("response.output_text.done", **self._where(), text=part["text"])
        await self.emit("response.content_part.done", **self._where(), part=event_part(part))
        item["status"] = status
        await self._item_done(item, self._index)
