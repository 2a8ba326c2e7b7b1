"""The attack corpus (tests/hostile_servers/attack_corpus.yaml) against a live gateway.

Every attack is denied, by the layer the corpus names, and leaves an audit event
saying so; injected text in results is delivered as delimited, flagged data; and
the legitimate calls next to them still work.
"""
from __future__ import annotations

import json

import pytest

from personas.cards import PersonaCatalog
from tests.hostile_servers.harness import (
    CORPUS,
    CORPUS_PATH,
    PROJECT_ROOT,
    TableResolver,
    builtin,
    config_at,
    context,
    hostile,
    write_config,
)
from tests.hostile_servers.fixtures import audit, web  # noqa: F401 - fixtures
from tools.gateway import ToolGateway

TESTER_TOOLS = ("clock", "calculator", "notes", "fetch_url", "poisoned", "careless")
CARELESS_TOOLS = {"read_file": {"side_effect": "read_only"}, "run_command": {"side_effect": "write"},
                  "get_document": {"side_effect": "read_only"}, "whoami": {"side_effect": "read_only"}}
RESOLVER = TableResolver({case["url"].split("//")[1].split("/")[0]: case["resolves_to"]
                          for case in CORPUS["ssrf_urls"] if "resolves_to" in case})


def case_id(case):
    return case["id"]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, web, audit):
    folder = tmp_path_factory.mktemp("attacks")
    poisoned_tools = {case.get("tool_name", case["id"]): {"side_effect": "read_only"}
                      for case in CORPUS["poisoned_tools"] if case["id"] != "shadowing_by_name"}
    corpus_env = {"HOSTILE_CORPUS": str(CORPUS_PATH)}
    servers = [builtin("clock"), builtin("calculator"), builtin("fetch_url"),
               builtin("notes", env={"COZY_NOTES_DB": str(folder / "notes.duckdb")}),
               hostile("poisoned", {**poisoned_tools, "multiply": {"side_effect": "read_only"}}, env=corpus_env),
               hostile("careless", CARELESS_TOOLS, env=corpus_env)]
    config = config_at(write_config(folder, servers, allow_private=[web.host_port]))
    with ToolGateway(config, audit=audit, resolver=RESOLVER) as instance:
        yield instance


def attempt(gateway, tool, arguments, **context_args):
    context_args.setdefault("allowed", TESTER_TOOLS)
    return gateway.call(context(**context_args), tool, json.dumps(arguments))


def assert_denied_and_audited(audit, result, layer):
    assert not result.ok and result.error, "a denial tells the user why"
    assert 'status="denied"' in result.content and result.error in result.content
    event = audit.by_id(result.audit_id)
    assert (event.decision, event.layer, event.reason) == ("denied", layer, result.error)
    assert event.user_id == "alice" and event.persona_id and event.channel


def test_every_case_names_its_source():
    sections = ("poisoned_tools", "injected_calls", "argument_attacks", "ssrf_urls", "redirects", "result_injections")
    cases = [case for section in sections for case in CORPUS[section]]
    assert len(cases) > 80
    assert all(isinstance(case.get("source"), str) and len(case["source"]) > 10 for case in cases)
    assert len({case["id"] for case in cases}) == len(cases)


# poisoned descriptions ---------------------------------------------------------------------------
@pytest.mark.parametrize("case", CORPUS["poisoned_tools"], ids=case_id)
def test_a_poisoned_tool_is_disabled_hidden_and_denied(gateway, audit, case):
    name = case.get("tool_name", case["id"])
    entry = next(e for e in gateway.catalog.entries() if e.server == "poisoned" and e.name == name)
    expected = "shadows tool current_time of server clock" if name == "current_time" else "hidden instructions"
    assert not entry.enabled and expected in entry.disabled_reason
    offered = {s["function"]["name"]: s for s in gateway.schemas_for("tester", TESTER_TOOLS, "voice")}
    if name == "current_time":  # the real clock keeps its name; the impostor never answers
        assert offered["current_time"]["function"]["description"].startswith("The current date and time")
        assert "(UTC," in attempt(gateway, "current_time", {}).content
        return
    assert name not in offered
    assert_denied_and_audited(audit, attempt(gateway, name, {"a": 1, "b": 2}), "integrity")


def test_an_honest_tool_on_the_same_server_still_works(gateway):
    result = attempt(gateway, "multiply", {"a": 6, "b": 7})
    assert result.ok and "\n42\n</tool_result>" in result.content


