"""How many turns are running right now: a draining server (handlers/draining.py) waits for none."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")


class InFlight:
    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def track(self, items: Iterator[T]) -> Iterator[T]:
        """`items`, counted from the first step until it ends, however it ends."""
        with self._lock:
            self.count += 1
        try:
            yield from items
        finally:
            with self._lock:
                self.count -= 1
