"""Over their daily budget, a caller hears why, and the model is not asked."""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from config import Settings, UsageSettings
from handlers.voice.turn import Conversation, SpokenTurn, VoiceTurnRunner
from orchestrator.services import build_chat_services
from orchestrator.turn_record import TurnRecord
from personas.cards import PersonaCatalog
from tests.fakes.providers import RecordingTTS, ScriptedChatModel, ScriptedSTT, speech

PERSONAS = Path(__file__).resolve().parent.parent / "personas"


def test_a_caller_over_their_daily_budget_is_told_so_and_others_are_answered(tmp_path):
    settings = replace(Settings(data_dir=tmp_path / "data"), usage=UsageSettings(daily_budget_tokens=100))
    model = ScriptedChatModel(text="Here is your answer.")
    services = build_chat_services(settings, PersonaCatalog(PERSONAS, "concise"), model)
    tts = RecordingTTS()
    runner = VoiceTurnRunner(ScriptedSTT(text="what is the weather"), tts, services.orchestrator, 24_000)
    try:
        spent = TurnRecord("voice")
        spent.add("llm", 1.0, provider="openai", model="gpt-4.1-mini", tokens_in=80, tokens_out=40)
        services.usage.add("ada", spent)  # Ada has used 120 of her 100 tokens today
        now = time.perf_counter()
        ada = Conversation(user_id="ada", persona_id="concise")
        audio = [out for out in runner.run(SpokenTurn(speech(1.0), now, now), ada) if isinstance(out, tuple)]
        assert audio and model.calls == 0
        said = " ".join(tts.texts)
        assert "today's budget of 100 tokens" in said and "midnight UTC" in said, said
        assert ada.last_turn["error"] == "daily budget used"
        tts.texts = []
        bob = Conversation(user_id="bob", persona_id="concise")
        list(runner.run(SpokenTurn(speech(1.0), now, now), bob))
        assert model.calls == 1 and "Here is your answer." in " ".join(tts.texts)
    finally:
        services.close()
