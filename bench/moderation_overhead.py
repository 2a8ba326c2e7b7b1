"""What moderation adds to a turn: the user's words checked before the model, each
sentence of the reply before it is released.

One orchestrator on a throw-away database runs the same text turn three ways,
interleaved in one run so drift favours none: no moderation, the offline
moderator (word lists and patterns), and the chain with OpenAI's endpoint played
by the fake vendor on 127.0.0.1 (in its own process, so it does not share our
GIL). The model is scripted and, as in the app, behind a fallback chain (which
reads it on a helper thread, so it goes on writing while a sentence is checked):
instant (moderation against the orchestrator's own cost, the worst case for the
ratio), and paced like a cloud model streaming ~40 words a second. Reported per
turn: median total time and median time to the first released text (the output
check holds text back until its first clause is complete), as ratios against no
moderation.

    .venv/bin/python bench/moderation_overhead.py [turns]
"""
from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.provider_overhead import fake_vendor_process  # noqa: E402
from config import ModerationSettings, Settings  # noqa: E402
from orchestrator.moderation import ModerationGate  # noqa: E402
from orchestrator.sentences import SentenceSplitter  # noqa: E402
from orchestrator.services import build_chat_services  # noqa: E402
from orchestrator.turns import TurnDelta, TurnRequest  # noqa: E402
from personas.cards import PersonaCatalog  # noqa: E402
from providers.base import CancelFlag, ChatDelta, ChatOptions  # noqa: E402
from providers.fallback import FallbackChatModel  # noqa: E402
from providers.moderation.chain import build_moderation  # noqa: E402
from providers.moderation.offline import OfflineModerator  # noqa: E402

QUESTION = "Tell me something nice about the sea."
REPLY = ("Well, the sea is never quite the same twice, which is part of its charm. Its waves carry "
         "the sound of storms from far away. On a calm morning it can look like glass, and the gulls "
         "seem to agree.")
WARMUP_TURNS = 5


class PacedModel:
    name = "scripted"

    def __init__(self, seconds_per_word: float):
        self.seconds_per_word = seconds_per_word

    def stream(self, messages: list[dict[str, Any]], options: ChatOptions,
               cancelled: CancelFlag | None = None) -> Iterator[ChatDelta]:
        for word in REPLY.split(" "):
            if self.seconds_per_word:
                time.sleep(self.seconds_per_word)
            yield ChatDelta(text=word + " ")
        yield ChatDelta(finish_reason="stop")


def one_turn(services) -> tuple[float, float]:
    """(total ms, ms to the first released text)."""
    began = time.perf_counter()
    first = None
    for item in services.orchestrator.run(TurnRequest(text=QUESTION, user_id="bench", persona_id="concise")):
        if first is None and isinstance(item, TurnDelta):
            first = time.perf_counter()
    return (time.perf_counter() - began) * 1000, ((first or time.perf_counter()) - began) * 1000


def run(label: str, services, gates: dict[str, ModerationGate], turns: int) -> None:
    for _ in range(WARMUP_TURNS):
        for gate in gates.values():
            services.orchestrator.moderation = gate
            one_turn(services)
    totals: dict[str, list[float]] = {name: [] for name in gates}
    firsts: dict[str, list[float]] = {name: [] for name in gates}
    order = list(gates)
    for index in range(turns):
        for name in order[index % len(order):] + order[:index % len(order)]:  # rotate who goes first
            services.orchestrator.moderation = gates[name]
            total_ms, first_ms = one_turn(services)
            totals[name].append(total_ms)
            firsts[name].append(first_ms)
    base_total, base_first = statistics.median(totals["none"]), statistics.median(firsts["none"])
    print(f"\n{label}")
    for name in gates:
        total, first = statistics.median(totals[name]), statistics.median(firsts[name])
        print(f"  {name:<22} turn {total:8.2f} ms  (+{total - base_total:7.2f} ms, {total / base_total:5.2f}x)"
              f"   first text {first:7.2f} ms  ({first / base_first:5.2f}x)")


def main(turns: int) -> None:
    splitter = SentenceSplitter()
    pieces = sum(len(splitter.push(word + " ")) for word in REPLY.split(" ")) + len(splitter.flush())
    print(f"{WARMUP_TURNS} warm-up turns, then medians; one input check and {pieces} output checks per turn")
    with tempfile.TemporaryDirectory() as data_dir, fake_vendor_process() as vendor:
        personas = PersonaCatalog(ROOT / "personas", "concise")
        offline = OfflineModerator()
        env = {"OPENAI_API_KEY": vendor.api_key, "OPENAI_BASE_URL": f"{vendor.url}/v1"}
        gates = {"none": ModerationGate(None),
                 "offline": ModerationGate(build_moderation(ModerationSettings(), {}, offline)),
                 "openai (fake vendor)": ModerationGate(build_moderation(ModerationSettings(), env, offline))}
        # The paced model takes ~1 s a turn, so it gets fewer turns.
        for label, seconds_per_word, count in (("instant scripted model", 0.0, turns),
                                               ("scripted model at ~40 words/s", 0.025, max(10, turns // 5))):
            services = build_chat_services(Settings(data_dir=Path(data_dir) / label.split()[0]), personas,
                                           FallbackChatModel([PacedModel(seconds_per_word)]),
                                           moderator=offline)
            try:
                run(f"{label}, {count} turns each", services, gates, count)
            finally:
                services.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
