"""How engine state reads on the page: plain functions from data to Markdown."""
from __future__ import annotations

from typing import Any

STAGE_LABELS = {
    "endpointing_s": "end of speech → turn detected",
    "stt_s": "speech recognition (after the turn)",
    "llm_first_token_s": "model: first token",
    "llm_first_piece_s": "model: first sentence ready",
    "tts_first_audio_s": "speech synthesis: first audio",
    "first_audio_s": "end of speech → first reply audio",
    "turn_s": "whole turn",
}


def latency_table(turn: dict[str, Any]) -> str:
    if not turn:
        return "_No spoken turn yet._"
    stages = turn.get("stages_s", {})
    rows = [f"| {label} | {stages[key] * 1000:.0f} ms |" for key, label in STAGE_LABELS.items()
            if key in stages]
    lines = ["| stage | time |", "|---|---|", *rows]
    phases = turn.get("orchestrator", {}).get("phases_s", {})
    if phases:
        lines.append("")
        lines.append("Orchestrator: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in phases.items()))
    providers = turn.get("providers", {})
    if providers:
        lines.append("")
        lines.append("Served by: " + ", ".join(f"{k} = `{v}`" for k, v in providers.items()))
    reasons = turn.get("orchestrator", {}).get("degrade_reasons", [])
    if reasons:
        lines.append("\n⚠️ Degraded: " + "; ".join(reasons))
    if turn.get("error"):
        lines.append(f"\n⚠️ {turn['error']}")
    return "\n".join(lines)


def profile_view(profile: dict[str, str], memories: list[dict]) -> str:
    lines = ["### Profile"]
    lines += [f"- **{key}**: {value}" for key, value in profile.items()] or ["_Nothing yet._"]
    lines.append("\n### Memories")
    lines += [f"- {m['content']} _({m['category']})_" for m in memories] or ["_Nothing yet._"]
    return "\n".join(lines)


def documents_view(documents: list[dict]) -> str:
    if not documents:
        return "_No documents yet. Upload text or markdown files._"
    return "\n".join(f"- **{d['title']}** — {d['chars']:,} characters{' (shared)' if d['shared'] else ''}"
                     for d in documents)


def session_choices(sessions: list[dict]) -> list[tuple[str, str]]:
    return [(f"{(s['title'] or 'New conversation')[:40]} · {s['message_count']} messages", s["id"])
            for s in sessions]


def tools_view(entries: list, allowed_tools: tuple[str, ...]) -> str:
    """The persona's tools with their side-effect level, and why any is off."""
    rows, served = [], set()
    for entry in entries:
        if entry.name not in allowed_tools and entry.server not in allowed_tools:
            continue
        served |= {entry.name, entry.server}
        level = entry.spec.side_effect.replace("_", "-") if entry.spec else "undeclared"
        status = "on" if entry.enabled else f"⛔ off: {entry.disabled_reason}"
        rows.append(f"| `{entry.name}` | {entry.server} | {level} | {status} |")
    missing = [name for name in allowed_tools if name not in served]
    if not rows and not missing:
        return "_This persona uses no tools._"
    lines = ["| tool | server | side effect | status |", "|---|---|---|---|", *rows]
    if missing:
        lines.append("\nNot served by any running tool server: " + ", ".join(f"`{m}`" for m in missing))
    return "\n".join(lines)


def audit_view(events: list[dict], persona_names: dict[str, str] | None = None) -> str:
    if not events:
        return "_No tool calls yet._"
    names = persona_names or {}
    lines = ["| when | channel | persona | tool | decision | reason | ms |", "|---|---|---|---|---|---|---|"]
    for e in sorted(events, key=lambda e: (e["channel"] or "", str(e["occurred_at"])), reverse=True):
        when = e["occurred_at"].strftime("%H:%M:%S") if hasattr(e["occurred_at"], "strftime") else e["occurred_at"]
        reason = (e["reason"] or e["error"] or "").replace("|", "/")[:80]
        lines.append(f"| {when} | {e['channel']} | {names.get(e['persona_id'], e['persona_id'])} | `{e['tool']}` | "
                     f"{e['decision']} | "
                     f"{reason} | {e['latency_ms'] or 0:.0f} |")
    return "\n".join(lines)


def identity_view(user: str, public: bool) -> str:
    if not public:
        return "_Local console: everything here is yours._"
    if user.startswith("hf:"):
        return f"Signed in as **{user[3:]}** · what you say here is yours alone"
    return f"You are visitor `{user.split(':', 1)[-1][:8]}` · what you say here is yours alone"


def stored_view(stored: dict[str, Any]) -> str:
    """A summary a visitor can read; the API's GET /v1/users/me has the rows themselves."""
    counts = [f"{len(stored.get(kind) or [])} {label}" for kind, label in (
        ("sessions", "conversations"), ("messages", "messages"), ("memories", "memories"),
        ("profile", "profile entries"), ("documents", "documents"), ("tool_calls", "tool calls"),
        ("moderation_flags", "moderation flags"))]
    lines = ["**Stored about you:** " + ", ".join(counts) + "."]
    for memory in (stored.get("memories") or [])[:20]:
        lines.append(f"- {memory['content']} _({memory['category']})_")
    for server, text in (stored.get("tool_data") or {}).items():
        lines.append(f"\n**{server}:**\n\n" + "\n".join(f"- {line}" for line in text.splitlines()[:50]))
    return "\n".join(lines)


def erased_view(outcome: dict[str, Any]) -> str:
    erased = outcome.get("erased") or {}
    total = sum(erased.values())
    lines = [f"🧹 Everything stored about you was erased ({total} records deleted, not hidden)."]
    for server, text in (outcome.get("tool_data") or {}).items():
        lines.append(f"- {server}: {text}")
    return "\n".join(lines)


HISTORY_STAGES = {"endpointing_s": "endpointing", "stt_s": "speech recognition",
                  "llm_first_token_s": "first token", "first_audio_s": "first audio"}


def latency_rows(turn_number: int, turn: dict[str, Any]) -> list[dict[str, Any]]:
    """One turn's stages as rows of the latency history plot."""
    stages = turn.get("stages_s", {})
    return [{"turn": f"#{turn_number}", "stage": label, "seconds": round(stages[key], 3)}
            for key, label in HISTORY_STAGES.items() if key in stages]
