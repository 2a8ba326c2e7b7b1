"""The chat orchestrator: every turn, from any channel, goes through here.

Five phases, each a small method: prepare -> context -> tools -> generate -> persist.
The moderation gate (orchestrator/moderation.py) stands around generate: the
user's words are checked before the model is called, each sentence it writes
before it leaves here.
"""
from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from memory.learner import MemoryLearner
from orchestrator.context import (
    ContextBundle,
    ContextGatherer,
    GatheredContext,
    build_messages,
)
from orchestrator.in_flight import InFlight
from orchestrator.moderation import CONTENT_FILTER, WITHHELD, ModerationGate, refusal_for
from orchestrator.tool_selection import relevant_tools
from orchestrator.turn_record import TurnRecord
from orchestrator.turns import (
    OverBudget,
    TurnDelta,
    TurnDone,
    TurnMetrics,
    TurnRequest,
    TurnToolCall,
    TurnToolResult,
)
from personas.cards import Persona, PersonaCatalog
from providers.base import CancelFlag, ChatModel, ChatOptions, ToolCall
from providers.call_log import CallLog, stream_logged
from providers.moderation.base import Verdict
from storage.conversations import ConversationStore, SessionNotFound

log = logging.getLogger(__name__)


_AFFIRMATIVE = re.compile(r"^\s*(yes|yeah|yep|sure|ok(ay)?|confirm(ed)?|go ahead|do it|please do|"
                          r"absolutely|correct|that's right)\b[\s\w,']*[.!]?\s*$", re.I)


def is_affirmative(text: str) -> bool:
    """A short spoken yes. Only ever unlocks the exact call the user was asked about
    (the tool gateway binds a confirmation to session, tool and arguments)."""
    return bool(text) and len(text) <= 60 and bool(_AFFIRMATIVE.match(text)) and "not" not in text.lower()


def _call_key(name: str, arguments: str) -> tuple[str, str]:
    try:
        arguments = json.dumps(json.loads(arguments), sort_keys=True)
    except (TypeError, ValueError):
        pass
    return name, arguments


def _answered_calls(messages: list[dict]) -> set[tuple[str, str]]:
    """Calls in the prompt that already have a result (an API client's earlier round)."""
    answered = {m.get("tool_call_id") for m in messages if m.get("role") == "tool"}
    return {_call_key(call["function"]["name"], call["function"].get("arguments") or "{}")
            for m in messages for call in m.get("tool_calls") or [] if call.get("id") in answered}


def _last_user_text(request: TurnRequest) -> str:
    for message in reversed(request.conversation or []):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""

MAX_TOOL_ROUNDS = 10
OUT_OF_ROUNDS_REPLY = "Sorry, I couldn't finish that with my tools. Could you ask it another way?"


OnRecord = Callable[[TurnRecord], None]


class Budget(Protocol):
    def over_budget(self, user_id: str) -> str | None:
        """Why this user may not have another turn today, in words; None within budget."""
        ...


class Pricing(Protocol):
    def price(self, record: TurnRecord) -> TurnRecord: ...


class ToolRunner(Protocol):
    def schemas_for(self, persona: Persona, channel: str) -> list[dict[str, Any]]: ...

    def run(self, call: ToolCall, request: TurnRequest, persona: Persona, session_id: str) -> str:
        """Run (or refuse) one call; the text is what the model reads back."""
        ...


@dataclass
class PreparedTurn:
    request: TurnRequest
    session_id: str
    persona: Persona
    model: ChatModel
    record: TurnRecord


