"""Chat memory on DuckDB: durable facts per user, recalled by shared search terms."""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

from memory.facts import Fact
from personas.cards import MemoryPolicy
from storage.backends import Store
from storage.term_index import terms_of


_ABOUT_THE_USER = re.compile(r"\b(me|my|myself|mine|i|remember|recall)\b", re.I)


class LocalChatMemory:
    def __init__(self, db: Store):
        self.db = db

    def recall(self, user_id: str, query: str, limit: int = 5) -> list[str]:
        """Memories that share words with the query. A question about the user
        themself ("what do you know about me?") also gets the most recent ones;
        anything else gets no unrelated memories, which would only distract the
        model and lengthen its prompt."""
        terms = terms_of(query, limit=30)
        matched: list[str] = []
        if terms:
            rows = self.db.read(
                """
                WITH visible AS (
                    SELECT id, content, created_at FROM memories
                    WHERE user_id = $user AND (expires_at IS NULL OR expires_at > current_timestamp)
                ),
                hits AS (
                    SELECT t.memory_id, t.term FROM memory_terms t
                    WHERE t.user_id = $user AND t.term = ANY($terms)
                ),
                df AS (SELECT term, count(*) AS df FROM hits GROUP BY term),
                total AS (SELECT greatest(count(*), 1) AS n FROM visible)
                SELECT v.content
                FROM hits h JOIN df USING (term) JOIN visible v ON v.id = h.memory_id, total
                GROUP BY v.id, v.content, v.created_at
                ORDER BY sum(ln(1 + 1.0 * total.n / df.df)) DESC, v.created_at DESC
                LIMIT $limit
                """, {"user": user_id, "terms": terms, "limit": limit})
            matched = [r[0] for r in rows]
        if len(matched) < limit and _ABOUT_THE_USER.search(query):
            recent = self.db.read(
                "SELECT content FROM memories WHERE user_id = ? AND (expires_at IS NULL OR "
                "expires_at > current_timestamp) ORDER BY created_at DESC LIMIT ?",
                [user_id, limit])
            matched += [r[0] for r in recent if r[0] not in matched][: limit - len(matched)]
        return matched

    @staticmethod
    def remember(cursor, user_id: str, persona_id: str, facts: list[Fact], policy: MemoryPolicy,
                 source_message_id: str) -> int:
        """Store the facts the persona's policy keeps; runs inside a write transaction."""
        stored = 0
        expires = datetime.now() + timedelta(days=policy.retention_days) if policy.retention_days else None
        for fact in facts:
            if fact.category not in policy.remember:
                continue
            exists = cursor.execute("SELECT 1 FROM memories WHERE user_id = ? AND lower(content) = lower(?)",
                                    [user_id, fact.memory]).fetchone()
            if exists:
                cursor.execute("UPDATE memories SET expires_at = ? WHERE user_id = ? AND lower(content) = lower(?)",
                               [expires, user_id, fact.memory])
                continue
            memory_id = uuid.uuid4().hex
            cursor.execute("INSERT INTO memories (id, user_id, persona_id, category, content, source_message_id, "
                           "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                           [memory_id, user_id, persona_id, fact.category, fact.memory, source_message_id, expires])
            terms = terms_of(fact.memory)
            if terms:
                cursor.executemany("INSERT INTO memory_terms (memory_id, user_id, term) VALUES (?, ?, ?)",
                                   [[memory_id, user_id, term] for term in terms])
            stored += 1
        return stored

    @staticmethod
    def purge_expired(cursor) -> int:
        """Delete memories past their persona's retention_days (recall already hides them:
        this is what makes the retention promise true on disk). Runs in a write transaction."""
        expired = "SELECT id FROM memories WHERE expires_at IS NOT NULL AND expires_at <= current_timestamp"
        count = cursor.execute(f"SELECT count(*) FROM ({expired}) AS expired").fetchone()[0]
        if count:
            cursor.execute(f"DELETE FROM memory_terms WHERE memory_id IN ({expired})")
            cursor.execute(f"DELETE FROM memories WHERE id IN ({expired})")
        return count

    def forget_all(self, user_id: str) -> None:
        def work(cursor) -> None:
            cursor.execute("DELETE FROM memory_terms WHERE user_id = ?", [user_id])
            cursor.execute("DELETE FROM memories WHERE user_id = ?", [user_id])

        self.db.write(work)

    def list(self, user_id: str, limit: int = 100) -> list[dict]:
        return self.db.read_dicts(
            "SELECT content, category, persona_id, created_at, expires_at FROM memories WHERE user_id = ? "
            "AND (expires_at IS NULL OR expires_at > current_timestamp) ORDER BY created_at DESC LIMIT ?",
            [user_id, limit])
