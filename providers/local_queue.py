"""A fair, bounded queue in front of each local model.

A local model serves one request at a time. Callers used to pile up on its lock,
so time spent waiting counted toward the fallback chain's first-output deadline:
ordinary concurrency looked like the model failing and opened its breaker for
everybody, and whichever thread won the lock went first. Here instead:
- waiting requests are served round robin by requester, so one user's long or
  many requests cannot starve anyone else;
- the queue is bounded, in all and per requester, and refuses at once with an
  estimate of when to retry (ModelBusy) rather than timing out later;
- the wrapped provider tells the chain when it is QUEUED and when the model has
  STARTED on the request, so the chain's deadlines count from the start.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from providers.base import AudioClip, CancelFlag, ChatDelta, ChatOptions
from providers.errors import ModelBusy

ANONYMOUS = "anonymous"
WAIT_POLL_S = 0.05  # how often a waiting request looks at its cancel flag


class QueueMarker:
    """An item a queued provider yields that is not output: QUEUED or STARTED."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"<{self.name}>"


QUEUED = QueueMarker("queued")
STARTED = QueueMarker("started")


@dataclass
class _Ticket:
    requester: str
    granted: threading.Event = field(default_factory=threading.Event)
    enqueued_at: float = field(default_factory=time.monotonic)


@dataclass
class QueueStats:
    served: int = 0
    refused: int = 0
    waiting: int = 0


def position_in_any(*queues: "FairQueue") -> Callable[[str | None], int | None]:
    """How many go before a requester in whichever of `queues` it waits in (None: in none)."""
    def position(requester: str | None) -> int | None:
        waits = [p for p in (q.position(requester) for q in queues) if p is not None]
        return max(waits) if waits else None
    return position


class FairQueue:
    def __init__(self, name: str, max_waiting: int = 8, max_waiting_per_requester: int = 2,
                 max_wait_s: float = 90.0, on_wait: Callable[[str, float], None] | None = None):
        self.name = name
        self.max_waiting = max_waiting
        self.max_waiting_per_requester = max_waiting_per_requester
        self.max_wait_s = max_wait_s
        self.on_wait = on_wait  # (queue name, seconds waited), for metrics
        self._lock = threading.Lock()
        self._running = False
        self._waiting: dict[str, deque[_Ticket]] = {}
        self._rotation: deque[str] = deque()  # requesters with waiting tickets, next first
        self._job_s = 2.0  # recent job length (moving average): the basis of retry-after
        self._served = 0
        self._refused = 0

    def stats(self) -> QueueStats:
        with self._lock:
            return QueueStats(self._served, self._refused, self._count_waiting())

    def position(self, requester: str | None) -> int | None:
        """How many jobs go before this requester's oldest waiting one (the running one
        included), or None when it has nothing waiting: what a page shows as "2 ahead of you"."""
        requester = requester or ANONYMOUS
        with self._lock:
            if requester not in self._waiting:
                return None
            turn_in_rotation = list(self._rotation).index(requester)
            return turn_in_rotation + (1 if self._running else 0)

    def _count_waiting(self) -> int:
        return sum(len(tickets) for tickets in self._waiting.values())

    def _ahead_of_new(self, requester: str) -> int:
        """Tickets served before a new one of this requester's, under round robin."""
        mine = len(self._waiting.get(requester, ()))
        others = sum(min(len(tickets), mine + 1) for who, tickets in self._waiting.items() if who != requester)
        return mine + others

    def _refuse(self, why: str, ahead: int, per_requester: bool) -> ModelBusy:
        self._refused += 1
        retry = max(1.0, round(self._job_s * (ahead + 1)))
        return ModelBusy(f"{self.name}: {why}; try again in about {retry:g}s", retry, self.name, per_requester)

    def _enter(self, requester: str) -> _Ticket | None:
        """A ticket to wait on, or None when the model is free and now ours."""
        with self._lock:
            if not self._running and not self._rotation:
                self._running = True
                return None
            ahead = self._ahead_of_new(requester)
            if len(self._waiting.get(requester, ())) >= self.max_waiting_per_requester:
                raise self._refuse("you already have requests waiting for this model", ahead, True)
            if self._count_waiting() >= self.max_waiting:
                raise self._refuse("busy with other requests", ahead, False)
            if self._job_s * (ahead + 1) > self.max_wait_s:
                raise self._refuse("too many requests ahead", ahead, False)
            ticket = _Ticket(requester)
            if requester not in self._waiting:
                self._waiting[requester] = deque()
                self._rotation.append(requester)
            self._waiting[requester].append(ticket)
            return ticket

    def _hand_on(self) -> None:
        """The model is free: give it to the next requester in the rotation (lock held)."""
        if not self._rotation:
            self._running = False
            return
        requester = self._rotation.popleft()
        tickets = self._waiting[requester]
        ticket = tickets.popleft()
        if tickets:
            self._rotation.append(requester)
        else:
            del self._waiting[requester]
        ticket.granted.set()  # still running: handed over, never free in between

    def _withdraw(self, ticket: _Ticket) -> bool:
        """Leave the queue; False when the turn was granted meanwhile (the caller then holds it)."""
        with self._lock:
            if ticket.granted.is_set():
                return False
            tickets = self._waiting.get(ticket.requester)
            if tickets is not None:
                tickets.remove(ticket)
                if not tickets:
                    del self._waiting[ticket.requester]
                    self._rotation.remove(ticket.requester)
            return True

    def _await(self, ticket: _Ticket, cancelled: CancelFlag | None) -> bool:
        """Wait for the turn: True once granted, False if the caller cancelled."""
        deadline = ticket.enqueued_at + self.max_wait_s
        while not ticket.granted.wait(WAIT_POLL_S):
            gone = cancelled is not None and cancelled.is_set()
            if (gone or time.monotonic() >= deadline) and self._withdraw(ticket):
                if gone:
                    return False
                with self._lock:
                    raise self._refuse(f"waited {self.max_wait_s:g}s without a turn", self._count_waiting(), False)
        return True

    @contextmanager
    def turn(self, requester: str | None, cancelled: CancelFlag | None = None) -> Iterator[bool]:
        """Hold the model for one job. Yields False (holding nothing) if cancelled while waiting."""
        ticket = self._enter(requester or ANONYMOUS)
        waited_s = 0.0
        if ticket is not None:
            if not self._await(ticket, cancelled):
                yield False
                return
            waited_s = time.monotonic() - ticket.enqueued_at
        if self.on_wait is not None:
            self.on_wait(self.name, waited_s)
        started = time.monotonic()
        try:
            yield True
        finally:
            with self._lock:
                self._served += 1
                self._job_s = 0.7 * self._job_s + 0.3 * (time.monotonic() - started)
                self._hand_on()


