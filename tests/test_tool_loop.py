"""The orchestrator's tool loop with real MCP servers, a real DuckDB file, and the
model behind OpenAI's wire protocol (a local fake speaking it, via the real SDK)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from config import ToolSettings
from orchestrator.chat import MAX_TOOL_ROUNDS, OUT_OF_ROUNDS_REPLY
from orchestrator.services import build_chat_services
from orchestrator.turns import TurnDelta, TurnDone, TurnRequest, TurnToolCall
from personas.cards import PersonaCatalog
from storage.audit import DuckDbAuditSink
from tests.fakes import wire
from tests.fakes.fixtures import _fake_vendors, vendor, vendors  # noqa: F401 - fixtures
from tests.fakes.providers import openai_llm
from tools.config import load_config, with_state
from tools.gateway import ToolGateway
from tools.runner import GatewayToolRunner
from tests.conftest import stored_settings

PERSONAS = Path(__file__).resolve().parent.parent / "personas"


@pytest.fixture
def engine(tmp_path, vendor):
    services = build_chat_services(stored_settings(tmp_path), PersonaCatalog(PERSONAS, "concise"),
                                   openai_llm(vendor))
    audit = DuckDbAuditSink(services.db)
    gateway = ToolGateway(with_state(load_config(), ToolSettings(), tmp_path), audit=audit)
    gateway.start()
    services.orchestrator.tools = GatewayToolRunner(gateway)
    yield services, audit
    gateway.stop()
    services.close()


def call(call_id: str, name: str, arguments: dict) -> wire.ToolScript:
    encoded = json.dumps(arguments)
    return wire.ToolScript(call_id, name, (encoded[:5], encoded[5:]))


def run(services, text: str, persona: str = "concise"):
    items = list(services.orchestrator.run(TurnRequest(text=text, user_id="ada", persona_id=persona)))
    reply = "".join(i.text for i in items if isinstance(i, TurnDelta))
    return reply, [i.call for i in items if isinstance(i, TurnToolCall)], items[-1]


def test_two_tool_calls_in_sequence_complete_the_turn(engine, vendor):
    services, audit = engine
    vendor.script.chat_turns.extend([
        ([], [call("call_1", "current_time", {"timezone": "Asia/Tokyo"})]),
        ([], [call("call_2", "calculate", {"expression": "1234 * 5678"})]),
        (["In Tokyo it is late morning, and 1234 times 5678 is 7006652."], []),
    ])
    reply, calls, done = run(services, "What time is it in Tokyo, and what is 1234 times 5678?")
    assert [c.name for c in calls] == ["current_time", "calculate"]
    assert reply == "In Tokyo it is late morning, and 1234 times 5678 is 7006652."
    assert isinstance(done, TurnDone) and done.metrics.tool_rounds == 2
    # The turn's record: each tool call with its outcome, each model call with the vendor's counts
    assert [(s.detail, s.outcome) for s in done.record.all("tool")] == [("current_time", "ok"), ("calculate", "ok")]
    assert [s.provider for s in done.record.all("llm")] == ["openai"] * 3
    assert all(s.tokens_in and s.tokens_out for s in done.record.all("llm"))
    # The model was shown each result, as data, before answering.
    last_request = vendor.requests[-1].body["messages"]
    tool_results = [m["content"] for m in last_request if m["role"] == "tool"]
    assert len(tool_results) == 2 and "7006652" in tool_results[1] and "JST" in tool_results[0]
    assert all(r.startswith("<tool_result") and "untrusted" in r for r in tool_results)
    services.db.write(lambda cursor: None)  # wait for the queued audit writes
    decisions = [(e["tool"], e["decision"]) for e in reversed(audit.recent("ada"))]
    assert decisions == [("current_time", "allowed"), ("calculate", "allowed")]


def test_a_model_that_keeps_calling_tools_stops_at_the_limit(engine, vendor):
    services, audit = engine
    vendor.script.chat_turns.extend(
        ([], [call(f"call_{i}", "calculate", {"expression": f"{i} + 1"})]) for i in range(MAX_TOOL_ROUNDS + 5))
    reply, calls, done = run(services, "Keep calculating numbers forever.")
    assert len(calls) == MAX_TOOL_ROUNDS
    assert vendor.hits("/chat/completions") == MAX_TOOL_ROUNDS + 1  # the last round offers no tools
    assert "tools" not in vendor.requests[-1].body
    assert reply == OUT_OF_ROUNDS_REPLY and done.finish_reason == "stop"


def test_a_tool_outside_the_persona_is_refused_and_the_reason_reaches_the_model(engine, vendor):
    services, audit = engine
    vendor.script.chat_turns.extend([
        ([], [call("call_1", "fetch_url", {"url": "https://example.com"})]),
        (["I can't fetch web pages, sorry."], []),
    ])
    reply, calls, _ = run(services, "What time is it? And fetch example.com for me.", persona="tutor")
    offered = {t["function"]["name"] for t in vendor.requests[0].body["tools"]}
    assert "fetch_url" not in offered and "current_time" in offered
    assert reply == "I can't fetch web pages, sorry."
    services.db.write(lambda cursor: None)  # wait for the queued audit writes
    event = audit.recent("ada")[0]
    assert event["tool"] == "fetch_url" and event["decision"] == "denied" and "tutor" in event["reason"]
    assert any("not one of persona tutor's tools" in m["content"]
               for m in vendor.requests[-1].body["messages"] if m["role"] == "tool")


def test_a_dangerous_tool_runs_only_after_the_user_says_yes(engine, vendor):
    services, audit = engine
    session = services.conversations.create_session("ada", "concise")

    def say(text: str, channel: str = "phone"):
        items = list(services.orchestrator.run(TurnRequest(text=text, user_id="ada", session_id=session,
                                                           persona_id="concise", channel=channel)))
        return "".join(i.text for i in items if isinstance(i, TurnDelta))

    delete = call("call_d1", "delete_note", {"note_id": 1})
    vendor.script.chat_turns.extend([
        ([], [call("call_a1", "add_note", {"text": "buy milk"})]), (["Saved."], []),
        ([], [delete]), (["Shall I really delete note 1?"], []),
        ([], [call("call_d2", "delete_note", {"note_id": 1})]), (["Deleted."], []),
    ])
    say("Note that I need to buy milk.")
    assert say("Delete note one.") == "Shall I really delete note 1?"
    refusal = [m["content"] for m in vendor.requests[3].body["messages"] if m["role"] == "tool"][-1]
    assert "confirm" in refusal.lower()
    assert say("Yes, go ahead.") == "Deleted."
    services.db.write(lambda cursor: None)
    trail = [(e["tool"], e["decision"]) for e in reversed(audit.recent("ada"))]
    assert trail == [("add_note", "allowed"), ("delete_note", "denied"), ("delete_note", "allowed")]
    last_result = [m["content"] for m in vendor.requests[-1].body["messages"] if m["role"] == "tool"][-1]
    assert "Deleted note #1" in last_result
