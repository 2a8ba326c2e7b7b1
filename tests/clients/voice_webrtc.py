"""A real WebRTC peer (aiortc) for the mounted `/voice/webrtc/offer` route."""
from __future__ import annotations

import asyncio
import json
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError

LEAD_IN_SAMPLES = 4800  # silence before the speech, at 16 kHz


class _TimedTrack(MediaStreamTrack):
    """The player's audio, noting when the frame holding the speech's last sample goes out."""

    kind = "audio"

    def __init__(self, source: MediaStreamTrack, speech_ends_s: float, sent_at: list[float]):
        super().__init__()
        self.source, self.speech_ends_s, self.sent_at = source, speech_ends_s, sent_at

    async def recv(self):
        frame = await self.source.recv()
        if not self.sent_at and frame.pts is not None and (frame.pts + frame.samples) * frame.time_base >= \
                self.speech_ends_s:
            self.sent_at.append(time.perf_counter())
        return frame

    def stop(self) -> None:
        # The player's decoding thread ends only when its own track stops: left running, it
        # hands frames to the closed event loop and prints a traceback after every call.
        super().stop()
        self.source.stop()


async def webrtc_turn(base_url: str, speech_16k: np.ndarray, trailing_silence_s: float = 8.0,
                      listen_s: float = 20.0) -> dict:
    """Play `speech` (then silence) into a WebRTC call; return what came back.

    The result has `audio` (mono int16 at 48 kHz, as Opus decodes it), the data
    channel `messages`, the server-sent `events` (transcripts), and perf_counter times:
    `speech_ended_at` (the speech's last frame sent) and `first_audio_at`.
    """
    webrtc_id = uuid.uuid4().hex
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "turn.wav"
        padded = np.concatenate([np.zeros(LEAD_IN_SAMPLES, np.int16), speech_16k,
                                 np.zeros(int(16_000 * trailing_silence_s), np.int16)])
        sf.write(wav, padded, 16_000, subtype="PCM_16")
        player = MediaPlayer(str(wav))
        pc = RTCPeerConnection()
        channel = pc.createDataChannel("text")
        messages: list[dict] = []
        received: list[np.ndarray] = []
        events: list[dict] = []
        first_audio_at: list[float] = []

        @channel.on("message")
        def on_message(message: str) -> None:
            messages.append(json.loads(message))

        async def record(track) -> None:
            while True:
                try:
                    frame = await track.recv()
                except MediaStreamError:
                    return
                samples = frame.to_ndarray().reshape(-1, len(frame.layout.channels)).mean(axis=1)
                if np.abs(samples).max() > 0 and not first_audio_at:
                    first_audio_at.append(time.perf_counter())
                received.append(samples.astype(np.int16))

        recorders: list[asyncio.Task] = []

        @pc.on("track")
        def on_track(track) -> None:
            recorders.append(asyncio.ensure_future(record(track)))

        speech_sent_at: list[float] = []
        pc.addTrack(_TimedTrack(player.audio, (LEAD_IN_SAMPLES + len(speech_16k)) / 16_000, speech_sent_at))
        await pc.setLocalDescription(await pc.createOffer())
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            answer = (await client.post("/voice/webrtc/offer", json={
                "sdp": pc.localDescription.sdp, "type": pc.localDescription.type,
                "webrtc_id": webrtc_id})).json()
            if "sdp" not in answer:
                raise RuntimeError(f"offer refused: {answer}")
            await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))

            async def read_events() -> None:
                async with client.stream("GET", "/voice/outputs", params={"webrtc_id": webrtc_id},
                                         timeout=None) as response:
                    async for line in response.aiter_lines():
                        if line.startswith("data: "):
                            events.append(json.loads(line[6:]))

            started = time.perf_counter()
            reader = asyncio.ensure_future(read_events())
            deadline = started + listen_s
            while time.perf_counter() < deadline:
                await asyncio.sleep(0.25)
                if events and "turn_s" in events[-1]["turn"].get("stages_s", {}):
                    await asyncio.sleep(1.0)  # let the last audio frames arrive
                    break
            reader.cancel()
        for task in recorders:
            task.cancel()
        await pc.close()
    audio = np.concatenate(received) if received else np.zeros(0, np.int16)
    return {"audio": audio, "messages": messages, "events": events,
            "first_audio_at": first_audio_at[0] if first_audio_at else None,
            "speech_ended_at": speech_sent_at[0] if speech_sent_at else None}
