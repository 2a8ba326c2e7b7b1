"""The voice's first clause is held in the foreground: background work (the local model
writing on) waits between its steps until the clause is done, and never for long."""
from __future__ import annotations

import threading

from providers.foreground import Foreground


def test_background_work_waits_while_a_clause_is_held_and_goes_on_after():
    foreground = Foreground()
    released, waited = threading.Event(), threading.Event()

    def hold() -> None:
        with foreground.hold():
            released.wait(30)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    while not foreground.held:
        threading.Event().wait(0.01)
    worker = threading.Thread(target=lambda: (foreground.wait(longest_s=30), waited.set()), daemon=True)
    worker.start()
    assert not waited.wait(0.3)  # still held: the model does not take the cores
    released.set()
    assert waited.wait(30)  # released: it writes on
    holder.join(30)
    assert not foreground.held


def test_a_hold_stalls_background_work_only_so_long():
    foreground = Foreground()
    released = threading.Event()
    with foreground.hold():
        worker = threading.Thread(target=lambda: foreground.wait(longest_s=0.05), daemon=True)
        worker.start()
        worker.join(30)
        assert not worker.is_alive() and foreground.held  # it went on while the clause was still held
    released.set()


def test_nothing_held_costs_nothing():
    foreground = Foreground()
    foreground.wait(longest_s=30)  # returns at once: no lock, no wait
    assert not foreground.held
