"""Which database this process uses: the DuckDB file, or PostgreSQL when COZY_DB_URL is set."""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, Any
from collections.abc import Callable
from concurrent.futures import Future

from storage.database import Database


class Store(Protocol):
    """What every store is written against (DuckDB-style SQL: `?` and `$name` parameters)."""
    dialect: str

    def submit(self, work: Callable[[Any], Any]) -> Future: ...
    def write(self, work: Callable[[Any], Any], timeout: float | None = 30) -> Any: ...
    def read(self, sql: str, params: Any = ()) -> list[tuple]: ...
    def read_dicts(self, sql: str, params: Any = ()) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


def open_database(path: Path, url: str | None = None) -> Store:
    if url:
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError("COZY_DB_URL must be a postgresql:// URL (leave it unset for the DuckDB file)")
        from storage.postgres import PostgresDatabase  # psycopg is only loaded when asked for
        return PostgresDatabase(url)
    return Database(path)
