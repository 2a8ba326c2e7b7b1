"""The prompt a turn will send its model, built before the turn and leaving no trace.

A voice turn's words are known during the pause, before the turn is taken: a local
model can evaluate the prompt then, and write the reply's first tokens
(handlers/voice/speculation.py). Most of the prompt
does not depend on the words at all (`head_prompt`: persona prompt, examples, reply
style, recent history), so that part is evaluated while the user is still speaking.
llama.cpp reuses the longest evaluated prefix, so the speculative prompt must be the one the real
turn builds, token for token: it comes from the orchestrator's own context and tool
phases with the same inputs. What it must not do is what a turn does besides:
no session is opened or created, nothing is saved or learned, no record reported,
no moderation audit (a flagged input simply never gets the reply it was prepared for).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from orchestrator.chat import ChatOrchestrator, PreparedTurn, is_affirmative
from orchestrator.context import GatheredContext
from orchestrator.turn_record import TurnRecord
from orchestrator.turns import TurnRequest
from providers.base import CancelFlag, ChatOptions

# (messages, tools, cancel flag, the turn's options to write the reply ahead with or None,
# unfinished=True: the last message is the user's words so far: read through them only)
Prefill = Callable[..., bool]


def turn_prompt(orchestrator: ChatOrchestrator, request: TurnRequest) -> tuple[list[dict[str, Any]],
                                                                               list[dict[str, Any]], ChatOptions]:
    """(messages, tools, options) as `orchestrator.run(request)` would hand them to the model."""
    if request.confirmed is None:
        request = dataclasses.replace(request, confirmed=is_affirmative(request.text))
    if request.session_id is None:  # the turn will open a new conversation: no history yet
        request = dataclasses.replace(request, conversation=[])
    persona = orchestrator.personas.get(request.persona_id)
    # A record of its own, never reported: the context phase times itself into it.
    turn = PreparedTurn(request, request.session_id or "", persona, orchestrator.model_of(persona),
                        TurnRecord(request.channel))
    bundle, _ = orchestrator.gather_context(turn)
    tools = orchestrator.select_tools(turn)
    return (bundle.without_examples() if tools else bundle.messages), tools, orchestrator.chat_options(turn, tools)


def head_prompt(orchestrator: ChatOrchestrator, request: TurnRequest) -> list[dict[str, Any]]:
    """The messages the next turn's prompt will start with whatever the user says, for a
    turn that offers no tools (most spoken ones; a tool's schema changes the prompt's
    start): the persona prompt with the user's profile, examples, style, recent history."""
    request = dataclasses.replace(request, text="", conversation=[] if request.session_id is None
                                  else request.conversation)  # no session yet: no history yet
    bundle = orchestrator.prompt_for(orchestrator.personas.get(request.persona_id), request, request.session_id,
                                     GatheredContext(profile=orchestrator.context.profile_of(request.user_id)))
    return bundle.messages[:bundle.head]


def local_prefill(model: Any) -> Prefill | None:
    """The prefill of the model that serves a turn first, if it is a local one that has it:
    a bare model, or the first provider of a fallback chain (cloud first: nothing to warm)."""
    prefill = getattr(type(model), "prefill", None) and getattr(model, "prefill")
    if prefill is not None:
        return prefill
    slots = getattr(model, "_slots", None)  # FallbackAdapter's providers, in order
    if slots:
        return local_prefill(slots[0].provider)
    inner = getattr(model, "model", None)  # QueuedChatModel: prefill takes no queue place
    return local_prefill(inner) if inner is not None and inner is not model else None
