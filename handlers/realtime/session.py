"""One Realtime connection: client events in, server events out.

Each client event is handled at once; the slow parts (transcribing a committed turn,
a response) run as one task at a time behind it, so `response.cancel`, a barge-in or
`input_audio_buffer.append` are never stuck behind the model. A bad event gets an
`error` event (OpenAI's shape, naming the client's event_id) and the session goes on.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr

from handlers.api.errors import ApiError
from handlers.api.rate_limit import RateLimiter
from handlers.realtime.audio_formats import RATES, NotAudio, decode
from handlers.realtime.input_audio import MIN_COMMIT_MS, BufferFull, InputAudio
from handlers.realtime.items import ConversationItems, ItemError, client_item, new_item_id, public
from handlers.realtime.responder import NoInput, Responder, Response, ResponsePlan, tts_voice, turn_request
from handlers.realtime.session_config import (SessionConfig, SessionError, check_max_tokens, check_modalities,
                                              check_tools)
from handlers.voice.turn import transcribe_logged
from personas.cards import PersonaCatalog, PersonaError
from providers.base import AudioClip, SpeechToText
from providers.errors import ModelBusy
from providers.pcm import SPEECH_RATE, float_to_int16, resample, to_float32

log = logging.getLogger(__name__)

MAX_APPEND_BYTES = 1024 * 1024  # one append's audio (decoded): 21 s of 24 kHz PCM
MAX_EVENT_CHARS = 2 * MAX_APPEND_BYTES  # a text frame: base64 of that, with room for the JSON around it


class EventError(Exception):
    def __init__(self, message: str, code: str = "invalid_value", param: str | None = None,
                 type_: str = "invalid_request_error"):
        super().__init__(message)
        self.message, self.code, self.param, self.type = message, code, param, type_


@dataclass
class Identity:
    user_id: str
    persona_id: str


class RealtimeSession:
    def __init__(self, send: Callable[[str], Awaitable[None]], identity: Identity, personas: PersonaCatalog,
                 stt: SpeechToText, responder: Responder, vad: Any, judge: Any, limiter: RateLimiter):
        self._send = send
        self.user_id = identity.user_id
        self.personas = personas
        self.stt = stt
        self.responder = responder
        self.limiter = limiter
        self.config = SessionConfig(identity.persona_id)
        self.items = ConversationItems()
        self.input = InputAudio(vad, judge)
        self.input.configure(self.config.turn_detection)
        self.conversation_id = f"conv_{uuid.uuid4().hex[:24]}"
        self.session_id: str | None = None  # the stored conversation, made by the first response
        self.response: Response | None = None
        self._work: asyncio.Task | None = None  # the running transcription and/or response
        self._response_pending = False  # a response asked for, running or waiting for its transcription
        self._pending_item: str | None = None  # the user item the speech being heard will become
        self._resampler: tuple[int, Any] | None = None  # (input rate, its stream to 16 kHz)
        self._lock = asyncio.Lock()
        self._handlers = {
            "session.update": self._session_update,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.commit": self._commit,
            "input_audio_buffer.clear": self._clear,
            "conversation.item.create": self._item_create,
            "conversation.item.delete": self._item_delete,
            "conversation.item.retrieve": self._item_retrieve,
            "conversation.item.truncate": self._item_truncate,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
            "output_audio_buffer.clear": self._output_clear,
        }

    async def emit(self, type_: str, **fields: Any) -> None:
        event = {"type": type_, "event_id": f"event_{uuid.uuid4().hex[:24]}", **fields}
        async with self._lock:
            await self._send(json.dumps(event, ensure_ascii=False))

    async def error(self, exc: EventError, client_event_id: str | None) -> None:
        await self.emit("error", error={"type": exc.type, "code": exc.code, "message": exc.message,
                                        "param": exc.param, "event_id": client_event_id})

    async def start(self) -> None:
        await self.emit("session.created", session=self.config.as_event_session())

    async def handle_text(self, text: str) -> None:
        event_id = None
        try:
            if len(text) > MAX_EVENT_CHARS:
                raise EventError(f"An event is at most {MAX_EVENT_CHARS} characters; send audio in smaller "
                                 "appends.", "event_too_large")
            try:
                event = json.loads(text)
            except ValueError:
                raise EventError("The event is not valid JSON.", "invalid_json") from None
            if not isinstance(event, dict):
                raise EventError("An event is a JSON object with a 'type'.", "invalid_event")
            event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
            handler = self._handlers.get(event.get("type"))
            if handler is None:
                raise EventError(f"Unknown event type '{event.get('type')}'.", "invalid_event_type", "type")
            await handler(event)
        except EventError as exc:
            await self.error(exc, event_id)
        except (SessionError, ItemError) as exc:
            await self.error(EventError(exc.message, exc.code, exc.param), event_id)
        except ApiError as exc:  # a rate limit
            await self.error(EventError(exc.message, exc.code or "rate_limit_exceeded", exc.param,
                                        "invalid_request_error" if exc.status != 429 else "rate_limit_error"),
                             event_id)

    async def close(self) -> None:
        if self.response is not None:
            self.response.cancel("client_cancelled")
        if self._work is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._work), timeout=10)
            except Exception:  # noqa: BLE001 - a timeout or the work's own error: the socket is gone, keep what was saved
                self._work.cancel()

    # --- session -----------------------------------------------------------------------------

    async def _session_update(self, event: dict[str, Any]) -> None:
        self.config.update(event.get("session"), self._persona_exists)
        self.input.configure(self.config.turn_detection)
        await self.emit("session.updated", session=self.config.as_event_session())

    def _persona_exists(self, persona_id: str) -> bool:
        try:
            self.personas.get(persona_id)
        except PersonaError:
            return False
        return True

    # --- input audio ---------------------------------------------------------------------------

    def _decode_audio(self, data: Any, param: str, stream: bool = False) -> np.ndarray:
        """base64 audio of the session's input format, as 16 kHz samples. `stream`: a piece of the
        input buffer's audio, resampled as one stream (each 100 ms append resampled on its own
        leaves a click at every edge, enough to make Whisper mishear 8 kHz audio)."""
        if not isinstance(data, str) or not data:
            raise EventError(f"'{param}' must be base64 audio.", "invalid_type", param)
        if len(data) * 3 // 4 > MAX_APPEND_BYTES:
            raise EventError(f"One append holds at most {MAX_APPEND_BYTES} bytes of audio; send smaller pieces.",
                             "audio_too_large", param)
        try:
            raw = base64.b64decode(data, validate=True)
            samples = decode(self.config.input_type, raw)
        except (binascii.Error, ValueError) as exc:
            message = str(exc) if isinstance(exc, NotAudio) else "The audio is not valid base64."
            raise EventError(message, "invalid_audio", param) from None
        rate = RATES[self.config.input_type]
        if not stream:
            return resample(samples, rate, SPEECH_RATE)
        if self._resampler is None or self._resampler[0] != rate:
            self._resampler = (rate, soxr.ResampleStream(rate, SPEECH_RATE, 1, dtype="float32"))
        return float_to_int16(self._resampler[1].resample_chunk(to_float32(samples)))

    async def _append(self, event: dict[str, Any]) -> None:
        samples = self._decode_audio(event.get("audio"), "audio", stream=True)
        try:
            moments = self.input.append(samples)
        except BufferFull as exc:
            raise EventError(str(exc), "input_audio_buffer_full", "audio") from None
        for kind, ms in moments:
            if kind == "speech_started":
                await self._speech_started(ms)
            else:
                await self._speech_stopped(ms)

    async def _speech_started(self, ms: int) -> None:
        self._pending_item = new_item_id()
        await self.emit("input_audio_buffer.speech_started", audio_start_ms=ms, item_id=self._pending_item)
        detection = self.config.turn_detection or {}
        # The user talked over the reply: stop it; the client stops playing and truncates (as with OpenAI).
        if detection.get("interrupt_response", True) and self.response is not None \
                and self.response.status == "in_progress":
            self.response.cancel("turn_detected")

    async def _speech_stopped(self, ms: int) -> None:
        item_id = self._pending_item or new_item_id()
        await self.emit("input_audio_buffer.speech_stopped", audio_end_ms=ms, item_id=item_id)
        await self._commit_buffer(item_id, automatic=True)

    async def _commit(self, event: dict[str, Any]) -> None:
        if self.input.buffered_ms < MIN_COMMIT_MS:
            raise EventError(f"Error committing input audio buffer: buffer too small. Expected at least "
                             f"{MIN_COMMIT_MS}ms of audio, but buffer only has {self.input.buffered_ms}ms of audio.",
                             "input_audio_buffer_commit_empty")
        await self._commit_buffer(new_item_id(), automatic=False)

    async def _commit_buffer(self, item_id: str, automatic: bool) -> None:
        audio = self.input.take()
        self._pending_item = None
        self.limiter.audio(self.user_id, audio.size / SPEECH_RATE, "audio")
        item = {"id": item_id, "object": "realtime.item", "type": "message", "status": "completed",
                "role": "user", "content": [{"type": "input_audio", "transcript": None}]}
        previous = self.items.add(item)
        await self.emit("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id)
        await self.emit("conversation.item.added", previous_item_id=previous, item=public(item))
        respond = automatic and (self.config.turn_detection or {}).get("create_response", True)
        self._after(self._transcribe_then(item, previous, audio, respond))

    async def _transcribe_then(self, item: dict[str, Any], previous: str | None, audio: np.ndarray,
                               respond: bool) -> None:
        words = await self._transcribe(item, audio)
        await self.emit("conversation.item.done", previous_item_id=previous, item=public(item))
        if respond and words:  # noise with no words gets no reply, as on the voice route
            await self._respond(self._plan({}))

    async def _transcribe(self, item: dict[str, Any], audio: np.ndarray) -> str:
        language = (self.config.transcription or {}).get("language") or self._persona().stt_language
        try:
            words, _ = await asyncio.to_thread(transcribe_logged, self.stt, AudioClip(SPEECH_RATE, audio),
                                               self.user_id, language)
        except Exception as exc:  # noqa: BLE001 - reported on the item; the session goes on
            busy = isinstance(exc, ModelBusy)
            log.warning("realtime transcription failed: %s", exc)
            await self.emit("conversation.item.input_audio_transcription.failed", item_id=item["id"],
                            content_index=0, error={"type": "server_error",
                                                    "code": "server_busy" if busy else "transcription_failed",
                                                    "message": str(exc) if busy else "Transcription failed."})
            return ""
        item["content"][0]["transcript"] = words
        await self.emit("conversation.item.input_audio_transcription.completed", item_id=item["id"],
                        content_index=0, transcript=words,
                        usage={"type": "duration", "seconds": round(audio.size / SPEECH_RATE, 3)})
        return words

    async def _clear(self, event: dict[str, Any]) -> None:
        self.input.clear()
        await self.emit("input_audio_buffer.cleared")

    async def _output_clear(self, event: dict[str, Any]) -> None:
        if self.response is not None and self.response.status == "in_progress":
            self.response.cancel("client_cancelled")
        await self.emit("output_audio_buffer.cleared", response_id=self.response.id if self.response else None)

    # --- items ----------------------------------------------------------------------------

    async def _item_create(self, event: dict[str, Any]) -> None:
        item = client_item(event.get("item"))
        audio = None
        for part in item.get("content", []):
            if part["type"] == "input_audio":
                audio = self._decode_audio(part.pop("audio"), "item.content.audio")
        previous_id = event.get("previous_item_id")
        previous = self.items.add(item, previous_id if isinstance(previous_id, str) else None)
        await self.emit("conversation.item.added", previous_item_id=previous, item=public(item))
        if audio is None:
            await self.emit("conversation.item.done", previous_item_id=previous, item=public(item))
            return
        self._after(self._transcribe_then(item, previous, audio, respond=False))

    async def _item_delete(self, event: dict[str, Any]) -> None:
        self.items.delete(event.get("item_id"))
        await self.emit("conversation.item.deleted", item_id=event["item_id"])

    async def _item_retrieve(self, event: dict[str, Any]) -> None:
        item = self.items.get(event.get("item_id"))
        await self.emit("conversation.item.retrieved", item=public(item))

    async def _item_truncate(self, event: dict[str, Any]) -> None:
        item_id, content_index, audio_end_ms = event.get("item_id"), event.get("content_index"), \
            event.get("audio_end_ms")
        heard = self.items.truncate(item_id, content_index, audio_end_ms)
        message_id = self.items.stored_message.get(item_id)
        if message_id is not None:  # the stored reply too: the next turn knows what was heard
            await asyncio.to_thread(self.responder.orchestrator.conversations.keep_heard, message_id, heard)
        await self.emit("conversation.item.truncated", item_id=item_id, content_index=content_index,
                        audio_end_ms=audio_end_ms)

    # --- responses ------------------------------------------------------------------------

    def _persona(self):
        return self.personas.get(self.config.persona_id)

    def _plan(self, overrides: Any) -> ResponsePlan:
        if not isinstance(overrides, dict):
            raise EventError("'response' must be an object.", "invalid_type", "response")
        c = self.config
        modalities = check_modalities(overrides["output_modalities"], "response.output_modalities") \
            if "output_modalities" in overrides else c.output_modalities
        instructions = overrides.get("instructions", c.instructions)
        if not isinstance(instructions, str):
            raise EventError("'instructions' must be a string.", "invalid_type", "response.instructions")
        tools = check_tools(overrides["tools"], "response.tools") if "tools" in overrides else c.tools
        max_tokens = check_max_tokens(overrides["max_output_tokens"], "response.max_output_tokens") \
            if "max_output_tokens" in overrides else c.max_output_tokens
        conversation = overrides.get("conversation", "auto")
        if conversation not in ("auto", "none"):
            raise EventError("'conversation' is auto or none.", "invalid_value", "response.conversation")
        voice_name = ((overrides.get("audio") or {}).get("output") or {}).get("voice") or c.voice
        output_format = dict(c.output_format)
        metadata = overrides.get("metadata") if isinstance(overrides.get("metadata"), dict) else None
        return ResponsePlan(c.persona_id, modalities, instructions, tools, overrides.get("tool_choice", c.tool_choice),
                            max_tokens, tts_voice(voice_name, self._persona().speech_voice), voice_name, output_format,
                            metadata, add_to_conversation=conversation == "auto")

    async def _response_create(self, event: dict[str, Any]) -> None:
        if self._response_pending:
            raise EventError("Conversation already has an active response in progress. Wait until the response "
                             "is finished before creating a new one.", "conversation_already_has_active_response")
        plan = self._plan(event.get("response") or {})
        self.limiter.request(self.user_id)
        if self._work is None or self._work.done():  # else a transcription runs: its item may be the input
            try:  # only a check, answered now; _respond builds the request when it runs, from the items then
                turn_request(self.items, plan, self.user_id, self.session_id)
            except NoInput as exc:
                raise EventError(str(exc), "no_input") from None
        self._response_pending = True
        self._after(self._respond(plan))

    async def _respond(self, plan: ResponsePlan) -> None:
        self._response_pending = True
        try:
            try:
                request = turn_request(self.items, plan, self.user_id, self.session_id)
            except NoInput as exc:
                await self.error(EventError(str(exc), "no_input"), None)
                return
            self.response = Response(plan)
            done = await self.responder.run(self.response, request, self.items, self.emit, self.conversation_id)
            if done is not None:
                self.session_id = done.session_id
        finally:
            self._response_pending = False
        await self._rate_limits()

    async def _rate_limits(self) -> None:
        limits = self.limiter.limits
        await self.emit("rate_limits.updated", rate_limits=[
            {"name": "requests", "limit": int(limits.requests_per_minute),
             "remaining": int(self.limiter.remaining(self.user_id, "requests")), "reset_seconds": 60.0}])

    async def _response_cancel(self, event: dict[str, Any]) -> None:
        wanted = event.get("response_id")
        if self.response is None or self.response.status != "in_progress" or \
                (wanted is not None and wanted != self.response.id):
            raise EventError("Cancellation failed: no active response found.", "response_cancel_not_active")
        self.response.cancel("client_cancelled")

    def _after(self, work: Awaitable[None]) -> None:
        """Run after the work before it (a transcription, then its response, in order)."""
        previous = self._work

        async def run() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            try:
                await work
            except Exception:  # noqa: BLE001 - logged; the session stays open
                log.exception("realtime work failed")

        self._work = asyncio.ensure_future(run())
