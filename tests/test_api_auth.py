"""Who may call the API, and how much: tokens, users, isolation, rate limits, bind safety.

One app instance with API keys, a JWT secret and low limits, driven over real HTTP
by the official `openai` SDK (and plain httpx where the SDK cannot say it: no
token, another auth scheme). Each limit test spends its own user's budget, so the
tests do not depend on their order.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import wave

import httpx
import jsonschema
import jwt
import numpy as np
import openai
import pytest

from handlers.api.auth import AuthConfig, check_bind_address
from tests.conftest import ROOT, free_port, start_app, stop_app
from tests.fakes.openapi import component_validator

pytestmark = pytest.mark.storage  # also run on PostgreSQL (make test)

JWT_SECRET = "cozy-test-secret-at-least-32-bytes-long"
KEYS = {"alice-key": "alice", "bob-key": "bob", "carol-key": "carol", "dave-key": "dave",
        "erin-key": "erin", "frank-key": "frank"}
REQUESTS_PER_MINUTE = 6
AUDIO_SECONDS_PER_MINUTE = 4
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def secured_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("secured-app")
    app = start_app(folder, {
        "COZY_API_KEYS": ",".join(f"{key}={user}" for key, user in KEYS.items()),
        "COZY_JWT_SECRET": JWT_SECRET,
        "COZY_RATE_LIMIT_RPM": str(REQUESTS_PER_MINUTE),
        "COZY_RATE_LIMIT_AUDIO_SECONDS": str(AUDIO_SECONDS_PER_MINUTE),
        "COZY_LLM": "smollm2-135m", "COZY_DATA_DIR": str(folder / "data")})
    yield app
    stop_app(app)


@pytest.fixture(scope="module")
def openai_error():
    """OpenAI's own schema of an error body: the oracle for ours."""
    return component_validator("ErrorResponse", jsonschema)


def sdk(app, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{app.base_url}/v1", api_key=token, max_retries=0,
                         _strict_response_validation=True, timeout=60)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def a_jwt(sub: str | None, expires_in_s: float = 300, secret: str = JWT_SECRET, **extra) -> str:
    claims = {"exp": int(time.time() + expires_in_s), **extra}
    if sub is not None:
        claims["sub"] = sub
    return jwt.encode(claims, secret, algorithm="HS256")


def assert_openai_error(response: httpx.Response, status: int, validator) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    validator.validate(body)
    return body["error"]


# --- who is calling ------------------------------------------------------------------------


def test_no_token_is_a_401_in_openai_shape(secured_app, openai_error):
    response = httpx.get(f"{secured_app.base_url}/v1/models")
    error = assert_openai_error(response, 401, openai_error)
    assert response.headers["www-authenticate"] == "Bearer"
    assert error["code"] == "invalid_api_key" and "Authorization: Bearer" in error["message"]


BAD_TOKENS = {
    "unknown key": "Bearer not-a-key",
    "other scheme": "Basic YWxpY2U6c2VjcmV0",
    "bearer without a token": "Bearer",
    "jwt signed with another secret": f"Bearer {a_jwt('alice', secret='another-secret-that-is-also-32-bytes')}",
    "jwt without sub": f"Bearer {a_jwt(None)}",
    "jwt with alg none": "Bearer " + jwt.encode({"sub": "alice"}, None, algorithm="none"),
}


