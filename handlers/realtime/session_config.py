"""A Realtime session's settings: the defaults `session.created` shows, and `session.update`
checked field by field, so a bad value is an `error` naming it and changes nothing."""
from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from typing import Any

from handlers.realtime.audio_formats import PCM, RATES

MODALITIES = (["audio"], ["text"])  # GA: one or the other, never both
TURN_DETECTION_TYPES = ("server_vad", "semantic_vad")
EAGERNESS = ("low", "medium", "high", "auto")
MAX_INSTRUCTIONS_CHARS = 20_000
MAX_TOOLS = 64


class SessionError(ValueError):
    def __init__(self, param: str, message: str, code: str = "invalid_value"):
        super().__init__(message)
        self.param, self.message, self.code = param, message, code


def server_vad(**overrides: Any) -> dict[str, Any]:
    """OpenAI's server_vad defaults: 0.5 threshold, 300 ms padding, 500 ms silence."""
    return {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500,
            "create_response": True, "interrupt_response": True, "idle_timeout_ms": None, **overrides}


def semantic_vad(**overrides: Any) -> dict[str, Any]:
    return {"type": "semantic_vad", "eagerness": "auto", "create_response": True, "interrupt_response": True,
            **overrides}


@dataclass
class SessionConfig:
    persona_id: str
    instructions: str = ""  # the app's own, on top of the persona's card
    output_modalities: list[str] = field(default_factory=lambda: ["audio"])
    input_format: dict[str, Any] = field(default_factory=lambda: {"type": PCM, "rate": RATES[PCM]})
    output_format: dict[str, Any] = field(default_factory=lambda: {"type": PCM, "rate": RATES[PCM]})
    voice: str = "persona"  # the persona's own voice; a client may name an OpenAI voice or "engine:id"
    turn_detection: dict[str, Any] | None = field(default_factory=server_vad)
    transcription: dict[str, Any] | None = field(default_factory=lambda: {"model": "whisper-1"})
    tools: list[dict[str, Any]] = field(default_factory=list)  # the client's function tools
    tool_choice: str = "auto"
    max_output_tokens: int | str = "inf"
    id: str = field(default_factory=lambda: f"sess_{uuid.uuid4().hex[:24]}")

    def as_event_session(self) -> dict[str, Any]:
        """The session object of session.created / session.updated (GA shape)."""
        audio_in: dict[str, Any] = {"format": dict(self.input_format),
                                    "turn_detection": copy.deepcopy(self.turn_detection)}
        if self.transcription is not None:  # the spec has no null here: absent means off
            audio_in["transcription"] = copy.deepcopy(self.transcription)
        return {
            "type": "realtime", "object": "realtime.session", "id": self.id, "model": self.persona_id,
            "output_modalities": list(self.output_modalities), "instructions": self.instructions,
            "tools": copy.deepcopy(self.tools), "tool_choice": self.tool_choice,
            "max_output_tokens": self.max_output_tokens, "tracing": None, "prompt": None,
            "audio": {"input": audio_in,
                      "output": {"format": dict(self.output_format), "voice": self.voice, "speed": 1.0}},
        }

    @property
    def input_type(self) -> str:
        return self.input_format["type"]

    @property
    def output_type(self) -> str:
        return self.output_format["type"]

    def update(self, session: Any, persona_exists: Any) -> None:
        """Apply a session.update's `session`; all or nothing."""
        if not isinstance(session, dict):
            raise SessionError("session", "'session' must be an object.", "invalid_type")
        if session.get("type", "realtime") != "realtime":
            raise SessionError("session.type", "Only 'realtime' sessions are served here (not transcription).")
        changed = copy.deepcopy(self)
        for key, value in session.items():
            _FIELDS.get(key, _ignored)(changed, value, persona_exists)
        self.__dict__.update(changed.__dict__)


def _ignored(config: SessionConfig, value: Any, persona_exists: Any) -> None:
    """Fields we accept and have no use for (tracing, prompt, include, truncation...)."""


def _type(config: SessionConfig, value: Any, persona_exists: Any) -> None:
    pass  # checked before the fields


def _model(config: SessionConfig, value: Any, persona_exists: Any) -> None:
    if not isinstance(value, str) or not persona_exists(value):
        raise SessionError("session.model", f"The model '{value}' does not exist; GET /v1/models lists the "
                           "personas.", "model_not_found")
    config.persona_id = value


def _instructions(config: SessionConfig, value: Any, persona_exists: Any) -> None:
    if not isinstance(value, str) or len(value) > MAX_INSTRUCTIONS_CHARS:
        raise SessionError("session.instructions", f"'instructions' must be a string of at most "
                           f"{MAX_INSTRUCTIONS_CHARS} characters.", "invalid_type")
    config.instructions = value


def check_modalities(value: Any, param: str) -> list[str]:
    if value not in MODALITIES:
        raise SessionError(param, "'output_modalities' is [\"audio\"] or [\"text\"].")
    return list(value)


def _modalities(config: SessionConfig, value: Any, persona_exists: Any) -> None:
    config.output_modalities = check_modalities(value, "session.output_modalities")


