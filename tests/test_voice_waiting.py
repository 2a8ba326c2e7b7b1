"""A caller whose turn waits for the one local model hears "one moment", not silence,
and then the answer; a turn offered tools that is slow to start says it is checking;
nobody waiting hears nothing extra."""
from __future__ import annotations

import threading
import time

from config import ToolSettings
from handlers.voice.turn import LET_ME_CHECK, ONE_MOMENT, Conversation, SpokenTurn, VoiceTurnRunner
from orchestrator.services import build_chat_services
from personas.cards import PersonaCatalog
from providers.chains import build_chains
from providers.local_queue import FairQueue, QueuedChatModel, QueuedSTT, position_in_any
from tests.conftest import ROOT, stored_settings
from tests.fakes.providers import RecordingTTS, ScriptedChatModel, ScriptedSTT, speech
from tools.config import load_config, with_state
from tools.gateway import ToolGateway
from tools.runner import GatewayToolRunner


def local_chain(queue: FairQueue, tmp_path):
    """The local model behind its fair queue, in the chain the app builds (no cloud keys)."""
    llm, _, _ = build_chains({}, QueuedChatModel(ScriptedChatModel(text="Here you are."), queue), ScriptedSTT(),
                             RecordingTTS(), cache_dir=tmp_path / "tts")
    return llm


def waiting_caller(tmp_path) -> tuple[FairQueue, object, RecordingTTS, VoiceTurnRunner]:
    """A voice runner over the local model's fair queue, speaking into a recording TTS."""
    queue = FairQueue("llm:test", max_waiting=4, max_waiting_per_requester=2, max_wait_s=60)
    services = build_chat_services(stored_settings(tmp_path), PersonaCatalog(ROOT / "personas", "concise"),
                                   local_chain(queue, tmp_path))
    tts = RecordingTTS()
    runner = VoiceTurnRunner(ScriptedSTT(text="what time is it"), tts, services.orchestrator, 24_000,
                             queue_position=queue.position)
    return queue, services, tts, runner


