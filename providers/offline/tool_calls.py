"""Tool calls in a local model's text, found while it streams.

Qwen2.5's template asks for

    <tool_call>
    {"name": "current_time", "arguments": {"timezone": "Europe/Paris"}}
    </tool_call>

but small models also answer with the list from their prompt (`<tools>{...}</tools>`),
a fenced ```json block, a bare JSON object or a list of them, with "parameters"
for "arguments", sometimes after a sentence, sometimes several at once. Every one
of those is a call when it names a tool on offer. None of it is ever shown: the
text goes to a voice and a transcript, so anything that may be the start of
markup (`<tool`, a code fence, `{`, `[{`) is held back until it is known to be
prose or a call. A call to a tool nobody offered is dropped with its markup (the
caller may ask the model again without tools), and once a call is seen, prose
after it is dropped too: it is the model imagining the result.
"""
from __future__ import annotations

import json
import re
import uuid
from typing import Any

from providers.base import ToolCall

_TAG = re.compile(r"</?(tool[a-z_]*|function[a-z_]*)\b[^<>]{0,80}>", re.I)
_TAG_STARTS = ("<tool", "</tool", "<function", "</function")
_FENCE_OPEN = re.compile(r"```[ \t]*([A-Za-z_]*)[ \t]*\n?[ \t\n]*")
_SPECIAL = re.compile(r"[<{\[`]")
_FENCE_EDGES = re.compile(r"^```[A-Za-z_]*|```$")
_NAME_KEYS = ("name", "tool", "function_name")
_ARGUMENT_KEYS = ("arguments", "parameters", "args", "input")


def _json_end(text: str, start: int) -> int | None:
    """Index after the bracketed JSON value opening at `start`, or None while it is unfinished."""
    depth, in_string, escaped = 0, False, False
    for index in range(start, len(text)):
        char = text[index]
        if in_string:
            escaped = not escaped and char == "\\"
            in_string = escaped or char != '"'
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return index + 1
    return None


def _json_values(text: str) -> list[Any] | None:
    """Every JSON value in `text` (one, a list, or several one after another), or None if
    anything else is in there."""
    decoder, values, index = json.JSONDecoder(), [], 0
    while True:
        while index < len(text) and text[index] in " \t\r\n,":
            index += 1
        if index == len(text):
            return values
        try:
            value, index = decoder.raw_decode(text, index)
        except ValueError:
            return None
        values.extend(value if isinstance(value, list) else [value])


def _call_fields(item: Any) -> tuple[str, Any, bool] | None:
    """(name, arguments, whether arguments were given) if `item` reads as a call."""
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("function"), dict):  # OpenAI's shape
        item = item["function"]
    name = next((item[k] for k in _NAME_KEYS if isinstance(item.get(k), str)), None)
    if name is None:
        return None
    key = next((k for k in _ARGUMENT_KEYS if k in item), None)
    arguments = item[key] if key else {}
    if isinstance(arguments, dict) and arguments.get("type") == "object" and "properties" in arguments:
        arguments = {}  # the tool's definition echoed from the prompt: it still names the tool it wants
    return name, arguments, key is not None


