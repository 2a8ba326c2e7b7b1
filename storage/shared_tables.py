"""A small table of the replicas' PostgreSQL kept outside the migrations, by a process of its
own (the notes server) or for state beside the stores (tool pins): one autocommit connection,
the table made first, once, under an advisory lock, however many replicas start together."""
from __future__ import annotations

from typing import Any


def connect_with_tables(url: str, name: str, statements: list[str]) -> Any:
    """A psycopg connection (autocommit: each statement its own transaction) after `statements`
    (CREATE ... IF NOT EXISTS) ran under the advisory lock called `name`."""
    import psycopg  # only with a URL: the DuckDB default needs no PostgreSQL driver

    conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"cozy {name} schema"])
        for statement in statements:
            conn.execute(statement)
    return conn
