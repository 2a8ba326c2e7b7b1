"""Notes: per-user notes and reminders (a write tool).

The user is never an argument: the gateway puts the trusted user id in the
request `_meta` (see trusted_context.py), so the model cannot read or delete
someone else's notes by naming them. Storage: COZY_NOTES_DB, default
data/tools/notes.duckdb; or the engine's PostgreSQL when COZY_NOTES_DB_URL is set.

A result's first line is said aloud ("I've noted that: buy milk."); the note
numbers and exact times follow.
"""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from tools.servers.notes_store import Note, NotesStore
from tools.servers.spoken import sentence, spoken_clock, spoken_day
from tools.servers.trusted_context import trusted_user_id

DEFAULT_DB = Path("data/tools/notes.duckdb")

server = MCPServer("notes", instructions="The user's own notes and reminders.")
_store: NotesStore | None = None

NoteText = Annotated[str, Field(min_length=1, max_length=2000, description="what to remember")]


def _spoken_list(notes: list[Note], kind: str) -> str:
    """Three notes read out (the latest, or the next reminders); the count says if there are more."""
    noun = {"reminders": "reminder", "notes": "note"}.get(kind, "note")
    shown = notes[:3] if kind == "reminders" else notes[-3:]
    said = [sentence(note.text).rstrip(".!?") + (f" on {spoken_day(note.remind_at)} at {spoken_clock(note.remind_at)}"
                                                  if note.remind_at else "") for note in shown]
    listed = said[0] if len(said) == 1 else f"{'; '.join(said[:-1])}; and {said[-1]}"
    which = ("The next: " if kind == "reminders" else "The latest: ") if len(notes) > 3 else ""
    return f"You have {len(notes)} {noun}{'s' if len(notes) != 1 else ''}. {which}{listed}."


def store() -> NotesStore:
    global _store
    if _store is None:  # opened on first use, so importing this module touches no file
        _store = NotesStore(Path(os.environ.get("COZY_NOTES_DB") or DEFAULT_DB), os.environ.get("COZY_NOTES_DB_URL"))
    return _store


@server.tool(description="Save a note for the user.", structured_output=False)
def add_note(text: NoteText, ctx: Context) -> str:
    note_id = store().add(trusted_user_id(ctx), text.strip())
    return f"I've noted that: {sentence(text)}\nSaved note #{note_id}."


@server.tool(description="Save a reminder for the user at a date and time (ISO, e.g. 2026-05-01T09:00).",
             structured_output=False)
def add_reminder(text: NoteText, remind_at: Annotated[str, Field(max_length=40, description="ISO date-time")],
                 ctx: Context) -> str:
    try:
        when = datetime.fromisoformat(remind_at.strip())
    except ValueError as exc:
        raise ToolError("give the reminder time as an ISO date-time, e.g. 2026-05-01T09:00") from exc
    note_id = store().add(trusted_user_id(ctx), text.strip(), when.replace(tzinfo=None))
    return (f"I'll remind you on {spoken_day(when)} at {spoken_clock(when)}: {sentence(text)}\n"
            f"Reminder #{note_id} set for {when:%A %d %B %Y at %H:%M}.")


@server.tool(description="List the user's notes, reminders, or both.", structured_output=False)
def list_notes(ctx: Context, kind: Literal["all", "notes", "reminders"] = "all") -> str:
    notes = store().list(trusted_user_id(ctx), kind)
    if not notes:
        return "No notes yet." if kind != "reminders" else "No reminders."
    return f"{_spoken_list(notes, kind)}\n" + "\n".join(note.line() for note in notes)


@server.tool(description="Delete one of the user's notes or reminders by its number.", structured_output=False)
def delete_note(note_id: Annotated[int, Field(ge=1, description="the note number, e.g. 3 for #3")],
                ctx: Context) -> str:
    if store().delete(trusted_user_id(ctx), note_id):
        return f"I've deleted note {note_id}.\nDeleted note #{note_id}."
    raise ToolError(f"there is no note #{note_id}")


# The engine's privacy tools (servers.yaml `privacy`): never catalogued, so no model sees them.
@server.tool(description="Everything stored for the user (engine use only).", structured_output=False)
def export_notes(ctx: Context) -> str:
    notes = store().list(trusted_user_id(ctx), "all", limit=100_000)
    return "\n".join(note.line() for note in notes) or "No notes."


@server.tool(description="Erase everything stored for the user (engine use only).", structured_output=False)
def forget_user(ctx: Context) -> str:
    return f"Erased {store().erase(trusted_user_id(ctx))} notes and reminders."


if __name__ == "__main__":
    server.run()
