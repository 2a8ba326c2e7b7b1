"""A reply's first clause, voiced while the local model writes on: with and without the
foreground hold (providers/foreground.py), same run.

Piper synthesizes one first clause five times alone, five times while the model writes a
long reply beside it on the same two cores, and five times beside it with the clause held
in the foreground (the model pausing between tokens meanwhile). Prints medians, and the
model's tokens a second alone and beside the held clauses.

    flock /tmp/bench.lock .venv/bin/python bench/foreground.py [--model qwen2.5-1.5b]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from providers import model_files  # noqa: E402
from providers.base import ChatOptions  # noqa: E402
from providers.foreground import FOREGROUND  # noqa: E402
from providers.offline.llm import LlamaChatModel  # noqa: E402
from providers.offline.tts import PiperTTS  # noqa: E402

CLAUSE = "A spider has eight legs, and"
STORY = [{"role": "user", "content": "Tell me a long story about the sea."}]


class Writer:
    """The model writing on in the background, counting its tokens."""

    def __init__(self, llm: LlamaChatModel):
        self.llm, self.tokens, self.stop = llm, 0, threading.Event()
        self.thread = threading.Thread(target=self._write, daemon=True)

    def _write(self) -> None:
        while not self.stop.is_set():
            for _ in self.llm.stream(STORY, ChatOptions(max_tokens=80)):
                self.tokens += 1
                if self.stop.is_set():
                    return

    def __enter__(self) -> "Writer":
        self.thread.start()
        while self.tokens < 3:  # writing, past its prompt
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


def synthesis_ms(tts: PiperTTS, held: bool) -> float:
    began = time.perf_counter()
    with FOREGROUND.hold() if held else nullcontext():
        list(tts.synthesize(CLAUSE))
    return (time.perf_counter() - began) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="qwen2.5-1.5b")
    parser.add_argument("--times", type=int, default=5)
    args = parser.parse_args()
    models = Settings.from_env().models_dir
    llm = LlamaChatModel(model_files.resolve(args.model, models), args.model, threads=2, context_tokens=2048)
    tts = PiperTTS(model_files.resolve("piper-joe-medium", models))
    tts.warmup()
    alone = [synthesis_ms(tts, held=False) for _ in range(args.times)]
    with Writer(llm) as writer:
        beside = [synthesis_ms(tts, held=False) for _ in range(args.times)]
        before, began = writer.tokens, time.perf_counter()
        held = [synthesis_ms(tts, held=True) for _ in range(args.times)]
        rate_held = (writer.tokens - before) / (time.perf_counter() - began)
        before, began = writer.tokens, time.perf_counter()
        time.sleep(2.0)
        rate_alone = (writer.tokens - before) / (time.perf_counter() - began)
    print(f"== first clause {CLAUSE!r} in Piper, medians of {args.times} (ms); {args.model} writing beside it")
    print(f"  alone                          {statistics.median(alone):6.0f}")
    print(f"  beside the model               {statistics.median(beside):6.0f}")
    print(f"  beside it, held in foreground  {statistics.median(held):6.0f}   "
          f"({statistics.median(beside) / statistics.median(held):.1f}x sooner than beside)")
    print(f"  model: {rate_alone:.1f} tokens/s alone, {rate_held:.1f} while clauses are held back to back")


if __name__ == "__main__":
    main()
