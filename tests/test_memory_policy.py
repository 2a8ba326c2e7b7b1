"""A persona's memory policy on a real DuckDB file: what it may remember, and for how long.
Past retention_days a memory is deleted from disk, not just hidden."""
from __future__ import annotations

from pathlib import Path

import pytest

from memory.chat_memory import LocalChatMemory
from memory.facts import extract_facts
from memory.learner import MemoryLearner
from personas.cards import MemoryPolicy, PersonaCatalog
from tests.conftest import new_store

pytestmark = pytest.mark.storage  # also run on PostgreSQL (make test)

PERSONAS = Path(__file__).resolve().parent.parent / "personas"


@pytest.fixture
def db(tmp_path):
    database = new_store(tmp_path)
    yield database
    database.close()


def stored(db, user: str) -> list[str]:
    return [r[0] for r in db.read("SELECT content FROM memories WHERE user_id = ? ORDER BY content", [user])]


def test_only_the_kinds_the_persona_remembers_are_kept(db):
    facts = extract_facts("我叫李雷，我喜欢天文学。")
    policy = MemoryPolicy(remember=("preferences",), retention_days=30)
    db.write(lambda cursor: LocalChatMemory.remember(cursor, "lilei", "xiaobei", facts, policy, "m1"))
    assert stored(db, "lilei") == ["喜欢天文学"]


def test_a_memory_past_its_retention_is_deleted_and_others_stay(db):
    memory = LocalChatMemory(db)
    short, forever = MemoryPolicy(retention_days=1), MemoryPolicy(retention_days=0)
    db.write(lambda c: LocalChatMemory.remember(c, "ada", "tutor", extract_facts("I live in Paris."), short, "m1"))
    db.write(lambda c: LocalChatMemory.remember(c, "ada", "companion", extract_facts("My name is Ada."), forever, "m2"))
    db.write(lambda c: LocalChatMemory.remember(c, "bob", "tutor", extract_facts("I live in Rome."), short, "m3"))
    learner = MemoryLearner(db, PersonaCatalog(PERSONAS, "companion"))
    assert learner.purge_expired() == 0  # nothing is due yet
    # Two days pass for Ada's Paris memory.
    db.write(lambda c: c.execute("UPDATE memories SET expires_at = current_timestamp - INTERVAL '1 day' "
                                 "WHERE user_id = 'ada' AND content LIKE '%Paris%'"))
    assert memory.recall("ada", "Where do I live?") == ["Their name is Ada"]  # hidden at once...
    assert learner.purge_expired() == 1  # ...and deleted by the purge
    assert stored(db, "ada") == ["Their name is Ada"]
    assert stored(db, "bob") == ["Lives in Rome"]
    orphans = db.read("SELECT count(*) FROM memory_terms t LEFT JOIN memories m ON m.id = t.memory_id "
                      "WHERE m.id IS NULL")[0][0]
    assert orphans == 0, "the deleted memory's search terms stayed behind"
