"""Real MCP servers over stdio: the built-ins, and hostile ones that crash, stall,
flood, or change their description between runs; plus streamable HTTP and the CLI."""
from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from mcp import Client, StdioServerParameters

from personas.cards import PersonaCatalog
from tests.hostile_servers.harness import (
    PROJECT_ROOT,
    builtin,
    config_at,
    context,
    hostile,
    write_config,
)
from tools import cli
from tests.hostile_servers.fixtures import audit, web  # noqa: F401 - fixtures
from tools.audit import MemoryAuditSink
from tools.gateway import ToolGateway
from tools.runner import GatewayToolRunner

EVERYTHING = ("clock", "calculator", "notes", "fetch_url", "crashy", "slow", "huge_output")
LEAKED_SECRETS = {"OPENAI_API_KEY": "sk-test-openai", "GROQ_API_KEY": "gsk-test", "ELEVENLABS_API_KEY": "el-test"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="module")
def gateway(folder, web, audit):
    servers = [
        builtin("clock"), builtin("fetch_url"),
        builtin("calculator", tools={"calculate": {"side_effect": "read_only"}, "ghost": {"side_effect": "read_only"}}),
        builtin("notes", env={"COZY_NOTES_DB": str(folder / "notes.duckdb")}),
        hostile("crashy", {name: {"side_effect": "read_only"}
                           for name in ("ping", "crash", "env_names", "sandbox_report", "allocate")},
                env={"SERVICE_TOKEN": "from-config", "PLAIN": "ok"}, pass_env=["GROQ_API_KEY", "COZY_VISIBLE"],
                limits={"address_space_mb": 1024, "open_files": 128}),
        hostile("slow", {"wait": {"side_effect": "read_only", "timeout_s": 1}}),
        hostile("huge_output", {"dump": {"side_effect": "read_only", "max_result_bytes": 4000},
                                "flood": {"side_effect": "read_only"}}, max_message_bytes=500_000),
    ]
    with pytest.MonkeyPatch.context() as patch:  # secrets in our environment must not reach servers
        for name, value in {**LEAKED_SECRETS, "COZY_VISIBLE": "yes"}.items():
            patch.setenv(name, value)
        instance = ToolGateway(config_at(write_config(folder, servers, allow_private=[web.host_port])), audit=audit)
        instance.start()
    yield instance
    instance.stop()


def call(gateway, name, arguments, **context_args):
    context_args.setdefault("allowed", EVERYTHING)
    return gateway.call(context(**context_args), name, json.dumps(arguments))


def last_event(audit, result):
    event = audit.by_id(result.audit_id)
    assert event is not None, "every call leaves an audit event"
    return event


# built-in servers, standalone -----------------------------------------------------------------
@pytest.mark.parametrize("server, tools, tool, arguments, expected", [
    ("clock", {"current_time", "convert_time"}, "convert_time",
     {"time_text": "2026-01-15T12:00", "from_timezone": "UTC", "to_timezone": "Asia/Tokyo"}, "21:00"),
    ("calculator", {"calculate"}, "calculate", {"expression": "6 * 7"}, "6 * 7 = 42"),
    # export_notes and forget_user are the engine's privacy tools (servers.yaml `privacy`).
    ("notes", {"add_note", "add_reminder", "list_notes", "delete_note", "export_notes", "forget_user"},
     "list_notes", {}, "No notes yet."),
    ("fetch_url", {"fetch_url"}, "fetch_url", {"url": "file:///etc/passwd"}, "Refused: URL not allowed"),
])
def test_builtin_server_runs_standalone_for_any_mcp_client(tmp_path, server, tools, tool, arguments, expected):
    params = StdioServerParameters(command=sys.executable, args=["-m", f"tools.servers.{server}"], cwd=PROJECT_ROOT,
                                   env={"COZY_NOTES_DB": str(tmp_path / "notes.duckdb")})

    async def session():
        async with Client(params) as client:
            listed = {t.name for t in (await client.list_tools()).tools}
            return listed, (await client.call_tool(tool, arguments)).content[0].text

    listed, text = asyncio.run(session())
    assert listed == tools
    assert expected in text


