"""Tool calls in a local model's text.

Qwen2.5-style templates ask for

    <tool_call>
    {"name": "clock", "arguments": {"timezone": "Europe/Paris"}}
    </tool_call>

but small models often answer with the bare JSON object, fenced or not. The parser
passes ordinary text through as it streams, holds back anything that may turn out
to be a call (a tag start, or a reply opening with "{" or a code fence while tools
are on offer), and returns each call whole at the end.
"""
from __future__ import annotations

import json
import re
import uuid

from providers.base import ToolCall

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_BLOCK = re.compile(re.escape(OPEN) + r"(.*?)(?:" + re.escape(CLOSE) + r"|$)", re.S)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


def _as_calls(payload: object) -> list[ToolCall] | None:
    # A name the model made up still comes back as a call: the tool layer refuses it
    # with a reason the model can read, which works better than speaking the JSON.
    items = payload if isinstance(payload, list) else [payload]
    calls = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return None
        arguments = item.get("arguments", item.get("parameters", {}))
        encoded = arguments if isinstance(arguments, str) else json.dumps(arguments)
        calls.append(ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=item["name"], arguments=encoded))
    return calls


class ToolCallParser:
    def __init__(self, tool_names: set[str] | None = None) -> None:
        self._tool_names = tool_names or set()
        self._pending = ""
        self._mode = "start" if tool_names else "text"  # start | text | tagged | bare_json
        self._calls_text = ""

    def feed(self, text: str) -> str:
        """Text safe to show now."""
        if self._mode in ("tagged", "bare_json"):
            self._calls_text += text
            return ""
        self._pending += text
        if self._mode == "start":
            stripped = self._pending.lstrip()
            if not stripped:
                return ""
            if stripped[0] in "{[`":
                self._mode, self._calls_text, self._pending = "bare_json", self._pending, ""
                return ""
            self._mode = "text"
        start = self._pending.find(OPEN)
        if start >= 0:
            shown, self._calls_text = self._pending[:start], self._pending[start:]
            self._pending, self._mode = "", "tagged"
            return shown
        keep = 0  # a tail that could still become "<tool_call>"
        for size in range(1, len(OPEN)):
            if self._pending.endswith(OPEN[:size]):
                keep = size
        shown = self._pending[: len(self._pending) - keep]
        self._pending = self._pending[len(shown):]
        return shown

    def finish(self) -> tuple[str, list[ToolCall]]:
        """Remaining text, and the calls found (what does not parse comes back as text)."""
        text, self._pending = self._pending, ""
        if self._mode == "bare_json":
            body = _FENCE.sub("", self._calls_text.strip())
            try:
                calls = _as_calls(json.loads(body))
            except ValueError:
                calls = None
            return (text, calls) if calls else (self._calls_text + text, [])
        calls: list[ToolCall] = []
        for block in _BLOCK.findall(self._calls_text):
            try:
                parsed = _as_calls(json.loads(block.strip()))
            except ValueError:
                parsed = None
            if parsed:
                calls += parsed
            else:
                text += f"{OPEN}{block}{CLOSE}"
        return text, calls
