"""Think while the user speaks: when they start, the local model evaluates the part
of the next prompt their words do not change (orchestrator/prefill.head_prompt), up to
where their message begins; as they go on, the words heard so far (a partial transcript
every second or so) and nothing after them (what the template puts after a message
would be read again with each new word); once the pause's early transcript is in, the
rest of the reply's prompt, while the turn detector is still deciding, and then the
reply itself, a token at a time, until the turn is taken (providers/offline/llm.py:
WriteAhead). Each is a prefix of the next, so llama.cpp only reads what is new: on two
cores the 1.5B reads about 30 prompt tokens a second in such short runs, and once the
user stops only the last few words and the reply's header are left to read; the reply
then starts with the tokens written meanwhile.

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
from orchestrator.prefill import Prefill, head_prompt, local_prefill, turn_prompt
from orchestrator.turns import TurnRequest
from personas.cards import PersonaError

log = logging.getLogger(__name__)

# One worker for every connection: the model evaluates one prompt at a time anyway.
_prefills = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefill")


class Speculation:
    """One speculative evaluation: its cancel flag, and how it ended."""

    def __init__(self, request: TurnRequest, head_only: bool = False, partial: bool = False):
        self.request = request
        self.head_only = head_only  # the words-independent start of the prompt only
        self.partial = partial  # words heard so far, the user still speaking
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

    def start(self, early_transcript: Future, request: TurnRequest, partial: bool = False) -> Speculation | None:
        """When `early_transcript` ((text, call log)) is ready, evaluate `request` with its text
        (`partial`: the user is still speaking; all of it but the last word, maybe cut off)."""
        speculation = self._begin(Speculation(request, partial=partial))
        if speculation is not None:
            early_transcript.add_done_callback(lambda done: self._on_transcript(done, speculation))
        return speculation

    def warm_head(self, request: TurnRequest) -> Speculation | None:
        """The user started speaking: evaluate what the next prompt starts with."""
        speculation = self._begin(Speculation(request, head_only=True))
        if speculation is not None:
            _prefills.submit(self._run, speculation)
        return speculation

    def _begin(self, speculation: Speculation) -> Speculation | None:
        """`speculation` replaces the one before, if a local model will serve its turn."""
        self.cancel()
        speculation.prefill = self._prefill_for(speculation.request)
        if speculation.prefill is None:
            return None
        self.current = speculation
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
        if speculation.partial:
            # The last word may be half said ("capit"), and Whisper ends what it heard with a
            # full stop the finished turn will not have: the words before it are the prefix.
            text = text.rsplit(None, 1)[0] if len(text.split()) > 1 else ""
        if not text:
            return speculation.finish("stopped")
        speculation.request.text = text
        log.debug("%s transcript in; prefilling the turn's prompt", "partial" if speculation.partial else "early")
        _prefills.submit(self._run, speculation)

    def _run(self, speculation: Speculation) -> None:
        if speculation.cancelled.is_set():
            return speculation.finish("stopped")
        started = time.perf_counter()
        try:
            ahead = None
            if speculation.head_only:  # the user's message comes next: read up to its first word
                messages, tools = [*head_prompt(self.orchestrator, speculation.request),
                                   {"role": "user", "content": ""}], []
            else:
                messages, tools, options = turn_prompt(self.orchestrator, speculation.request)
                ahead = None if speculation.partial else options  # the pause's words are the turn's
            # While they speak, only up to their words so far: what follows them changes with the next word.
            evaluated = speculation.prefill(messages, tools, speculation.cancelled, ahead,
                                            unfinished=speculation.head_only or speculation.partial)
        except Exception:  # speculation only: the real turn does the work itself
            log.warning("speculative prefill failed", exc_info=True)
            return speculation.finish("failed")
        log.debug("speculative prefill (%s) %s in %.3f s", "head" if speculation.head_only else "turn",
                  "done" if evaluated else "stopped", time.perf_counter() - started)
        speculation.finish("evaluated" if evaluated else "stopped")
