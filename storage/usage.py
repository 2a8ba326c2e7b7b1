"""Per-identity usage totals per day: one row per (user, day, provider, model),
added to from each finished turn's (priced) record. Erased with the identity
(storage/erasure.py)."""
from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timezone
from typing import Any

from orchestrator.turn_record import TurnRecord
from storage.backends import Store

COLUMNS = ("input_tokens", "output_tokens", "audio_seconds_in", "audio_seconds_out", "characters", "cost_usd")


def today() -> date:
    return datetime.now(timezone.utc).date()  # days are UTC days, the same for every server


def _totals(record: TurnRecord) -> dict[tuple[str, str], list[float]]:
    """The record's use summed by who served it; stages with nothing used are left out."""
    totals: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0, 0.0, 0, 0.0])
    for stage in record.stages:
        used = (stage.tokens_in or 0, stage.tokens_out or 0, stage.audio_in_s or 0.0, stage.audio_out_s or 0.0,
                stage.characters or 0, stage.cost_usd)
        if not stage.provider or not any(used):
            continue
        row = totals[(stage.provider, stage.model)]
        for index, value in enumerate(used):
            row[index] += value
    return totals


class UsageStore:
    """`budget_tokens` / `budget_usd`: what one user may use a day (0: no limit)."""

    def __init__(self, db: Store, budget_tokens: int = 0, budget_usd: float = 0.0):
        self.db = db
        self.budget_tokens = budget_tokens
        self.budget_usd = budget_usd

    def add(self, user_id: str, record: TurnRecord, day: date | None = None) -> None:
        totals = _totals(record)
        if not user_id or not totals:
            return
        day = day or today()

        def work(cursor) -> None:
            for (provider, model), used in totals.items():
                cursor.execute(
                    "INSERT INTO usage_daily (user_id, day, provider, model, input_tokens, output_tokens, "
                    "audio_seconds_in, audio_seconds_out, characters, cost_usd) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (user_id, day, provider, model) DO UPDATE SET "
                    + ", ".join(f"{c} = usage_daily.{c} + excluded.{c}" for c in COLUMNS),
                    [user_id, day, provider, model, *used])

        self.db.write(work)

    def rows(self, user_id: str) -> list[dict[str, Any]]:
        """This identity's usage, newest day first (only theirs: the query is by user)."""
        rows = self.db.read_dicts(
            "SELECT day, provider, model, " + ", ".join(COLUMNS) + " FROM usage_daily WHERE user_id = ? "
            "ORDER BY day DESC, provider, model", [user_id])
        return [{"date": row.pop("day").isoformat(), **row} for row in rows]

    def spent_today(self, user_id: str) -> tuple[int, float]:
        """Tokens (in + out) and USD used today, what a daily budget is checked against."""
        tokens, cost = self.db.read(
            "SELECT coalesce(sum(input_tokens + output_tokens), 0), coalesce(sum(cost_usd), 0) "
            "FROM usage_daily WHERE user_id = ? AND day = ?", [user_id, today()])[0]
        return int(tokens), float(cost)

    def over_budget(self, user_id: str) -> str | None:
        """Why this user may not start another turn today, in words; None while within budget."""
        if not (self.budget_tokens or self.budget_usd):
            return None
        tokens, cost = self.spent_today(user_id)
        if self.budget_tokens and tokens >= self.budget_tokens:
            return f"You have used today's budget of {self.budget_tokens:,} tokens ({tokens:,} used)."
        if self.budget_usd and cost >= self.budget_usd:
            return f"You have used today's budget of ${self.budget_usd:.2f} (${cost:.4f} used)."
        return None
