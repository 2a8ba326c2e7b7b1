"""A Realtime conversation's items, in order, and the chat history they make for the model.

The items are the conversation as the client sees it: deleting or truncating one
changes what the model is given next. The turns are also stored in the user's
session (handlers/realtime/responder.py), so memory and other channels see them.
"""
from __future__ import annotations

import copy
import json
import uuid
from typing import Any

from handlers.voice.playback import SpokenReply

MAX_ITEMS = 500  # a long call drops its oldest items rather than grow without end
MAX_ITEM_TEXT = 50_000
ROLES = ("user", "assistant", "system")
_USER_PARTS = ("input_text", "input_audio")


class ItemError(ValueError):
    def __init__(self, param: str, message: str, code: str = "invalid_value"):
        super().__init__(message)
        self.param, self.message, self.code = param, message, code


def new_item_id() -> str:
    return f"item_{uuid.uuid4().hex[:24]}"


def part_text(part: dict[str, Any]) -> str:
    return part.get("text") or part.get("transcript") or ""


def message_text(item: dict[str, Any]) -> str:
    return " ".join(t for t in (part_text(p) for p in item.get("content", [])) if t).strip()


class ConversationItems:
    def __init__(self):
        self._items: dict[str, dict[str, Any]] = {}
        # An assistant item's audio as sent, piece by piece, so a truncate keeps the words heard.
        self.spoken: dict[str, SpokenReply] = {}
        self.stored_message: dict[str, str] = {}  # assistant item -> its stored message id

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._items

    def last_id(self) -> str | None:
        return next(reversed(self._items), None)

    def add(self, item: dict[str, Any], previous_item_id: str | None = None) -> str | None:
        """Insert after `previous_item_id` (None: at the end); returns the id before it."""
        if previous_item_id is not None and previous_item_id != "root" and previous_item_id not in self._items:
            raise ItemError("previous_item_id", f"No item '{previous_item_id}' in the conversation.",
                            "item_not_found")
        if item["id"] in self._items:
            raise ItemError("item.id", f"The item id '{item['id']}' is in use.", "duplicate_item_id")
        ids = list(self._items)
        if previous_item_id is None:
            position = len(ids)
        else:
            position = 0 if previous_item_id == "root" else ids.index(previous_item_id) + 1
        before = ids[position - 1] if position else None
        items = list(self._items.items())
        items.insert(position, (item["id"], item))
        self._items = dict(items[-MAX_ITEMS:])
        return before

    def get(self, item_id: Any) -> dict[str, Any]:
        if not isinstance(item_id, str) or item_id not in self._items:
            raise ItemError("item_id", f"No item '{item_id}' in the conversation.", "item_not_found")
        return self._items[item_id]

    def delete(self, item_id: Any) -> None:
        self.get(item_id)
        del self._items[item_id]
        self.spoken.pop(item_id, None)

    def truncate(self, item_id: Any, content_index: Any, audio_end_ms: Any) -> str:
        """Keep the first `audio_end_ms` of an assistant item's audio; returns the words kept."""
        item = self.get(item_id)
        if item.get("type") != "message" or item.get("role") != "assistant":
            raise ItemError("item_id", "Only assistant messages with audio can be truncated.")
        if not isinstance(content_index, int) or not 0 <= content_index < len(item.get("content", [])):
            raise ItemError("content_index", "No such content part.")
        spoken = self.spoken.get(item_id)
        if not isinstance(audio_end_ms, int) or isinstance(audio_end_ms, bool) or audio_end_ms < 0 \
                or spoken is None or audio_end_ms > round(spoken.seconds * 1000) + 1:
            raise ItemError("audio_end_ms", "audio_end_ms must be within the item's audio "
                            f"({round(spoken.seconds * 1000) if spoken else 0} ms).")
        heard = spoken.heard(audio_end_ms / 1000)
        item["content"][content_index]["transcript"] = heard
        return heard

    def history(self) -> tuple[list[dict[str, Any]], str]:
        """(chat messages for the model, the system items' text)."""
        messages: list[dict[str, Any]] = []
        system: list[str] = []
        for item in self._items.values():
            kind = item.get("type")
            if kind == "message" and item["role"] == "system":
                system.append(message_text(item))
            elif kind == "message":
                text = message_text(item)
                if text:
                    messages.append({"role": item["role"], "content": text})
            elif kind == "function_call":
                call = {"id": item["call_id"], "type": "function",
                        "function": {"name": item["name"], "arguments": item.get("arguments") or "{}"}}
                if messages and messages[-1]["role"] == "assistant" and messages[-1].get("tool_calls"):
                    messages[-1]["tool_calls"].append(call)
                else:
                    messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            elif kind == "function_call_output":
                messages.append({"role": "tool", "tool_call_id": item["call_id"], "content": item.get("output", "")})
        return messages, "\n".join(t for t in system if t)


