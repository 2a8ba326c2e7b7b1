"""How long the local model takes to its first token, by what it already holds of the prompt.

The default model on this machine's cores, the voice persona's prompt, for a spoken
question in a new conversation and in one three turns long:
- cold: another conversation's prompt is in the model, and no RAM prompt cache;
- RAM cache: the same, with llama-cpp's RAM prompt cache (providers/offline/llm.py), which
  keeps each call's evaluated state: another connection's turn with this persona left the
  persona's prompt (and for a follow-up, the conversation so far) in it;
- prefilled: the prompt was evaluated during the pause (LlamaChatModel.prefill), as a voice
  turn's is once its early transcript is in.
Also how long a prefill takes to give the model back when cancelled (its chunk size).

    flock /tmp/bench.lock .venv/bin/python bench/prefill_cache.py [--repeats 5] [--model qwen2.5-1.5b]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from personas.cards import PersonaCatalog  # noqa: E402
from providers import model_files  # noqa: E402
from providers.base import ChatOptions  # noqa: E402
from providers.offline.llm import LlamaChatModel, compact_prompt_cache  # noqa: E402

QUESTIONS = ["What is the capital of France?", "How many legs does a spider have?", "What do bees make?",
             "Who wrote Romeo and Juliet?", "What colour is the sky on a clear day?"]
HISTORY = [{"role": "user", "content": "Hi, I'm planning a trip to Europe next spring."},
           {"role": "assistant", "content": "Lovely! Spring is a great time to travel there. Where would you like to go?"},
           {"role": "user", "content": "Maybe France and Italy, for about two weeks."},
           {"role": "assistant", "content": "Two weeks is enough for Paris, Lyon, Florence and Rome, at an easy pace."},
           {"role": "user", "content": "I like museums and good food."},
           {"role": "assistant", "content": "Then the Louvre, the Uffizi and a cooking class in Bologna would suit you."}]
OTHER = [{"role": "system", "content": "You are a pirate. Answer like one, always, in long sentences."},
         {"role": "user", "content": "Tell me about the sea and the wind and the ships you sailed."}]


def first_token_s(model: LlamaChatModel, messages: list[dict]) -> float:
    started = time.perf_counter()
    for delta in model.stream(messages, ChatOptions(max_tokens=4, temperature=0)):
        if delta.text:
            return time.perf_counter() - started
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="qwen2.5-1.5b")
    args = parser.parse_args()
    settings = Settings.from_env()
    model = LlamaChatModel(model_files.resolve(args.model, settings.models_dir), args.model,
                           threads=settings.models.llm_threads)
    model.warmup()
    persona = PersonaCatalog(settings.personas_dir, settings.default_persona).get(None)
    system = {"role": "system", "content": persona.system_prompt}
    results: dict[tuple[str, str], list[float]] = {}
    for conversation, history in (("new conversation", []), ("fourth turn", HISTORY)):
        for index in range(args.repeats):
            messages = [system, *history, {"role": "user", "content": QUESTIONS[index % len(QUESTIONS)]}]
            tokens = len(model._llm.tokenize(str(messages).encode()))
            for case in ("cold", "RAM cache", "prefilled"):
                model._llm.set_cache(None if case == "cold" else compact_prompt_cache(512 * 1024 * 1024))
                if case != "cold":  # another connection's turn with this persona and history
                    first_token_s(model, [system, *history, {"role": "user", "content": "Hello!"}])
                first_token_s(model, OTHER)  # then someone else's prompt takes the model
                if case == "prefilled":
                    model.prefill(messages, [], threading.Event())
                results.setdefault((conversation, case), []).append(first_token_s(model, messages))
        print(f"  ({conversation}: prompts of about {tokens} tokens)")

    print(f"\n== {args.model}: time to first token, median of {args.repeats} (ms)")
    for (conversation, case), values in results.items():
        print(f"  {conversation:<18} {case:<10} {statistics.median(values) * 1000:7.0f}")

    # Cancelled while it evaluates a long prompt: how soon is the model free again?
    long_prompt = [system, *HISTORY * 4, {"role": "user", "content": QUESTIONS[0]}]
    freed = []
    for _ in range(args.repeats):
        first_token_s(model, OTHER)
        cancel = threading.Event()
        worker = threading.Thread(target=model.prefill, args=(long_prompt, [], cancel))
        worker.start()
        time.sleep(0.3)  # bench only: let it get into the prompt
        asked = time.perf_counter()
        cancel.set()
        worker.join()
        freed.append(time.perf_counter() - asked)
    print(f"  cancelled prefill gives the model back after {statistics.median(freed) * 1000:.0f} ms (median)")


if __name__ == "__main__":
    main()
