"""Barge-in with scripted providers (a model writing at a known pace, a voice that takes a
known time to say each word): no model download, seconds not minutes. Talking over the
reply stops the model writing and keeps only what was heard."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from handlers.voice.turn import Conversation, SpokenTurn, VoiceTurnRunner
from orchestrator.services import build_chat_services
from personas.cards import PersonaCatalog
from tests.fakes.providers import RecordingTTS, ScriptedChatModel, ScriptedSTT, speech
from tests.conftest import stored_settings

PERSONAS = Path(__file__).resolve().parent.parent / "personas"
# Sixty words at 0.1 s each: six seconds of writing, so the cut lands while the model writes.
LONG_REPLY = " ".join(f"Sentence {n} has a few more words in it." for n in range(1, 8))


def wait_for(predicate, timeout_s: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_talking_over_a_reply_stops_the_model_and_keeps_only_what_was_heard(tmp_path):
    model = ScriptedChatModel(text=LONG_REPLY, first_token_s=0.05, word_s=0.1)
    services = build_chat_services(stored_settings(tmp_path), PersonaCatalog(PERSONAS, "concise"), model)
    runner = VoiceTurnRunner(ScriptedSTT(text="tell me a long story"), RecordingTTS(audio_s_per_word=0.4),
                             services.orchestrator, 24_000)
    conversation = Conversation(user_id="ada", persona_id="concise")
    now = time.perf_counter()
    reply = runner.run(SpokenTurn(speech(1.0), now, now), conversation)
    try:
        first_audio = next(out for out in reply if isinstance(out, tuple))  # the caller hears the reply start
        assert first_audio[1].size > 0
        heard_from = time.perf_counter()
        time.sleep(1.2)  # the caller listens to a few words (the scenario's length, not a wait for state)
        conversation.barged_in_at = time.perf_counter()  # ...and talks over it, as ReplyOnPause reports
        conversation.barged_in.set()
        reply.close()  # the Stream stops reading the reply
        written = model.words_written
        assert wait_for(lambda: services.conversations.sessions("ada")
                        and services.conversations.messages("ada", services.conversations.sessions("ada")[0]["id"]))
        assert model.words_written < len(LONG_REPLY.split()), "the model went on writing after the cut"
        assert model.words_written <= written + 2  # stopped within a word or two of the cut
        session = services.conversations.sessions("ada")[0]["id"]
        saved = [m["content"] for m in services.conversations.messages("ada", session) if m["role"] == "assistant"]
        assert len(saved) == 1 and LONG_REPLY.startswith(saved[0].rstrip(".…").strip()), saved
        assert len(saved[0]) < len(LONG_REPLY) / 2, saved  # what was heard, not what was written
        [message] = [m for m in services.conversations.messages("ada", session) if m["role"] == "assistant"]
        record = json.loads(message["metadata"])
        assert record["finish_reason"] == "interrupted"
        assert [s["outcome"] for s in record["record"]["stages"] if s["name"] == "llm"] == ["interrupted"]
    finally:
        services.close()


def test_a_scripted_model_pace_is_what_the_turn_record_reports(tmp_path):
    model = ScriptedChatModel(text="Tea is made from leaves.", first_token_s=0.3, word_s=0.05)
    services = build_chat_services(stored_settings(tmp_path), PersonaCatalog(PERSONAS, "concise"), model)
    runner = VoiceTurnRunner(ScriptedSTT(text="what is tea", seconds=0.2), RecordingTTS(first_audio_s=0.1),
                             services.orchestrator, 24_000)
    conversation = Conversation(user_id="ada", persona_id="concise")
    now = time.perf_counter()
    done = threading.Event()
    list(runner.run(SpokenTurn(speech(1.0), now, now), conversation))
    done.set()
    try:
        session = services.conversations.sessions("ada")[0]["id"]
        [reply] = [m for m in services.conversations.messages("ada", session) if m["role"] == "assistant"]
        stages = {}
        for stage in json.loads(reply["metadata"])["record"]["stages"]:
            stages.setdefault(stage["name"], stage)
        # Lower bounds only: a scripted pause always takes at least its time, whatever the machine does.
        assert stages["stt"]["seconds"] >= 0.2 and stages["llm_first_token"]["seconds"] >= 0.3
        assert stages["tts_first_audio"]["seconds"] >= 0.1
        assert reply["content"] == "Tea is made from leaves."
    finally:
        services.close()
