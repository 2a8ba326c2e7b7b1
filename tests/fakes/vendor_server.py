"""A real HTTP server on 127.0.0.1 that speaks the vendors' wire protocols.

One server plays one vendor account: OpenAI routes under /v1, Groq's under
/openai/v1, ElevenLabs' streaming TTS under /v1/text-to-speech. The real SDKs
reach it through base_url. Tests script faults per request (latency, HTTP
errors with Retry-After, hangs, mid-stream disconnects) and read back every
request the server received.
"""
from __future__ import annotations

import asyncio
import io
import json
import threading
import time
import wave
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.fakes import wire
from tests.fakes.loopback import LoopbackServer

API_KEY = "test-key-123"


@dataclass(frozen=True)
class Fault:
    status: int | None = None  # answer with this HTTP error
    retry_after_s: float | None = None  # sent as Retry-After with the error
    delay_s: float = 0.0  # before the response starts
    hang: bool = False  # never answer (until the client gives up or the server stops)
    drop_after_chunks: int | None = None  # cut the connection after this many body chunks
    chunk_delay_s: float = 0.0  # between body chunks
    hold: threading.Event | None = None  # before chunk `hold_before_chunk`, wait until it is set
    hold_before_chunk: int = 2  # 0 is the role, 1 the first text


@dataclass
class SeenRequest:
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: dict[str, Any]  # JSON body, or multipart fields (the file as its WAV facts)


class _ClientDropped(Exception):
    """Raised inside a streaming body to make the server cut the connection."""


@dataclass
class Script:
    """What this fake account replies when nothing goes wrong."""

    chat_text: list[str] = field(default_factory=lambda: ["Hello", " from", " the", " fake", "."])
    tool_calls: list[wire.ToolScript] = field(default_factory=list)
    transcript: str = "what is the weather like"
    # Replies for the next chat requests, one each, as (text pieces, tool calls);
    # when it runs out, chat_text and tool_calls above answer.
    chat_turns: deque = field(default_factory=deque)
    speech_ms_per_char: int = 10
    speech_chunk_bytes: int = 4801  # odd on purpose: samples split across chunks
    # Moderation: a text containing a key (case-insensitive) gets those category
    # scores; a score of 0.5 or more is flagged, as the real endpoint's thresholds do.
    moderation_scores: dict[str, dict[str, float]] = field(default_factory=dict)


