"""Leave a load balancer's pool cleanly: on SIGTERM, refuse new work, finish what runs, then exit.

While draining, `/healthz` says 503 "draining" and every new request or websocket is
refused at once with 503 / close 1012 (service restart), before any work is done, so
the balancer (deploy/nginx.conf.template: `proxy_next_upstream http_503 non_idempotent`)
safely sends it to another replica. Requests already running and turns being spoken are
finished; then uvicorn's own shutdown closes the rest and the lifespan flushes the stores.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

# Streams that stay open for as long as a page is (Gradio's queue, voice outputs): waiting for
# them would never end, and uvicorn closes them at shutdown anyway.
ENDLESS = ("/gradio_api/queue/data", "/gradio_api/heartbeat", "/voice/outputs", "/gradio_api/stream")
UNGATED = ("/healthz", "/metrics")


class Drain:
    """ASGI wrapper outside everything (even the warming-up page)."""

    def __init__(self, app: Any, timeout_s: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 replica: str | None = None):
        self.app = app
        # Behind a balancer, each response says which replica made it (X-Served-By): what an
        # operator reading a client's report needs first.
        self._served_by = [(b"x-served-by", replica.encode())] if replica else []
        self.timeout_s = timeout_s
        self._clock = clock
        self.draining = False
        self.in_flight = 0  # HTTP requests that will finish by themselves
        self.busy: list[Callable[[], bool]] = []  # e.g. a voice turn still being spoken
        self._lock = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind, path = scope["type"], scope.get("path", "")
        if kind == "lifespan":
            return await self.app(scope, receive, send)
        if self.draining and not path.startswith(UNGATED):
            return await self._refuse(kind, send)
        if self.draining and path.startswith("/healthz"):
            return await _json(send, 503, {"status": "draining"})
        if kind == "http" and self._served_by:
            send = self._labelled(send)
        if kind != "http" or path.startswith(ENDLESS):
            return await self.app(scope, receive, send)
        with self._lock:
            self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _labelled(self, send: Any) -> Any:
        async def labelled(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self._served_by]}
            await send(message)
        return labelled

    async def _refuse(self, kind: str, send: Any) -> None:
        if kind == "websocket":
            await send({"type": "websocket.close", "code": 1012, "reason": "server restarting; reconnect"})
            return
        await _json(send, 503, {"error": {"message": "This server is restarting; please retry.",
                                          "type": "server_restarting", "code": "draining"}},
                    [(b"retry-after", b"1"), (b"connection", b"close")])

    def idle(self) -> bool:
        return self.in_flight == 0 and not any(check() for check in self.busy)

    def start(self, then: Callable[[], None]) -> None:
        """Begin draining; call `then` (the server's own exit) once idle or after the timeout."""
        if self.draining:
            return then()  # a second signal: stop waiting
        self.draining = True
        log.info("draining: refusing new work, finishing %d request(s) in flight", self.in_flight)

        def wait() -> None:
            deadline = self._clock() + self.timeout_s
            while not self.idle() and self._clock() < deadline:
                time.sleep(0.05)
            if not self.idle():
                log.warning("drain timed out after %.0fs with work in flight; exiting anyway", self.timeout_s)
            then()
        threading.Thread(target=wait, name="drain", daemon=True).start()


async def _json(send: Any, status: int, body: dict, headers: list | None = None) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
        (b"cache-control", b"no-store"), *(headers or [])]})
    await send({"type": "http.response.body", "body": data})


def draining_server(config: Any, drain: Drain) -> Any:
    """A uvicorn Server whose first SIGTERM drains instead of stopping at once (SIGINT still stops)."""
    import signal

    import uvicorn

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            if sig == signal.SIGTERM:
                drain.start(lambda: uvicorn.Server.handle_exit(self, sig, frame))
            else:
                super().handle_exit(sig, frame)

    return DrainingServer(config)
