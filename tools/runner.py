"""The gateway as the orchestrator's `ToolRunner` (orchestrator/chat.py).

Duck-typed on purpose: tools/ does not import the orchestrator. The trusted
context (user, session, persona, channel) comes from the turn, never from the
model's arguments. `confirmed` is read from the request if it has such a field.
"""
from __future__ import annotations

from typing import Any

from tools.gateway import ToolCallContext, ToolGateway, ToolResult


class GatewayToolRunner:
    def __init__(self, gateway: ToolGateway):
        self.gateway = gateway

    def schemas_for(self, persona: Any, channel: str) -> list[dict[str, Any]]:
        return self.gateway.schemas_for(persona.id, persona.allowed_tools, channel)

    def run(self, call: Any, request: Any, persona: Any, session_id: str) -> "ToolOutput":
        context = ToolCallContext(user_id=request.user_id, session_id=session_id, persona_id=persona.id,
                                  allowed_tools=tuple(persona.allowed_tools), channel=request.channel,
                                  confirmed=bool(getattr(request, "confirmed", False)))
        return ToolOutput(self.gateway.call(context, call.name, call.arguments))


class ToolOutput(str):
    """The text the model reads back, carrying this call's own outcome (not shared state)."""

    result: ToolResult

    def __new__(cls, result: ToolResult) -> "ToolOutput":
        output = super().__new__(cls, result.content)
        output.result, output.ok, output.latency_ms = result, result.ok, result.latency_ms
        return output
