"""A persona's `model:` pins its model or chain on every channel: here through the real
orchestrator, a real DuckDB file, the local SmolLM2 and a fake OpenAI at the wire."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from orchestrator.services import build_chat_services
from orchestrator.turns import TurnDone, TurnRequest
from personas.cards import PersonaCatalog, PersonaError, parse_card
from providers.chains import PersonaModels
from tests.fakes.vendor_server import Fault
from tests.conftest import stored_settings

pytest_plugins = ["tests.fakes.fixtures"]  # the fake vendor servers
PERSONAS = Path(__file__).resolve().parent.parent / "personas"


@pytest.fixture
def services(tmp_path, vendor, fast_llm):
    folder = tmp_path / "personas"
    shutil.copytree(PERSONAS, folder)
    card = yaml.safe_load((folder / "concise.yaml").read_text())
    (folder / "cloudy.yaml").write_text(yaml.safe_dump({**card, "id": "cloudy", "model": "openai:gpt-4o-mini"}))
    built = build_chat_services(stored_settings(tmp_path / "data"), PersonaCatalog(folder, "concise"), fast_llm)
    env = {"OPENAI_API_KEY": vendor.api_key, "OPENAI_BASE_URL": f"{vendor.url}/v1"}
    built.orchestrator.model_for = PersonaModels(env, fast_llm, lambda name: fast_llm)
    yield built
    built.close()


def reply(services, persona: str) -> TurnDone:
    items = services.orchestrator.run(TurnRequest(text="Say hello.", user_id="ada", persona_id=persona))
    return [item for item in items if isinstance(item, TurnDone)][0]


def test_a_pinned_persona_is_served_by_its_model_and_the_others_by_the_servers(services, vendor):
    vendor.script.chat_text = ["Hello from", " the cloud."]
    pinned, default = reply(services, "cloudy"), reply(services, "concise")
    assert pinned.reply == "Hello from the cloud." and pinned.record.llm_model == "gpt-4o-mini"
    [sent] = [r for r in vendor.requests if r.path.endswith("/chat/completions")]
    assert sent.body["model"] == "gpt-4o-mini"
    assert default.record.llm_model == "smollm2-135m" and vendor.hits("/chat/completions") == 1


def test_a_pinned_cloud_model_that_fails_falls_back_to_the_local_one(services, vendor):
    vendor.fail_always(Fault(status=503))
    done = reply(services, "cloudy")
    assert done.reply and done.record.llm_model == "smollm2-135m"
    assert {f.provider for f in done.record.all("llm")[-1].fallbacks} == {"openai"}  # tried (and retried) first


@pytest.mark.parametrize("model, words", [("gpt-9", "unknown local model 'gpt-9'"),
                                          ("claude:opus", "unknown vendor 'claude'"), (" , ", "is empty")])
def test_a_card_naming_an_unknown_model_is_refused_naming_the_field(model, words):
    card = yaml.safe_load((PERSONAS / "concise.yaml").read_text())
    with pytest.raises(PersonaError, match=f"field 'model' (names an )?{words}"):
        parse_card(Path("bad.yaml"), {**card, "model": model})