# what each persona sees ------------------------------------------------------------------------
def test_schemas_follow_persona_allowlist_and_channel(gateway):
    personas = PersonaCatalog(PROJECT_ROOT / "personas", "companion")

    def names(persona_id, channel):
        persona = personas.get(persona_id)
        return {s["function"]["name"] for s in gateway.schemas_for(persona.id, persona.allowed_tools, channel)}

    builtins = {"current_time", "convert_time", "calculate", "add_note", "add_reminder", "list_notes", "delete_note"}
    assert names("concise", "voice") == builtins | {"fetch_url"}
    assert names("concise", "phone") == builtins  # network tools are off on the phone
    assert names("concise", "api") == builtins - {"delete_note"} | {"fetch_url"}  # dangerous: deny on api
    assert names("tutor", "voice") == {"calculate", "current_time", "convert_time"}
    assert names("storyteller", "voice") == set()
    # The engine's privacy tools are for "Forget me", never for a model, whatever the allowlist says.
    assert not {"export_notes", "forget_user"} & {s["function"]["name"]
                                                  for s in gateway.schemas_for("concise", ["notes"], "text")}
    assert not {"export_notes", "forget_user"} & {e.name for e in gateway.catalog.entries()}
    schema = next(s for s in gateway.schemas_for("concise", ["notes"], "voice")
                  if s["function"]["name"] == "add_note")
    assert schema["type"] == "function" and schema["function"]["description"] == "Save a note for the user."
    assert schema["function"]["parameters"]["additionalProperties"] is False
    assert list(schema["function"]["parameters"]["properties"]) == ["text"]


def test_the_orchestrator_can_use_the_gateway_as_its_tool_runner(gateway, audit):
    runner = GatewayToolRunner(gateway)
    tutor = PersonaCatalog(PROJECT_ROOT / "personas", "companion").get("tutor")
    assert {s["function"]["name"] for s in runner.schemas_for(tutor, "voice")} == \
        {"calculate", "current_time", "convert_time"}
    request = SimpleNamespace(user_id="carol", channel="phone")
    answer = runner.run(SimpleNamespace(id="c1", name="calculate", arguments='{"expression": "3*4"}'),
                        request, tutor, "session-9")
    assert "3*4 = 12" in answer
    refused = runner.run(SimpleNamespace(id="c2", name="add_note", arguments='{"text": "x"}'), request, tutor, "s")
    assert "Not run: add_note is not one of persona tutor's tools" in refused
    event = audit.by_id(refused.result.audit_id)  # each call's own result, not a shared one
    assert (event.user_id, event.persona_id, event.channel, event.decision) == ("carol", "tutor", "phone", "denied")


# built-in tools through the gateway -----------------------------------------------------------
def test_clock_and_calculator_answer_and_explain_their_errors(gateway):
    paris = call(gateway, "current_time", {"timezone": "Europe/Paris"})
    assert paris.ok and ("(CET," in paris.content or "(CEST," in paris.content)
    assert '<tool_result tool="current_time" status="ok" trust="untrusted">' in paris.content
    unknown = call(gateway, "current_time", {"timezone": "Mars/Olympus"})
    assert not unknown.ok and unknown.error == "current_time reported an error"
    assert "unknown time zone 'Mars/Olympus'" in unknown.content
    assert "2^10 = 1024" in call(gateway, "calculate", {"expression": "2^10"}).content
    assert "division by zero" in call(gateway, "calculate", {"expression": "1/0"}).content


def test_notes_belong_to_the_user_the_gateway_vouches_for(gateway, audit, folder):
    saved = call(gateway, "add_note", {"text": "buy oat milk"}, user_id="alice")
    assert saved.ok and "Saved note #" in saved.content
    note_id = int(saved.content.split("Saved note #")[1].split(".")[0])
    assert "No notes yet." in call(gateway, "list_notes", {}, user_id="bob").content
    assert f"#{note_id}: buy oat milk" in call(gateway, "list_notes", {}, user_id="alice").content
    assert (folder / "notes.duckdb").exists()  # COZY_NOTES_DB

    reminder = call(gateway, "add_reminder", {"text": "dentist", "remind_at": "2026-12-01T09:30"}, user_id="alice")
    assert "set for Tuesday 01 December 2026 at 09:30" in reminder.content
    assert "dentist" in call(gateway, "list_notes", {"kind": "reminders"}, user_id="alice").content

    # Deleting is dangerous: it waits for the user's yes to this exact call.
    asked = call(gateway, "delete_note", {"note_id": note_id}, user_id="alice", session_id="s-del")
    assert not asked.ok and asked.needs_confirmation and asked.error == "delete_note needs your confirmation first"
    assert "ask them, and call it again with the same arguments once they say yes" in asked.content
    assert last_event(audit, asked).layer == "policy"
    done = call(gateway, "delete_note", {"note_id": note_id}, user_id="alice", session_id="s-del", confirmed=True)
    assert done.ok and not done.needs_confirmation and f"Deleted note #{note_id}." in done.content
    # Bob cannot delete Alice's reminder, even with a confirmation of his own.
    reminder_id = int(reminder.content.split("Reminder #")[1].split(" ")[0])
    call(gateway, "delete_note", {"note_id": reminder_id}, user_id="bob", session_id="s-bob")
    bobs = call(gateway, "delete_note", {"note_id": reminder_id}, user_id="bob", session_id="s-bob", confirmed=True)
    assert not bobs.ok and f"there is no note #{reminder_id}" in bobs.content


