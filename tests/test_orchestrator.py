"""The orchestrator on a real DuckDB file and real local models."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from memory.chat_memory import LocalChatMemory
from orchestrator.context import ContextGatherer, ContextTimeouts, GatheredContext
from orchestrator.services import build_chat_services
from orchestrator.turns import TurnDelta, TurnDone, TurnRequest
from personas.cards import PersonaCatalog
from storage.conversations import SessionNotFound
from tests.conftest import stored_settings

pytestmark = pytest.mark.storage  # also run on PostgreSQL (make test)

PERSONAS = Path(__file__).resolve().parent.parent / "personas"


@pytest.fixture(scope="module")
def smart_llm(settings):
    """The default model: tests here check what the persona *says*."""
    from providers import model_files
    from providers.offline.llm import LlamaChatModel

    path = model_files.resolve("qwen2.5-1.5b", settings.models_dir)
    return LlamaChatModel(path, "qwen2.5-1.5b", threads=2, context_tokens=4096)


def make_services(tmp_path, model, **kwargs):
    return build_chat_services(stored_settings(tmp_path), PersonaCatalog(PERSONAS, "concise"), model, **kwargs)


def say(services, text: str, user: str = "ada", session: str | None = None, persona: str = "concise") -> TurnDone:
    reply = ""
    for item in services.orchestrator.run(TurnRequest(text=text, user_id=user, session_id=session,
                                                      persona_id=persona)):
        if isinstance(item, TurnDelta):
            reply += item.text
        elif isinstance(item, TurnDone):
            assert item.reply == reply.strip()
            return item
    raise AssertionError("no TurnDone")


def test_a_fact_is_recalled_in_a_new_session_and_not_by_another_user(tmp_path, smart_llm):
    services = make_services(tmp_path, smart_llm)
    try:
        first = say(services, "My name is Ada and I love astronomy.", persona="companion")
        assert services.learner.wait_idle()
        later = say(services, "What is my name, and what do I love?")
        assert later.session_id != first.session_id
        assert "ada" in later.reply.lower() and "astronom" in later.reply.lower(), later.reply
        stranger = say(services, "What is my name, and what do I love?", user="bob")
        assert "ada" not in stranger.reply.lower() and "astronom" not in stranger.reply.lower(), stranger.reply
        assert services.profile.get("ada")["name"] == "Ada"
        assert services.profile.get("bob") == {}
    finally:
        services.close()


def test_sessions_belong_to_their_user(tmp_path, fast_llm):
    services = make_services(tmp_path, fast_llm)
    try:
        mine = say(services, "Hello there.", user="ada")
        with pytest.raises(SessionNotFound):
            say(services, "Let me in.", user="mallory", session=mine.session_id)
        services.conversations.delete_session("ada", mine.session_id)
        with pytest.raises(SessionNotFound):
            say(services, "Still there?", user="ada", session=mine.session_id)
        assert services.conversations.sessions("ada") == []
    finally:
        services.close()


def test_a_voice_turn_in_a_session_deleted_meanwhile_starts_a_new_one_and_a_stranger_cannot(tmp_path, fast_llm):
    services = make_services(tmp_path, fast_llm)
    try:
        mine = say(services, "Hello there.", user="ada")
        services.conversations.delete_session("ada", mine.session_id)
        spoken = TurnRequest(text="Are you still there?", user_id="ada", session_id=mine.session_id,
                             persona_id="concise", channel="voice", restart_missing_session=True)
        done = [item for item in services.orchestrator.run(spoken) if isinstance(item, TurnDone)][0]
        assert done.session_id != mine.session_id and done.reply
        [(session, )] = [(s["id"],) for s in services.conversations.sessions("ada")]
        assert session == done.session_id
        # Restarting is a new session of one's own: another user's live session is never joined.
        intruder = TurnRequest(text="Let me in.", user_id="mallory", session_id=done.session_id,
                               persona_id="concise", channel="voice", restart_missing_session=True)
        theirs = [item for item in services.orchestrator.run(intruder) if isinstance(item, TurnDone)][0]
        assert theirs.session_id != done.session_id
        assert [m["content"] for m in services.conversations.messages("ada", done.session_id)][0] == spoken.text
    finally:
        services.close()


def test_messages_and_turn_metadata_are_saved_before_the_turn_is_done(tmp_path, fast_llm):
    services = make_services(tmp_path, fast_llm)
    try:
        done = say(services, "Name a colour.")
        saved = services.conversations.messages("ada", done.session_id)
        assert [m["role"] for m in saved] == ["user", "assistant"]
        assert saved[1]["content"] == done.reply
        assert '"phases_s"' in saved[1]["metadata"] and '"degraded": false' in saved[1]["metadata"]
    finally:
        services.close()


class Slow:
    """A real engine behind an injected delay."""

    def __init__(self, engine, delay_s: float):
        self.engine, self.delay_s = engine, delay_s

    def __getattr__(self, name):
        method = getattr(self.engine, name)

        def delayed(*args, **kwargs):
            time.sleep(self.delay_s)
            return method(*args, **kwargs)

        return delayed


def gatherer(services, memory_delay=0.0, profile_delay=0.0, knowledge_delay=0.0, timeouts=ContextTimeouts()):
    return ContextGatherer(Slow(services.memory, memory_delay), Slow(services.profile, profile_delay),
                           Slow(services.knowledge, knowledge_delay), timeouts)


def test_a_slow_engine_degrades_the_turn_within_its_timeout(tmp_path, fast_llm):
    base = make_services(tmp_path, fast_llm)
    base.close()
    services = make_services(tmp_path, fast_llm)
    services.orchestrator.context = gatherer(services, memory_delay=3.0)
    try:
        done = say(services, "Hello.")
        phase_s = done.metrics.phases_s["context"]
        assert done.reply  # the turn still answers
        assert done.metrics.degraded and done.metrics.degrade_reasons == ["memory: no answer within 0.40s"]
        assert 0.35 < phase_s < 1.5, phase_s  # the memory timeout (0.4 s), not the 3 s delay
        saved = services.conversations.messages("ada", done.session_id)[-1]["metadata"]
        assert '"degraded": true' in saved and "memory: no answer" in saved
    finally:
        services.close()


def test_a_failing_engine_degrades_and_is_reported(tmp_path, fast_llm):
    services = make_services(tmp_path, fast_llm)

    class Broken(LocalChatMemory):
        def recall(self, *args, **kwargs):
            raise ConnectionError("memory service down")

    services.orchestrator.context = ContextGatherer(Broken(services.db), services.profile, services.knowledge)
    try:
        done = say(services, "Hello.")
        assert done.reply and done.metrics.degrade_reasons == ["memory: failed (ConnectionError)"]
    finally:
        services.close()


def test_engines_run_in_parallel(tmp_path, fast_llm):
    services = make_services(tmp_path, fast_llm)
    services.orchestrator.context = gatherer(services, 0.2, 0.2, 0.2, ContextTimeouts(1.0, 1.0, 1.0))
    try:
        gathered_s = []
        for _ in range(3):
            started = time.perf_counter()
            result = services.orchestrator.context.gather("ada", "hello")
            gathered_s.append(time.perf_counter() - started)
            assert not result.degraded
        assert min(gathered_s) < 0.4, gathered_s  # ~ the slowest engine (0.2 s), not the sum (0.6 s)
    finally:
        services.close()


def test_knowledge_reaches_the_model_and_the_reply(tmp_path, smart_llm):
    services = make_services(tmp_path, smart_llm)
    try:
        services.knowledge.add_document(
            None, "opening-hours.md",
            "# Cozy Bakery\n\nThe Cozy Bakery opens at 7:30 in the morning and closes at 4 in the afternoon.\n\n"
            "# Parking\n\nParking is free behind the building.")
        done = say(services, "When does the Cozy Bakery open?")
        assert done.metrics.context_included["knowledge"] >= 1
        assert "7:30" in done.reply or "seven thirty" in done.reply.lower(), done.reply
    finally:
        services.close()


def test_a_long_conversation_moves_its_history_on_in_steps_a_local_model_keeps(tmp_path, fast_llm):
    """Past 16 messages the prompt's history moves on 8 at a time, not with every turn: each
    move makes a local model read the whole history again. Between moves a turn's prompt
    starts with the last turn's prompt and reply, word for word (what the user said before
    the history included). 40 turns: past the 50 messages a session's history is read with."""
    services = make_services(tmp_path, fast_llm)
    orchestrator = services.orchestrator
    session = orchestrator.conversations.create_session("ada", "concise")
    persona = orchestrator.personas.get("concise")
    moves, sizes, previous = [], [], None
    for turn in range(40):
        bundle = orchestrator.prompt_for(persona, TurnRequest(text=f"question {turn}", user_id="ada"),
                                         session, GatheredContext())
        head = bundle.messages[:bundle.head]
        if previous is not None:
            last_exchange = [{"role": "user", "content": f"question {turn - 1}"},
                             {"role": "assistant", "content": f"answer {turn - 1}"}]
            assert head[-2:] == last_exchange
            if head != previous + last_exchange:
                moves.append(turn)
        history = [m for m in head[1 + bundle.examples:] if m["role"] != "system"]
        sizes.append(len(history))
        if turn > 12:
            assert head[-len(history) - 1]["content"].startswith("Earlier in this conversation the user said")
        previous = head
        orchestrator.conversations.save_turn(session, "ada", "concise", f"question {turn}", f"answer {turn}", {})
    assert len(moves) >= 6 and all(b - a >= 4 for a, b in zip(moves, moves[1:])), moves
    assert max(sizes) <= 16 and min(sizes[9:]) >= 8, sizes
    services.close()