# calls an injected model would make ----------------------------------------------------------------
@pytest.mark.parametrize("case", CORPUS["injected_calls"], ids=case_id)
def test_an_injected_call_is_denied(gateway, audit, case):
    context_args = {"channel": case.get("channel", "voice"), "confirmed": case.get("confirmed", False),
                    "session_id": f"session-{case['id']}"}
    if "persona" in case:
        persona = PersonaCatalog(PROJECT_ROOT / "personas", "companion").get(case["persona"])
        context_args.update(persona_id=persona.id, allowed=persona.allowed_tools)
    if "asked_before" in case:  # the call the user was actually asked about
        asked = case["asked_before"]
        attempt(gateway, asked["tool"], asked["arguments"], **{**context_args, "confirmed": False})
    assert_denied_and_audited(audit, attempt(gateway, case["tool"], case["arguments"], **context_args), case["layer"])


# arguments for careless tools --------------------------------------------------------------------------
@pytest.mark.parametrize("case", CORPUS["argument_attacks"], ids=case_id)
def test_a_hostile_argument_is_denied(gateway, audit, case):
    arguments = {**case["arguments"], **{name: "a" * size for name, size in case.get("fill", {}).items()}}
    result = attempt(gateway, case["tool"], arguments, session_id=f"session-{case['id']}")
    assert_denied_and_audited(audit, result, "arguments")


@pytest.mark.parametrize("tool, arguments, echoed", [
    ("read_file", {"path": "docs/readme.txt"}, {"path": "docs/readme.txt"}),
    ("read_file", {"path": "notes/2024-05 plan.md"}, {"path": "notes/2024-05 plan.md"}),
    ("run_command", {"command": "ls -la docs"}, {"command": "ls -la docs"}),
    # filled in by the gateway: a third-party server gets its own pseudonym, never "alice"
    ("whoami", {"verbose": True}, {"user_id": "PSEUDONYM", "verbose": True}),
])
def test_legitimate_arguments_reach_the_careless_server(gateway, tool, arguments, echoed):
    result = attempt(gateway, tool, arguments)
    assert result.ok
    if echoed.get("user_id") == "PSEUDONYM":
        echoed = {**echoed, "user_id": gateway.pseudonyms.of("careless", "user", "alice")}
    assert json.loads(result.content.split("\n")[2]) == {"tool": tool, "arguments": echoed}


# SSRF ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CORPUS["ssrf_urls"], ids=case_id)
def test_an_ssrf_url_is_denied_before_any_connection(gateway, audit, case):
    result = attempt(gateway, "fetch_url", {"url": case["url"]})
    assert_denied_and_audited(audit, result, "arguments")
    assert result.error.startswith("URL not allowed: ")


@pytest.mark.parametrize("case", CORPUS["redirects"], ids=case_id)
def test_a_redirect_to_a_blocked_place_is_refused_by_the_fetcher(gateway, audit, web, case):
    result = attempt(gateway, "fetch_url", {"url": web.url(f"/redirect/{case['id']}")})
    assert_denied_and_audited(audit, result, "tool")
    # The server's own reason reaches the model only as untrusted data, never as our words.
    assert result.error == "the tool refused the request"
    assert 'trust="untrusted"' in result.content and "redirected to a blocked URL" in result.content


def test_a_public_page_on_an_operator_allowed_host_is_fetched(gateway, web):
    result = attempt(gateway, "fetch_url", {"url": web.url("/big")})
    assert result.ok and "word word" in result.content
    assert "[truncated: showing 16000 of" in result.content  # a 300 kB page is cut to the result cap


# injected text in results ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CORPUS["result_injections"], ids=case_id)
def test_injected_text_in_a_result_stays_flagged_data(gateway, audit, case):
    result = attempt(gateway, "get_document", {"doc_id": case["id"]})
    assert result.ok, "the document is still delivered; it is data"
    content = result.content
    assert content.startswith('<tool_result tool="get_document" status="ok" trust="untrusted">')
    assert content.count("</tool_result>") == 1 and content.endswith("</tool_result>")
    assert content.count("<tool_result ") == 1
    assert "[warning: this result contains text that looks like instructions" in content
    assert not any(0xE0000 <= ord(ch) <= 0xE007F or ch == "\u200b" for ch in content)
    event = audit.by_id(result.audit_id)
    assert event.decision == "allowed" and event.flags


def test_an_ordinary_result_carries_no_warning(gateway, audit):
    result = attempt(gateway, "calculate", {"expression": "40 + 2"})
    assert "[warning" not in result.content and audit.by_id(result.audit_id).flags == []


def test_audit_arguments_are_redacted(gateway, audit):
    result = attempt(gateway, "add_note", {"text": "email mark.black-2134@gmail.com my key sk-live-abcdefghijkl123"})
    arguments = audit.by_id(result.audit_id).arguments
    assert arguments == {"text": "email [email] my key [secret]"}
