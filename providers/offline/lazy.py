"""A model loaded on first use, or ahead of it on a background thread.

The multilingual Whisper and Kokoro serve only some personas; loading them before the
server answers would add seconds to every start, so they load after it, and a turn that
needs one before then waits for it.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Lazy(Generic[T]):
    def __init__(self, what: str, load: Callable[[], T]):
        self.what = what
        self._load = load
        self._value: T | None = None
        self._error: Exception | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        """The model; raises the load's error (the same one each time: a broken file stays broken)."""
        with self._lock:
            if self._value is None and self._error is None:
                try:
                    self._value = self._load()
                except Exception as exc:  # reported to every caller, loaded never again
                    log.warning("%s is unavailable: %s", self.what, exc)
                    self._error = exc
            if self._error is not None:
                raise self._error
            return self._value

    @property
    def available(self) -> bool | None:
        """True loaded, False failed, None not tried yet."""
        return True if self._value is not None else False if self._error is not None else None

    def preload(self) -> threading.Thread:
        def run() -> None:
            try:
                self.get()
            except Exception:
                pass  # logged in get(); callers get the error when they ask
        thread = threading.Thread(target=run, name=f"preload-{self.what}", daemon=True)
        thread.start()
        return thread
