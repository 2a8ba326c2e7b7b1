"""A real client of the mounted FastRTC websocket route, as a phone-less app would be.

Speaks a clip at real-time pace in 20 ms mu-law frames, keeps the line open with
silence, and records the reply audio and the transcript events (read from the
`/voice/outputs` server-sent events) with their arrival times.
"""
from __future__ import annotations

import asyncio
import audioop
import base64
import json
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
import soxr
import websockets

FRAME_S = 0.02


def espeak_clip(text: str, sample_rate: int = 16_000, voice: str | None = None) -> np.ndarray:
    """int16 speech of `text` from espeak-ng (`voice`: e.g. "en-gb"), resampled to `sample_rate`."""
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", *(["-v", voice] if voice else []), "-w", str(wav), text], check=True)
        samples, rate = sf.read(wav, dtype="float32")
    samples = soxr.resample(samples, rate, sample_rate)
    return (np.clip(samples, -1, 1) * 32767).astype(np.int16)


@dataclass
class TurnRecording:
    speech_ended_at: float = 0.0
    first_audio_at: float | None = None
    reply_audio: list[np.ndarray] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    output_sample_rate: int = 24_000

    @property
    def audio(self) -> np.ndarray:
        return np.concatenate(self.reply_audio) if self.reply_audio else np.zeros(0, np.int16)

    @property
    def first_audio_latency_s(self) -> float | None:
        return None if self.first_audio_at is None else self.first_audio_at - self.speech_ended_at

    def transcript(self) -> list[dict]:
        return self.events[-1]["transcript"] if self.events else []

    def last_turn(self) -> dict:
        return self.events[-1]["turn"] if self.events else {}


class VoiceWebsocketClient:
    def __init__(self, base_url: str, input_sample_rate: int = 16_000,
                 output_sample_rate: int = 24_000, token: str | None = None,
                 headers: dict[str, str] | None = None, outputs_base_url: str | None = None):
        self.base_url = base_url.rstrip("/")
        self.outputs_base_url = (outputs_base_url or base_url).rstrip("/")  # another replica, say
        self.token = token  # from GET /voice/token, on a server with identities
        self.headers = headers or {}  # e.g. a balancer's route cookie, as a browser sends it
        self.ws_url = self.base_url.replace("http", "ws", 1) + "/voice/websocket/offer"
        self.input_rate = input_sample_rate
        self.output_rate = output_sample_rate
        self.websocket_id = uuid.uuid4().hex
        self._ws = None
        self._recording = TurnRecording(output_sample_rate=output_sample_rate)
        self._tasks: list[asyncio.Task] = []
        self.frames: list[dict] = []  # every JSON frame the server sent on the socket
        self.arrivals: list[float] = []  # perf_counter when each of them arrived
        self.cleared_at: float | None = None  # when the server last sent `clear`

    def _opening_frames(self) -> list[dict]:
        start = {"event": "start", "websocket_id": self.websocket_id}
        return [{**start, "token": self.token} if self.token else start]

    def _media_frame(self, payload: str) -> dict:
        return {"event": "media", "media": {"payload": payload}}

    async def _on_frame(self, data: dict) -> None:
        """A subclass may answer frames as its protocol does (Twilio echoes marks)."""

    def _readers(self) -> list:
        return [self._read_media(), self._read_events()]

    async def __aenter__(self):
        self._ws = await websockets.connect(self.ws_url, max_size=None, additional_headers=self.headers)
        for frame in self._opening_frames():
            await self._ws.send(json.dumps(frame))
        self._tasks = [asyncio.create_task(reader) for reader in self._readers()]
        await asyncio.sleep(0.2)  # let the server register the connection
        return self

    async def __aexit__(self, *exc) -> None:
        for task in self._tasks:
            task.cancel()
        try:
            await self._ws.send(json.dumps({"event": "stop"}))
            await self._ws.close()
        except Exception:
            pass

    async def _read_media(self) -> None:
        async for message in self._ws:
            data = json.loads(message)
            self.frames.append(data)
            self.arrivals.append(time.perf_counter())
            await self._on_frame(data)
            if data.get("event") == "clear":  # talked over: what has not played is dropped
                self.cleared_at = time.perf_counter()
            if data.get("event") != "media":
                continue
            pcm = np.frombuffer(audioop.ulaw2lin(base64.b64decode(data["media"]["payload"]), 2), np.int16)
            if self._recording.first_audio_at is None:
                self._recording.first_audio_at = time.perf_counter()
            self._recording.reply_audio.append(pcm)

    async def _read_events(self) -> None:
        url = f"{self.outputs_base_url}/voice/outputs"
        async with httpx.AsyncClient(timeout=None, headers=self.headers) as client:
            params = {"webrtc_id": self.websocket_id, **({"token": self.token} if self.token else {})}
            async with client.stream("GET", url, params=params) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data: "):
                        self._recording.events.append(json.loads(line[6:]))

    async def _send_pcm(self, samples: np.ndarray) -> None:
        frame = int(self.input_rate * FRAME_S)
        started = time.perf_counter()
        for index in range(0, len(samples), frame):
            chunk = samples[index:index + frame]
            payload = base64.b64encode(audioop.lin2ulaw(chunk.tobytes(), 2)).decode()
            await self._ws.send(json.dumps(self._media_frame(payload)))
            # Real-time pace, against the clock so the sleeps do not drift.
            delay = started + (index // frame + 1) * FRAME_S - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)

    async def speak(self, speech: np.ndarray, listen_s: float = 8.0,
                    until_reply_done: bool = True) -> TurnRecording:
        """Say `speech`, then keep sending silence and listening (up to `listen_s`) until the
        reply has been heard out."""
        # Updates of the turn before may still arrive (it says "listening" once its audio
        # has played): this turn is done when a later turn's record says so.
        before = self._recording.last_turn().get("turn", 0) if self._recording is not None else 0
        self._recording = TurnRecording(output_sample_rate=self.output_rate)
        lead_in = np.zeros(int(self.input_rate * 0.3), np.int16)
        await self._send_pcm(np.concatenate([lead_in, speech]))
        self._recording.speech_ended_at = time.perf_counter()
        silence = np.zeros(int(self.input_rate * 0.2), np.int16)
        deadline = time.perf_counter() + listen_s
        while time.perf_counter() < deadline:
            await self._send_pcm(silence)
            turn = self._recording.last_turn()
            # Done when the server listens again: after the reply has played (a person hears it
            # out before speaking again; speaking sooner would be talking over it).
            if until_reply_done and turn.get("turn", 0) > before and "turn_s" in turn.get("stages_s", {}) \
                    and (turn.get("state") == "listening" or "error" in turn):
                break
        await self._send_pcm(np.zeros(int(self.input_rate * 0.5), np.int16))  # trailing audio frames
        return self._recording


def answer_call(base_url: str, caller: str = "+15550001234", called: str = "+15559990000",
                headers: dict[str, str] | None = None) -> tuple[str, str]:
    """What Twilio does when the number rings: post the call to our webhook and read the
    TwiML it answers. Returns (the stream URL, its one-time token)."""
    import xml.etree.ElementTree as ET

    response = httpx.post(base_url.rstrip("/") + "/voice/telephone/incoming", timeout=10, headers=headers,
                          data={"CallSid": f"CA{uuid.uuid4().hex}", "From": caller, "To": called})
    response.raise_for_status()
    stream = ET.fromstring(response.text).find("./Connect/Stream")
    token = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}["cozy_token"]
    return stream.get("url"), token


