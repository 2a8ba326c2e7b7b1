"""Versioned schema. Append a migration; never edit one that has shipped.

One list for both engines: the DDL is written once, and `for_postgres` maps the two
type names PostgreSQL spells differently. JSON columns stay text on PostgreSQL, so the
stores read back exactly the string they wrote, as from DuckDB.
"""
from __future__ import annotations

import re
from typing import Any

import duckdb

MIGRATIONS: list[tuple[int, str]] = [
    (1, """
    CREATE TABLE users (
        id VARCHAR PRIMARY KEY,
        display_name VARCHAR,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE TABLE sessions (
        id VARCHAR PRIMARY KEY,
        user_id VARCHAR NOT NULL,
        persona_id VARCHAR NOT NULL,
        title VARCHAR,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        deleted_at TIMESTAMP
    );
    CREATE TABLE messages (
        id VARCHAR PRIMARY KEY,
        session_id VARCHAR NOT NULL,
        user_id VARCHAR NOT NULL,
        role VARCHAR NOT NULL,
        content VARCHAR NOT NULL,
        metadata JSON,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        seq BIGINT NOT NULL
    );
    CREATE TABLE memory_backlog (
        message_id VARCHAR PRIMARY KEY,
        persona_id VARCHAR NOT NULL,
        queued_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE TABLE memories (
        id VARCHAR PRIMARY KEY,
        user_id VARCHAR NOT NULL,
        persona_id VARCHAR,
        category VARCHAR NOT NULL,
        content VARCHAR NOT NULL,
        source_message_id VARCHAR,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        expires_at TIMESTAMP
    );
    CREATE TABLE memory_terms (
        memory_id VARCHAR NOT NULL,
        user_id VARCHAR NOT NULL,
        term VARCHAR NOT NULL
    );
    CREATE TABLE profiles (
        user_id VARCHAR NOT NULL,
        key VARCHAR NOT NULL,
        value VARCHAR NOT NULL,
        source_message_id VARCHAR,
        updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        PRIMARY KEY (user_id, key)
    );
    CREATE TABLE knowledge_documents (
        id VARCHAR PRIMARY KEY,
        owner_id VARCHAR,  -- NULL: shared by every user
        title VARCHAR NOT NULL,
        source VARCHAR,
        chars BIGINT NOT NULL,
        created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
    );
    CREATE TABLE knowledge_chunks (
        id VARCHAR PRIMARY KEY,
        document_id VARCHAR NOT NULL,
        owner_id VARCHAR,
        seq INTEGER NOT NULL,
        content VARCHAR NOT NULL
    );
    CREATE TABLE knowledge_terms (
        chunk_id VARCHAR NOT NULL,
        owner_id VARCHAR,
        term VARCHAR NOT NULL
    );
    CREATE TABLE audit_events (
        id VARCHAR PRIMARY KEY,
        occurred_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
        user_id VARCHAR,
        session_id VARCHAR,
        persona_id VARCHAR,
        channel VARCHAR,
        tool VARCHAR NOT NULL,
        arguments JSON,
        decision VARCHAR NOT NULL,
        reason VARCHAR,
        latency_ms DOUBLE,
        result_bytes BIGINT,
        error VARCHAR
    );
    CREATE INDEX messages_by_session ON messages (session_id, seq);
    CREATE INDEX sessions_by_user ON sessions (user_id);
    """),
    (2, """
    -- API clients name their conversations (OpenAI's `user` field); kept per user and persona.
    ALTER TABLE sessions ADD COLUMN client_key VARCHAR;
    """),
    (3, """
    -- What each identity used per day, by who served it (storage/usage.py adds each finished turn).
    CREATE TABLE usage_daily (
        user_id VARCHAR NOT NULL,
        day DATE NOT NULL,
        provider VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        input_tokens BIGINT NOT NULL DEFAULT 0,
        output_tokens BIGINT NOT NULL DEFAULT 0,
        audio_seconds_in DOUBLE NOT NULL DEFAULT 0,
        audio_seconds_out DOUBLE NOT NULL DEFAULT 0,
        characters BIGINT NOT NULL DEFAULT 0,
        cost_usd DOUBLE NOT NULL DEFAULT 0,
        PRIMARY KEY (user_id, day, provider, model)
    );
    """),
    (4, """
    -- Retrieval looks terms up by value; shared by replicas, these tables grow with every user.
    CREATE INDEX memory_terms_by_term ON memory_terms (user_id, term);
    CREATE INDEX knowledge_terms_by_term ON knowledge_terms (term);
    """),
]

_POSTGRES_TYPES = ((re.compile(r"\bDOUBLE\b"), "DOUBLE PRECISION"), (re.compile(r"\bJSON\b"), "TEXT"))
# Every replica runs the migrations at start; this lock lets one apply them while the rest wait.
MIGRATION_LOCK = 7_340_112  # any constant, the same in every replica


def for_postgres(sql: str) -> str:
    for pattern, name in _POSTGRES_TYPES:
        sql = pattern.sub(name, sql)
    return sql


def migrate(conn: duckdb.DuckDBPyConnection) -> int:
    """Apply pending migrations in order; returns the schema version."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                 "applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)")
    current = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
    for version, sql in MIGRATIONS:
        if version <= current:
            continue
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute(sql)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", [version])
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        current = version
    return current


def migrate_postgres(conn: Any) -> int:
    """The same migrations on PostgreSQL, in one transaction under an advisory lock, so
    replicas starting together apply each one exactly once."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                     "applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp)")
        current = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        for version, sql in MIGRATIONS:
            if version > current:
                conn.execute(for_postgres(sql))
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", [version])
                current = version
    return current