def wait_until(predicate, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_caller_waiting_for_the_model_hears_one_moment_then_the_answer(tmp_path):
    queue, services, tts, runner = waiting_caller(tmp_path)
    someone_else_done = threading.Event()
    holding = threading.Event()

    def someone_else() -> None:
        with queue.turn("someone-else"):
            holding.set()
            someone_else_done.wait(30)

    threading.Thread(target=someone_else, daemon=True).start()
    assert holding.wait(10)
    outputs: list = []
    turn = SpokenTurn(speech(1.0), time.perf_counter(), time.perf_counter())
    call = threading.Thread(target=lambda: outputs.extend(runner.run(turn, Conversation(user_id="caller"))),
                            daemon=True)
    call.start()
    try:
        assert wait_until(lambda: ONE_MOMENT in tts.texts), tts.texts
        assert not any("Here you are" in t for t in tts.texts)  # still waiting: only told so
    finally:
        someone_else_done.set()
    call.join(30)
    assert tts.texts[0] == ONE_MOMENT and any("Here you are" in t for t in tts.texts[1:]), tts.texts
    services.close()


def test_a_caller_with_nobody_ahead_hears_only_the_answer(tmp_path):
    queue, services, tts, runner = waiting_caller(tmp_path)
    list(runner.run(SpokenTurn(speech(1.0), time.perf_counter(), time.perf_counter()), Conversation()))
    assert ONE_MOMENT not in tts.texts and any("Here you are" in t for t in tts.texts)
    services.close()


def test_a_caller_whose_words_wait_for_speech_recognition_hears_one_moment_first(tmp_path):
    """Eight callers at once queue for the one Whisper before any model: the wait counts from
    the end of their speech, and includes that queue."""
    stt_queue = FairQueue("stt:test", max_waiting=4, max_waiting_per_requester=2, max_wait_s=60)
    llm_queue = FairQueue("llm:test", max_waiting=4, max_waiting_per_requester=2, max_wait_s=60)
    recognizer = ScriptedSTT(text="what time is it")
    llm, stt, _ = build_chains({}, QueuedChatModel(ScriptedChatModel(text="Here you are."), llm_queue),
                               QueuedSTT(recognizer, stt_queue), RecordingTTS(), cache_dir=tmp_path / "tts")
    services = build_chat_services(stored_settings(tmp_path), PersonaCatalog(ROOT / "personas", "concise"), llm)
    tts = RecordingTTS()
    runner = VoiceTurnRunner(stt, tts, services.orchestrator, 24_000,
                             queue_position=position_in_any(stt_queue, llm_queue))
    someone_else_done, holding = threading.Event(), threading.Event()

    def someone_else() -> None:
        with stt_queue.turn("someone-else"):  # another caller's words being recognised
            holding.set()
            someone_else_done.wait(30)

    threading.Thread(target=someone_else, daemon=True).start()
    assert holding.wait(10)
    turn = SpokenTurn(speech(1.0), time.perf_counter(), time.perf_counter())
    call = threading.Thread(target=lambda: list(runner.run(turn, Conversation(user_id="caller"))), daemon=True)
    call.start()
    try:
        assert wait_until(lambda: ONE_MOMENT in tts.texts), tts.texts
        assert recognizer.calls == 0  # told while its words still wait to be heard
    finally:
        someone_else_done.set()
    call.join(30)
    assert recognizer.calls == 1
    assert tts.texts[0] == ONE_MOMENT and any("Here you are" in t for t in tts.texts[1:]), tts.texts
    services.close()


def slow_runner(tmp_path) -> tuple[object, RecordingTTS, VoiceTurnRunner]:
    """Nothing queued: two turns run beside each other, each at the pace of a shared CPU
    (the scripted model takes 2.5 s to its first word)."""
    llm, _, _ = build_chains({}, ScriptedChatModel(text="Here you are.", first_token_s=2.5), ScriptedSTT(),
                             RecordingTTS(), cache_dir=tmp_path / "tts")
    services = build_chat_services(stored_settings(tmp_path), PersonaCatalog(ROOT / "personas", "concise"), llm)
    tts = RecordingTTS()
    return services, tts, VoiceTurnRunner(ScriptedSTT(text="what time is it"), tts, services.orchestrator, 24_000)


def test_a_caller_answered_beside_someone_else_hears_one_moment_then_the_answer(tmp_path):
    services, tts, runner = slow_runner(tmp_path)
    first = threading.Thread(target=lambda: list(runner.run(
        SpokenTurn(speech(1.0), time.perf_counter(), time.perf_counter()), Conversation(user_id="first"))),
        daemon=True)
    first.start()
    assert wait_until(lambda: services.orchestrator.in_flight.count == 1)  # someone else's reply is being written
    outputs: list = []
    turn = SpokenTurn(speech(1.0), time.perf_counter(), time.perf_counter())
    second = threading.Thread(target=lambda: outputs.extend(runner.run(turn, Conversation(user_id="second"))),
                              daemon=True)
    second.start()
    second.join(60)
    first.join(60)
    audio = [o for o in outputs if isinstance(o, tuple)]
    assert audio and audio[0][1].size == runner._say(ONE_MOMENT)[1].size  # told before the answer, not silence
    assert tts.texts.count(ONE_MOMENT) >= 1 and sum("Here you are" in t for t in tts.texts) == 2, tts.texts
    services.close()


def test_a_slow_answer_with_nobody_else_around_is_not_excused(tmp_path):
    services, tts, runner = slow_runner(tmp_path)
    list(runner.run(SpokenTurn(speech(1.0), time.perf_counter(), time.perf_counter()), Conversation()))
    assert ONE_MOMENT not in tts.texts and any("Here you are" in t for t in tts.texts)
    services.close()


def slow_runner_with_tools(tmp_path, words: str):
    """The slow model behind the real tool gateway (MCP servers over stdio), hearing `words`."""
    services, tts, runner = slow_runner(tmp_path)
    gateway = ToolGateway(with_state(load_config(), ToolSettings(), tmp_path))
    gateway.start()
    services.orchestrator.tools = GatewayToolRunner(gateway)
    runner.stt = ScriptedSTT(text=words)
    return services, gateway, tts, runner


def test_a_slow_turn_offered_tools_says_it_is_checking_then_answers(tmp_path):
    services, gateway, tts, runner = slow_runner_with_tools(tmp_path, "what time is it in Tokyo")
    try:
        outputs = list(runner.run(SpokenTurn(speech(1.0), time.perf_counter(), time.perf_counter()),
                                  Conversation()))
    finally:
        gateway.stop()
        services.close()
    audio = [o for o in outputs if isinstance(o, tuple)]
    assert audio and audio[0][1].size == runner._say(LET_ME_CHECK)[1].size  # heard first, not silence
    assert tts.texts.count(LET_ME_CHECK) == 1 and ONE_MOMENT not in tts.texts
    assert any("Here you are" in t for t in tts.texts[1:]), tts.texts


def test_a_slow_turn_offered_no_tools_is_not_excused_even_where_tools_exist(tmp_path):
    services, gateway, tts, runner = slow_runner_with_tools(tmp_path, "tell me about the moon")
    try:
        list(runner.run(SpokenTurn(speech(1.0), time.perf_counter(), time.perf_counter()), Conversation()))
    finally:
        gateway.stop()
        services.close()
    assert LET_ME_CHECK not in tts.texts and ONE_MOMENT not in tts.texts
    assert any("Here you are" in t for t in tts.texts), tts.texts
