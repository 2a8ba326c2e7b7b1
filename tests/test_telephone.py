"""Your own Twilio number: signed webhooks, one-time stream tokens, callers kept as a hash.

The app runs with TWILIO_AUTH_TOKEN set, so every webhook here is signed the way Twilio
signs it (the `twilio` package's RequestValidator). A Twilio-speaking client then opens
the media stream with the token the webhook's TwiML carried. fastphone is checked only
for what a user without a token sees: nothing in tests may reach the internet.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET

import duckdb
import httpx
import numpy as np
import pytest
import websockets
from twilio.request_validator import RequestValidator

from config import PhoneSettings
from handlers.phone.fastphone import NO_TOKEN
from handlers.phone.telephone import PhoneLine
from handlers.voice.websocket_guard import CLOSE_POLICY
from tests.clients.voice_ws import PhoneCallClient, espeak_clip
from tests.conftest import ROOT, start_app, stop_app
from tests.fakes.twilio_rest import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio

OUR_NUMBER = "+15559990000"
CALLER = "+15550001234"
CONCISE_NUMBER = "+15559990001"
INCOMING = "/voice/telephone/incoming"


@pytest.fixture(scope="module")
def phone_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phone-app")
    app = start_app(folder, {"COZY_DATA_DIR": str(folder / "data"), "COZY_LLM": "smollm2-135m",
                             "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "COZY_PHONE_PERSONAS": f"{CONCISE_NUMBER}=concise",
                             "COZY_PHONE": "fastphone", "HF_TOKEN": "", "HF_HOME": str(folder / "hf")})
    app.folder = folder
    yield app
    stop_app(app)


def call_form(called: str = "+15559990000", caller: str = CALLER) -> dict[str, str]:
    return {"CallSid": f"CA{uuid.uuid4().hex}", "AccountSid": "AC" + "0" * 32, "From": caller, "To": called}


def ring(app, form: dict[str, str], signed_for: str | None = None, headers: dict[str, str] | None = None):
    """Twilio's webhook request; signed for the URL Twilio called (`signed_for`), or unsigned."""
    headers = dict(headers or {})
    if signed_for is not None:
        headers["X-Twilio-Signature"] = RequestValidator(AUTH_TOKEN).compute_signature(signed_for, form)
    return httpx.post(app.base_url + INCOMING, data=form, headers=headers, timeout=10)


def stream_of(twiml: str) -> tuple[str, str]:
    stream = ET.fromstring(twiml).find("./Connect/Stream")
    assert stream is not None, twiml
    return stream.get("url"), {p.get("name"): p.get("value") for p in stream.findall("Parameter")}["cozy_token"]


def answered(app, called: str = "+15559990000") -> tuple[str, str]:
    response = ring(app, call_form(called), signed_for=app.base_url + INCOMING)
    assert response.status_code == 200, response.text
    return stream_of(response.text)


def test_a_webhook_without_a_good_signature_is_refused(phone_app):
    form = call_form()
    assert ring(phone_app, form).status_code == 403
    assert ring(phone_app, form, signed_for="http://elsewhere.example/voice/telephone/incoming").status_code == 403
    forged = ring(phone_app, form, signed_for=phone_app.base_url + INCOMING)
    forged_form = {**form, "From": "+15550009999"}  # the signature covers the form: changing it breaks it
    tampered = httpx.post(phone_app.base_url + INCOMING, data=forged_form, timeout=10,
                          headers={"X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(
                              phone_app.base_url + INCOMING, form)})
    assert forged.status_code == 200 and tampered.status_code == 403


def test_behind_a_proxy_the_signature_and_the_stream_url_use_the_public_address(phone_app):
    public = "https://voice.example.org"
    proxy = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "voice.example.org"}
    response = ring(phone_app, call_form(), signed_for=public + INCOMING, headers=proxy)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    url, token = stream_of(response.text)
    assert url == "wss://voice.example.org/voice/telephone/handler"  # wss, and no query string
    assert len(token) >= 32