def client_item(raw: Any) -> dict[str, Any]:
    """A conversation.item.create's item, checked and completed (id, status, object)."""
    if not isinstance(raw, dict):
        raise ItemError("item", "'item' must be an object.", "invalid_type")
    kind = raw.get("type")
    item_id = raw.get("id") or new_item_id()
    if not isinstance(item_id, str) or len(item_id) > 64:
        raise ItemError("item.id", "'id' must be a string of at most 64 characters.")
    base = {"id": item_id, "object": "realtime.item", "status": "completed"}
    if kind == "message":
        role = raw.get("role")
        if role not in ROLES:
            raise ItemError("item.role", "'role' is user, assistant or system.")
        content = raw.get("content")
        if not isinstance(content, list) or not content:
            raise ItemError("item.content", "A message needs a list of content parts.")
        allowed = _USER_PARTS if role == "user" else ("output_text", "output_audio", "text") \
            if role == "assistant" else ("input_text",)
        parts = []
        for index, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in allowed:
                raise ItemError(f"item.content[{index}].type", f"A {role} message's parts are "
                                f"{' or '.join(allowed)}.")
            text = part.get("text", part.get("transcript"))
            if part["type"] == "input_audio":
                if not isinstance(part.get("audio"), str):
                    raise ItemError(f"item.content[{index}].audio", "An input_audio part needs base64 'audio'.")
                parts.append({"type": "input_audio", "audio": part["audio"], "transcript": None})
                continue
            if not isinstance(text, str) or len(text) > MAX_ITEM_TEXT:
                raise ItemError(f"item.content[{index}].text", f"The text must be a string of at most "
                                f"{MAX_ITEM_TEXT} characters.")
            if part["type"] == "output_audio":
                parts.append({"type": "output_audio", "transcript": text})
            else:
                parts.append({"type": "output_text" if role == "assistant" else "input_text", "text": text})
        return {**base, "type": "message", "role": role, "content": parts}
    if kind == "function_call_output":
        call_id, output = raw.get("call_id"), raw.get("output")
        if not isinstance(call_id, str) or not call_id:
            raise ItemError("item.call_id", "A function_call_output needs the 'call_id' it answers.")
        if not isinstance(output, str) or len(output) > MAX_ITEM_TEXT:
            output = output if isinstance(output, str) else json.dumps(output)
            if len(output) > MAX_ITEM_TEXT:
                raise ItemError("item.output", f"'output' is at most {MAX_ITEM_TEXT} characters.")
        return {**base, "type": "function_call_output", "call_id": call_id, "output": output}
    if kind == "function_call":
        name, call_id = raw.get("name"), raw.get("call_id")
        if not isinstance(name, str) or not isinstance(call_id, str):
            raise ItemError("item", "A function_call needs 'name' and 'call_id'.")
        arguments = raw.get("arguments") if isinstance(raw.get("arguments"), str) else "{}"
        return {**base, "type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}
    raise ItemError("item.type", "'type' is message, function_call or function_call_output.")


def public(item: dict[str, Any]) -> dict[str, Any]:
    """The item as events carry it: input audio bytes are not echoed back, and a transcript
    not made yet is absent (the spec has no null for it)."""
    shown = copy.deepcopy(item)
    for part in shown.get("content", []):
        if part.get("type") == "input_audio":
            part.pop("audio", None)
            if part.get("transcript") is None:
                part.pop("transcript", None)
    return shown