class ToolCallParser:
    def __init__(self, tool_names: set[str] | None = None) -> None:
        self._tool_names = set(tool_names or ())
        self._by_lower = {name.lower(): name for name in self._tool_names}
        self._buffer = ""
        self._calls: list[ToolCall] = []
        self.dropped: list[str] = []  # markup kept from the reader: unknown tools, broken calls

    def feed(self, text: str) -> str:
        """Text safe to show now."""
        self._buffer += text
        return self._drain(final=False)

    def finish(self) -> tuple[str, list[ToolCall]]:
        """The rest of the text, and every call found."""
        return self._drain(final=True), list(self._calls)

    # ---------------------------------------------------------------------------------
    def _drain(self, final: bool) -> str:
        shown: list[str] = []
        while self._buffer:
            match = _SPECIAL.search(self._buffer)
            start = match.start() if match else len(self._buffer)
            prose = self._buffer[:start]
            # Whitespace waits for what follows it: before a call it is nobody's to show.
            spacing = "" if (final and not match) else prose[len(prose.rstrip()):]
            shown.append(self._prose(prose[:len(prose) - len(spacing)]))
            self._buffer = self._buffer[start:]
            if not match:
                self._buffer = spacing
                break
            taken = self._markup(final)
            if taken is None:  # not decidable yet: wait for more text
                self._buffer = spacing + self._buffer
                break
            consumed, text = taken
            shown.append(self._prose(spacing + text) if text else "")
            self._buffer = self._buffer[consumed:]
        return "".join(shown)

    def _prose(self, text: str) -> str:
        if self._calls:
            if text.strip():
                self.dropped.append(text)
            return ""
        return text

    def _markup(self, final: bool) -> tuple[int, str] | None:
        """At a special character: (characters consumed, text to show), or None to wait."""
        buffer = self._buffer
        if buffer[0] == "<":
            return self._tag(final)
        if buffer[0] == "`":
            return self._fence(final)
        if buffer[0] == "[":
            rest = buffer[1:].lstrip()
            if not rest:
                return (len(buffer), buffer) if final else None
            if rest[0] != "{":
                return 1, "["
        return self._bare_json(final)

    def _tag(self, final: bool) -> tuple[int, str] | None:
        buffer = self._buffer
        match = _TAG.match(buffer)
        if match is None:
            head = buffer[:10].lower()
            could_be = any(s.startswith(head) or head.startswith(s) for s in _TAG_STARTS) and ">" not in head
            if could_be and not final:
                return None
            if could_be:  # a tag cut off by the end of the reply
                self.dropped.append(buffer)
                return len(buffer), ""
            return 1, "<"
        if match.group(0).startswith("</"):  # a stray closing tag
            self.dropped.append(match.group(0))
            return match.end(), ""
        close = re.compile(r"</\s*" + re.escape(match.group(1)) + r"\s*>", re.I).search(buffer, match.end())
        if close is None and not final:
            return None
        end = close.end() if close else len(buffer)
        body = buffer[match.end(): close.start() if close else len(buffer)]
        if "response" in match.group(1).lower() or not self._take_calls(body):
            self.dropped.append(buffer[:end])
        return end, ""

    def _fence(self, final: bool) -> tuple[int, str] | None:
        buffer = self._buffer
        if not buffer.startswith("```"):
            if buffer in ("`", "``") and not final:
                return None
            return 1, "`"
        opening = _FENCE_OPEN.match(buffer)
        assert opening is not None
        if opening.end() == len(buffer) and not final:
            return None  # the language or the first character of the block is still to come
        if not buffer[opening.end():opening.end() + 1] in ("{", "["):
            return opening.end(), buffer[:opening.end()]  # a code block that is no call: shown
        close = buffer.find("```", opening.end())
        if close < 0 and not final:
            return None
        end = close + 3 if close >= 0 else len(buffer)
        body = buffer[opening.end(): close if close >= 0 else len(buffer)]
        if self._take_calls(body):
            return end, ""
        if '"name"' in body:  # a call to something not offered, or one cut short
            self.dropped.append(buffer[:end])
            return end, ""
        return end, buffer[:end]

    def _bare_json(self, final: bool) -> tuple[int, str] | None:
        buffer = self._buffer
        end = _json_end(buffer, 0)
        if end is None:
            if not final:
                return None
            if '"name"' in buffer:  # a call cut off by the token limit
                self.dropped.append(buffer)
                return len(buffer), ""
            return len(buffer), buffer
        if self._take_calls(buffer[:end]):
            return end, ""
        values = _json_values(buffer[:end])
        if values and all(_call_fields(v) and _call_fields(v)[2] for v in values):
            self.dropped.append(buffer[:end])  # call-shaped, for a tool not on offer
            return end, ""
        return end, buffer[:end]

    def _take_calls(self, body: str) -> bool:
        """Add the calls `body` holds; False (and nothing added) unless all of it is calls to
        offered tools."""
        values = _json_values(_FENCE_EDGES.sub("", body.strip()))
        if not values:
            return False
        found = []
        for value in values:
            fields = _call_fields(value)
            name = self._offered(fields[0]) if fields else None
            if name is None:
                return False
            arguments = fields[1]
            if isinstance(arguments, str):  # OpenAI's wire form: the arguments as JSON text
                try:
                    arguments = json.loads(arguments or "{}")
                except ValueError:
                    pass
            encoded = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
            found.append(ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=name, arguments=encoded))
        self._calls.extend(found)
        return True

    def _offered(self, name: str) -> str | None:
        if name in self._tool_names:
            return name
        return self._by_lower.get(name.strip().lower())