class PhoneCallClient(VoiceWebsocketClient):
    """A Twilio Media Streams peer on `/voice/telephone/handler`: 8 kHz mu-law both ways.

    Like Twilio, it is sent there by the webhook's TwiML, and starts the stream with the
    token it was given (`token`: use this one instead, e.g. a used one)."""

    def __init__(self, base_url: str, caller: str = "+15550001234", called: str = "+15559990000",
                 token: str | None = None):
        super().__init__(base_url, input_sample_rate=8_000, output_sample_rate=8_000)
        self.caller, self.called, self.stream_token = caller, called, token
        self._play_until = 0.0
        self._pending_marks: dict[str, asyncio.Task] = {}
        self.ws_url = self.base_url.replace("http", "ws", 1) + "/voice/telephone/handler"

    async def __aenter__(self):
        if self.stream_token is None:
            self.ws_url, self.stream_token = await asyncio.to_thread(answer_call, self.base_url, self.caller,
                                                                     self.called)
        return await super().__aenter__()

    def _opening_frames(self) -> list[dict]:
        return [{"event": "connected", "protocol": "Call", "version": "1.0.0"},
                {"event": "start", "streamSid": self.websocket_id,
                 "start": {"streamSid": self.websocket_id, "callSid": "CA-test",
                           "customParameters": {"cozy_token": self.stream_token},
                           "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}]

    def _media_frame(self, payload: str) -> dict:
        return {"event": "media", "streamSid": self.websocket_id, "media": {"payload": payload}}

    async def _on_frame(self, data: dict) -> None:
        """Plays the reply in real time as Twilio does: a mark is echoed once the audio sent
        before it has played; `clear` drops what has not played and echoes every pending mark."""
        now = time.perf_counter()
        event = data.get("event")
        if event == "media":
            seconds = len(base64.b64decode(data["media"]["payload"])) / 8_000
            self._play_until = max(self._play_until, now) + seconds
        elif event == "mark":
            name = data["mark"]["name"]
            self._pending_marks[name] = asyncio.create_task(self._echo(name, self._play_until - now))
        elif event == "clear":
            self.cleared_at = now
            self._play_until = now
            for name, task in list(self._pending_marks.items()):
                task.cancel()
                await self._echo(name, 0)

    async def _echo(self, name: str, after_s: float) -> None:
        if after_s > 0:
            await asyncio.sleep(after_s)
        self._pending_marks.pop(name, None)
        try:
            await self._ws.send(json.dumps({"event": "mark", "streamSid": self.websocket_id, "mark": {"name": name}}))
        except websockets.ConnectionClosed:
            pass

    def _readers(self) -> list:
        return [self._read_media()]  # phone calls have no transcript stream

    async def call_and_listen(self, speech: np.ndarray, listen_s: float) -> TurnRecording:
        """Phone calls carry no transcript events: listen until the reply has ended."""
        self._recording = TurnRecording(output_sample_rate=8_000)
        await self._send_pcm(np.concatenate([np.zeros(2400, np.int16), speech]))
        self._recording.speech_ended_at = time.perf_counter()
        deadline = time.perf_counter() + listen_s
        quiet_since = None
        while time.perf_counter() < deadline:
            heard = len(self._recording.reply_audio)
            await self._send_pcm(np.zeros(1600, np.int16))
            if self._recording.reply_audio and len(self._recording.reply_audio) == heard:
                quiet_since = quiet_since or time.perf_counter()
                if time.perf_counter() - quiet_since > 1.5:
                    break
            else:
                quiet_since = None
        return self._recording
