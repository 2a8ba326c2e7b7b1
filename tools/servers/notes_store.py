"""Per-user notes and reminders in the notes server's own DuckDB file.

DuckDB allows one read-write process per file, and this server is that process.
Tool calls arrive on worker threads; one connection behind a lock serialises
them (a single writer is the simple safe pattern). Every query is scoped by the
user id the gateway vouched for, so one user can never see another's notes.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

_SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS note_ids START 1;
CREATE TABLE IF NOT EXISTS notes (
    id BIGINT PRIMARY KEY DEFAULT nextval('note_ids'),
    user_id VARCHAR NOT NULL,
    text VARCHAR NOT NULL,
    remind_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
"""


@dataclass(frozen=True)
class Note:
    id: int
    text: str
    remind_at: datetime | None
    created_at: datetime

    def line(self) -> str:
        when = f" (remind {self.remind_at:%a %d %b %Y %H:%M})" if self.remind_at else ""
        return f"#{self.id}{when}: {self.text}"


class NotesStore:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        # Small caps: this process runs under an address-space rlimit.
        self._db = duckdb.connect(str(path), config={"threads": 1, "memory_limit": "128MB"})
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()

    def add(self, user_id: str, text: str, remind_at: datetime | None = None) -> int:
        with self._lock:
            row = self._db.execute("INSERT INTO notes (user_id, text, remind_at) VALUES (?, ?, ?) RETURNING id",
                                   [user_id, text, remind_at]).fetchone()
        return int(row[0])

    def list(self, user_id: str, kind: str = "all", limit: int = 50) -> list[Note]:
        where = {"all": "", "notes": "AND remind_at IS NULL", "reminders": "AND remind_at IS NOT NULL"}[kind]
        order = "remind_at" if kind == "reminders" else "id"
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, text, remind_at, created_at FROM notes WHERE user_id = ? {where} "
                f"ORDER BY {order} LIMIT ?", [user_id, limit]).fetchall()
        return [Note(*row) for row in rows]

    def delete(self, user_id: str, note_id: int) -> bool:
        with self._lock:
            row = self._db.execute("DELETE FROM notes WHERE user_id = ? AND id = ? RETURNING id",
                                   [user_id, note_id]).fetchone()
        return row is not None

    def erase(self, user_id: str) -> int:
        with self._lock:
            rows = self._db.execute("DELETE FROM notes WHERE user_id = ? RETURNING id", [user_id]).fetchall()
            self._db.execute("CHECKPOINT")  # erased from the file, not only hidden
        return len(rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()
