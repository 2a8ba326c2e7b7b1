"""A typed turn as the transcript shows it, live: the message at once, a thinking bubble
(with the queue position while the local model serves others), the reply as it is
written, a chip per tool that ran, and a badge at the end. A failure is said in
words and marked, so the page can offer Retry; it leaves no empty conversation
(the orchestrator discards one it opened)."""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from orchestrator.turns import OverBudget, TurnDelta, TurnDone, TurnRequest, TurnToolResult
from providers.errors import ModelBusy
from space.transcript import badge, reply_message, tool_chip, user_message
from storage.conversations import SessionNotFound

log = logging.getLogger(__name__)

TICK_S = 0.5  # how often a waiting bubble looks at the queue again


@dataclass
class TypedTurnUpdate:
    chat: list[dict[str, Any]]
    session_id: str | None
    failed: bool = False
    done: bool = False


def start_chat(chat: list[dict[str, Any]], text: str, persona_name: str) -> list[dict[str, Any]]:
    """What the transcript shows the moment the message is sent."""
    return [*chat, user_message(text), reply_message(persona_name, "")]


def _in_background(items: Callable[[], Iterator[Any]], cancelled: threading.Event) -> Iterator[Any]:
    """The orchestrator's items, with a None every TICK_S while it has nothing new, so the
    bubble can say where the request waits. Closing this generator cancels the turn."""
    inbox: queue.Queue = queue.Queue()

    def work() -> None:
        try:
            for item in items():
                inbox.put(("item", item))
                if cancelled.is_set():
                    break
            inbox.put(("end", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the page's side, which words it
            inbox.put(("error", exc))

    threading.Thread(target=work, name="typed-turn", daemon=True).start()
    try:
        while True:
            try:
                kind, value = inbox.get(timeout=TICK_S)
            except queue.Empty:
                yield None
                continue
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        cancelled.set()  # the visitor pressed Stop, or left: the model stops too


def run_typed_turn(orchestrator: Any, request: TurnRequest, chat: list[dict[str, Any]], persona_name: str,
                   model_label: str, queue_position: Callable[[str], int | None]) -> Iterator[TypedTurnUpdate]:
    """`chat` already ends with the user's message and the reply bubble (see start_chat)."""
    chat = list(chat)
    reply_at = len(chat) - 1
    text, session_id, started = "", request.session_id, time.perf_counter()
    first_text_s: float | None = None
    cancelled = threading.Event()
    try:
        for item in _in_background(lambda: orchestrator.run(request, cancelled), cancelled):
            if item is None:
                ahead = queue_position(request.user_id) if not text else None
                if ahead:
                    chat[reply_at] = reply_message(persona_name, f"⏳ _One moment: {ahead} ahead of you…_")
                    yield TypedTurnUpdate(chat, session_id)
                continue
            if isinstance(item, TurnToolResult):
                chat.insert(reply_at, tool_chip(item.call.name, item.ok, item.latency_ms))
                reply_at += 1
            elif isinstance(item, TurnDelta):
                if first_text_s is None:
                    first_text_s = time.perf_counter() - started
                text += item.text
                chat[reply_at] = reply_message(persona_name, text)
            elif isinstance(item, TurnDone):
                session_id = item.session_id
                chat[reply_at] = reply_message(persona_name, item.reply or text,
                                               badge(model_label, first_text_s, "first text"))
                yield TypedTurnUpdate(chat, session_id, done=True)
                return
            else:
                continue
            yield TypedTurnUpdate(chat, session_id)
    except SessionNotFound:
        chat[reply_at] = reply_message(persona_name, "That conversation was deleted; start a new one.")
        yield TypedTurnUpdate(chat, None, failed=True, done=True)
    except OverBudget as exc:  # the same words a caller hears; Retry would not help today
        chat[reply_at] = reply_message(persona_name, f"⏳ {exc}")
        yield TypedTurnUpdate(chat, session_id, done=True)
    except ModelBusy:
        chat[reply_at] = reply_message(persona_name, "⏳ I'm busy with other people right now. "
                                                     "Press Retry in a few seconds.")
        yield TypedTurnUpdate(chat, session_id, failed=True, done=True)
    except Exception:
        chat[reply_at] = reply_message(persona_name, "Sorry, something went wrong on my side. Press Retry.")
        log.exception("typed turn failed")
        yield TypedTurnUpdate(chat, session_id, failed=True, done=True)
