"""A local stand-in for Twilio's REST API, as far as placing a call goes.

`POST /2010-04-01/Accounts/{AccountSid}/Calls.json` with HTTP basic auth (account SID and
auth token) and a form (To, From, Url, Method), answering 201 with the call resource, or
Twilio's error JSON (401 for bad credentials, 400 for a missing field).
"""
from __future__ import annotations

import base64
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.fakes.loopback import LoopbackServer

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "fake-twilio-auth-token"


class FakeTwilio:
    def __init__(self):
        self.calls: list[dict[str, str]] = []
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = FastAPI()
        self.app.post("/2010-04-01/Accounts/{account_sid}/Calls.json")(self._create_call)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _create_call(self, account_sid: str, request: Request):
        expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        if account_sid != ACCOUNT_SID or request.headers.get("authorization") != expected:
            return JSONResponse({"code": 20003, "message": "Authenticate", "status": 401}, status_code=401)
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        for field in ("To", "From", "Url"):
            if not form.get(field):
                return JSONResponse({"code": 21201, "message": f"No '{field}' number is specified",
                                     "status": 400}, status_code=400)
        sid = "CA" + uuid.uuid4().hex
        self.calls.append({**form, "Sid": sid})
        return JSONResponse({"sid": sid, "account_sid": account_sid, "to": form["To"], "from": form["From"],
                             "status": "queued", "direction": "outbound-api"}, status_code=201)

    def __enter__(self) -> "FakeTwilio":
        self._loopback = LoopbackServer(self.app, "FakeTwilio").start()
        self.port = self._loopback.port
        return self

    def __exit__(self, *exc: object) -> None:
        self._loopback.stop()
