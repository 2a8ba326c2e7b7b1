"""Public mode's parts on their own: who a visitor is, what one visitor may use, and how
a public server starts (or says clearly why it cannot)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from config import Settings, VisitorLimits
from handlers.api.auth import AuthConfig, Authenticator, check_bind_address
from handlers.api.errors import ApiError
from handlers.visitor_limits import LimitReached, VisitorLimiter
from handlers.visitors import VisitorCookies
from handlers.voice.identity import VoiceIdentities, VoiceTokens
from tests.conftest import ROOT

pytestmark = pytest.mark.storage  # also run on PostgreSQL (make test)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_visitor_cookie_names_one_identity_and_nothing_else_passes():
    cookies = VisitorCookies(b"server secret")
    visitor, value = cookies.issue()
    assert visitor.startswith("visitor:") and cookies.identity(value) == visitor
    other_visitor, other_value = cookies.issue()
    assert other_visitor != visitor
    version, visitor_id, signature = value.split(".")
    for forged in (f"{version}.{other_value.split('.')[1]}.{signature}",  # someone else's id, my signature
                   f"{version}.{visitor_id}.{'0' * len(signature)}", value + "x", "x" * 5000, "", None,
                   f"v2.{visitor_id}.{signature}"):
        assert cookies.identity(forged) is None
    assert VisitorCookies(b"another server").identity(value) is None


def test_messages_per_minute_are_counted_per_visitor_and_come_back():
    clock = Clock()
    limiter = VisitorLimiter(VisitorLimits(messages_per_minute=3), clock)
    for _ in range(3):
        limiter.message("visitor:a")
    with pytest.raises(LimitReached, match="3 messages in the last minute. Please wait 60 seconds"):
        limiter.message("visitor:a")
    limiter.message("visitor:b")  # another visitor is not held back
    clock.now += 60
    limiter.message("visitor:a")


def test_voice_minutes_and_open_connections_are_limited_per_visitor():
    clock = Clock()
    limiter = VisitorLimiter(VisitorLimits(voice_minutes_per_hour=10, voice_connections=1), clock)
    identities = VoiceIdentities(VoiceTokens(b"secret"), limiter)
    identities.bind_user("call-1", "visitor:a")
    identities.bind_user("call-1", "visitor:a")  # the page re-sends its inputs: same binding
    with pytest.raises(LimitReached, match="already have a voice connection"):
        identities.bind_user("call-2", "visitor:a")
    identities.bind_user("call-3", "visitor:b")
    clock.now += 9 * 60
    identities.check_turn("visitor:a")
    clock.now += 60  # ten minutes on the line: the next reply is refused, in words
    with pytest.raises(LimitReached, match="used your 10 voice minutes for this hour. You can still type"):
        identities.check_turn("visitor:a")
    identities.forget("call-1")
    with pytest.raises(LimitReached, match="voice minutes"):
        identities.bind_user("call-4", "visitor:a")
    assert limiter.voice_minutes_used("visitor:b") == pytest.approx(10)
    clock.now += 3600
    identities.bind_user("call-5", "visitor:a")  # an hour later the minutes are back


def test_a_space_listens_on_every_interface_at_its_port_in_public_mode(monkeypatch):
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("PORT", "7861")
    monkeypatch.delenv("COZY_HOST", raising=False)
    monkeypatch.delenv("COZY_PORT", raising=False)
    settings = Settings.from_env()
    assert (settings.host, settings.port, settings.public) == ("0.0.0.0", 7861, True)
    monkeypatch.delenv("PORT")
    assert Settings.from_env().port == 7860
    check_bind_address("0.0.0.0", AuthConfig(), public=True)  # public mode may bind beyond loopback
    with pytest.raises(SystemExit, match="COZY_PUBLIC"):
        check_bind_address("0.0.0.0", AuthConfig())


def test_a_public_api_without_keys_answers_no_one():
    with pytest.raises(ApiError) as refused:
        Authenticator(AuthConfig(), public=True).user_for(None)
    assert refused.value.status == 401 and "public server" in str(refused.value)
    assert Authenticator(AuthConfig()).user_for(None) == "local"


def test_a_public_server_without_a_secret_and_an_unwritable_data_dir_says_why(tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    result = subprocess.run([sys.executable, str(ROOT / "app.py")], cwd=ROOT, capture_output=True, text=True,
                            timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "COZY_PUBLIC": "1",
                                              "COZY_DATA_DIR": str(blocked / "data"), "COZY_PORT": "1"})
    assert result.returncode != 0
    assert "signing key" in result.stderr and "set COZY_SECRET" in result.stderr
    assert "Traceback" not in result.stderr  # a sentence, not a stack


def test_webrtc_gets_our_turn_server_or_hugging_faces_or_none():
    from config import TurnServerSettings
    from handlers.voice.ice_servers import rtc_configuration

    ours = rtc_configuration(TurnServerSettings(("turn:turn.example.org:3478", "turns:turn.example.org:5349"),
                                                "cozy", "s3cret"))
    assert ours == {"iceServers": [{"urls": ["turn:turn.example.org:3478", "turns:turn.example.org:5349"],
                                    "username": "cozy", "credential": "s3cret"}]}
    hf = rtc_configuration(TurnServerSettings(hf_token="hf_test"))
    assert callable(hf)  # fresh, short-lived credentials per connection (fetched only then)
    assert rtc_configuration(TurnServerSettings()) is None  # the page then says voice may not connect
