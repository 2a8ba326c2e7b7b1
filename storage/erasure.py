"""Everything stored about one identity: shown to them, and erased on request.

"Forget me" means erased, not hidden: rows are deleted (soft-deleted sessions
too), in one transaction, and DuckDB's checkpoint then drops them from the file.
Shared knowledge (no owner) is not anyone's and stays.
"""
from __future__ import annotations

from typing import Any

from storage.backends import Store

# (table, the column naming the identity), children before parents.
_OWNED = (
    ("memory_backlog", None),  # by message, below
    ("memory_terms", "user_id"),
    ("memories", "user_id"),
    ("profiles", "user_id"),
    ("knowledge_terms", "owner_id"),
    ("knowledge_chunks", "owner_id"),
    ("knowledge_documents", "owner_id"),
    ("audit_events", "user_id"),
    ("usage_daily", "user_id"),
    ("messages", "user_id"),
    ("sessions", "user_id"),
    ("users", "id"),
)


def stored_about(db: Store, user_id: str) -> dict[str, Any]:
    """What this identity can see of itself (bounded: the newest rows of each kind)."""
    def rows(sql: str) -> list[dict[str, Any]]:
        return [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items()}
                for row in db.read_dicts(sql, [user_id])]

    return {
        "user_id": user_id,
        "sessions": rows("SELECT id, persona_id, title, created_at, deleted_at FROM sessions WHERE user_id = ? "
                         "ORDER BY created_at DESC LIMIT 500"),
        "messages": rows("SELECT session_id, role, content, created_at FROM messages WHERE user_id = ? "
                         "ORDER BY created_at DESC LIMIT 2000"),
        "memories": rows("SELECT id, category, content, created_at FROM memories WHERE user_id = ? "
                         "ORDER BY created_at DESC LIMIT 2000"),
        "profile": rows("SELECT key, value FROM profiles WHERE user_id = ? ORDER BY key"),
        "documents": rows("SELECT id, title, created_at FROM knowledge_documents WHERE owner_id = ? "
                          "ORDER BY created_at DESC LIMIT 500"),
        "tool_calls": rows("SELECT occurred_at, tool, decision, reason FROM audit_events WHERE user_id = ? "
                           "AND tool <> '(moderation)' ORDER BY occurred_at DESC LIMIT 500"),
        "moderation_flags": rows("SELECT occurred_at, decision, reason FROM audit_events WHERE user_id = ? "
                                 "AND tool = '(moderation)' ORDER BY occurred_at DESC LIMIT 500"),
        "usage": rows("SELECT day, provider, model, input_tokens, output_tokens, cost_usd FROM usage_daily "
                      "WHERE user_id = ? ORDER BY day DESC, provider, model LIMIT 2000"),
    }


def erase(db: Store, user_id: str) -> dict[str, int]:
    """Delete every row of this identity; returns how many rows per table."""
    def work(cursor) -> dict[str, int]:
        counts: dict[str, int] = {}
        for table, column in _OWNED:
            if column is None:  # the learning queue points at messages
                sql = ("DELETE FROM memory_backlog WHERE message_id IN "
                       "(SELECT id FROM messages WHERE user_id = ?)")
            else:
                sql = f"DELETE FROM {table} WHERE {column} = ?"  # noqa: S608 - names from the constant above
            counts[table] = cursor.execute(sql, [user_id]).fetchone()[0]
        return counts

    return db.write(work)


class PersonalData:
    """One identity's data across every store: this database and the tool servers' own
    (notes live in the notes server's file). `tool_servers` is anything with
    `stored_about(user)` and `erase_identity(user)`, e.g. the tool gateway."""

    def __init__(self, db: Store, tool_servers: Any = None):
        self.db = db
        self.tool_servers = tool_servers

    def shown(self, user_id: str) -> dict[str, Any]:
        shown = stored_about(self.db, user_id)
        shown["tool_data"] = self.tool_servers.stored_about(user_id) if self.tool_servers is not None else {}
        return shown

    def erase(self, user_id: str) -> dict[str, Any]:
        # Tool servers first: if one fails the user is told, and the database rows that
        # show them what exists are still there to try again with.
        tools = self.tool_servers.erase_identity(user_id) if self.tool_servers is not None else {}
        return {"erased": erase(self.db, user_id), "tool_data": tools}