class ChatOrchestrator:
    def __init__(self, personas: PersonaCatalog, model: ChatModel, conversations: ConversationStore,
                 context: ContextGatherer, learner: MemoryLearner | None = None,
                 tools: ToolRunner | None = None, context_budget_tokens: int = 3000,
                 moderation: ModerationGate | None = None, on_record: OnRecord | None = None,
                 budget: Budget | None = None, prices: Pricing | None = None,
                 model_for: Callable[[str | None], ChatModel] | None = None):
        self.personas = personas
        self.in_flight = InFlight()  # turns running, on every channel
        self.model = model
        self.model_for = model_for  # a persona's `model:` -> its chain (providers/chains.PersonaModels)
        self.conversations = conversations
        self.context = context
        self.learner = learner
        self.tools = tools
        self.context_budget_tokens = context_budget_tokens
        self.moderation = moderation or ModerationGate()
        self.on_record = on_record  # each finished turn's record (the host's metrics)
        self.budget = budget  # every channel's turns are checked here, in prepare
        self.prices = prices  # a record is priced before it is stored or reported

    def warm(self, persona_id: str | None, channel: str = "voice", model: Any = None,
             with_tools: bool = False) -> None:
        """Have a local model evaluate this persona's fixed prompt prefix now, so its
        first turn does not pay for it. With tools that takes ~10 s on 2 cores and
        cannot be interrupted, so by default only the prompt itself is warmed."""
        prime = getattr(model or self.model, "prime", None)
        if prime is None:
            return
        persona = self.personas.get(persona_id)
        tools = self.select_tools(PreparedTurn(TurnRequest(text="", persona_id=persona.id, channel=channel),
                                               "", persona, self.model, TurnRecord(channel)),
                                  always=True) if with_tools else []
        # The start of a first turn's prompt, as build_messages lays it out (with tools, the
        # examples and style are left out: ContextBundle.without_examples).
        bundle = build_messages(persona, [], "", GatheredContext(), self.context_budget_tokens)
        head = bundle.without_examples()[:1] if tools else bundle.messages[:bundle.head]
        prime([*head, {"role": "user", "content": "Hi"}], tools)

    # 1. prepare: who, which session, which persona, which model
    def prepare(self, request: TurnRequest) -> PreparedTurn:
        if request.confirmed is None:
            request.confirmed = is_affirmative(request.text)
        refusal = self.budget_refusal(request.user_id)
        if refusal:
            raise OverBudget(refusal)
        persona = self.personas.get(request.persona_id)
        session_id = self.resolve_session(request, persona.id)
        return PreparedTurn(request, session_id, persona, self.model_of(persona),
                            request.record or TurnRecord(request.channel))

    def model_of(self, persona: Persona) -> ChatModel:
        """The model this persona's turns use: the one its card pins, else the server's."""
        if persona.model and self.model_for is not None:
            return self.model_for(persona.model)
        return self.model

    def budget_refusal(self, user_id: str) -> str | None:
        """Why this user gets no reply today (their daily budget is used), or None. A voice
        channel asks before transcribing, so a spent budget pays for no speech recognition."""
        return self.budget.over_budget(user_id) if self.budget is not None else None

    def resolve_session(self, request: TurnRequest, persona_id: str) -> str:
        """The one place a turn's session is found or made; the request keeps the answer, so
        a channel that needs the id early (the API's response header) asks here first."""
        if request.session_id is not None:
            try:
                return self.conversations.open_session(request.user_id, request.session_id, persona_id)
            except SessionNotFound:
                if not request.restart_missing_session:
                    raise
                log.info("session %s was deleted meanwhile; starting a new one", request.session_id)
        if request.session_key is not None:
            request.session_id = self.conversations.session_for_key(request.user_id, persona_id, request.session_key)
        else:
            request.session_id = self.conversations.create_session(request.user_id, persona_id)
        return request.session_id

    # 2. context: engines in parallel, then the budgeted prompt
    def gather_context(self, turn: PreparedTurn) -> tuple[ContextBundle, GatheredContext]:
        request = turn.request
        started = time.perf_counter()
        gathered = self.context.gather(request.user_id, request.text or _last_user_text(request))
        turn.record.add("context", time.perf_counter() - started)
        for engine, seconds in gathered.engine_s.items():
            turn.record.add(f"context_{engine}", seconds, outcome=gathered.engine_outcome[engine])
        return self.prompt_for(turn.persona, request, turn.session_id, gathered), gathered

    def prompt_for(self, persona: Persona, request: TurnRequest, session_id: str,
                   gathered: GatheredContext) -> ContextBundle:
        """The budgeted prompt for `request` in `session_id`: its history (or the API client's
        own conversation), what was gathered, the words."""
        history, earlier = ((request.conversation, 0) if request.conversation is not None
                            else self.conversations.recent_and_earlier(session_id))
        return build_messages(persona, history, request.text, gathered,
                              self.context_budget_tokens - persona.max_reply_tokens,
                              app_instructions=request.app_instructions, history_earlier=earlier)

    # 3. tools: the persona's allowlist as schemas, plus the API client's own tools
    def select_tools(self, turn: PreparedTurn, always: bool = False) -> list[dict[str, Any]]:
        ours = []
        if self.tools is not None and turn.persona.allowed_tools:
            ours = self.tools.schemas_for(turn.persona, turn.request.channel)
            # A confirmation ("yes") must be able to repeat the call it confirms.
            if not (always or turn.request.confirmed):
                ours = relevant_tools(turn.request.text, ours)
        return ours + list(turn.request.client_tools)

    @staticmethod
    def chat_options(turn: PreparedTurn, tools: list[dict]) -> ChatOptions:
        """How the model is asked for this turn's reply (a reply written ahead must match)."""
        request = turn.request
        return ChatOptions(
            temperature=turn.persona.temperature if request.temperature is None else request.temperature,
            max_tokens=request.max_tokens or turn.persona.max_reply_tokens,
            tools=tools, requester=request.user_id, seed=request.seed)

    # 4. generate: stream text; run tool calls and loop, at most MAX_TOOL_ROUNDS
    def generate(self, turn: PreparedTurn, messages: list[dict], tools: list[dict], metrics: TurnMetrics,
                 cancelled: CancelFlag | None) -> Iterator[TurnDelta | TurnToolCall | str]:
        options = self.chat_options(turn, tools)
        client_tool_names = {t.get("function", {}).get("name") for t in turn.request.client_tools}
        started = time.perf_counter()
        messages = list(messages)
        already_run = _answered_calls(messages)
        for round_index in range(MAX_TOOL_ROUNDS + 1):
            if round_index == MAX_TOOL_ROUNDS:
                options.tools = []  # out of rounds: the model must answer in words now
            calls: list[ToolCall] = []
            finish_reason = "stop"
            wrote_text = False
            call_log, call_started = CallLog(), time.perf_counter()
            usage: tuple[int | None, int | None] = (None, None)  # the vendor's counts, when it gives them
            outcome = "interrupted"  # the reader stopped early (barge-in, a client gone)
            try:
                for delta in stream_logged(turn.model, messages, options, cancelled, call_log):
                    if delta.text:
                        wrote_text = True
                        if turn.record.first("llm_first_token") is None:
                            turn.record.add("llm_first_token", time.perf_counter() - started, call_log)
                        yield TurnDelta(delta.text)
                    calls.extend(delta.tool_calls)
                    if delta.finish_reason:
                        finish_reason = delta.finish_reason
                        usage = (delta.prompt_tokens, delta.completion_tokens)
                # A model told to stop (barge-in) ends its stream early: not a whole reply.
                outcome = "interrupted" if cancelled is not None and cancelled.is_set() else "ok"
            except Exception:
                outcome = "failed"
                raise
            finally:  # a failed call is on the record too, with who was tried and why
                turn.record.add("llm", time.perf_counter() - call_started, call_log, outcome=outcome,
                                tokens_in=usage[0], tokens_out=usage[1])
            if not calls or not options.tools:
                if round_index == MAX_TOOL_ROUNDS and not wrote_text:
                    yield TurnDelta(OUT_OF_ROUNDS_REPLY)
                yield finish_reason if finish_reason != "tool_calls" else "stop"
                return
            fresh = [c for c in calls if _call_key(c.name, c.arguments) not in already_run]
            if not fresh:
                # Asking again for what it already has: small models loop here. Take
                # the tools away so the next round answers with what it was given.
                options.tools = []
                continue
            for_client = [c for c in fresh if c.name in client_tool_names]
            if for_client:  # the client runs these and comes back with the results
                for call in for_client:
                    yield TurnToolCall(call, for_client=True)
                yield "tool_calls"
                return
            metrics.tool_rounds += 1
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in fresh]})
            for call in fresh:
                already_run.add(_call_key(call.name, call.arguments))
                yield TurnToolCall(call)
                tool_started = time.perf_counter()
                result = self.tools.run(call, turn.request, turn.persona, turn.session_id) \
                    if self.tools is not None else f"Error: no tool named '{call.name}' is available."
                ok = bool(getattr(result, "ok", self.tools is not None))
                seconds = time.perf_counter() - tool_started
                turn.record.add("tool", seconds, detail=call.name, outcome="ok" if ok else "failed")
                # What the page shows as a chip; the runner may say whether the call succeeded.
                yield TurnToolResult(call, ok=ok, latency_ms=seconds * 1000)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": str(result)})

    # 5. persist: the messages now; memories off the hot path
    def persist(self, turn: PreparedTurn, reply: str, metrics: TurnMetrics, finish_reason: str,
                user_text: str | None = None) -> str | None:
        """Returns the stored reply's id (None when there was no reply to keep)."""
        metadata = {**metrics.as_dict(), **self._record_metadata(turn.record, turn.model.name),
                    "persona_id": turn.persona.id, "channel": turn.request.channel, "finish_reason": finish_reason}
        message_id = self.conversations.save_turn(turn.session_id, turn.request.user_id, turn.persona.id,
                                                  turn.request.text if user_text is None else user_text, reply,
                                                  metadata)
        if self.learner is not None:
            self.learner.notify()
        return message_id

    def _record_metadata(self, record: TurnRecord, chain_name: str) -> dict[str, Any]:
        """What a stored reply keeps of its turn's record, priced so far (the page reads
        model and first_token_s)."""
        if self.prices is not None:
            self.prices.price(record)
        first = record.first_token_s
        return {"model": record.llm_model or chain_name,
                "first_token_s": None if first is None else round(first, 4), "record": record.as_dict()}

    def finish_record(self, done: TurnDone) -> None:
        """A channel that handed its record in calls this once the turn is over (the reply
        spoken): the stored reply gets the whole record, and the metrics see it."""
        if done.message_id is not None:
            self.conversations.update_metadata(done.message_id, self._record_metadata(done.record, done.model))
        self.report(done.record)

    def report(self, record: TurnRecord) -> None:
        """Hand a finished record to the host's metrics (and its user's usage), priced."""
        if self.on_record is None:
            return
        if self.prices is not None:
            self.prices.price(record)
        try:  # a metric never breaks the turn it describes
            self.on_record(record)
        except Exception:
            log.exception("on_record hook failed")

    def run(self, request: TurnRequest, cancelled: CancelFlag | None = None
            ) -> Iterator[TurnDelta | TurnToolCall | TurnDone]:
        return self.in_flight.track(self._run(request, cancelled))

    def _run(self, request: TurnRequest, cancelled: CancelFlag | None
             ) -> Iterator[TurnDelta | TurnToolCall | TurnDone]:
        metrics = TurnMetrics()

        def timed(phase: str, started: float) -> None:
            metrics.phases_s[phase] = time.perf_counter() - started

        started = turn_started = time.perf_counter()
        turn = self.prepare(request)
        timed("prepare", started)

        verdict = self.moderation.check_input(turn, request.text or _last_user_text(request), metrics)
        if verdict.flagged:
            yield from self.refuse(turn, verdict, metrics, turn_started)
            return

        started = time.perf_counter()
        bundle, gathered = self.gather_context(turn)
        metrics.degrade_reasons = gathered.degrade_reasons
        metrics.degraded = gathered.degraded
        metrics.context_included = bundle.included
        metrics.prompt_tokens = bundle.tokens
        timed("context", started)

        started = time.perf_counter()
        tools = self.select_tools(turn)
        timed("tools", started)
        if tools:  # a channel that has said nothing yet may say why it takes a while (handlers/voice/turn.py)
            turn.record.add("tools", metrics.phases_s["tools"],
                            detail=",".join(t["function"]["name"] for t in tools))

        started = time.perf_counter()
        reply_parts: list[str] = []
        finish_reason = "interrupted"
        refused = False
        message_id = None
        try:
            messages = bundle.without_examples() if tools else bundle.messages
            generated = self.generate(turn, messages, tools, metrics, cancelled)
            for item in self.moderation.screen_output(turn, generated, metrics):
                if isinstance(item, str):
                    finish_reason = item
                    continue
                if isinstance(item, TurnDelta):
                    reply_parts.append(item.text)
                yield item
        except Exception:
            refused = not reply_parts  # failed before a word: the caller is told, nothing is kept
            raise
        finally:
            # Runs on barge-in too (the caller closes us): the reply is kept as far
            # as it was generated, so the next turn has the context the user got.
            timed("generate", started)
            started = time.perf_counter()
            reply = "".join(reply_parts).strip()
            heard = request.heard_reply() if request.heard_reply is not None else None
            if heard is not None and not refused:
                reply, finish_reason = heard, "interrupted"
            if not refused:
                message_id = self.persist(turn, reply, metrics, finish_reason)
            elif request.session_id is None:  # the conversation this turn opened stays empty: no debris
                self.conversations.discard_if_empty(turn.request.user_id, turn.session_id)
            timed("persist", started)
        yield self._done(turn, reply, finish_reason, metrics, message_id, turn_started)

    def _done(self, turn: PreparedTurn, reply: str, finish_reason: str, metrics: TurnMetrics,
              message_id: str | None, turn_started: float) -> TurnDone:
        done = TurnDone(turn.session_id, turn.persona.id, reply, finish_reason,
                        turn.record.llm_model or turn.model.name, metrics, turn.record, message_id)
        turn.record.user_id = turn.request.user_id  # whose usage the record adds to, when reported
        if turn.request.record is None:  # ours to finish: the channel said nothing more is coming
            turn.record.add("turn", time.perf_counter() - turn_started)
            self.report(turn.record)
        return done

    def refuse(self, turn: PreparedTurn, verdict: Verdict, metrics: TurnMetrics,
               turn_started: float) -> Iterator[TurnDelta | TurnDone]:
        """A flagged input: the persona's refusal, and the model is never called."""
        reply = refusal_for(turn.persona, verdict)
        yield TurnDelta(reply)
        # The words are not kept: the next turn's prompt would hand them to the model.
        message_id = self.persist(turn, reply, metrics, CONTENT_FILTER,
                                  user_text=WITHHELD if turn.request.text else "")
        yield self._done(turn, reply, CONTENT_FILTER, metrics, message_id, turn_started)
