"""Work a listener is waiting on right now, and the background work that steps aside for it.

On two cores the local model writing on past a reply's first clause and the voice
speaking that clause share the CPU: beside a running Qwen 1.5B, Piper took 223 ms for
a clause it says in 86 ms alone, and 87 ms held in the foreground (medians of 5,
bench/foreground.py). The clause is what the listener is waiting for; the model is
ahead of the voice by then, so it pauses between tokens while the clause is
synthesized, and loses a token or two.

One per process (`FOREGROUND`): every connection shares the same cores. A hold is bounded
(`LONGEST_HOLD_S`), so a slow or remote voice cannot stall the model for long.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

LONGEST_HOLD_S = 0.5


class Foreground:
    def __init__(self) -> None:
        self._holders = 0
        self._changed = threading.Condition()

    @contextmanager
    def hold(self) -> Iterator[None]:
        """While this runs, background work waits (at most LONGEST_HOLD_S at a time)."""
        with self._changed:
            self._holders += 1
        try:
            yield
        finally:
            with self._changed:
                self._holders -= 1
                self._changed.notify_all()

    @property
    def held(self) -> bool:
        return self._holders > 0

    def wait(self, longest_s: float = LONGEST_HOLD_S) -> None:
        """Background work calls this between steps: returns once nothing is held, or after longest_s."""
        if not self._holders:  # the common case, without the lock
            return
        with self._changed:
            self._changed.wait_for(lambda: not self._holders, timeout=longest_s)


FOREGROUND = Foreground()
