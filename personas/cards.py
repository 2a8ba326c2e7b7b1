"""Persona cards: data in `personas/*.yaml`, validated on load.

A broken card is reported with its file and field and skipped, so one typo does
not take every other persona down. Cards are cached and re-read when a file changes.
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from providers.model_files import LOCAL_LLMS
from providers.moderation.base import OFF, POLICIES, STANDARD

log = logging.getLogger(__name__)


class PersonaError(ValueError):
    """A persona card that cannot be used; the message names the file and field."""


DEFAULT_REFUSAL = "I can't help with that. Let's talk about something else."


@dataclass(frozen=True)
class MemoryPolicy:
    remember: tuple[str, ...] = ("name", "preferences", "facts")
    retention_days: int = 365


@dataclass(frozen=True)
class TurnTaking:
    """`turn_taking:` on a card; None keeps the server's setting (config.VoiceSettings)."""

    end_of_turn: str | None = None  # smart (end-of-turn model) | silence (a fixed pause)
    threshold: float | None = None  # model probability that counts as finished
    fallback_silence_s: float | None = None  # smart: the silence that ends a turn anyway


END_OF_TURN_MODES = ("smart", "silence")
# `voices:` keys: the offline engines (the first one on the card speaks offline) and the vendors.
OFFLINE_VOICE_ENGINES = ("kokoro", "piper", "espeak")
VENDOR_VOICES = ("openai", "elevenlabs")
MODEL_VENDORS = ("openai", "groq")  # `model: vendor:model` (providers/chains.PersonaModels)
AUTO = "auto"  # language: detect the spoken language each turn and answer in it
_LANGUAGE_TAG = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{2,8})*")


@dataclass(frozen=True)
class Persona:
    id: str
    name: str
    system_prompt: str
    greeting: str
    language: str = "en"
    voices: dict[str, str] = field(default_factory=dict)  # TTS provider -> voice id
    temperature: float = 0.7
    max_reply_tokens: int = 200
    allowed_tools: tuple[str, ...] = ()
    memory: MemoryPolicy = MemoryPolicy()
    model: str | None = None  # a preferred LLM; None means the configured default
    moderation: str = STANDARD  # strict | standard | off (providers/moderation/base.py)
    refusal: str = DEFAULT_REFUSAL  # said instead of a flagged input's answer or a flagged sentence
    turn_taking: TurnTaking = TurnTaking()
    # How this persona answers, shown to the model: example exchanges (after the system prompt,
    # in the prompt's cached head) and a reminder given next to each turn's words.
    examples: tuple[tuple[str, str], ...] = ()  # (user, assistant)
    reply_style: str = ""

    def voice_for(self, provider: str) -> str | None:
        return self.voices.get(provider)

    @property
    def speech_voice(self) -> str | None:
        """This persona's voice for each TTS provider, as the chain takes it
        ("offline=kokoro:af_heart,openai=nova"); None: every provider's default."""
        entries = []
        offline = next(((engine, v) for engine, v in self.voices.items() if engine in OFFLINE_VOICE_ENGINES), None)
        if offline is not None:
            entries.append(f"offline={offline[0]}:{offline[1]}")
        entries += [f"{vendor}={v}" for vendor, v in self.voices.items() if vendor in VENDOR_VOICES]
        return ",".join(entries) or None

    @property
    def stt_language(self) -> str | None:
        """What speech recognition is told: None detects (language: auto)."""
        return None if self.language == AUTO else self.language


_REQUIRED_TEXT = ("id", "name", "system_prompt", "greeting")
# Spoken as is, so it is one short sentence or two.
MAX_REFUSAL_CHARS = 200


def _field(source: Path, data: dict[str, Any], key: str, kind: type, default: Any = None) -> Any:
    value = data.get(key, default)
    if value is None and default is None and key in _REQUIRED_TEXT:
        raise PersonaError(f"{source.name}: field '{key}' is required")
    if value is not None and kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if value is not None and not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise PersonaError(f"{source.name}: field '{key}' must be {kind.__name__}, got {type(value).__name__}")
    return value


def _turn_taking(source: Path, data: dict[str, Any]) -> TurnTaking:
    raw = _field(source, data, "turn_taking", dict, {})
    unknown = sorted(set(raw) - {"end_of_turn", "threshold", "fallback_silence_s"})
    if unknown:
        raise PersonaError(f"{source.name}: field 'turn_taking' has unknown key(s) {', '.join(unknown)}")
    mode = raw.get("end_of_turn")
    if mode is not None and mode not in END_OF_TURN_MODES:
        raise PersonaError(f"{source.name}: field 'turn_taking.end_of_turn' must be one of "
                           f"{', '.join(END_OF_TURN_MODES)}, got {mode!r}")
    numbers = {}
    for key, low, high in (("threshold", 0.0, 1.0), ("fallback_silence_s", 0.2, 5.0)):
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise PersonaError(f"{source.name}: field 'turn_taking.{key}' must be a number "
                               f"from {low} to {high}, got {value!r}")
        numbers[key] = float(value)
    return TurnTaking(end_of_turn=mode, **numbers)


