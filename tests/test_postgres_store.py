"""PostgreSQL as several replicas see it: one database, many processes writing at once.

A real server (tests/postgres_service.py); "replicas" are separate PostgresDatabase pools,
and a dying replica is a real process killed with SIGKILL in the middle of a transaction.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from memory.learner import MemoryLearner
from memory.user_profile import LocalUserProfile
from personas.cards import PersonaCatalog
from storage.conversations import ConversationStore
from storage.postgres import PostgresDatabase, postgres_sql
from storage.urls import without_password
from tests import postgres_service
from tests.conftest import ROOT
from tools.pins import PinStore
from tools.servers.notes_store import NotesStore

pytestmark = pytest.mark.storage


@pytest.fixture
def url():
    if postgres_service.server_binaries() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    return postgres_service.shared_server().new_database()


def test_duckdb_style_sql_becomes_psycopg_parameters():
    assert postgres_sql("SELECT ? , $user FROM t WHERE a LIKE '50%?' AND b = ?") == \
        "SELECT %s , %(user)s FROM t WHERE a LIKE '50%?' AND b = %s"
    assert postgres_sql("SELECT 10 % 3") == "SELECT 10 %% 3"
    assert without_password("postgresql://cozy:s3cret@db:5432/cozy") == "postgresql://cozy:***@db:5432/cozy"


def test_replicas_starting_together_apply_each_migration_once(url):
    opened: list[PostgresDatabase] = []
    threads = [threading.Thread(target=lambda: opened.append(PostgresDatabase(url))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert len(opened) == 4
        versions = opened[0].read("SELECT version, count(*) FROM schema_version GROUP BY version ORDER BY version")
        assert versions and all(count == 1 for _, count in versions)
        assert {db.schema_version for db in opened} == {versions[-1][0]}
    finally:
        for db in opened:
            db.close()


def test_two_replicas_saving_into_one_conversation_keep_every_message_in_order(url):
    first, second = PostgresDatabase(url), PostgresDatabase(url)
    try:
        stores = [ConversationStore(first), ConversationStore(second)]
        session = stores[0].create_session("ada", "companion")

        def save(store: ConversationStore, n: int) -> None:
            for i in range(n):
                store.save_turn(session, "ada", "companion", f"question {id(store)}-{i}", f"answer {i}", {})
        threads = [threading.Thread(target=save, args=(store, 15)) for store in stores]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        seqs = [row[0] for row in first.read("SELECT seq FROM messages WHERE session_id = ? ORDER BY seq",
                                             [session])]
        assert seqs == list(range(1, 61))  # 2 replicas x 15 turns x 2 messages, no number twice
        # Each turn's question comes right before its answer, whichever replica saved it.
        roles = [row[0] for row in first.read("SELECT role FROM messages WHERE session_id = ? ORDER BY seq",
                                              [session])]
        assert roles == ["user", "assistant"] * 30
    finally:
        first.close()
        second.close()


def test_learners_on_two_replicas_learn_each_saved_turn_exactly_once(url):
    personas = PersonaCatalog(ROOT / "personas", "companion")
    first, second = PostgresDatabase(url), PostgresDatabase(url)
    learners = []
    try:
        store = ConversationStore(first)
        names = ["Ada", "Bea", "Cem", "Dov", "Eli", "Fay", "Gus", "Hal", "Ida", "Jo", "Kai", "Lea"]
        users = [f"user-{name}" for name in names]
        for name, user in zip(names, users):
            session = store.create_session(user, "companion")
            store.save_turn(session, user, "companion", f"My name is {name} and I live in Lyon.", "Nice!", {})
        learners = [MemoryLearner(db, personas, batch_size=3).start() for db in (first, second)]
        assert all(learner.wait_idle(30) for learner in learners)
        # One memory per fact per user: no replica learnt a turn the other had taken.
        duplicates = first.read("SELECT user_id, content, count(*) FROM memories GROUP BY user_id, content "
                                "HAVING count(*) > 1")
        assert duplicates == []
        profile = LocalUserProfile(second)
        assert [profile.get(user).get("name") for user in users] == names
    finally:
        for learner in learners:
            learner.stop()
        first.close()
        second.close()


def test_a_replica_killed_mid_update_leaves_the_turn_for_another(url):
    db = PostgresDatabase(url)
    learner = None
    try:
        store = ConversationStore(db)
        session = store.create_session("bea", "companion")
        store.save_turn(session, "bea", "companion", "My name is Bea and I live in Porto.", "Hello Bea!", {})
        # A replica takes the queued update (its DELETE holds the row) and dies before committing.
        dying = textwrap.dedent(f"""
            import os, signal, sys
            sys.path.insert(0, {str(ROOT)!r})
            from storage.postgres import PostgresDatabase
            db = PostgresDatabase({url!r})
            def work(cursor):
                assert cursor.execute("DELETE FROM memory_backlog").fetchone()[0] == 1
                print("claimed", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
            db.write(work)
        """)
        result = subprocess.run([sys.executable, "-c", dying], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == -signal.SIGKILL and "claimed" in result.stdout, result.stderr
        assert db.read("SELECT count(*) FROM memory_backlog") == [(1,)]  # rolled back with the connection
        learner = MemoryLearner(db, PersonaCatalog(ROOT / "personas", "companion")).start()
        assert learner.wait_idle(30)
        assert LocalUserProfile(db).get("bea") == {"name": "Bea", "location": "Porto"}
    finally:
        if learner is not None:
            learner.stop()
        db.close()


def test_an_unreachable_server_is_named_without_its_password():
    port = postgres_service._free_port()
    with pytest.raises(RuntimeError) as error:
        PostgresDatabase(f"postgresql://cozy:s3cret@127.0.0.1:{port}/cozy?connect_timeout=1", connect_timeout_s=3)
    assert "127.0.0.1" in str(error.value) and "s3cret" not in str(error.value)


def test_a_duckdb_file_copied_into_postgresql_keeps_each_users_data_theirs(tmp_path, url):
    from memory.chat_memory import LocalChatMemory
    from storage.database import Database

    duck = Database(tmp_path / "cozy.duckdb")
    store = ConversationStore(duck)
    session = store.create_session("ada", "companion")
    store.save_turn(session, "ada", "companion", "My name is Ada and I live in Lyon.", "Hello Ada!",
                    {"tokens": 3})
    learner = MemoryLearner(duck, PersonaCatalog(ROOT / "personas", "companion")).start()
    assert learner.wait_idle(30)
    learner.stop()
    duck.close()
    notes = NotesStore(tmp_path / "tools" / "notes.duckdb")  # the notes server's own file, beside it
    notes.add("ada", "water the basil")
    notes.close()
    assert PinStore(tmp_path / "tools" / "pins.json").verdict("add_note", "notes", "digest-1", []).enabled

    command = [sys.executable, "-m", "storage.copy_to_postgres", str(tmp_path / "cozy.duckdb"), url]
    copied = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert copied.returncode == 0, copied.stderr
    assert "messages: 2 rows" in copied.stdout

    pg = PostgresDatabase(url)
    try:
        moved = ConversationStore(pg)
        assert [m["content"] for m in moved.messages("ada", session)] == \
            ["My name is Ada and I live in Lyon.", "Hello Ada!"]
        assert LocalUserProfile(pg).get("ada") == {"name": "Ada", "location": "Lyon"}
        assert LocalUserProfile(pg).get("bob") == {}  # another identity sees none of it
        assert any("Lyon" in m for m in LocalChatMemory(pg).recall("ada", "where do I live?"))
        assert not LocalChatMemory(pg).recall("bob", "where do I live?")
    finally:
        pg.close()
    assert "tool_notes: 1 rows" in copied.stdout and "tool_pins: 1 tools" in copied.stdout
    shared_notes = NotesStore(None, url)
    try:
        assert [n.text for n in shared_notes.list("ada")] == ["water the basil"] and not shared_notes.list("bob")
        assert shared_notes.add("ada", "repot the mint") > shared_notes.list("ada")[0].id  # numbered after
    finally:
        shared_notes.close()
    shared_pins = PinStore(tmp_path / "unused.json", url)
    try:  # the pin came along: the same tool is trusted, a changed one still held back
        assert shared_pins.verdict("add_note", "notes", "digest-1", []).enabled
        assert not shared_pins.verdict("add_note", "notes", "digest-2", []).enabled
    finally:
        shared_pins.close()
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert again.returncode != 0 and "already has rows" in again.stderr  # nothing copied twice
