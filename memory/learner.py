"""Learns memories and profile facts from saved turns, off the hot path.

Every saved user message leaves a row in `memory_backlog` in the same transaction,
so the work survives a crash: this worker picks the rows up (also the ones left by
a previous run, or by a replica that died), and a clean shutdown drains them first.
On a shared database it also looks every few seconds, since turns saved by other
replicas do not wake it.
"""
from __future__ import annotations

import logging
import threading
import time

from memory.chat_memory import LocalChatMemory
from memory.facts import extract_facts
from memory.user_profile import LocalUserProfile
from personas.cards import MemoryPolicy, PersonaCatalog, PersonaError
from storage.backends import Store

log = logging.getLogger(__name__)
PURGE_EVERY_S = 3600.0  # expired memories are deleted at start and then hourly
SHARED_POLL_S = 5.0


class MemoryLearner:
    def __init__(self, db: Store, personas: PersonaCatalog, batch_size: int = 20, poll_s: float | None = None):
        self.db = db
        self.personas = personas
        self.batch_size = batch_size
        self.poll_s = poll_s or (SHARED_POLL_S if db.dialect == "postgres" else PURGE_EVERY_S)
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="memory-learner", daemon=True)

    def start(self) -> "MemoryLearner":
        self._thread.start()
        self._wake.set()  # leftovers from a previous run
        return self

    def notify(self) -> None:
        self._wake.set()

    def _policy(self, persona_id: str) -> MemoryPolicy:
        try:
            return self.personas.get(persona_id).memory
        except PersonaError:
            return MemoryPolicy()

    def process_pending(self) -> int:
        """Learn from up to one batch of saved messages; returns how many."""
        rows = self.db.read(
            "SELECT b.message_id, b.persona_id, m.user_id, m.content FROM memory_backlog b "
            "LEFT JOIN messages m ON m.id = b.message_id ORDER BY b.queued_at LIMIT ?", [self.batch_size])
        for message_id, persona_id, user_id, content in rows:
            facts = extract_facts(content) if content else []
            policy = self._policy(persona_id)

            def work(cursor, message_id=message_id, persona_id=persona_id, user_id=user_id,
                     facts=facts, policy=policy) -> None:
                # Taking the row first is the claim: if the user was erased since the read above,
                # or another replica learnt from it meanwhile, nothing is left to take. A process
                # that dies before the commit leaves the row for whoever comes next.
                if not cursor.execute("DELETE FROM memory_backlog WHERE message_id = ?", [message_id]).fetchone()[0]:
                    return
                if facts and user_id:
                    LocalChatMemory.remember(cursor, user_id, persona_id, facts, policy, message_id)
                    LocalUserProfile.update(cursor, user_id, facts, message_id)

            self.db.write(work)
        return len(rows)

    def purge_expired(self) -> int:
        purged = self.db.write(LocalChatMemory.purge_expired)
        if purged:
            log.info("deleted %d memories past their retention", purged)
        return purged

    def _run(self) -> None:
        purge_due = 0.0
        while True:
            self._wake.wait(timeout=self.poll_s)
            self._wake.clear()
            try:
                if time.monotonic() >= purge_due:
                    purge_due = time.monotonic() + PURGE_EVERY_S
                    self.purge_expired()
                while self.process_pending():
                    pass
            except Exception:
                log.exception("learning from saved turns failed; will retry on the next turn")
            if self._stopping:
                return

    def pending(self) -> int:
        return self.db.read("SELECT count(*) FROM memory_backlog")[0][0]

    def wait_idle(self, timeout: float = 10) -> bool:
        """Wait until every saved turn has been learnt from (tests, the UI)."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() > deadline:
                return False
            self._wake.set()
            time.sleep(0.02)
        return True

    def stop(self, timeout: float = 30) -> None:
        """Drain the backlog, then stop."""
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