@pytest.mark.parametrize("authorization", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
def test_a_wrong_token_is_a_401(secured_app, openai_error, authorization):
    response = httpx.get(f"{secured_app.base_url}/v1/chat/sessions", headers={"Authorization": authorization})
    assert_openai_error(response, 401, openai_error)
    assert response.headers["www-authenticate"] == "Bearer"


def test_the_sdk_sees_a_wrong_key_as_an_authentication_error(secured_app):
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(secured_app, "sk-wrong").chat.completions.create(model="concise", messages=HELLO, max_tokens=4)
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"


def test_an_expired_jwt_is_a_401_that_says_so(secured_app):
    with pytest.raises(openai.AuthenticationError) as caught:
        sdk(secured_app, a_jwt("alice", expires_in_s=-30)).models.list()
    assert "expired" in caught.value.body["message"]
    assert caught.value.response.headers["www-authenticate"] == "Bearer"


def test_a_jwt_sub_is_the_user(secured_app):
    # A session made with a JWT for "zoe" belongs to zoe, and to nobody else.
    zoe = sdk(secured_app, a_jwt("zoe"))
    raw = zoe.chat.completions.with_raw_response.create(model="concise", messages=HELLO, max_tokens=4)
    session_id = raw.headers["x-session-id"]
    assert raw.parse().choices[0].message.content is not None
    url = f"{secured_app.base_url}/v1/chat/sessions/{session_id}"
    assert httpx.get(url, headers=bearer(a_jwt("zoe"))).status_code == 200  # a fresh token, the same user
    assert httpx.get(url, headers=bearer("alice-key")).status_code == 404
    assert httpx.get(url, headers=bearer(a_jwt("zoey"))).status_code == 404
    # The same name by key or by JWT is the same user.
    created = httpx.post(f"{secured_app.base_url}/v1/chat/sessions", json={}, headers=bearer("frank-key")).json()
    listed = httpx.get(f"{secured_app.base_url}/v1/chat/sessions", headers=bearer(a_jwt("frank"))).json()
    assert created["id"] in {s["id"] for s in listed["data"]}


# --- one user's data is invisible to another ------------------------------------------------


def test_bob_cannot_see_read_or_delete_alices_session(secured_app, openai_error):
    base = secured_app.base_url
    alice, bob = bearer("alice-key"), bearer("bob-key")
    session = httpx.post(f"{base}/v1/chat/sessions", json={"persona_id": "concise", "title": "private"},
                         headers=alice).json()
    mine, missing = f"{base}/v1/chat/sessions/{session['id']}", f"{base}/v1/chat/sessions/{'0' * 32}"

    assert session["id"] not in {s["id"] for s in httpx.get(f"{base}/v1/chat/sessions", headers=bob).json()["data"]}
    for method, suffix in (("GET", ""), ("GET", "/messages"), ("DELETE", "")):
        hers = httpx.request(method, mine + suffix, headers=bob)
        nobodys = httpx.request(method, missing + suffix, headers=bob)
        # Exactly what a session that does not exist gets: nothing tells bob it is there.
        assert (hers.status_code, assert_openai_error(hers, 404, openai_error)["code"]) == \
               (nobodys.status_code, nobodys.json()["error"]["code"]) == (404, "session_not_found")
    with pytest.raises(openai.NotFoundError) as caught:
        sdk(secured_app, "bob-key").chat.completions.create(
            model="concise", messages=HELLO, max_tokens=4, extra_headers={"X-Session-Id": session["id"]})
    assert caught.value.code == "session_not_found"

    assert httpx.get(mine, headers=alice).json()["title"] == "private"  # bob's delete did nothing
    assert httpx.delete(mine, headers=alice).json()["deleted"] is True
    assert httpx.get(mine, headers=alice).status_code == 404


# --- rate limits -------------------------------------------------------------------------------


def test_a_user_over_the_request_limit_gets_a_429_and_others_do_not(secured_app, openai_error):
    base, carol = secured_app.base_url, bearer("carol-key")
    for _ in range(REQUESTS_PER_MINUTE):
        assert httpx.post(f"{base}/v1/chat/sessions", json={}, headers=carol).status_code == 200
    limited = httpx.post(f"{base}/v1/chat/sessions", json={}, headers=carol)
    error = assert_openai_error(limited, 429, openai_error)
    assert error["code"] == "rate_limit_exceeded"
    # The bucket refills one request every 60/6 = 10 s.
    assert 1 <= int(limited.headers["retry-after"]) <= 60 / REQUESTS_PER_MINUTE

    with pytest.raises(openai.RateLimitError) as caught:  # what an SDK user sees
        sdk(secured_app, "carol-key").chat.completions.create(model="concise", messages=HELLO, max_tokens=4)
    assert int(caught.value.response.headers["retry-after"]) >= 1

    reply = sdk(secured_app, "dave-key").chat.completions.create(model="concise", messages=HELLO, max_tokens=4)
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert httpx.get(f"{base}/v1/chat/sessions", headers=carol).status_code == 200  # reads are not limited


def tone_wav(seconds: float, sample_rate: int = 16_000) -> bytes:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    samples = (0.2 * 32767 * np.sin(2 * np.pi * 220 * t)).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(samples.tobytes())
    return buffer.getvalue()


def test_audio_seconds_are_limited_per_user(secured_app):
    erin = sdk(secured_app, "erin-key")
    clip = ("tone.wav", tone_wav(2.5), "audio/wav")
    started = time.monotonic()
    erin.audio.transcriptions.create(model="whisper-1", file=clip)  # 2.5 of 4 seconds a minute
    with pytest.raises(openai.RateLimitError) as caught:
        erin.audio.transcriptions.create(model="whisper-1", file=clip)
    # 1.5 s left, 2.5 s wanted, refilling at 4/60 s per second: 15 s to wait, less whatever
    # refilled while the first clip was transcribed (slow on a busy machine).
    elapsed = time.monotonic() - started
    assert max(1, 14 - elapsed) <= int(caught.value.response.headers["retry-after"]) <= 16
    assert caught.value.code == "rate_limit_exceeded"

    # More than a whole minute's allowance can never fit: no retry-after that would be a lie.
    with pytest.raises(openai.APIStatusError) as caught:
        sdk(secured_app, "dave-key").audio.transcriptions.create(
            model="whisper-1", file=("long.wav", tone_wav(AUDIO_SECONDS_PER_MINUTE + 1), "audio/wav"))
    assert caught.value.status_code == 413 and caught.value.param == "file"
    assert "retry-after" not in caught.value.response.headers

    text = sdk(secured_app, "dave-key").audio.transcriptions.create(model="whisper-1", file=clip).text
    assert isinstance(text, str)  # another user still has their own allowance


# --- never exposed without auth -----------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.com"])
def test_the_bind_check_refuses_a_public_address_without_auth(host):
    with pytest.raises(SystemExit, match="without authentication"):
        check_bind_address(host, AuthConfig())
    check_bind_address(host, AuthConfig(api_keys={"k": "u"}))  # with auth it may listen anywhere
    check_bind_address(host, AuthConfig(jwt_secret=JWT_SECRET))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "localhost"])
def test_the_bind_check_allows_loopback_without_auth(host):
    check_bind_address(host, AuthConfig())


def test_app_refuses_to_listen_on_all_interfaces_without_auth(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("COZY_API_KEYS", "COZY_JWT_SECRET")}
    env.update({"COZY_HOST": "0.0.0.0", "COZY_PORT": str(free_port()), "COZY_LLM": "smollm2-135m",
                "COZY_DATA_DIR": str(tmp_path / "data")})
    try:
        finished = subprocess.run([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env,
                                  capture_output=True, text=True, check=False, timeout=120)
    except subprocess.TimeoutExpired:  # it loaded models and listened: the very thing refused
        pytest.fail("app.py kept running on 0.0.0.0 without authentication")
    assert finished.returncode != 0
    assert "Refusing to listen on 0.0.0.0 without authentication" in finished.stderr
    assert "COZY_API_KEYS" in finished.stderr
    assert not (tmp_path / "data").exists()  # refused before touching anything
