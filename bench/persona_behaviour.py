"""Each shipped persona's signature behaviour on the default offline model: every reply
to a fixed prompt set, whether it shows the signature, and the pass rate per persona
(tests/persona_behaviour_set.py says what each must do).

    flock /tmp/bench.lock .venv/bin/python bench/persona_behaviour.py [--personas concise,tutor]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from orchestrator.services import build_chat_services  # noqa: E402
from orchestrator.turns import TurnDone, TurnRequest  # noqa: E402
from personas.cards import PersonaCatalog  # noqa: E402
from providers import model_files  # noqa: E402
from providers.offline.llm import LlamaChatModel  # noqa: E402
from tests.persona_behaviour_set import SIGNATURES  # noqa: E402


def replies(services, persona: str, prompts: list[str]) -> list[str]:
    out = []
    for index, prompt in enumerate(prompts):
        request = TurnRequest(text=prompt, user_id=f"bench-{persona}-{index}", persona_id=persona, channel="voice")
        out.append(next(i for i in services.orchestrator.run(request) if isinstance(i, TurnDone)).reply)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--personas", default=",".join(SIGNATURES))
    args = parser.parse_args()
    settings = Settings.from_env()
    model = LlamaChatModel(model_files.resolve(settings.models.llm, settings.models_dir), settings.models.llm,
                           threads=2, context_tokens=4096)
    with tempfile.TemporaryDirectory() as folder:
        services = build_chat_services(Settings(data_dir=Path(folder)), PersonaCatalog(ROOT / "personas", "companion"),
                                       model)
        try:
            rates = {}
            for persona in args.personas.split(","):
                what, check, prompts = SIGNATURES[persona]
                said = replies(services, persona, prompts)
                passed = [check(r) for r in said]
                rates[persona] = (sum(passed), len(passed), what)
                for prompt, reply, ok in zip(prompts, said, passed):
                    print(f"{'PASS' if ok else 'FAIL'} {persona:11s} {prompt!r} -> {reply!r}")
        finally:
            services.close()
    print("\npass rate per persona (default model):")
    for persona, (ok, total, what) in rates.items():
        print(f"  {persona:11s} {ok}/{total}  {what}")


if __name__ == "__main__":
    main()
