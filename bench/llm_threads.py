"""How many threads the local model should write with, alone and beside the voice's own work.

A voice server is never idle while a reply is written: websocket or WebRTC frames arrive
every 20 ms, the VAD looks at them, the TTS voices the pieces already written. This runs
the model (reading a prompt, then writing 24 tokens) with 1 and 2 decode threads, alone and
beside a light load that stands for that work (2 ms of CPU every 20 ms on a thread of its
own), and prints the median rates of each, with the ratio against two threads alone.

    .venv/bin/python bench/llm_threads.py [--model qwen2.5-1.5b] [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from providers import model_files  # noqa: E402

PROMPT = "The quick brown fox jumps over the lazy dog, and the dog does not mind at all. " * 12


class VoiceLikeLoad:
    """2 ms of numpy work every 20 ms, on its own thread (numpy releases the GIL, as ONNX does)."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        matrix = np.random.rand(200, 200)
        while not self._stop.is_set():
            began = time.perf_counter()
            while time.perf_counter() - began < 0.002:
                matrix @ matrix
            self._stop.wait(0.018)

    def __enter__(self) -> "VoiceLikeLoad":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def rates(llm, rounds: int) -> tuple[float, float]:
    """Median (prompt tokens/s, written tokens/s) over `rounds`."""
    prompt_rates, write_rates = [], []
    tokens = llm.tokenize(PROMPT.encode())[:200]
    for index in range(rounds):
        llm.reset()
        began = time.perf_counter()
        llm.eval(tokens[:199] + [tokens[index]])  # a different last token: nothing reused
        prompt_rates.append(200 / (time.perf_counter() - began))
        began = time.perf_counter()
        for _ in range(24):
            llm.eval([llm.sample(temp=0)])
        write_rates.append(24 / (time.perf_counter() - began))
    return statistics.median(prompt_rates), statistics.median(write_rates)


def main() -> None:
    from llama_cpp import Llama

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="qwen2.5-1.5b")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    path = model_files.resolve(args.model, Settings.from_env().models_dir)
    results = {}
    for decode_threads in (2, 1):
        llm = Llama(model_path=str(path), n_ctx=1024, n_threads=decode_threads, n_threads_batch=2,
                    n_batch=256, verbose=False)
        rates(llm, 1)  # warm
        results[(decode_threads, "alone")] = rates(llm, args.rounds)
        with VoiceLikeLoad():
            results[(decode_threads, "beside voice-like load")] = rates(llm, args.rounds)
        del llm
    base_prompt, base_write = results[(2, "alone")]
    print(f"{args.model}, prompt read with 2 threads; medians of {args.rounds} rounds")
    print(f"  {'decode threads':<16}{'condition':<26}{'prompt tok/s':>14}{'write tok/s':>13}{'write vs 2 alone':>18}")
    for (threads, condition), (prompt, write) in results.items():
        print(f"  {threads:<16}{condition:<26}{prompt:>14.1f}{write:>13.1f}{write / base_write:>17.2f}x")


if __name__ == "__main__":
    main()