class QueuedChatModel:
    """A local chat model behind a FairQueue; yields QUEUED, then STARTED, then its deltas
    (the fallback chain applies its deadlines from STARTED on)."""

    def __init__(self, model: Any, queue: FairQueue):
        self.model = model
        self.queue = queue
        self.name = model.name

    def __getattr__(self, name: str) -> Any:  # prime, warmup: the model's own
        return getattr(self.model, name)

    def stream(self, messages: list[dict[str, Any]], options: ChatOptions,
               cancelled: CancelFlag | None = None) -> Iterator[ChatDelta | QueueMarker]:
        yield QUEUED
        with self.queue.turn(options.requester, cancelled) as held:
            if not held:
                yield ChatDelta(finish_reason="cancelled")
                return
            yield STARTED
            yield from self.model.stream(messages, options, cancelled)


# Whisper reads 30 s windows; a piece a little shorter, cut where it is quietest,
# keeps words whole, and gives the model back between pieces to other requesters.
PIECE_S = 28.0
CUT_SEARCH_S = 4.0
CUT_FRAME_S = 0.05


def split_at_pauses(clip: AudioClip, piece_s: float = PIECE_S) -> list[AudioClip]:
    rate, samples = clip.sample_rate, clip.samples
    if rate <= 0 or len(samples) <= piece_s * rate:
        return [clip]
    pieces, start = [], 0
    frame = max(1, int(CUT_FRAME_S * rate))
    while len(samples) - start > piece_s * rate:
        window_end = start + int(piece_s * rate)
        search_from = window_end - int(CUT_SEARCH_S * rate)
        region = samples[search_from:window_end].astype(np.float32)
        frames = len(region) // frame
        energy = np.square(region[: frames * frame].reshape(frames, frame)).mean(axis=1)
        cut = search_from + int(np.argmin(energy)) * frame + frame // 2
        pieces.append(AudioClip(rate, samples[start:cut]))
        start = cut
    pieces.append(AudioClip(rate, samples[start:]))
    return pieces


class QueuedSTT:
    """A local speech-to-text model behind a FairQueue, a piece of long audio per turn."""

    def __init__(self, model: Any, queue: FairQueue):
        self.model = model
        self.queue = queue
        self.name = model.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self.model, name)

    def transcribe_steps(self, audio: AudioClip, language: str | None = "en", requester: str | None = None,
                         cancelled: CancelFlag | None = None) -> Iterator[str | QueueMarker]:
        texts = []
        for piece in split_at_pauses(audio):
            yield QUEUED
            with self.queue.turn(requester, cancelled) as held:
                if not held:
                    return
                yield STARTED
                texts.append(self.model.transcribe(piece, language).strip())
        yield " ".join(text for text in texts if text)

    def transcribe(self, audio: AudioClip, language: str | None = "en", requester: str | None = None) -> str:
        items = [item for item in self.transcribe_steps(audio, language, requester)
                 if not isinstance(item, QueueMarker)]
        return items[-1] if items else ""
