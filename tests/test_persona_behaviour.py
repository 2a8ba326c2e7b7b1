"""Each shipped persona behaves like itself on the default offline model: Brief in one
sentence, Sage ending on a guiding question, Wren telling a story that offers a choice,
Cozy warm and short, Xiaobei in Chinese. Sampling is seeded per prompt (the API's `seed`),
so a run repeats; bench/persona_behaviour.py measures the unseeded pass rates."""
from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.services import build_chat_services
from orchestrator.turns import TurnDone, TurnRequest
from personas.cards import PersonaCatalog
from tests.persona_behaviour_set import SIGNATURES
from tests.conftest import stored_settings

PERSONAS = Path(__file__).resolve().parent.parent / "personas"
FLOOR = 4  # of the six prompts; before the cards had examples and a reply style: Sage 0, Wren 0, Cozy 3


@pytest.fixture(scope="module")
def services(tmp_path_factory, settings):
    from providers import model_files
    from providers.offline.llm import LlamaChatModel

    model = LlamaChatModel(model_files.resolve("qwen2.5-1.5b", settings.models_dir), "qwen2.5-1.5b",
                           threads=2, context_tokens=4096)
    built = build_chat_services(stored_settings(tmp_path_factory.mktemp("behaviour")),
                                PersonaCatalog(PERSONAS, "companion"), model)
    yield built
    built.close()


@pytest.mark.parametrize("persona", list(SIGNATURES))
def test_a_persona_shows_its_signature_on_most_prompts(services, persona):
    what, check, prompts = SIGNATURES[persona]
    replies = []
    for seed, prompt in enumerate(prompts):
        request = TurnRequest(text=prompt, user_id=f"{persona}-{seed}", persona_id=persona, channel="voice",
                              seed=seed)
        replies.append(next(i for i in services.orchestrator.run(request) if isinstance(i, TurnDone)).reply)
    failed = [(p, r) for p, r in zip(prompts, replies) if not check(r)]
    assert len(prompts) - len(failed) >= FLOOR, f"{persona} ({what}) missed on: {failed}"


def test_personas_answer_the_same_question_differently(services):
    asked = "Can you tell me about dragons?"
    replies = {persona: next(i for i in services.orchestrator.run(
        TurnRequest(text=asked, user_id=f"same-{persona}", persona_id=persona, channel="voice", seed=7))
        if isinstance(i, TurnDone)).reply for persona in ("companion", "concise", "storyteller", "tutor")}
    assert len(set(replies.values())) == 4, replies
    assert len(replies["concise"]) < min(len(replies[p]) for p in ("companion", "storyteller", "tutor")), replies
