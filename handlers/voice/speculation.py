"""Think during the pause: once the pause's early transcript is in, the local model
evaluates the reply's prompt while the turn detector is still deciding.

If the user goes on speaking the evaluation is cancelled: it stops within one chunk
of tokens (providers/offline/llm.py) and leaves nothing behind but KV cache, which
the next prompt overwrites. If the turn is taken, the real reply's prompt is the same
(orchestrator/prefill.py), so the model starts it from what was evaluated; the
prefill gives the model up as soon as that reply, or anyone's, asks for it.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from orchestrator.chat import ChatOrchestrator
from orchestrator.prefill import Prefill, local_prefill, turn_prompt
from orchestrator.turns import TurnRequest
from personas.cards import PersonaError

log = logging.getLogger(__name__)

# One worker for every connection: the model evaluates one prompt at a time anyway.
_prefills = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefill")


class Speculation:
    """One speculative evaluation: its cancel flag, and how it ended."""

    def __init__(self, request: TurnRequest):
        self.request = request
        self.cancelled = threading.Event()
        self.finished = threading.Event()
        self.outcome: str | None = None  # "evaluated", "stopped" (cancelled or gave way), "failed"
        self.prefill: Prefill | None = None  # the model's that will serve the turn

    def finish(self, outcome: str) -> None:
        self.outcome = outcome
        self.finished.set()


class SpeculativePrefill:
    """One connection's speculative prompt evaluation: at most one at a time."""

    def __init__(self, orchestrator: ChatOrchestrator):
        self.orchestrator = orchestrator
        self.current: Speculation | None = None

    def _prefill_for(self, request: TurnRequest) -> Prefill | None:
        """The local model that will serve this persona's turn (its card may pin another)."""
        try:
            return local_prefill(self.orchestrator.model_of(self.orchestrator.personas.get(request.persona_id)))
        except PersonaError:
            return None

    def start(self, early_transcript: Future, request: TurnRequest) -> Speculation | None:
        """When `early_transcript` ((text, call log)) is ready, evaluate `request` with its text."""
        self.cancel()
        prefill = self._prefill_for(request)
        if prefill is None:
            return None
        speculation = self.current = Speculation(request)
        speculation.prefill = prefill
        early_transcript.add_done_callback(lambda done: self._on_transcript(done, speculation))
        return speculation

    def cancel(self) -> None:
        """The user spoke again: the words it was for are not the turn's."""
        if self.current is not None:
            self.current.cancelled.set()
            self.current = None

    def _on_transcript(self, transcript: Future, speculation: Speculation) -> None:
        if speculation.cancelled.is_set() or transcript.cancelled() or transcript.exception() is not None:
            return speculation.finish("stopped")
        text, _ = transcript.result()
        if not text:
            return speculation.finish("stopped")
        speculation.request.text = text
        _prefills.submit(self._run, speculation)

    def _run(self, speculation: Speculation) -> None:
        if speculation.cancelled.is_set():
            return speculation.finish("stopped")
        started = time.perf_counter()
        try:
            messages, tools = turn_prompt(self.orchestrator, speculation.request)
            evaluated = speculation.prefill(messages, tools, speculation.cancelled)
        except Exception:  # speculation only: the real turn does the work itself
            log.warning("speculative prefill failed", exc_info=True)
            return speculation.finish("failed")
        log.debug("speculative prefill %s in %.3f s", "done" if evaluated else "stopped",
                  time.perf_counter() - started)
        speculation.finish("evaluated" if evaluated else "stopped")