def test_a_declared_tool_the_server_does_not_offer_is_unavailable_not_unknown(gateway, audit):
    ghost = call(gateway, "ghost", {})
    assert not ghost.ok and ghost.error == "ghost is unavailable right now (its server calculator has not listed it)"
    assert audit.by_id(ghost.audit_id).server == "calculator"
    assert "ghost" not in {s["function"]["name"] for s in gateway.schemas_for("tester", ["calculator"], "voice")}


def test_fetch_url_returns_page_text_without_markup(gateway, web):
    page = call(gateway, "fetch_url", {"url": web.url("/page")})
    assert page.ok and "Opening hours\nOpen daily from 9 to 17." in page.content
    assert "alert(" not in page.content and "<h1>" not in page.content and "color:red" not in page.content


def test_worker_threads_can_call_tools_at_the_same_time(gateway):
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda n: call(gateway, "calculate", {"expression": f"{n} * 3"}), range(16)))
    assert [r.ok for r in results] == [True] * 16
    assert all(f"{n} * 3 = {n * 3}" in r.content for n, r in enumerate(results))


# the sandbox --------------------------------------------------------------------------------------
def test_servers_start_without_our_secrets(gateway):
    received = set(json.loads(call(gateway, "env_names", {}).content.split("\n")[2]))
    assert not received & {*LEAKED_SECRETS, "SERVICE_TOKEN"}
    assert {"PATH", "PLAIN", "COZY_VISIBLE"} <= received


def test_servers_run_under_resource_limits(gateway):
    report = json.loads(call(gateway, "sandbox_report", {}).content.split("\n")[2])
    assert report["limits"]["RLIMIT_AS"] == [1024 * 1024 * 1024] * 2
    assert report["limits"]["RLIMIT_NOFILE"] == [128, 128]
    assert report["limits"]["RLIMIT_CORE"] == [0, 0]
    assert "MemoryError" in call(gateway, "allocate", {"megabytes": 1500}).content
    assert "allocated 10 MB" in call(gateway, "allocate", {"megabytes": 10}).content


def test_a_crashed_server_is_restarted(gateway, audit):
    first_pid = json.loads(call(gateway, "sandbox_report", {}).content.split("\n")[2])["pid"]
    crashed = call(gateway, "crash", {})
    assert not crashed.ok and "exited with code 3" in crashed.error and "being restarted" in crashed.error
    assert last_event(audit, crashed).error == crashed.error
    assert gateway.manager.wait_up("crashy", 15)
    assert gateway.manager.server_status("crashy").restarts == 1
    assert "pong" in call(gateway, "ping", {}).content
    assert json.loads(call(gateway, "sandbox_report", {}).content.split("\n")[2])["pid"] != first_pid


def test_a_slow_tool_is_cut_off_at_its_timeout(gateway, audit):
    slow = call(gateway, "wait", {"seconds": 5})
    assert not slow.ok and slow.error == "wait took longer than 1s and was stopped"
    assert slow.latency_ms < 3000
    assert last_event(audit, slow).layer == "sandbox"
    assert call(gateway, "wait", {"seconds": 0}).ok  # the server still answers


def test_a_long_result_is_truncated_and_says_so(gateway, audit):
    big = call(gateway, "dump", {"size": 100_000})
    assert big.ok and "[truncated: showing 4000 of 100000 bytes]" in big.content
    event = last_event(audit, big)
    assert event.truncated and event.result_bytes == 100_000


def test_a_message_over_the_cap_is_rejected_and_the_server_restarted(gateway):
    flood = call(gateway, "flood", {})
    assert not flood.ok and "over 500000 bytes" in flood.error and "being restarted" in flood.error
    assert gateway.manager.wait_up("huge_output", 15)
    assert call(gateway, "dump", {"size": 10}).ok


