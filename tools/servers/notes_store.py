"""Per-user notes and reminders: in the notes server's own DuckDB file, or, when the engine
runs as several replicas, in their shared PostgreSQL (COZY_NOTES_DB_URL), so a note made
through one replica is read through any other.

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
from typing import Any

import duckdb

from storage.shared_tables import connect_with_tables

_SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS {table}_ids START 1;
CREATE TABLE IF NOT EXISTS {table} (
    id BIGINT PRIMARY KEY DEFAULT nextval('{table}_ids'),
    user_id VARCHAR NOT NULL,
    text VARCHAR NOT NULL,
    remind_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
"""
# The file has always said "notes"; in the engine's shared database the name says whose it is.
DUCKDB_TABLE, POSTGRES_TABLE = "notes", "tool_notes"


class _Postgres:
    """The few calls NotesStore makes, on one psycopg connection (autocommit: each is one statement)."""

    def __init__(self, url: str):
        import psycopg  # only with a URL: the file needs no PostgreSQL driver

        schema = [s for s in _SCHEMA.format(table=POSTGRES_TABLE).split(";") if s.strip()]
        # Replicas start their notes servers together; a reconnect finds the table made.
        self._connect = lambda: connect_with_tables(url, POSTGRES_TABLE, schema)
        self._lost = psycopg.OperationalError
        self._conn = self._connect()

    def execute(self, sql: str, params: list[Any]) -> Any:
        sql = sql.replace("?", "%s")
        try:
            return self._conn.execute(sql, params)
        except self._lost:  # the database restarted: one new connection, one more try
            self._conn = self._connect()
            return self._conn.execute(sql, params)

    def erased(self) -> None:
        self._conn.execute(f"VACUUM {POSTGRES_TABLE}")  # gone from the pages, not only hidden

    def close(self) -> None:
        self._conn.close()


class _DuckDb:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        # Small caps: this process runs under an address-space rlimit.
        self._db = duckdb.connect(str(path), config={"threads": 1, "memory_limit": "128MB"})
        self._db.execute(_SCHEMA.format(table=DUCKDB_TABLE))

    def execute(self, sql: str, params: list[Any]) -> Any:
        return self._db.execute(sql, params)

    def erased(self) -> None:
        self._db.execute("CHECKPOINT")  # erased from the file, not only hidden

    def close(self) -> None:
        self._db.close()


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
    def __init__(self, path: Path, url: str | None = None):
        self._db = _Postgres(url) if url else _DuckDb(path)
        self._table = POSTGRES_TABLE if url else DUCKDB_TABLE
        self._lock = threading.Lock()

    def add(self, user_id: str, text: str, remind_at: datetime | None = None) -> int:
        with self._lock:
            row = self._db.execute(f"INSERT INTO {self._table} (user_id, text, remind_at) VALUES (?, ?, ?) "
                                   "RETURNING id", [user_id, text, remind_at]).fetchone()
        return int(row[0])

    def list(self, user_id: str, kind: str = "all", limit: int = 50) -> list[Note]:
        where = {"all": "", "notes": "AND remind_at IS NULL", "reminders": "AND remind_at IS NOT NULL"}[kind]
        order = "remind_at" if kind == "reminders" else "id"
        with self._lock:
            rows = self._db.execute(
                f"SELECT id, text, remind_at, created_at FROM {self._table} WHERE user_id = ? {where} "
                f"ORDER BY {order} LIMIT ?", [user_id, limit]).fetchall()
        return [Note(int(row[0]), *row[1:]) for row in rows]

    def delete(self, user_id: str, note_id: int) -> bool:
        with self._lock:
            row = self._db.execute(f"DELETE FROM {self._table} WHERE user_id = ? AND id = ? RETURNING id",
                                   [user_id, note_id]).fetchone()
        return row is not None

    def erase(self, user_id: str) -> int:
        with self._lock:
            rows = self._db.execute(f"DELETE FROM {self._table} WHERE user_id = ? RETURNING id", [user_id]).fetchall()
            self._db.erased()
        return len(rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()
