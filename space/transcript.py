"""How a conversation reads in the page's Chatbot: who answered, tools that ran, how fast.

Messages are Gradio's `type="messages"` dicts. A reply starts with the persona's
name and ends with a small badge (model, time to first words); a tool call is its
own message with a `metadata.title`, which Gradio draws as a chip.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

THINKING = "💭 _thinking…_"
STATE_LABELS = {
    "listening": "🟢 **Listening** — speak, then pause",
    "hearing": "🗣️ **Hearing you…**",
    "heard": "👂 **Heard you** — transcribing",
    "thinking": "💭 **Thinking…**",
    "speaking": "🔊 **Speaking** — talk to interrupt",
}
IDLE_STATE = "⚪ Press **Talk** to start a voice call (your browser asks for the microphone once)."


def user_message(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def reply_message(persona_name: str, text: str, badge: str = "") -> dict[str, Any]:
    body = f"**{persona_name}**\n\n{text or THINKING}"
    return {"role": "assistant", "content": body + (f"\n\n<sub>{badge}</sub>" if badge else "")}


def tool_chip(name: str, ok: bool, latency_ms: float | None) -> dict[str, Any]:
    timing = f" · {latency_ms:.0f} ms" if latency_ms is not None else ""
    title = f"🔧 {name}{timing}" if ok else f"⚠️ {name} (not run){timing}"
    return {"role": "assistant", "content": "", "metadata": {"title": title, "status": "done"}}


def badge(model: str | None, first_words_s: float | None, label: str = "first words") -> str:
    parts = [model or ""]
    if first_words_s is not None:
        parts.append(f"{label} {first_words_s:.1f} s")
    return " · ".join(p for p in parts if p)


def transcript_of(messages: list[dict], persona_name: Callable[[str | None], str]) -> list[dict[str, Any]]:
    """A stored conversation as the page shows it, with the persona and badge of each reply."""
    shown = []
    for message in messages:
        if message["role"] == "user":
            shown.append(user_message(message["content"]))
            continue
        metadata = message.get("metadata") or {}
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except ValueError:
                metadata = {}
        first = metadata.get("first_token_s")
        shown.append(reply_message(persona_name(metadata.get("persona_id")), message["content"],
                                   badge(metadata.get("model"), first, "first token")))
    return shown


def live_voice_chat(stored: list[dict[str, Any]], transcript: list[dict[str, str]], turn: dict[str, Any],
                    persona_name: str) -> list[dict[str, Any]]:
    """A call's transcript while it runs: the stored conversation, plus the turn in progress
    (the user's words, the tools that ran, the reply as far as it has been spoken)."""
    if "turn_s" in turn.get("stages_s", {}) and stored:
        return stored  # the turn is saved: the stored conversation has it, with its badge
    current = transcript[turn.get("turn_starts_at", 0):] if stored else transcript
    shown = list(stored)
    for message in current:
        if message["role"] == "user":
            shown.append(user_message(message["content"]))
        else:
            shown.append(reply_message(persona_name, message["content"]))
    if turn.get("tools") and shown and shown[-1]["role"] == "assistant":
        shown[-1:-1] = [tool_chip(t["name"], t["ok"], t.get("latency_ms")) for t in turn["tools"]]
    elif turn.get("tools"):
        shown += [tool_chip(t["name"], t["ok"], t.get("latency_ms")) for t in turn["tools"]]
    return shown
