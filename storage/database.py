"""One DuckDB file: a single writer thread, reads on per-thread cursors.

DuckDB allows one read-write process per file, and concurrent updates of the same
row fail with TransactionException; funnelling every write through one thread
makes conflicts rare, and the few left are retried. Nothing here may run on an
event loop: async callers go through a thread pool.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from storage.migrations import migrate

log = logging.getLogger(__name__)
T = TypeVar("T")

_RETRIES = 5


class Database:
    dialect = "duckdb"

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = duckdb.connect(str(path))
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise
            raise RuntimeError(f"{path} is in use by another process (is CozyEngine already running?). "
                               "Stop it, or give this one its own COZY_DATA_DIR or COZY_DB_PATH.") from exc
        migrate(self._conn)
        self._local = threading.local()
        self._jobs: queue.Queue = queue.Queue()
        self._closed = False
        self._writer = threading.Thread(target=self._write_loop, name="duckdb-writer", daemon=True)
        self._writer.start()

    # --- writes -------------------------------------------------------------------

    def _write_loop(self) -> None:
        cursor = self._conn.cursor()
        while True:
            job = self._jobs.get()
            if job is None:
                break
            work, future = job
            if not future.set_running_or_notify_cancel():
                continue
            for attempt in range(_RETRIES):
                try:
                    cursor.execute("BEGIN TRANSACTION")
                    result = work(cursor)
                    cursor.execute("COMMIT")
                    future.set_result(result)
                    break
                except duckdb.TransactionException as exc:
                    cursor.execute("ROLLBACK")
                    if attempt == _RETRIES - 1:
                        future.set_exception(exc)
                    time.sleep(0.005 * 2 ** attempt)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    try:
                        cursor.execute("ROLLBACK")
                    except duckdb.Error:
                        pass
                    future.set_exception(exc)
                    break
        cursor.close()

    def submit(self, work: Callable[[duckdb.DuckDBPyConnection], T]) -> Future:
        """Queue a write; it runs in one transaction on the writer thread."""
        if self._closed:
            raise RuntimeError("database is closed")
        future: Future = Future()
        self._jobs.put((work, future))
        return future

    def write(self, work: Callable[[duckdb.DuckDBPyConnection], T], timeout: float | None = 30) -> T:
        """Run a write and return once it is committed (durable in the WAL)."""
        return self.submit(work).result(timeout)

    # --- reads --------------------------------------------------------------------

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._conn.cursor()
            self._local.cursor = cursor
        return cursor

    def read(self, sql: str, params: list[Any] | tuple = ()) -> list[tuple]:
        return self._cursor().execute(sql, params).fetchall()

    def read_dicts(self, sql: str, params: list[Any] | tuple = ()) -> list[dict[str, Any]]:
        cursor = self._cursor().execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    # --- lifecycle ----------------------------------------------------------------

    def close(self) -> None:
        """Finish queued writes, fold the WAL into the file, and close."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._writer.join(timeout=30)
        try:
            self._conn.execute("CHECKPOINT")
        except duckdb.Error:
            log.exception("checkpoint at shutdown failed; the WAL keeps the data")
        self._conn.close()