class FakeVendorServer:
    def __init__(self, api_key: str = API_KEY):
        self.api_key = api_key
        self.script = Script()
        self.requests: list[SeenRequest] = []
        self._faults: deque[Fault] = deque()
        self._every_time: Fault | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._loopback: LoopbackServer | None = None
        self.port = 0
        self.app = self._build_app()

    # -- test controls ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def fail_next(self, *faults: Fault) -> None:
        """Apply these faults to the next requests, one each, in order."""
        with self._lock:
            self._faults.extend(faults)

    def fail_always(self, fault: Fault | None) -> None:
        """Apply a fault to every request (after queued ones); None heals the server."""
        with self._lock:
            self._every_time = fault

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self._every_time = None
            self.requests.clear()
            self.script = Script()

    def hits(self, path_end: str = "") -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.path.endswith(path_end))

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.popleft() if self._faults else self._every_time

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> "FakeVendorServer":
        self._loopback = LoopbackServer(self.app, "fake-vendor").start()
        self.port = self._loopback.port
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._loopback is not None:
            self._loopback.stop()

    def __enter__(self) -> "FakeVendorServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the app -----------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI()
        for prefix in ("/v1", "/openai/v1"):  # OpenAI, Groq
            app.add_api_route(f"{prefix}/chat/completions", self._chat, methods=["POST"])
            app.add_api_route(f"{prefix}/audio/transcriptions", self._transcribe, methods=["POST"])
        app.add_api_route("/v1/audio/speech", self._openai_speech, methods=["POST"])
        app.add_api_route("/v1/moderations", self._moderations, methods=["POST"])
        app.add_api_route("/v1/text-to-speech/{voice_id}/stream", self._elevenlabs_speech, methods=["POST"])
        return app

    async def _admit(self, request: Request, body: dict[str, Any]) -> tuple[Fault | None, Response | None]:
        """Record the request, check its key, and apply the fault before any body."""
        with self._lock:
            self.requests.append(SeenRequest(request.url.path, dict(request.headers),
                                             dict(request.query_params), body))
        elevenlabs = "/text-to-speech/" in request.url.path
        if elevenlabs:
            authorized = request.headers.get("xi-api-key") == self.api_key
        else:
            authorized = request.headers.get("authorization") == f"Bearer {self.api_key}"
        if not authorized:
            return None, wire.error_response(401, "Invalid API key", elevenlabs)
        fault = self._next_fault()
        if fault is None:
            return None, None
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.hang:
            await self._hang(request)
            return fault, Response(status_code=504)
        if fault.status:
            headers = {"retry-after": f"{fault.retry_after_s:g}"} if fault.retry_after_s is not None else {}
            return fault, wire.error_response(fault.status, "injected failure", elevenlabs, headers)
        return fault, None

    async def _hang(self, request: Request) -> None:
        deadline = time.monotonic() + 30
        while not self._stopping.is_set() and time.monotonic() < deadline:
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.02)

    async def _chunks(self, pieces: list[bytes], fault: Fault | None) -> AsyncIterator[bytes]:
        for index, piece in enumerate(pieces):
            if fault is not None and fault.drop_after_chunks is not None and index >= fault.drop_after_chunks:
                raise _ClientDropped()  # uvicorn closes the socket mid-body
            if fault is not None and fault.chunk_delay_s and index:
                await asyncio.sleep(fault.chunk_delay_s)
            while fault is not None and fault.hold is not None and index == fault.hold_before_chunk and not fault.hold.is_set() \
                    and not self._stopping.is_set():
                await asyncio.sleep(0.02)
            yield piece

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        fault, early = await self._admit(request, body)
        if early is not None:
            return early
        problem = wire.check_chat_request(body)
        if problem:
            return wire.error_response(400, problem, False)
        groq = request.url.path.startswith("/openai/")
        with self._lock:
            text, calls = (self.script.chat_turns.popleft() if self.script.chat_turns
                           else (self.script.chat_text, self.script.tool_calls))
        events = wire.chat_sse_events(body, text, calls, groq)
        return StreamingResponse(self._chunks(events, fault), media_type="text/event-stream")

    async def _transcribe(self, request: Request) -> Response:
        form = await request.form()
        upload = form.get("file")
        fields = {k: v for k, v in form.items() if k != "file"}
        if upload is not None and hasattr(upload, "read"):
            fields["file"] = _wav_facts(await upload.read(), upload.filename)
        _, early = await self._admit(request, fields)  # a transcript has no body to cut short
        if early is not None:
            return early
        if not isinstance(fields.get("file"), dict) or not fields.get("model"):
            return wire.error_response(400, "file and model are required", False)
        if fields.get("response_format") == "text":
            return Response(self.script.transcript, media_type="text/plain")
        return JSONResponse({"text": self.script.transcript})

    async def _moderations(self, request: Request) -> Response:
        body = await request.json()
        _, early = await self._admit(request, body)
        if early is not None:
            return early
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(inputs, list) or not all(isinstance(text, str) for text in inputs):
            return wire.error_response(400, "input must be a string or a list of strings", False)
        with self._lock:
            scripted = dict(self.script.moderation_scores)
        return JSONResponse(wire.moderation_response(body.get("model") or "omni-moderation-latest",
                                                     inputs, scripted))

    async def _openai_speech(self, request: Request) -> Response:
        body = await request.json()
        fault, early = await self._admit(request, body)
        if early is not None:
            return early
        if not body.get("model") or not body.get("voice") or not body.get("input"):
            return wire.error_response(400, "model, voice and input are required", False)
        if body.get("response_format") != "pcm":
            return wire.error_response(400, "this fake only streams pcm", False)
        pcm = wire.speech_pcm(body["input"], 24_000, self.script.speech_ms_per_char)
        pieces = wire.split(pcm, self.script.speech_chunk_bytes)
        return StreamingResponse(self._chunks(pieces, fault), media_type="application/octet-stream")

    async def _elevenlabs_speech(self, request: Request, voice_id: str) -> Response:
        body = await request.json()
        fault, early = await self._admit(request, body)
        if early is not None:
            return early
        output_format = request.query_params.get("output_format", "mp3_44100_128")
        if not output_format.startswith("pcm_") or not body.get("text"):
            return wire.error_response(422, "this fake needs text and a pcm_<rate> output_format", True)
        rate = int(output_format.removeprefix("pcm_"))
        pcm = wire.speech_pcm(body["text"], rate, self.script.speech_ms_per_char)
        pieces = wire.split(pcm, self.script.speech_chunk_bytes)
        return StreamingResponse(self._chunks(pieces, fault), media_type="audio/pcm")


def _wav_facts(data: bytes, filename: str | None) -> dict[str, Any]:
    """What a test wants to know about an uploaded WAV (and proof it parses)."""
    try:
        with wave.open(io.BytesIO(data), "rb") as wav:
            return {"filename": filename, "sample_rate": wav.getframerate(),
                    "channels": wav.getnchannels(), "sample_width": wav.getsampwidth(),
                    "frames": wav.getnframes()}
    except (wave.Error, EOFError) as exc:
        return {"filename": filename, "error": str(exc), "bytes": len(data)}


def parse_sse(raw: bytes) -> list[Any]:
    """Decode an SSE body back into JSON payloads (for checking the fake itself)."""
    events = []
    for block in raw.decode().split("\n\n"):
        data = "".join(line[5:].strip() for line in block.splitlines() if line.startswith("data:"))
        if data:
            events.append(data if data == "[DONE]" else json.loads(data))
    return events


if __name__ == "__main__":
    # `python -m tests.fakes.vendor_server`: serve from a process of its own (so a
    # benchmark's client does not share a GIL with it), print the URL, stop at EOF.
    import sys

    with FakeVendorServer() as standalone:
        print(standalone.url, flush=True)
        sys.stdin.read()
