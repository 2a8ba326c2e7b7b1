"""Users, sessions and messages in DuckDB."""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.backends import Store


class SessionNotFound(LookupError):
    """No such session for this user (another user's session looks exactly the same)."""


@dataclass(frozen=True)
class StoredMessage:
    role: str
    content: str


def _new_id() -> str:
    return uuid.uuid4().hex


class ConversationStore:
    def __init__(self, db: Store):
        self.db = db

    def open_session(self, user_id: str, session_id: str | None, persona_id: str) -> str:
        """Resume the user's session, or start a new one."""
        if session_id is not None:
            rows = self.db.read("SELECT user_id, deleted_at FROM sessions WHERE id = ?", [session_id])
            if not rows or rows[0][0] != user_id or rows[0][1] is not None:
                raise SessionNotFound(session_id)
            return session_id
        return self.create_session(user_id, persona_id)

    def create_session(self, user_id: str, persona_id: str, title: str | None = None,
                       client_key: str | None = None) -> str:
        session_id = _new_id()

        def work(cursor) -> None:
            cursor.execute("INSERT INTO users (id) VALUES (?) ON CONFLICT DO NOTHING", [user_id])
            cursor.execute("INSERT INTO sessions (id, user_id, persona_id, title, client_key) VALUES (?, ?, ?, ?, ?)",
                           [session_id, user_id, persona_id, title, client_key])

        self.db.write(work)
        return session_id

    def session_for_key(self, user_id: str, persona_id: str, client_key: str) -> str:
        """The session an API client names with a key of its own; made on first use."""
        rows = self.db.read("SELECT id FROM sessions WHERE user_id = ? AND persona_id = ? AND client_key = ? "
                            "AND deleted_at IS NULL ORDER BY created_at LIMIT 1", [user_id, persona_id, client_key])
        return rows[0][0] if rows else self.create_session(user_id, persona_id, client_key=client_key)

    def session(self, user_id: str, session_id: str) -> dict[str, Any]:
        rows = self.db.read_dicts(
            "SELECT s.id, s.persona_id, s.title, s.created_at, s.updated_at, s.user_id, s.deleted_at, "
            "(SELECT count(*) FROM messages m WHERE m.session_id = s.id) AS message_count "
            "FROM sessions s WHERE s.id = ?", [session_id])
        if not rows or rows[0]["user_id"] != user_id or rows[0]["deleted_at"] is not None:
            raise SessionNotFound(session_id)
        return rows[0]

    def save_turn(self, session_id: str, user_id: str, persona_id: str, user_text: str,
                  reply: str, metadata: dict[str, Any]) -> str | None:
        """Both sides of a turn in one transaction, plus a durable note that the
        turn still has to be mined for memories (so a crash cannot lose that work).
        Returns the reply's message id (None without a reply)."""
        user_message_id = _new_id()
        reply_id = _new_id() if reply else None
        encoded = json.dumps(metadata, default=str)

        def work(cursor) -> None:
            # Touching the session first locks its row on PostgreSQL, so two replicas saving
            # into one conversation take turns at the next message number.
            cursor.execute("UPDATE sessions SET updated_at = current_timestamp, "
                           "title = coalesce(title, nullif(?, '')) WHERE id = ?", [user_text[:60], session_id])
            seq = cursor.execute("SELECT coalesce(max(seq), 0) FROM messages WHERE session_id = ?",
                                 [session_id]).fetchone()[0]
            rows = []
            if user_text:  # empty when an API client only returned tool results
                rows.append([user_message_id, session_id, user_id, "user", user_text, None])
                cursor.execute("INSERT INTO memory_backlog (message_id, persona_id) VALUES (?, ?)",
                               [user_message_id, persona_id])
            if reply:
                rows.append([reply_id, session_id, user_id, "assistant", reply, encoded])
            for offset, row in enumerate(rows, 1):
                cursor.execute("INSERT INTO messages (id, session_id, user_id, role, content, metadata, seq) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?)", [*row, seq + offset])

        self.db.write(work)
        return reply_id

    def update_metadata(self, message_id: str, changes: dict[str, Any]) -> None:
        """Merge `changes` into a stored message's metadata (a turn's record, finished
        after its reply was saved)."""
        def work(cursor) -> None:
            row = cursor.execute("SELECT metadata FROM messages WHERE id = ?", [message_id]).fetchone()
            if row is None:  # erased meanwhile ("forget me"): nothing to complete
                return
            metadata = {**json.loads(row[0] or "{}"), **changes}
            cursor.execute("UPDATE messages SET metadata = ? WHERE id = ?",
                           [json.dumps(metadata, default=str), message_id])

        self.db.write(work)

    def keep_heard(self, message_id: str, heard: str) -> None:
        """A reply saved whole that the listener cut off: keep what they heard of it (none of
        it: the reply goes), marked as interrupted."""
        def work(cursor) -> None:
            row = cursor.execute("SELECT content, metadata FROM messages WHERE id = ?", [message_id]).fetchone()
            if row is None:  # erased meanwhile
                return
            if not heard:
                cursor.execute("DELETE FROM messages WHERE id = ?", [message_id])
                return
            metadata = {**json.loads(row[1] or "{}"), "finish_reason": "interrupted", "interrupted": True,
                        "generated_chars": len(row[0])}
            cursor.execute("UPDATE messages SET content = ?, metadata = ? WHERE id = ?",
                           [heard, json.dumps(metadata, default=str), message_id])

        self.db.write(work)

    def recent(self, session_id: str, limit: int = 50) -> list[dict[str, str]]:
        return self.recent_and_earlier(session_id, limit)[0]

    def recent_and_earlier(self, session_id: str, limit: int = 50) -> tuple[list[dict[str, str]], int]:
        """The last `limit` messages, and how many came before them (a prompt's history
        moves on at fixed places in the whole conversation: orchestrator/context.py)."""
        rows = self.db.read("SELECT role, content, count(*) OVER () FROM messages WHERE session_id = ? "
                            "ORDER BY seq DESC LIMIT ?", [session_id, limit])
        earlier = int(rows[0][2]) - len(rows) if rows else 0
        return [{"role": role, "content": content} for role, content, _ in reversed(rows)], earlier

    def messages(self, user_id: str, session_id: str) -> list[dict[str, Any]]:
        self.open_session(user_id, session_id, persona_id="")
        return self.db.read_dicts("SELECT id, role, content, metadata, created_at FROM messages "
                                  "WHERE session_id = ? ORDER BY seq", [session_id])

    def sessions(self, user_id: str) -> list[dict[str, Any]]:
        return self.db.read_dicts(
            "SELECT s.id, s.persona_id, s.title, s.created_at, s.updated_at, "
            "(SELECT count(*) FROM messages m WHERE m.session_id = s.id) AS message_count "
            "FROM sessions s WHERE s.user_id = ? AND s.deleted_at IS NULL ORDER BY s.updated_at DESC",
            [user_id])

    def discard_if_empty(self, user_id: str, session_id: str) -> None:
        """Erase a session that never got a message (made for a request that was then refused)."""
        self.db.write(lambda cursor: cursor.execute(
            "DELETE FROM sessions WHERE id = ? AND user_id = ? "
            "AND NOT EXISTS (SELECT 1 FROM messages WHERE session_id = ?)", [session_id, user_id, session_id]))

    def delete_session(self, user_id: str, session_id: str) -> None:
        """Soft delete: hidden everywhere, kept for audit."""
        self.open_session(user_id, session_id, persona_id="")
        self.db.write(lambda cursor: cursor.execute(
            "UPDATE sessions SET deleted_at = ? WHERE id = ?", [datetime.now(), session_id]))
