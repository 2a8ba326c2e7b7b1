"""Serve at once, and say what is loading, instead of a dead port for a minute.

Loading the models takes 20-90 s (minutes on a cold Space). `WarmingUp` is the
ASGI app uvicorn serves from the first second: it builds the real app in a thread,
answers the page with the start-up progress (refreshing itself) and every other
route with 503 + Retry-After, then hands everything to the real app, lifespan
included. A build that fails is shown on the page and the process exits non-zero,
so a supervisor (or a Space) restarts it.
"""
from __future__ import annotations

import asyncio
import html
import json
import logging
import os
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

log = logging.getLogger(__name__)

RETRY_AFTER_S = 3


class WarmingUp:
    def __init__(self, build: Callable[[Callable[[str], None]], Any], title: str = "CozyEngine"):
        self._build = build
        self._title = title
        self._started_at = time.monotonic()
        self._progress: list[str] = []
        self._app: Any = None
        self._failed: str | None = None
        self._lifespan = AsyncExitStack()

    def progress(self, line: str) -> None:
        log.info("starting: %s", line)
        self._progress.append(line)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._serve_lifespan(receive, send)
        elif self._app is not None:
            await self._app(scope, receive, send)
        elif scope["type"] == "http":
            await self._loading_page(scope, send)
        else:  # a websocket before we are up: refuse politely, "try again later"
            await send({"type": "websocket.close", "code": 1013, "reason": "starting up"})

    async def _serve_lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                asyncio.get_running_loop().create_task(self._start())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._lifespan.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _start(self) -> None:
        self.progress("loading models and starting tool servers")
        try:
            app = await asyncio.to_thread(self._build, self.progress)
            await self._lifespan.enter_async_context(app.router.lifespan_context(app))
        except BaseException as exc:  # noqa: BLE001 - shown, then the process exits for a restart
            log.exception("start-up failed")
            self._failed = str(exc) or type(exc).__name__
            await asyncio.sleep(5)  # long enough for a watching page to show why
            os._exit(3)
        self._app = app
        log.info("ready after %.1fs", time.monotonic() - self._started_at)

    async def _loading_page(self, scope: dict[str, Any], send: Any) -> None:
        elapsed = time.monotonic() - self._started_at
        status = "failed" if self._failed else "starting"
        wants_html = scope["path"] == "/" and b"text/html" in dict(scope.get("headers") or []).get(b"accept", b"")
        if wants_html:
            lines = "".join(f"<li>{html.escape(line)}</li>" for line in self._progress[-12:])
            problem = f"<p><b>Start-up failed:</b> {html.escape(self._failed)}</p>" if self._failed else ""
            body = (f"<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' "
                    f"content='{RETRY_AFTER_S}'><title>{self._title} is starting</title></head><body "
                    f"style='font-family:sans-serif;max-width:40em;margin:3em auto'><h1>{self._title} is "
                    f"starting…</h1><p>Loading the voice and language models ({elapsed:.0f}s so far). This page "
                    f"refreshes by itself.</p>{problem}<ul>{lines}</ul></body></html>").encode()
            content_type = b"text/html; charset=utf-8"
        else:
            body = json.dumps({"status": status, "elapsed_s": round(elapsed, 1), "progress": self._progress[-12:],
                               "error": self._failed}).encode()
            content_type = b"application/json"
        await send({"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", content_type), (b"retry-after", str(RETRY_AFTER_S).encode()),
            (b"cache-control", b"no-store"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