async def open_stream(app, token: str | None) -> tuple[int | None, str]:
    """Twilio's opening frames with this token: the close code and reason when refused,
    (None, "pong") when the stream was taken (it answers a ping), then hangs up."""
    async with websockets.connect(app.base_url.replace("http", "ws", 1) + "/voice/telephone/handler") as ws:
        sid = uuid.uuid4().hex
        start = {"streamSid": sid, "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}
        if token is not None:
            start["customParameters"] = {"cozy_token": token}
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(json.dumps({"event": "start", "streamSid": sid, "start": start}))
        await ws.send(json.dumps({"event": "ping"}))
        try:
            while True:
                if json.loads(await asyncio.wait_for(ws.recv(), 10)).get("event") == "pong":
                    await ws.send(json.dumps({"event": "stop"}))
                    return None, "pong"
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code, closed.rcvd.reason


@pytest.mark.parametrize("token", [None, "", "made-up-token"])
def test_a_stream_without_a_token_from_the_webhook_is_refused(phone_app, token):
    code, reason = asyncio.run(open_stream(phone_app, token))
    assert code == CLOSE_POLICY and "token" in reason, reason


def test_a_stream_token_is_good_for_one_stream_only_and_the_next_call_is_served(phone_app):
    _, token = answered(phone_app)
    assert asyncio.run(open_stream(phone_app, token)) == (None, "pong")
    code, reason = asyncio.run(open_stream(phone_app, token))
    assert code == CLOSE_POLICY and "used already" in reason, reason
    _, fresh = answered(phone_app)
    assert asyncio.run(open_stream(phone_app, fresh)) == (None, "pong")


def test_fastphone_without_a_token_says_what_is_missing_and_the_app_serves(phone_app):
    log = phone_app.log_path.read_text(errors="replace")
    assert NO_TOKEN in log
    assert httpx.get(phone_app.base_url + "/healthz", timeout=5).status_code == 200


def place_call(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "handlers.phone.outbound_call", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_an_outbound_call_is_placed_through_twilio_and_its_stream_is_served(phone_app):
    callee = "+15557770000"
    with FakeTwilio() as twilio:
        env = {**os.environ, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
               "TWILIO_PHONE_NUMBER": OUR_NUMBER, "TWILIO_API_BASE": twilio.url,
               "COZY_PUBLIC_URL": phone_app.base_url}
        placed = place_call(env, callee, "--persona", "tutor")
        assert placed.returncode == 0, placed.stderr
        [call] = twilio.calls
        assert "call CA" in placed.stdout
        webhook = f"{phone_app.base_url}{INCOMING}?persona=tutor"
        assert (call["To"], call["From"], call["Url"], call["Method"]) == (callee, OUR_NUMBER, webhook, "POST")
        refused = place_call({**env, "TWILIO_AUTH_TOKEN": "wrong"}, callee)
        assert refused.returncode == 2 and "Twilio refused the call (401)" in refused.stderr
    # Answered, Twilio fetches the call's TwiML from that URL (signed), then opens the stream.
    form = {"CallSid": call["Sid"], "AccountSid": ACCOUNT_SID, "From": OUR_NUMBER, "To": callee,
            "Direction": "outbound-api"}
    response = httpx.post(webhook, data=form, timeout=10, headers={
        "X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(webhook, form)})
    assert response.status_code == 200, response.text
    _, token = stream_of(response.text)
    assert asyncio.run(open_stream(phone_app, token)) == (None, "pong")


def test_an_outbound_call_needs_its_settings_and_says_which_are_missing():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "COZY_PUBLIC_URL"))}
    missing = place_call(env, "+15557770000")
    assert missing.returncode == 2
    assert "needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_PHONE_NUMBER, COZY_PUBLIC_URL set" in missing.stderr


def test_the_person_on_the_line_is_the_same_identity_calling_in_or_called():
    line = PhoneLine(PhoneSettings(personas_by_number=((OUR_NUMBER, "concise"),)), b"k" * 32, "companion",
                     frozenset({"companion", "concise", "tutor"}))
    calling_in = line.caller_of({"From": CALLER, "To": OUR_NUMBER, "CallSid": "CA1"})
    called = line.caller_of({"From": OUR_NUMBER, "To": CALLER, "CallSid": "CA2", "Direction": "outbound-api"},
                            "tutor")
    stranger = line.caller_of({"From": "+15550005555", "To": "+15550000000", "CallSid": "CA3"}, "no-such-persona")
    withheld = [line.caller_of({"From": "anonymous", "To": OUR_NUMBER, "CallSid": sid}) for sid in ("CA4", "CA5")]
    assert calling_in.user_id == called.user_id and CALLER not in calling_in.user_id
    assert (calling_in.persona_id, called.persona_id, stranger.persona_id) == ("concise", "tutor", "companion")
    assert stranger.user_id != calling_in.user_id
    assert withheld[0].user_id != withheld[1].user_id  # a withheld number is nobody's: one call each


def test_a_call_is_answered_by_voice_and_its_caller_is_only_a_hash(phone_app):
    speech = espeak_clip("what is the capital of France", sample_rate=8_000)

    async def call():
        url, token = answered(phone_app, called=CONCISE_NUMBER)
        client = PhoneCallClient(phone_app.base_url, token=token)
        client.ws_url = url
        async with client:
            return await client.call_and_listen(speech, listen_s=60)

    turn = asyncio.run(call())
    assert turn.audio.size > 0.5 * 8_000 and np.sqrt(np.mean(turn.audio.astype(float) ** 2)) > 100, \
        phone_app.log_tail()
    digits = CALLER.lstrip("+")
    assert digits not in phone_app.log_path.read_text(errors="replace")  # the number is never logged
    # What was stored belongs to the caller's hash, with the persona of the number called.
    # Read once the app has stopped: DuckDB holds the file while it runs (so this test is last).
    stop_app(phone_app)
    database = next(phone_app.folder.glob("data/*.duckdb"))
    with duckdb.connect(str(database), read_only=True) as db:
        sessions = db.execute("SELECT DISTINCT user_id, persona_id FROM sessions").fetchall()
    assert len(sessions) == 1 and sessions[0][1] == "concise", sessions
    assert re.fullmatch(r"phone:[0-9a-f]{32}", sessions[0][0]), sessions
    assert digits.encode() not in database.read_bytes()
