"""User profile on DuckDB: key/value facts (name, likes, location...) per user."""
from __future__ import annotations

from memory.facts import Fact
from storage.backends import Store

LIST_KEYS = {"likes", "dislikes"}  # these accumulate; other keys are replaced
MAX_LIST_ITEMS = 12


class LocalUserProfile:
    def __init__(self, db: Store):
        self.db = db

    def get(self, user_id: str) -> dict[str, str]:
        rows = self.db.read("SELECT key, value FROM profiles WHERE user_id = ? ORDER BY key", [user_id])
        return dict(rows)

    @staticmethod
    def update(cursor, user_id: str, facts: list[Fact], source_message_id: str) -> int:
        """Apply profile facts; runs inside a write transaction."""
        changed = 0
        for fact in facts:
            if not fact.profile_key or not fact.profile_value:
                continue
            value = fact.profile_value
            if fact.profile_key in LIST_KEYS:
                row = cursor.execute("SELECT value FROM profiles WHERE user_id = ? AND key = ?",
                                     [user_id, fact.profile_key]).fetchone()
                items = [i for i in (row[0].split("; ") if row else []) if i.lower() != value.lower()]
                value = "; ".join((items + [value])[-MAX_LIST_ITEMS:])
            cursor.execute(
                "INSERT INTO profiles (user_id, key, value, source_message_id) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value, "
                "source_message_id = excluded.source_message_id, updated_at = now()",
                [user_id, fact.profile_key, value, source_message_id])
            changed += 1
        return changed

    def clear(self, user_id: str) -> None:
        self.db.write(lambda cursor: cursor.execute("DELETE FROM profiles WHERE user_id = ?", [user_id]))
