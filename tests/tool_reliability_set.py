"""A fixed set of tool-worthy requests, and a rig that runs them for real.

The rig is the engine as a user meets it: the real orchestrator, the real tool
gateway with the built-in MCP servers over stdio (and the knowledge server over
streamable HTTP, as the app serves it), and a local model. Used by
bench/tool_reliability.py (every persona, every request) and by
tests/test_tool_reliability.py (a subset with a floor).

fetch_url is left out: it needs the internet, which this machine does not have.
"""
from __future__ import annotations

import threading
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from config import Settings, ToolSettings
from orchestrator.services import build_chat_services
from orchestrator.turns import TurnDelta, TurnDone, TurnRequest, TurnToolCall
from personas.cards import PersonaCatalog
from providers.base import ChatModel
from storage.audit import DuckDbAuditSink
from tools.config import ServerSpec, ToolSpec, load_config, with_state
from tools.gateway import ToolGateway, ToolResult
from tools.runner import GatewayToolRunner

PERSONAS_DIR = Path(__file__).resolve().parent.parent / "personas"
MARKUP = ("<tool", "```json", '{"name"')  # what must never be spoken or shown


@dataclass(frozen=True)
class ToolRequest:
    text: str
    tools: frozenset[str]  # any of these running counts as the right tool
    server: str  # the persona needs this server (or tool) in allowed_tools


def _requests(server: str, tools: str, *texts: str) -> list[ToolRequest]:
    return [ToolRequest(text, frozenset(tools.split()), server) for text in texts]


REQUESTS: list[ToolRequest] = [
    *_requests("clock", "current_time", "What time is it?", "What's today's date?",
               "What day of the week is it today?"),
    *_requests("clock", "current_time convert_time", "What's the time in Tokyo right now?",
               "What time is it in New York?"),
    *_requests("clock", "convert_time", "When it's 9:00 in London, what time is it in Sydney?",
               "Convert 14:30 from Paris time to Los Angeles time.",
               "If it's 8 am in New York, what time is it in Berlin?"),
    *_requests("calculator", "calculate", "What is 17 times 23?", "How much is 1234 plus 5678?",
               "What's the square root of 144?", "Calculate 15 percent of 240.", "What is 99 divided by 3?",
               "What's 2 to the power of 10?"),
    *_requests("notes", "add_note", "Make a note that I need to buy milk.",
               "Please note down that the wifi password is on the fridge."),
    *_requests("notes", "add_note add_reminder", "Write down that I should call the plumber on Friday."),
    *_requests("notes", "add_reminder", "Set a reminder for 24 December 2026 at 6 pm to call mum."),
    *_requests("notes", "list_notes", "What are my notes?", "Read me my reminders."),
    *_requests("knowledge_search", "knowledge_search", "Search my documents: when do the tomatoes go in?",
               "Look in my files for the bakery's opening time.",
               "What does my document say about the boiler service?",
               "Look up the plumber's phone number in my documents."),
]

DOCUMENTS = {  # what knowledge_search finds
    "garden.md": "# Garden\n\nThe tomatoes go in the south bed in May, after the last frost.",
    "bakery.md": "# Bakery\n\nThe Cozy Bakery opens at 7:30 on weekdays and 9:00 on Sundays.",
    "house.md": "# House\n\nThe boiler service is due every October. The plumber is Sam, on 0161 555 0199.",
}


def requests_for(allowed_tools: list[str] | tuple[str, ...]) -> list[ToolRequest]:
    return [r for r in REQUESTS if r.server in allowed_tools]


@dataclass
class Outcome:
    persona_id: str
    request: ToolRequest
    reply: str
    ran: list[tuple[str, bool]] = field(default_factory=list)  # (tool, ok) in call order
    first_token_s: float | None = None
    turn_s: float = 0.0

    @property
    def right_tool_ran(self) -> bool:
        return any(ok and name in self.request.tools for name, ok in self.ran)

    @property
    def markup(self) -> str | None:
        return next((m for m in MARKUP if m in self.reply), None)


class _RecordingRunner:
    """The gateway runner, keeping each call's result for the turn being measured."""

    def __init__(self, inner: GatewayToolRunner):
        self.inner = inner
        self.results: list[ToolResult] = []

    def schemas_for(self, persona: Any, channel: str) -> list[dict[str, Any]]:
        return self.inner.schemas_for(persona, channel)

    def run(self, call: Any, request: Any, persona: Any, session_id: str) -> str:
        content = self.inner.run(call, request, persona, session_id)
        self.results.append(content.result)
        return content


class _KnowledgeServer:
    """The app's knowledge MCP server on a loopback port, as app.py serves it."""

    def __init__(self, search):
        import uvicorn
        from fastapi import FastAPI

        from handlers.knowledge_mcp import KnowledgeEndpoint
        from tests.conftest import free_port
        from tools.servers.knowledge import build_knowledge_server

        self.endpoint = KnowledgeEndpoint(build_knowledge_server(search))

        @asynccontextmanager
        async def lifespan(_):
            async with self.endpoint.running():
                yield

        app = FastAPI(lifespan=lifespan)
        app.mount(self.endpoint.path, self.endpoint.asgi)
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)

    def spec(self) -> ServerSpec:
        return ServerSpec(name="knowledge", url=self.endpoint.url(self.port), share_identity=True, vetted=True,
                          tools={"knowledge_search": ToolSpec("knowledge_search", "read_only", timeout_s=5,
                                                              max_result_bytes=8000)})

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class ToolRig:
    """One engine for a whole run; `ask` is one fresh conversation."""

    def __init__(self, model: ChatModel, folder: Path, channel: str = "voice"):
        folder.mkdir(parents=True, exist_ok=True)
        self.channel = channel
        self.personas = PersonaCatalog(PERSONAS_DIR, "companion")
        self.services = build_chat_services(Settings(data_dir=folder), self.personas, model)
        for title, text in DOCUMENTS.items():
            self.services.knowledge.add_document(None, title, text)
        self.knowledge = _KnowledgeServer(self.services.knowledge.search)
        config = with_state(load_config(), ToolSettings(), folder)
        self.gateway = ToolGateway(replace(config, servers=(*config.servers, self.knowledge.spec())),
                                   audit=DuckDbAuditSink(self.services.db))
        self.gateway.start(wait_s=20)
        self.runner = _RecordingRunner(GatewayToolRunner(self.gateway))
        self.services.orchestrator.tools = self.runner

    def personas_with_tools(self) -> list[str]:
        return [p.id for p in self.personas.all() if requests_for(p.allowed_tools)]

    def requests_for(self, persona_id: str) -> list[ToolRequest]:
        return requests_for(self.personas.get(persona_id).allowed_tools)

    def ask(self, persona_id: str, request: ToolRequest, user_id: str = "bench") -> Outcome:
        self.runner.results = []
        started = time.perf_counter()
        items = list(self.services.orchestrator.run(
            TurnRequest(text=request.text, user_id=user_id, persona_id=persona_id, channel=self.channel)))
        done = items[-1]
        assert isinstance(done, TurnDone)
        reply = "".join(i.text for i in items if isinstance(i, TurnDelta))
        called = [i.call.name for i in items if isinstance(i, TurnToolCall)]
        assert len(called) == len(self.runner.results)
        return Outcome(persona_id, request, reply, [(r.tool, r.ok) for r in self.runner.results],
                       done.record.first_token_s, time.perf_counter() - started)

    def close(self) -> None:
        self.gateway.stop()
        self.knowledge.stop()
        self.services.close()

    def __enter__(self) -> ToolRig:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
