"""PostgreSQL behind the same interface as the DuckDB file (storage/database.py).

Several replicas share one PostgreSQL (COZY_DB_URL). The stores keep their SQL as
written for DuckDB, `?` and `$name` parameters included; `postgres_sql` turns it into
psycopg's `%s` / `%(name)s`. What the two engines answer differently is evened out here
once: DuckDB answers a DELETE or UPDATE with its row count, and its sums of integers
are integers, so ours are too.
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from decimal import Decimal
from functools import lru_cache
from typing import Any, TypeVar

import psycopg
from psycopg import errors
from psycopg.adapt import Loader
from psycopg_pool import ConnectionPool, PoolTimeout

from storage.migrations import migrate_postgres
from storage.urls import without_password

log = logging.getLogger(__name__)
T = TypeVar("T")

_RETRIES = 5
# Conflicts worth another try: two replicas' transactions crossed, or the server dropped us.
_RETRYABLE = (errors.SerializationFailure, errors.DeadlockDetected, psycopg.OperationalError)
_TOKEN = re.compile(r"'(?:[^']|'')*'|\$([A-Za-z_]\w*)|\?|%")


@lru_cache(maxsize=1024)
def postgres_sql(sql: str) -> str:
    """`?` -> `%s`, `$name` -> `%(name)s`, a literal `%` doubled; quoted strings untouched."""
    def swap(match: re.Match) -> str:
        text = match.group(0)
        if text.startswith("'"):
            return text
        if match.group(1):
            return f"%({match.group(1)})s"
        return "%s" if text == "?" else "%%"
    return _TOKEN.sub(swap, sql)


class _NumericLoader(Loader):
    """numeric -> int when whole, else float: what DuckDB gives for sum(bigint)."""

    def load(self, data: bytes) -> Any:
        value = Decimal(bytes(data).decode())
        return int(value) if value == value.to_integral_value() else float(value)


class _Cursor:
    """A psycopg cursor that takes DuckDB-style SQL (what the stores' write work uses)."""

    def __init__(self, cursor: psycopg.Cursor):
        self._cursor = cursor

    def execute(self, sql: str, params: Any = None) -> "_Cursor":
        self._cursor.execute(postgres_sql(sql), params or None)
        return self

    def executemany(self, sql: str, rows: Any) -> "_Cursor":
        self._cursor.executemany(postgres_sql(sql), rows)
        return self

    def fetchone(self) -> tuple | None:
        if self._cursor.description is None:  # DML: DuckDB's answer is its row count
            return (self._cursor.rowcount,)
        return self._cursor.fetchone()

    def fetchall(self) -> list[tuple]:
        if self._cursor.description is None:
            return [(self._cursor.rowcount,)]
        return self._cursor.fetchall()

    @property
    def description(self) -> Any:
        return self._cursor.description


def _configure(conn: psycopg.Connection) -> None:
    conn.adapters.register_loader("numeric", _NumericLoader)


class PostgresDatabase:
    """A pool of connections; each write is one transaction, retried on a conflict.

    Writes run on a few threads (not DuckDB's single writer): PostgreSQL takes row locks,
    so the stores lock what they must (a session's row before its next message number).
    """
    dialect = "postgres"

    def __init__(self, url: str, pool_size: int = 8, writers: int = 4, connect_timeout_s: float = 30):
        self.url = url
        self.path = None
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, configure=_configure,
                                    open=False, name="cozy-db", timeout=30)
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
        except PoolTimeout as exc:
            self._pool.close()
            raise RuntimeError(f"cannot reach PostgreSQL at {without_password(url)}: is it running, and does the "
                               "database exist?") from exc
        with self._pool.connection() as conn:
            self.schema_version = migrate_postgres(conn)
        self._writers = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="pg-writer")
        self._closed = False

    # --- writes -------------------------------------------------------------------

    def _run(self, work: Callable[[Any], T]) -> T:
        for attempt in range(_RETRIES):
            try:
                with self._pool.connection() as conn:  # commits on return, rolls back on raise
                    return work(_Cursor(conn.cursor()))
            except _RETRYABLE:
                if attempt == _RETRIES - 1:
                    raise
                time.sleep(0.005 * 2 ** attempt)
        raise AssertionError("unreachable")

    def submit(self, work: Callable[[Any], T]) -> Future:
        """Queue a write; it runs in one transaction on a writer thread."""
        if self._closed:
            raise RuntimeError("database is closed")
        return self._writers.submit(self._run, work)

    def write(self, work: Callable[[Any], T], timeout: float | None = 30) -> T:
        """Run a write and return once it is committed."""
        return self.submit(work).result(timeout)

    # --- reads --------------------------------------------------------------------

    def read(self, sql: str, params: Any = ()) -> list[tuple]:
        return self._run(lambda cursor: cursor.execute(sql, params).fetchall())

    def read_dicts(self, sql: str, params: Any = ()) -> list[dict[str, Any]]:
        def work(cursor: _Cursor) -> list[dict[str, Any]]:
            cursor.execute(sql, params)
            names = [d.name for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
        return self._run(work)

    # --- lifecycle ----------------------------------------------------------------

    def close(self) -> None:
        """Finish queued writes and close the pool (every commit is already durable)."""
        if self._closed:
            return
        self._closed = True
        self._writers.shutdown(wait=True)
        self._pool.close()

