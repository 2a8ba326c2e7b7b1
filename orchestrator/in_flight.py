"""How many turns are running right now: a draining server (handlers/draining.py) waits for none."""
from __future__ import annotations

import threading
from collections.abc import Generator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class InFlight:
    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def track(self, items: Generator[T, None, R]) -> Generator[T, None, R]:
        """`items`, counted from the first step until it ends, however it ends; returns what it returns."""
        with self._lock:
            self.count += 1
        try:
            return (yield from items)
        finally:
            with self._lock:
                self.count -= 1
