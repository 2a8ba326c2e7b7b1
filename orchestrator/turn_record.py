"""One record per turn: who served each stage, how long it took, what it used.

The record is built as the turn runs, by whoever runs each stage (the voice
channel: endpointing, speech recognition, speech synthesis; the orchestrator:
context engines, model calls, tools), and travels with the turn to the stored
message and the metrics. It is the same type for every channel. Nothing in it
is read back from a shared object, so two conversations at once each get their own.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any

from providers.call_log import CallLog, FailedAttempt


@dataclass
class Stage:
    # endpointing | stt | context | context_<engine> | moderation | llm_first_token | llm | tool
    # | tts_first_audio | tts | first_audio | turn
    name: str
    seconds: float
    provider: str = ""
    model: str = ""
    fallbacks: list[FailedAttempt] = field(default_factory=list)  # tried first, and why they did not serve
    outcome: str = "ok"  # ok | timeout | failed | interrupted | flagged
    detail: str = ""  # a tool call: the tool's name
    tokens_in: int | None = None
    tokens_out: int | None = None
    audio_in_s: float | None = None
    audio_out_s: float | None = None
    characters: int | None = None
    cost_usd: float = 0.0  # priced later, from a price table; 0 until then
    ended_at: float = field(default_factory=time.time)  # wall clock; a stage is added as it ends (traces)

    def served_by(self, log: CallLog) -> "Stage":
        self.provider, self.model = log.provider or "", log.model or ""
        self.fallbacks = list(log.fallbacks)
        return self

    def as_dict(self) -> dict[str, Any]:
        """The facts this stage has (empty ones left out), as JSON can hold them."""
        data: dict[str, Any] = {"name": self.name, "seconds": round(self.seconds, 4)}
        for key in _FACTS:
            value = getattr(self, key)
            if value is not None and value != "":
                data[key] = value
        if self.fallbacks:
            data["fallbacks"] = [{"provider": f.provider, "reason": f.reason, "kind": f.kind} for f in self.fallbacks]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Stage":
        known = {f.name for f in fields(cls)}
        stage = cls(**{k: v for k, v in data.items() if k in known and k != "fallbacks"})
        stage.fallbacks = [FailedAttempt(**f) for f in data.get("fallbacks") or []]
        return stage


_FACTS = ("provider", "model", "outcome", "detail", "tokens_in", "tokens_out", "audio_in_s", "audio_out_s",
          "characters", "cost_usd")


@dataclass
class TurnRecord:
    channel: str  # voice | phone | text | api
    stages: list[Stage] = field(default_factory=list)
    user_id: str = ""  # whose turn (their usage totals); set when the turn is done, not stored with the message

    def add(self, name: str, seconds: float, log: CallLog | None = None, **facts: Any) -> Stage:
        stage = Stage(name, seconds, **facts)
        if log is not None:
            stage.served_by(log)
        self.stages.append(stage)
        return stage

    def first(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def all(self, name: str) -> list[Stage]:
        return [s for s in self.stages if s.name == name]

    @property
    def first_token_s(self) -> float | None:
        stage = self.first("llm_first_token")
        return None if stage is None else stage.seconds

    @property
    def llm_model(self) -> str | None:
        """The model that wrote the reply (the last model call's)."""
        calls = self.all("llm")
        return calls[-1].model or calls[-1].provider if calls else None

    @property
    def tokens_in(self) -> int:
        return sum(s.tokens_in or 0 for s in self.stages)

    @property
    def tokens_out(self) -> int:
        return sum(s.tokens_out or 0 for s in self.stages)

    @property
    def cost_usd(self) -> float:
        return sum(s.cost_usd for s in self.stages)

    def as_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "stages": [s.as_dict() for s in self.stages],
                "tokens_in": self.tokens_in, "tokens_out": self.tokens_out, "cost_usd": self.cost_usd}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TurnRecord":
        return cls(data["channel"], [Stage.from_dict(s) for s in data.get("stages") or []])
