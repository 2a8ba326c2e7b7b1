"""Replicas share one PostgreSQL (COZY_DB_URL): a user's notes, kept by each replica's own
notes server, are the same whichever replica a request lands on; and a tool pinned, held
back or approved is so on every replica.

Each "replica" is its own ToolGateway with its own notes server process over stdio, started
from the shipped tools/servers.yaml entry, as the app starts it ("{db_url}" filled in)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from config import ToolSettings
from tests import postgres_service
from tests.conftest import ROOT
from tests.hostile_servers.harness import context
from tools.audit import MemoryAuditSink
from tools.config import load_config, with_state
from tools.gateway import ToolGateway
from tools.pins import PinStore
from tools.servers.notes_store import NotesStore

NOTES = ("notes",)


@pytest.fixture
def url():
    if postgres_service.server_binaries() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    return postgres_service.shared_server().new_database()


def replica(folder, url: str) -> ToolGateway:
    shipped = with_state(load_config(ToolSettings().config_path), ToolSettings(), folder / "data")
    config = replace(shipped, servers=tuple(s for s in shipped.servers if s.name == "notes"), db_url=url)
    gateway = ToolGateway(config, audit=MemoryAuditSink())
    gateway.start(wait_s=20)
    return gateway


def call(gateway: ToolGateway, tool: str, arguments: dict, user: str) -> str:
    result = gateway.call(context(persona_id="companion", allowed=NOTES, channel="text", user_id=user),
                          tool, json.dumps(arguments))
    assert result.ok, result.error
    return result.content  # the result as the model reads it, in its delimiters


def test_a_note_made_through_one_replica_is_read_through_another_and_only_by_its_owner(tmp_path, url):
    first, second = replica(tmp_path / "one", url), replica(tmp_path / "two", url)
    try:
        said = call(first, "add_note", {"text": "buy oat milk"}, user="alice")
        assert "I've noted that: buy oat milk." in said, said
        call(first, "add_reminder", {"text": "call the dentist", "remind_at": "2026-12-10T09:30"}, user="alice")

        listed = call(second, "list_notes", {}, user="alice")
        assert "buy oat milk" in listed and "call the dentist" in listed, listed
        assert "No notes yet." in call(second, "list_notes", {}, user="bob")  # another identity sees none

        assert second.erase_identity("alice") == {"notes": "Erased 2 notes and reminders."}
        assert "No notes yet." in call(first, "list_notes", {}, user="alice")
    finally:
        first.stop()
        second.stop()
    # Nothing went into either replica's own file.
    assert not list(tmp_path.glob("*/data/tools/notes.duckdb"))


def test_notes_servers_starting_together_make_one_table(url):
    with ThreadPoolExecutor(3) as pool:  # at once: the schema is made under a lock, once
        stores = list(pool.map(lambda _: NotesStore(None, url), range(3)))
    try:
        ids = [store.add("carol", f"note {i}") for i, store in enumerate(stores)]
        assert len(set(ids)) == 3
        assert [note.text for note in stores[2].list("carol")] == ["note 0", "note 1", "note 2"]
    finally:
        for store in stores:
            store.close()


def test_a_tool_held_back_on_one_replica_is_held_on_all_until_an_operator_approves_it_once(tmp_path, url):
    first, second = PinStore(tmp_path / "one.json", url), PinStore(tmp_path / "two.json", url)
    try:
        assert first.verdict("add_note", "notes", "digest-1", []).enabled  # pinned on first sight...
        assert second.verdict("add_note", "notes", "digest-1", []).enabled  # ...for every replica
        changed = second.verdict("add_note", "notes", "digest-2", [])  # the server's tool changed
        assert not changed.enabled and "possible rug pull" in changed.reason
        assert not first.verdict("add_note", "notes", "digest-2", []).enabled
        assert set(first.pending()) == {"add_note"}

        approved = subprocess.run([sys.executable, "-m", "tools.cli", "approve", "add_note"], cwd=ROOT,
                                  env={**os.environ, "COZY_DB_URL": url, "COZY_DATA_DIR": str(tmp_path / "data")},
                                  capture_output=True, text=True, timeout=60)
        assert approved.returncode == 0, approved.stderr
        assert approved.stdout.startswith("approved add_note from server notes"), approved.stdout
        assert url.split("@")[0] not in approved.stdout + approved.stderr  # no credentials printed

        assert first.verdict("add_note", "notes", "digest-2", []).enabled
        assert second.verdict("add_note", "notes", "digest-2", []).enabled
        assert second.pending() == {}
    finally:
        first.close()
        second.close()
    assert not list(tmp_path.glob("*.json"))  # in the shared row, not in a replica's file