# descriptions that change between runs --------------------------------------------------------------
def test_a_rug_pull_is_held_until_an_operator_approves_it(tmp_path, monkeypatch):
    config_path = write_config(tmp_path, [hostile("rugpull", {"daily_fact": {"side_effect": "read_only"}},
                                                  env={"HOSTILE_STATE": str(tmp_path / "loads")})])
    allowed = {"allowed": ["rugpull"]}
    with ToolGateway(config_at(config_path), audit=MemoryAuditSink()) as first_run:
        assert "Honey never spoils." in first_run.call(context(**allowed), "daily_fact", "{}").content

    audit = MemoryAuditSink()
    with ToolGateway(config_at(config_path), audit=audit) as second_run:
        denied = second_run.call(context(**allowed), "daily_fact", "{}")
        assert not denied.ok and "possible rug pull" in denied.error
        assert audit.by_id(denied.audit_id).layer == "integrity"
        assert second_run.schemas_for("tester", ["rugpull"], "voice") == []
        listing = cli.render_listing(second_run, PersonaCatalog(PROJECT_ROOT / "personas", "companion"))
        assert "daily_fact (server rugpull): description or schema changed since" in listing

        monkeypatch.setenv("COZY_TOOLS_CONFIG", str(config_path))
        assert cli.main(["approve", "daily_fact"]) == 0
        second_run.refresh()
        assert second_run.call(context(**allowed), "daily_fact", "{}").ok
    assert cli.main(["approve", "daily_fact"]) == 1  # nothing is waiting any more


# other transports, the command line, start and stop ----------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_http_clock(port: int, options: str) -> subprocess.Popen:
    launch = ("from tools.servers.clock import server; "
              f"server.run('streamable-http', host='127.0.0.1', port={port}{options})")
    process = subprocess.Popen([sys.executable, "-c", launch], cwd=PROJECT_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        assert time.monotonic() < deadline and process.poll() is None, "HTTP server did not start"
        time.sleep(0.1)
    return process


# Stateful servers keep an event stream open whose loss the SDK notices; a stateless JSON one
# has none, so only the failed call can tell the manager to reconnect.
@pytest.mark.parametrize("options", ["", ", stateless_http=True, json_response=True"], ids=["stateful", "stateless"])
def test_a_streamable_http_server_is_used_like_a_stdio_one_and_reconnected(tmp_path, options):
    port = free_port()
    process = start_http_clock(port, options)
    server = {"name": "clock_http", "url": f"http://127.0.0.1:{port}/mcp", "start_timeout_s": 5,
              "tools": {"current_time": {"side_effect": "read_only"}, "convert_time": {"side_effect": "read_only"}}}
    ask = context(allowed=["clock_http"])
    try:
        with ToolGateway(config_at(write_config(tmp_path, [server])), audit=MemoryAuditSink()) as gateway:
            result = gateway.call(ask, "current_time", '{"timezone": "UTC"}')
            assert result.ok and "(UTC," in result.content
            process.terminate()
            process.wait(10)
            assert not gateway.call(ask, "current_time", "{}").ok  # the server is gone
            process = start_http_clock(port, options)
            assert gateway.manager.wait_up("clock_http", 15)
            assert gateway.call(ask, "current_time", "{}").ok
    finally:
        process.terminate()
        process.wait(10)


def test_cli_list_shows_each_persona_and_what_is_missing(tmp_path):
    env = {**os.environ, "COZY_TOOLS_CONFIG": str(write_config(tmp_path, [builtin("calculator")]))}
    listing = subprocess.run([sys.executable, "-m", "tools.cli", "list"], cwd=PROJECT_ROOT, env=env,
                             capture_output=True, text=True, timeout=60, check=False)
    assert listing.returncode == 0, listing.stderr
    assert "calculator     up" in listing.stdout
    assert "Persona tutor (Sage, the Socratic tutor):\n  calculate        read_only    voice=allow" in listing.stdout
    assert "knowledge_search -            not served by any configured server" in listing.stdout
    assert "Persona storyteller (Wren, the storyteller):\n  no tools" in listing.stdout


def test_from_env_audits_to_jsonl_and_stop_ends_the_servers(tmp_path, monkeypatch):
    monkeypatch.setenv("COZY_TOOLS_CONFIG", str(write_config(tmp_path, [hostile("crashy", {
        "sandbox_report": {"side_effect": "read_only"}})])))
    monkeypatch.setenv("COZY_TOOLS_AUDIT", str(tmp_path / "audit.jsonl"))
    gateway = ToolGateway.from_env()
    gateway.start()
    result = gateway.call(context(allowed=["crashy"]), "sandbox_report", "{}")
    pid = json.loads(result.content.split("\n")[2])["pid"]
    gateway.stop()
    with pytest.raises(ProcessLookupError):  # the server process is gone, not orphaned
        os.kill(pid, 0)
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(e["tool"], e["decision"], e["user_id"], e["id"]) for e in lines] == \
        [("sandbox_report", "allowed", "alice", result.audit_id)]
