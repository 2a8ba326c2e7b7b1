"""The moderation gate: the user's words before the model, the model's sentences before anyone hears them.

Input: every user text, whatever the channel, is checked before the model is
called; a flagged one is answered with the persona's refusal and the model never
sees it (nor does the history it would read next turn: the stored user message is
a placeholder). Output: the reply is cut into the clauses and sentences the voice
speaks (orchestrator/sentences.py) and each is checked before it leaves the
orchestrator, so a flagged sentence is never streamed to a client nor synthesized:
the refusal takes its place and the reply ends there, with finish_reason
"content_filter". A first sentence's opening clause goes out checked on its own,
before the rest of its sentence is written; the rest is checked with it, as the
whole sentence, so words that are only flagged together are not let through.
With a persona's policy "off", deltas pass through untouched.

A flag leaves an audit row (direction, categories, channel, user, persona; never
the text) and calls `on_flag`, which the composition root points at a Prometheus
counter: the orchestrator knows nothing of Prometheus. A moderator that fails
outright fails the turn: unchecked text is not let through.
"""
from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator.sentences import SentenceSplitter, ends_sentence
from orchestrator.turns import TurnDelta, TurnMetrics
from personas.cards import Persona
from providers.call_log import CallLog, logs_calls
from providers.moderation.base import CLEAN, OFF, Moderator, Verdict
from tools.audit import AuditEvent, AuditSink

if TYPE_CHECKING:
    from orchestrator.chat import PreparedTurn

log = logging.getLogger(__name__)

CONTENT_FILTER = "content_filter"  # OpenAI's finish_reason for a reply cut by moderation
MODERATION_TOOL = "(moderation)"  # the audit row's `tool`: no tool ran, the gate decided
WITHHELD = "[withheld by moderation]"  # stored in place of a flagged user message
INPUT, OUTPUT = "input", "output"
# Added to the refusal when someone says they may hurt themselves: a bare "let's
# talk about something else" is the wrong thing to hear then.
SELF_HARM_SUPPORT = ("If you are thinking about hurting yourself, please reach out to someone you trust "
                     "or a local crisis line right now.")


@dataclass(frozen=True)
class ModerationFlag:
    """What a flag tells the audit log and the metrics; the flagged text is not in it."""

    direction: str  # input | output
    categories: tuple[str, ...]
    moderator: str
    policy: str
    channel: str
    user_id: str
    persona_id: str
    session_id: str


OnFlag = Callable[[ModerationFlag], None]


def refusal_for(persona: Persona, verdict: Verdict) -> str:
    if any(category.startswith("self-harm") for category in verdict.categories):
        return f"{persona.refusal} {SELF_HARM_SUPPORT}"
    return persona.refusal


class ModerationGate:
    def __init__(self, moderator: Moderator | None = None, audit: AuditSink | None = None,
                 on_flag: OnFlag | None = None):
        self.moderator = moderator  # None: nothing is checked (a bare orchestrator in a test)
        self.audit = audit
        self.on_flag = on_flag

    def _active(self, persona: Persona) -> bool:
        return self.moderator is not None and persona.moderation != OFF

    def check_input(self, turn: PreparedTurn, text: str, metrics: TurnMetrics) -> Verdict:
        return self._check(turn, text, INPUT, metrics)

    def screen_output(self, turn: PreparedTurn, items: Iterator[Any], metrics: TurnMetrics) -> Iterator[Any]:
        """`items` (the generate phase's deltas, tool calls and finish reason) with the
        text released a checked piece at a time."""
        return self._screened(turn, items, metrics) if self._active(turn.persona) else items

    def _screened(self, turn: PreparedTurn, items: Iterator[Any], metrics: TurnMetrics) -> Iterator[Any]:
        splitter = SentenceSplitter()
        last_piece = ""
        sentence_so_far = ""  # the released start of a sentence that is not finished yet
        try:
            for item in itertools.chain(items, [None]):  # None: the end, release what is left
                # Text before a tool call or the finish goes out first, whole or not.
                pieces = splitter.push(item.text) if isinstance(item, TurnDelta) else splitter.flush()
                for piece in pieces:
                    verdict = self._check(turn, sentence_so_far + piece, OUTPUT, metrics)
                    if verdict.flagged:
                        gap = " " if last_piece and not last_piece[-1].isspace() else ""
                        yield TurnDelta(gap + refusal_for(turn.persona, verdict))
                        yield CONTENT_FILTER
                        return  # closing `items` stops the model
                    last_piece = piece
                    sentence_so_far = "" if ends_sentence(piece) else sentence_so_far + piece
                    yield TurnDelta(piece, whole=True)
                if item is not None and not isinstance(item, TurnDelta):
                    yield item
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    def _check(self, turn: PreparedTurn, text: str, direction: str, metrics: TurnMetrics) -> Verdict:
        if not self._active(turn.persona) or not text.strip():
            return CLEAN
        started, call_log = time.perf_counter(), CallLog()
        try:
            verdict = (self.moderator.check(text, turn.persona.moderation, log=call_log)
                       if logs_calls(self.moderator) else self.moderator.check(text, turn.persona.moderation))
        finally:
            seconds = time.perf_counter() - started
            metrics.phases_s["moderation"] = metrics.phases_s.get("moderation", 0.0) + seconds
        call_log.provider = call_log.provider or verdict.moderator
        turn.record.add("moderation", seconds, call_log, outcome="flagged" if verdict.flagged else "ok")
        if verdict.flagged:
            request = turn.request
            self._report(ModerationFlag(direction, verdict.categories, verdict.moderator, turn.persona.moderation,
                                        request.channel, request.user_id, turn.persona.id, turn.session_id))
        return verdict

    def _report(self, flag: ModerationFlag) -> None:
        log.info("moderation flagged %s on %s for user %s, persona %s: %s (%s)", flag.direction, flag.channel,
                 flag.user_id, flag.persona_id, ", ".join(flag.categories) or "unspecified", flag.moderator)
        # Neither the audit log nor a metric may break the turn they describe.
        if self.audit is not None:
            try:
                self.audit.record(AuditEvent(
                    tool=MODERATION_TOOL, user_id=flag.user_id, session_id=flag.session_id,
                    persona_id=flag.persona_id, channel=flag.channel,
                    arguments={"direction": flag.direction, "categories": list(flag.categories),
                               "moderator": flag.moderator, "policy": flag.policy},
                    decision="flagged", reason=f"{flag.direction}: {', '.join(flag.categories) or 'flagged'}",
                    layer="moderation", flags=list(flag.categories)))
            except Exception:
                log.exception("moderation audit record failed")
        if self.on_flag is not None:
            try:
                self.on_flag(flag)
            except Exception:
                log.exception("moderation on_flag hook failed")
