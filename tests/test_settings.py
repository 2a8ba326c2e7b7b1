"""One Settings reads the environment; the parts are handed what they need."""
from __future__ import annotations

import pytest

from config import Settings, ToolSettings
from handlers.api.auth import AuthConfig
from handlers.api.rate_limit import RateLimits
from tools.config import load_config, with_state


def test_api_keys_admins_limits_and_the_voice_start_timeout_come_from_one_settings(monkeypatch):
    monkeypatch.setenv("COZY_API_KEYS", "k1=ada, k2")
    monkeypatch.setenv("COZY_ADMINS", "ada")
    monkeypatch.setenv("COZY_RATE_LIMIT_RPM", "7")
    monkeypatch.setenv("COZY_VOICE_START_TIMEOUT_S", "2.5")
    settings = Settings.from_env()
    auth = AuthConfig.from_settings(settings.api)
    assert auth.api_keys["k1"] == "ada" and auth.api_keys["k2"].startswith("key-") and auth.admins == {"ada"}
    assert RateLimits.from_settings(settings.api).requests_per_minute == 7
    assert settings.api.voice_start_timeout_s == 2.5
    assert "k1" not in repr(settings)  # keys never reach a log line that prints the settings


def test_a_bad_number_is_refused_naming_the_variable(monkeypatch):
    monkeypatch.setenv("COZY_RATE_LIMIT_RPM", "lots")
    with pytest.raises(ValueError, match="COZY_RATE_LIMIT_RPM"):
        Settings.from_env()


def test_tool_state_follows_the_data_dir_unless_the_environment_names_it(tmp_path, monkeypatch):
    config = with_state(load_config(), ToolSettings(), tmp_path)
    assert config.pins_path == tmp_path / "tools" / "pins.json" and config.log_dir == tmp_path / "tools" / "logs"
    notes = config.server_env(next(s for s in config.servers if s.name == "notes"))
    assert notes.env["COZY_NOTES_DB"] == str(tmp_path / "tools" / "notes.duckdb")  # each data dir its own notes
    monkeypatch.setenv("COZY_TOOLS_PINS_PATH", str(tmp_path / "elsewhere.json"))
    named = with_state(load_config(), Settings.from_env().tools, tmp_path)
    assert named.pins_path == tmp_path / "elsewhere.json" and named.log_dir == tmp_path / "tools" / "logs"
