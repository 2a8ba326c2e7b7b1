"""What public mode's identity adds per request.

A real uvicorn server on 127.0.0.1 serves the same small routes twice: as a local
console (no cookie middleware, a fixed user) and in public mode (the signed
`cozy_visitor` cookie checked on `GET /`, the visitor resolved from the cookie,
and a voice token issued and verified). Requests alternate between the two, and
the medians are printed with their ratio. The work itself is two HMACs; what
matters is what it adds to a whole request.

    .venv/bin/python bench/public_identity_overhead.py [requests=400]
"""
from __future__ import annotations

import socket
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from handlers.visitors import COOKIE_NAME, BrowserIdentity, VisitorCookieMiddleware, VisitorCookies  # noqa: E402
from handlers.voice.identity import VoiceTokens  # noqa: E402

PAGE = "<!doctype html><title>x</title>" + "x" * 2000


def build(public: bool) -> FastAPI:
    secret = b"bench secret"
    browser = BrowserIdentity(VisitorCookies(secret)) if public else BrowserIdentity(None, "local")
    tokens = VoiceTokens(secret)
    app = FastAPI()

    @app.get("/")
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.get("/voice/token")
    async def token(request: Request) -> dict:
        user = browser.of(request)
        issued = tokens.issue(user)
        return {"token": issued, "user": tokens.verify(issued)}  # what a connection then checks

    if public:
        app.add_middleware(VisitorCookieMiddleware, cookies=browser.cookies)
    return app


def serve(app: FastAPI) -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}"


def main(requests: int) -> None:
    local, public = serve(build(False)), serve(build(True))
    with httpx.Client(timeout=10) as client:
        cookie = client.get(public + "/", headers={"accept": "text/html"}).cookies[COOKIE_NAME]
        jar = {"cookie": f"{COOKIE_NAME}={cookie}"}
        timings: dict[str, list[float]] = {k: [] for k in ("page local", "page public", "token local",
                                                           "token public")}
        for index in range(requests + 20):
            for label, url, headers in (("page local", local + "/", {}), ("page public", public + "/", jar),
                                        ("token local", local + "/voice/token", {}),
                                        ("token public", public + "/voice/token", jar)):
                started = time.perf_counter()
                response = client.get(url, headers={"accept": "text/html", **headers})
                elapsed = time.perf_counter() - started
                assert response.status_code == 200
                if index >= 20:  # the first requests warm both servers up
                    timings[label].append(elapsed)
    medians = {label: statistics.median(values) * 1000 for label, values in timings.items()}
    print(f"{requests} requests each, alternating, medians:")
    for route in ("page", "token"):
        base, public_ms = medians[f"{route} local"], medians[f"{route} public"]
        print(f"  {route:5s}  local {base:.3f} ms   public {public_ms:.3f} ms   "
              f"ratio {public_ms / base:.2f}x   (+{public_ms - base:.3f} ms)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
