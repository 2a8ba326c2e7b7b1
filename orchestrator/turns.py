"""What goes into a turn and what comes out of it, whatever the channel."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.turn_record import TurnRecord
from providers.base import ToolCall


@dataclass
class TurnRequest:
    text: str  # the user's new words; "" when an API client returns tool results
    user_id: str = "local"
    session_id: str | None = None
    # An API client's own name for a conversation (its end user): the same key resumes it.
    session_key: str | None = None
    # A session deleted meanwhile (the user erased it in another tab): voice starts a new
    # one rather than fall silent; the API says 404, since its client named it.
    restart_missing_session: bool = False
    persona_id: str | None = None
    channel: str = "text"  # voice | phone | text | api | realtime
    # An API client that keeps its own history sends it here; it then replaces the
    # stored history of the session in the prompt (memories and profile still apply).
    conversation: list[dict[str, Any]] | None = None
    app_instructions: str | None = None  # a client's own system message
    client_tools: list[dict[str, Any]] = field(default_factory=list)  # run by the client
    temperature: float | None = None  # None: the persona's
    max_tokens: int | None = None  # None: the persona's
    seed: int | None = None  # an API client's `seed`: repeatable sampling
    # The user said yes to what they were asked to confirm (a dangerous tool call).
    # None: decided from their words ("yes", "go ahead"...), as a phone caller gives it.
    confirmed: bool | None = None
    # A channel that timed stages before the orchestrator (a voice turn's endpointing and
    # speech recognition) hands its record in, and finishes it after speaking the reply
    # (ChatOrchestrator.finish_record). None: the orchestrator starts and finishes it.
    record: TurnRecord | None = None
    # A spoken reply the listener talked over: what they heard of it, once known (None: all
    # of it). The orchestrator keeps that much, not what the model went on to write.
    heard_reply: Callable[[], str | None] | None = None


class OverBudget(Exception):
    """The user has used their daily budget: said to them instead of a reply (the API's 429)."""

    def __init__(self, reason: str):
        super().__init__(f"{reason} It resets at midnight UTC.")


@dataclass
class TurnMetrics:
    """Seconds spent per phase and what the prompt held; filled in as the turn runs.
    Who served what, and the first token, are in the turn's TurnRecord."""

    started_at: float = field(default_factory=time.perf_counter)
    phases_s: dict[str, float] = field(default_factory=dict)
    prompt_tokens: int = 0  # estimated from the assembled prompt, to fit the context budget
    tool_rounds: int = 0
    degraded: bool = False
    degrade_reasons: list[str] = field(default_factory=list)
    context_included: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "phases_s": {k: round(v, 4) for k, v in self.phases_s.items()},
            "prompt_tokens": self.prompt_tokens,
            "tool_rounds": self.tool_rounds,
            "context_included": dict(self.context_included),
            "degraded": self.degraded,
            "degrade_reasons": list(self.degrade_reasons),
        }


@dataclass
class TurnDelta:
    """A piece of reply text as it is generated."""

    text: str
    # A whole clause or sentence as the moderation gate cut and checked it (orchestrator/
    # sentences.py): a voice speaks it as it is, without waiting for the words after it.
    whole: bool = False


@dataclass
class TurnToolCall:
    """The model called a tool: one of ours (already validated and run, or refused),
    or one of the API client's, which the client runs (`for_client`)."""

    call: ToolCall
    for_client: bool = False


@dataclass
class TurnToolResult:
    """One of our tools has run (or was refused): for the page's tool chip, not the model."""

    call: ToolCall
    ok: bool
    latency_ms: float


@dataclass
class TurnDone:
    session_id: str
    persona_id: str
    reply: str
    finish_reason: str
    model: str  # the model that wrote the reply (not the fallback chain's name)
    metrics: TurnMetrics
    record: TurnRecord
    message_id: str | None = None  # the stored reply, None when nothing was kept
