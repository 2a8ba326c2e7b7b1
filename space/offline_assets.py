"""The page works with no internet: nothing it loads comes from another server.

Stock, a visitor's browser fetches three things from elsewhere: Gradio's iframe
resizer from cdnjs (only useful when embedded, and Gradio turns its resizing off
anyway), preconnects to Google Fonts (our theme uses system fonts instead), and
FastRTC's "connected" sound from huggingface.co. Offline these fail with console
errors, and online they tell third parties who visits. This middleware drops the
first two from the page and points the sound at a chime we synthesise ourselves.
"""
from __future__ import annotations

import io
import re
import wave
from functools import lru_cache
from typing import Any

import numpy as np

from providers.pcm import float_to_int16

SOUND_PATH = "/voice/sounds/connected.wav"
_FASTRTC_SOUND = b"https://huggingface.co/datasets/freddyaboulton/bucket/resolve/main/pop-sounds.mp3"
_EXTERNAL_IN_PAGE = re.compile(
    rb'<script\s+src="https://cdnjs\.cloudflare\.com/[^"]*"[^>]*>\s*</script>'
    rb'|<link\s+rel="preconnect"\s+href="https://fonts\.(?:googleapis|gstatic)\.com"[^>]*/?>', re.S)
MAX_REWRITE_BYTES = 8_000_000  # the page and component bundles; nothing else is touched


@lru_cache(maxsize=1)
def connected_chime() -> bytes:
    """Two soft rising notes, 0.25 s: what FastRTC plays when a call connects."""
    rate = 24_000
    notes = []
    for frequency in (660.0, 880.0):
        t = np.arange(int(rate * 0.12)) / rate
        envelope = np.sin(np.pi * t / t[-1]) ** 2
        notes.append(0.25 * envelope * np.sin(2 * np.pi * frequency * t))
    samples = float_to_int16(np.concatenate(notes))
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def rewrite(body: bytes) -> bytes:
    return _EXTERNAL_IN_PAGE.sub(b"", body).replace(_FASTRTC_SOUND, SOUND_PATH.encode())


class OfflinePageMiddleware:
    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        if scope["path"] == SOUND_PATH:
            body = connected_chime()
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"audio/wav"), (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"public, max-age=86400")]})
            await send({"type": "http.response.body", "body": body})
            return
        if not (scope["path"] == "/" or scope["path"].endswith(".js")):
            await self.app(scope, receive, send)
            return
        await self._rewritten(scope, receive, send)

    async def _rewritten(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []
        passing = False  # not ours to rewrite (compressed, or too big): stream it through

        async def capture(message: dict[str, Any]) -> None:
            nonlocal start, passing
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                kind = headers.get(b"content-type", b"")
                passing = b"content-encoding" in headers or not (b"html" in kind or b"javascript" in kind)
                if passing:
                    await send(message)
                else:
                    start = message
                return
            if passing:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if sum(map(len, chunks)) > MAX_REWRITE_BYTES:
                passing = True
                await send(start)
                await send({"type": "http.response.body", "body": b"".join(chunks),
                            "more_body": message.get("more_body", False)})
                return
            if not message.get("more_body", False):
                body = rewrite(b"".join(chunks))
                headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
                headers.append((b"content-length", str(len(body)).encode()))
                await send({**start, "headers": headers})
                await send({"type": "http.response.body", "body": body})

        # Uncompressed, so it can be rewritten (these are loaded once and cached).
        headers = [(k, v) for k, v in scope.get("headers") or [] if k != b"accept-encoding"]
        await self.app({**scope, "headers": headers}, receive, capture)
