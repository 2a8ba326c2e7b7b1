"""Tool-call audit events in DuckDB, written off the caller's path."""
from __future__ import annotations

import json
import logging
from typing import Any

from storage.backends import Store

log = logging.getLogger(__name__)


class DuckDbAuditSink:
    """Implements the gateway's `AuditSink`. The write is queued on the database's
    writer thread, so a tool call never waits for its audit row."""

    def __init__(self, db: Store):
        self.db = db

    def record(self, event: Any) -> None:
        row = [event.id, event.at, event.user_id, event.session_id, event.persona_id, event.channel, event.tool,
               json.dumps({"arguments": event.arguments, "layer": event.layer, "server": event.server,
                           "side_effect": event.side_effect, "confirmed": event.confirmed,
                           "flags": event.flags, "truncated": event.truncated}, default=str),
               event.decision, event.reason, event.latency_ms, event.result_bytes, event.error]
        future = self.db.submit(lambda cursor: cursor.execute(
            "INSERT INTO audit_events (id, occurred_at, user_id, session_id, persona_id, channel, tool, arguments, "
            "decision, reason, latency_ms, result_bytes, error) VALUES (?, ?::TIMESTAMPTZ, ?, ?, ?, ?, ?, ?, ?, ?, "
            "?, ?, ?)", row))
        future.add_done_callback(lambda f: f.exception() and log.error("audit write failed: %s", f.exception()))

    def recent(self, user_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        where, params = ("WHERE user_id = ?", [user_id]) if user_id else ("", [])
        return self.db.read_dicts(
            f"SELECT occurred_at, user_id, persona_id, channel, tool, decision, reason, latency_ms, error "
            f"FROM audit_events {where} ORDER BY occurred_at DESC LIMIT ?", [*params, limit])
