"""The page's persona editor, driven through Gradio's own client against the real app:
an admin creates a card, hears its voice, the persona answers, and a bad card is refused
naming its field. (A visitor who is not an admin: tests/test_public_space.py.)"""
from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
import soundfile as sf
import yaml
from gradio_client import Client

from tests.conftest import isolated_env, start_app, stop_app

PERSONAS = Path(__file__).resolve().parent.parent / "personas"
CARD = {"id": "otter", "name": "Otto the otter", "language": "en",
        "system_prompt": "You are Otto, a playful otter. Answer in one short sentence.",
        "greeting": "Hi, I'm Otto. Shall we swim?", "voices": {"kokoro": "af_heart"}, "allowed_tools": ["clock"]}


@pytest.fixture(scope="module")
def page_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("editor-app")
    shutil.copytree(PERSONAS, folder / "personas")
    app = start_app(folder, {**isolated_env(folder / "data"), "COZY_PERSONAS_DIR": str(folder / "personas"),
                             "COZY_LLM": "smollm2-135m"})
    app.personas = folder / "personas"
    yield app
    stop_app(app)


def test_an_admin_creates_a_persona_hears_its_voice_and_talks_to_it(page_app):
    page = Client(page_app.base_url, verbose=False)
    text = yaml.safe_dump(CARD, allow_unicode=True)
    sample, status = page.predict(text, api_name="/persona_try_voice")
    assert "Otto" in status
    samples, rate = sf.read(sample, dtype="int16")
    assert len(samples) > 0.5 * rate, "the greeting sample is too short to be speech"
    assert not (page_app.personas / "otter.yaml").exists(), "trying a voice must not save the card"

    _, status, _ = page.predict("__new__", text, api_name="/persona_save")
    assert status.startswith("✅"), status
    assert yaml.safe_load((page_app.personas / "otter.yaml").read_text())["name"] == "Otto the otter"
    models = httpx.get(f"{page_app.base_url}/v1/models", timeout=10).json()["data"]
    assert "otter" in [m["id"] for m in models]
    answer = httpx.post(f"{page_app.base_url}/v1/chat/completions", timeout=120, json={
        "model": "otter", "messages": [{"role": "user", "content": "Hello!"}]})
    assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["content"]

    _, status, _ = page.predict("otter", yaml.safe_dump({**CARD, "temperature": "hot"}), api_name="/persona_save")
    assert status.startswith("⚠️") and "field 'temperature'" in status, status
    assert "temperature" not in yaml.safe_load((page_app.personas / "otter.yaml").read_text())

    _, status, _, _ = page.predict("otter", api_name="/persona_delete")
    assert "Deleted" in status and not (page_app.personas / "otter.yaml").exists()
    assert (page_app.personas / "deleted" / "otter.yaml").exists()