MAX_EXAMPLES = 4
MAX_REPLY_STYLE_CHARS = 300


def _examples(source: Path, data: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    raw = _field(source, data, "examples", list, [])
    pairs = []
    for item in raw:
        if not (isinstance(item, dict) and set(item) == {"user", "assistant"}
                and all(isinstance(v, str) and v.strip() for v in item.values())):
            raise PersonaError(f"{source.name}: field 'examples' must be a list of {{user: ..., assistant: ...}}")
        pairs.append((item["user"].strip(), item["assistant"].strip()))
    if len(pairs) > MAX_EXAMPLES:
        raise PersonaError(f"{source.name}: field 'examples' may hold at most {MAX_EXAMPLES} exchanges")
    return tuple(pairs)


def _reply_style(source: Path, data: dict[str, Any]) -> str:
    style = " ".join(_field(source, data, "reply_style", str, "").split())
    if len(style) > MAX_REPLY_STYLE_CHARS:
        raise PersonaError(f"{source.name}: field 'reply_style' must be at most {MAX_REPLY_STYLE_CHARS} characters")
    return style


def _model(source: Path, data: dict[str, Any]) -> str | None:
    """`model:` is a local model's name or "vendor:model", or several, comma-separated, tried in order."""
    if data.get("model") is None:
        return None
    spec = _field(source, data, "model", str)
    entries = [e.strip() for e in spec.split(",") if e.strip()]
    if not entries:
        raise PersonaError(f"{source.name}: field 'model' is empty")
    for entry in entries:
        vendor, _, model = entry.partition(":")
        if model and vendor not in MODEL_VENDORS:
            raise PersonaError(f"{source.name}: field 'model' names an unknown vendor '{vendor}' "
                               f"(use {', '.join(MODEL_VENDORS)})")
        if not model and entry not in LOCAL_LLMS:
            raise PersonaError(f"{source.name}: field 'model' names an unknown local model '{entry}' "
                               f"(use {', '.join(LOCAL_LLMS)}, or vendor:model)")
    return ", ".join(entries)


def parse_card(source: Path, data: Any) -> Persona:
    if not isinstance(data, dict):
        raise PersonaError(f"{source.name}: a persona card must be a mapping of fields")
    known = {"id", "name", "system_prompt", "greeting", "language", "voices", "temperature", "examples",
             "reply_style",
             "max_reply_tokens", "allowed_tools", "memory", "model", "moderation", "refusal", "turn_taking"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PersonaError(f"{source.name}: unknown field(s) {', '.join(unknown)}")
    persona_id = _field(source, data, "id", str)
    if not persona_id.replace("-", "").replace("_", "").isalnum():
        raise PersonaError(f"{source.name}: field 'id' must be letters, digits, '-' or '_'")
    temperature = _field(source, data, "temperature", float, 0.7)
    if not 0.0 <= temperature <= 2.0:
        raise PersonaError(f"{source.name}: field 'temperature' must be between 0 and 2")
    max_tokens = _field(source, data, "max_reply_tokens", int, 200)
    if not 1 <= max_tokens <= 4096:
        raise PersonaError(f"{source.name}: field 'max_reply_tokens' must be between 1 and 4096")
    voices = _field(source, data, "voices", dict, {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in voices.items()):
        raise PersonaError(f"{source.name}: field 'voices' must map provider names to voice names")
    unknown_voices = sorted(set(voices) - {*OFFLINE_VOICE_ENGINES, *VENDOR_VOICES})
    if unknown_voices:
        raise PersonaError(f"{source.name}: field 'voices' has unknown provider(s) {', '.join(unknown_voices)}; "
                           f"use {', '.join((*OFFLINE_VOICE_ENGINES, *VENDOR_VOICES))}")
    language = _field(source, data, "language", str, "en")
    if language != AUTO and not _LANGUAGE_TAG.fullmatch(language):
        raise PersonaError(f"{source.name}: field 'language' must be a BCP-47 tag (en, zh-CN) or 'auto', "
                           f"got {language!r}")
    tools = _field(source, data, "allowed_tools", list, [])
    if not all(isinstance(t, str) for t in tools):
        raise PersonaError(f"{source.name}: field 'allowed_tools' must be a list of tool names")
    memory_data = _field(source, data, "memory", dict, {})
    remember = memory_data.get("remember", list(MemoryPolicy.remember))
    retention = memory_data.get("retention_days", MemoryPolicy.retention_days)
    if not isinstance(remember, list) or not isinstance(retention, int) or retention < 0:
        raise PersonaError(f"{source.name}: field 'memory' needs 'remember' (list) and "
                           "'retention_days' (whole number >= 0)")
    moderation = data.get("moderation", STANDARD)
    if moderation is False:  # YAML 1.1 reads a bare `off` as false: that is what the author wrote
        moderation = OFF
    if moderation not in POLICIES:
        raise PersonaError(f"{source.name}: field 'moderation' must be one of {', '.join(POLICIES)}, "
                           f"got {moderation!r}")
    refusal = " ".join(_field(source, data, "refusal", str, DEFAULT_REFUSAL).split())
    if not refusal or len(refusal) > MAX_REFUSAL_CHARS:
        raise PersonaError(f"{source.name}: field 'refusal' must be a short line "
                           f"(1 to {MAX_REFUSAL_CHARS} characters)")
    return Persona(
        id=persona_id,
        name=_field(source, data, "name", str),
        system_prompt=_field(source, data, "system_prompt", str).strip(),
        greeting=_field(source, data, "greeting", str).strip(),
        language=language,
        voices=dict(voices),
        temperature=temperature,
        max_reply_tokens=max_tokens,
        allowed_tools=tuple(tools),
        memory=MemoryPolicy(tuple(str(r) for r in remember), retention),
        model=_model(source, data),
        moderation=moderation,
        refusal=refusal,
        turn_taking=_turn_taking(source, data),
        examples=_examples(source, data),
        reply_style=_reply_style(source, data),
    )


def load_card(path: Path) -> Persona:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PersonaError(f"{path.name}: not valid YAML: {exc}") from exc
    return parse_card(path, data)


class PersonaCatalog:
    """The personas in a folder, re-read when any card file changes.

    On a public server (`public=True`) a card with `moderation: off` is refused
    like a broken one: strangers must not get an unmoderated persona.
    """

    def __init__(self, folder: Path, default_id: str, public: bool = False):
        self.folder = folder
        self.default_id = default_id
        self.public = public
        self._lock = threading.Lock()
        self.write_lock = threading.Lock()  # held by personas/editor.py while it changes a card
        self._stamp: tuple = ()
        self._personas: dict[str, Persona] = {}
        self._paths: dict[str, Path] = {}  # persona id -> its card file
        self.errors: list[str] = []

    def _current_stamp(self) -> tuple:
        return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                     for p in sorted(self.folder.glob("*.yaml")))

    def _refresh(self) -> None:
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return
        personas: dict[str, Persona] = {}
        paths: dict[str, Path] = {}
        errors: list[str] = []
        for path in sorted(self.folder.glob("*.yaml")):
            try:
                persona = load_card(path)
            except (PersonaError, OSError) as exc:
                errors.append(str(exc))
                continue
            if self.public and persona.moderation == OFF:
                errors.append(f"{path.name}: field 'moderation' is 'off', which a public server refuses; "
                              "set it to 'standard' or 'strict'")
                continue
            if persona.id in personas:
                errors.append(f"{path.name}: field 'id' repeats '{persona.id}' from another card")
                continue
            personas[persona.id] = persona
            paths[persona.id] = path
        for message in errors:
            log.error("persona card rejected: %s", message)
        self._personas, self._paths, self.errors, self._stamp = personas, paths, errors, stamp

    def all(self) -> list[Persona]:
        with self._lock:
            self._refresh()
            return list(self._personas.values())

    def get(self, persona_id: str | None) -> Persona:
        """The named persona; the default one when no name is given."""
        with self._lock:
            self._refresh()
            wanted = persona_id or self.default_id
            if wanted in self._personas:
                return self._personas[wanted]
            if persona_id is None and self._personas:
                return next(iter(self._personas.values()))
            known = ", ".join(sorted(self._personas)) or "none"
            raise PersonaError(f"unknown persona '{wanted}' (known: {known})")

    @property
    def deleted_folder(self) -> Path:
        """Where a deleted persona's card is kept: out of every list, still readable by id."""
        return self.folder / "deleted"

    def path_of(self, persona_id: str) -> Path | None:
        with self._lock:
            self._refresh()
            return self._paths.get(persona_id)

    def deleted(self, persona_id: str) -> Persona | None:
        """A deleted persona, for old conversations that name it (None if it never was)."""
        path = self.deleted_folder / f"{persona_id}.yaml"
        try:
            return load_card(path) if path.is_file() else None
        except (PersonaError, OSError):
            return None

    def refresh(self) -> None:
        """Read the folder again now (a card was just written)."""
        with self._lock:
            self._stamp = ()
            self._refresh()