def _format(value: Any, param: str) -> dict[str, Any]:
    if not isinstance(value, dict) or value.get("type") not in RATES:
        raise SessionError(param, f"'{param}' needs a type of {', '.join(RATES)}.")
    rate = value.get("rate", RATES[value["type"]])
    if rate != RATES[value["type"]]:
        raise SessionError(f"{param}.rate", f"{value['type']} is {RATES[value['type']]} Hz.")
    return {"type": value["type"], "rate": rate} if value["type"] == PCM else {"type": value["type"]}


def _turn_detection(value: Any, param: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") not in TURN_DETECTION_TYPES:
        raise SessionError(param, "'turn_detection' is null, or has a type of server_vad or semantic_vad.")
    checked = server_vad() if value["type"] == "server_vad" else semantic_vad()
    for key, given in value.items():
        if key == "type" or given is None:
            continue
        if key not in checked:
            raise SessionError(f"{param}.{key}", f"Unknown turn_detection field '{key}'.", "unknown_parameter")
        if key in ("create_response", "interrupt_response"):
            ok = isinstance(given, bool)
        elif key == "threshold":
            ok = isinstance(given, (int, float)) and not isinstance(given, bool) and 0.0 < given < 1.0
        elif key == "eagerness":
            ok = given in EAGERNESS
        else:  # milliseconds
            ok = isinstance(given, int) and not isinstance(given, bool) and 0 <= given <= 10_000
        if not ok:
            raise SessionError(f"{param}.{key}", f"'{key}' has a value out of range or of the wrong type.")
        checked[key] = given
    return checked


def _audio(config: SessionConfig, value: Any, persona_exists: Any) -> None:
    if not isinstance(value, dict):
        raise SessionError("session.audio", "'audio' must be an object.", "invalid_type")
    audio_in, audio_out = value.get("input") or {}, value.get("output") or {}
    if not isinstance(audio_in, dict) or not isinstance(audio_out, dict):
        raise SessionError("session.audio", "'audio.input' and 'audio.output' must be objects.", "invalid_type")
    if "format" in audio_in:
        config.input_format = _format(audio_in["format"], "session.audio.input.format")
    if "turn_detection" in audio_in:
        config.turn_detection = _turn_detection(audio_in["turn_detection"], "session.audio.input.turn_detection")
    if "transcription" in audio_in:
        transcription = audio_in["transcription"]
        if transcription is not None and not isinstance(transcription, dict):
            raise SessionError("session.audio.input.transcription", "'transcription' is null or an object.")
        language = (transcription or {}).get("language")
        if language is not None and language not in ("en", "zh", "zh-CN"):
            raise SessionError("session.audio.input.transcription.language",
                               "The offline transcription understands 'en' and 'zh'; leave it out to detect.")
        config.transcription = transcription
    if "format" in audio_out:
        config.output_format = _format(audio_out["format"], "session.audio.output.format")
    if "voice" in audio_out:
        voice = audio_out["voice"]
        voice = voice.get("id") if isinstance(voice, dict) else voice
        if not isinstance(voice, str) or not voice or len(voice) > 100:
            raise SessionError("session.audio.output.voice", "'voice' must be a voice name.")
        config.voice = voice


def check_tools(value: Any, param: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > MAX_TOOLS:
        raise SessionError(param, f"'tools' must be a list of at most {MAX_TOOLS} tools.", "invalid_type")
    tools = []
    for index, tool in enumerate(value):
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise SessionError(f"{param}[{index}]", "Only 'function' tools are served; the persona's own "
                               "tools run on the server.")
        name = tool.get("name")
        if not isinstance(name, str) or not name or len(name) > 64:
            raise SessionError(f"{param}[{index}].name", "A function tool needs a 'name'.")
        parameters = tool.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, dict):
            raise SessionError(f"{param}[{index}].parameters", "'parameters' must be a JSON schema object.")
        tools.append({"type": "function", "name": name, "description": str(tool.get("description") or ""),
                      "parameters": parameters})
    return tools


def _tools(config: SessionConfig, value: Any, persona_exists: Any) -> None:
    config.tools = check_tools(value, "session.tools")


def _tool_choice(config: SessionConfig, value: Any, persona_exists: Any) -> None:
    if value not in ("auto", "none", "required"):
        raise SessionError("session.tool_choice", "'tool_choice' is auto, none or required.")
    config.tool_choice = value


def check_max_tokens(value: Any, param: str) -> int | str:
    if value == "inf" or (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4096):
        return value
    raise SessionError(param, "'max_output_tokens' is 1 to 4096, or \"inf\".")


def _max_tokens(config: SessionConfig, value: Any, persona_exists: Any) -> None:
    config.max_output_tokens = check_max_tokens(value, "session.max_output_tokens")


_FIELDS = {"type": _type, "model": _model, "instructions": _instructions, "output_modalities": _modalities,
           "audio": _audio, "tools": _tools, "tool_choice": _tool_choice, "max_output_tokens": _max_tokens}
