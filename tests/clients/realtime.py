"""A Realtime API client on the official `openai` SDK, that keeps every server event raw.

The SDK's `recv()` parses leniently (an unknown or malformed event still becomes an
object), so the events are read as JSON and checked here: each against OpenAI's
published schema (tests/realtime_spec.py), event ids unique.
"""
from __future__ import annotations

import asyncio
import base64
import json
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import websockets
from openai import AsyncOpenAI

from tests.realtime_spec import server_event_errors


class Recorder:
    def __init__(self, connection: Any):
        self.connection = connection
        self.events: list[dict[str, Any]] = []
        self.seen_ids: set[str] = set()

    async def send(self, event: dict[str, Any]) -> None:
        await self.connection.send(event)

    async def recv(self, timeout_s: float = 60) -> dict[str, Any]:
        raw = await asyncio.wait_for(self.connection.recv_bytes(), timeout=timeout_s)
        event = json.loads(raw)
        problems = server_event_errors(event)
        assert not problems, f"{event.get('type')} breaks OpenAI's schema: {problems}\n{event}"
        assert event["event_id"] not in self.seen_ids, f"event_id {event['event_id']} sent twice"
        self.seen_ids.add(event["event_id"])
        self.events.append(event)
        return event

    async def until(self, type_: str, timeout_s: float = 90) -> list[dict[str, Any]]:
        """Every event up to and including the next one of `type_`."""
        got: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            event = await self.recv(max(0.1, deadline - loop.time()))
            got.append(event)
            if event["type"] == type_:
                return got

    async def append_audio(self, samples: np.ndarray, encode=lambda s: s.astype("<i2").tobytes(),
                           rate: int = 24_000, chunk_s: float = 0.1) -> None:
        step = int(rate * chunk_s)
        for start in range(0, samples.size, step):
            data = base64.b64encode(encode(samples[start:start + step])).decode()
            await self.send({"type": "input_audio_buffer.append", "audio": data})


@asynccontextmanager
async def realtime(base_url: str, model: str, api_key: str = "unused"):
    client = AsyncOpenAI(api_key=api_key, base_url=f"{base_url}/v1",
                         websocket_base_url=base_url.replace("http", "ws", 1) + "/v1")
    async with client.realtime.connect(model=model) as connection:
        yield Recorder(connection)


class _RawConnection:
    """A plain websocket with the two calls Recorder uses: for frames the SDK would not send
    as they are (text that is not JSON)."""

    def __init__(self, ws: Any):
        self.ws = ws

    async def send(self, event: dict[str, Any] | str) -> None:
        await self.ws.send(event if isinstance(event, str) else json.dumps(event))

    async def recv_bytes(self) -> bytes:
        message = await self.ws.recv()
        return message.encode() if isinstance(message, str) else message


@asynccontextmanager
async def raw_realtime(base_url: str, model: str, api_key: str):
    url = base_url.replace("http", "ws", 1) + f"/v1/realtime?model={model}"
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {api_key}"},
                                  max_size=None) as ws:
        yield Recorder(_RawConnection(ws))


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def audio_of(events: list[dict[str, Any]], decode=lambda b: np.frombuffer(b, "<i2")) -> np.ndarray:
    chunks = [decode(base64.b64decode(e["delta"])) for e in events if e["type"] == "response.output_audio.delta"]
    return np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)
