"""When is the user done? A short silence asks Smart Turn (and the early transcript);
a mid-sentence pause is not answered, a finished question is taken well before the
fallback silence. Real VAD, real end-of-turn model, real Whisper for the early transcript;
the handler is fed 20 ms frames, and waits for each end-of-turn verdict before the next
frame, as a machine that keeps up would see it."""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from config import VoiceSettings
from handlers.voice.end_of_turn import EndOfTurnJudge, TurnTakingPolicy
from handlers.voice.reply_on_pause import CozyReplyOnPause
from handlers.voice.turn import VoiceTurnRunner
from orchestrator.services import build_chat_services
from personas.cards import PersonaCatalog, PersonaError, TurnTaking, parse_card
from tests.pause_set import PAUSE_SET, QUESTIONS, paused_speech, question_speech, silence
from tests.conftest import stored_settings

PERSONAS = Path(__file__).resolve().parent.parent / "personas"
FRAME = 320  # 20 ms at 16 kHz
VOICE = VoiceSettings()  # the shipped defaults: smart end of turn


@pytest.fixture
def handler(whisper, piper, fast_llm, vad, smart_turn, tmp_path):
    services = build_chat_services(stored_settings(tmp_path), PersonaCatalog(PERSONAS, "concise"), fast_llm)
    runner = VoiceTurnRunner(whisper, piper, services.orchestrator, 24_000, early_reply=False)
    policy = TurnTakingPolicy(VOICE, have_model=True)
    voice = CozyReplyOnPause(runner, vad, policy.options_for("concise", phone=False), default_persona="concise",
                             judge=EndOfTurnJudge(smart_turn), turn_policy=policy).copy()
    voice._clear_queue = lambda: None
    yield voice
    services.close()


def wait_for(condition, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def speak(voice: CozyReplyOnPause, samples: np.ndarray) -> list[tuple[float, object]]:
    """Feeds `samples` frame by frame; returns the turns taken, each with the audio time
    (s from the start of `samples`) at which it was taken."""
    turns = []
    for start in range(0, len(samples), FRAME):
        voice.receive((16_000, samples[start:start + FRAME].reshape(1, -1)))
        check = voice._check
        if check is not None:
            wait_for(check[1].done)  # the verdict is in before the next 20 ms of audio
        if voice._pending is not None:
            turns.append(((start + FRAME) / 16_000, voice._pending))
            voice._pending = None
            voice.event.clear()
    return turns


def test_a_sentence_broken_by_pauses_reaches_the_assistant_as_one_turn(handler, whisper):
    """ "I'd like to book a table for... um... four people": no reply at the pause.

    The old 0.5 s silence cut every one of these. espeak's flat voice ends each phrase like a
    full stop, and Whisper tiny mishears a fragment's last word ("music by" -> "music bye!"),
    so the word veto misses one: 1 of 12 is cut at the first pause (never at the "um"; 2 with
    greedy decoding, which heard "how many days are there until" as "how many very smart now
    until..."; 5 before the short Whisper window and the object-verb rule). The issue's bar is
    1 in 10; bench/end_of_turn.py prints the count."""
    cut_early = []
    for utterance in PAUSE_SET:
        speech = paused_speech(utterance)
        turns = speak(handler, np.concatenate([silence(0.3), speech, silence(2.0)]))
        assert turns, f"{utterance.text!r} was never taken as a turn"
        if len(turns) > 1 or turns[0][0] < 0.3 + len(speech) / 16_000:
            cut_early.append(utterance.text)
        else:
            heard = whisper.transcribe(turns[0][1].audio).lower()
            assert utterance.rest.split()[-1].lower() in heard, (utterance.text, heard)
    assert len(cut_early) <= len(PAUSE_SET) // 10, f"answered at a mid-sentence pause: {cut_early}"


def test_a_finished_question_is_taken_well_before_the_fallback_silence(handler):
    waited, ended_by = [], []
    for text in QUESTIONS:
        speech = question_speech(text)
        turns = speak(handler, np.concatenate([silence(0.3), speech, silence(2.0)]))
        assert len(turns) == 1, f"{text!r}: {len(turns)} turns"
        taken_at, turn = turns[0]
        waited.append(taken_at - 0.3 - len(speech) / 16_000)
        ended_by.append(turn.ended_by)
        assert len(turn.audio.samples) >= len(speech), f"{text!r}: the turn lost its words"
    # Most end on the model's verdict after the short check silence, not at the 1.2 s fallback
    # (espeak's "Tell me a short fact about the moon." scores 0.08: it waits for the fallback).
    assert ended_by.count("smart-turn-v3.2") >= 6, ended_by
    assert sorted(waited)[len(waited) // 2] < VOICE.end_of_turn_fallback_silence_s / 2, waited


def asked_and_taken(voice: CozyReplyOnPause, samples: np.ndarray) -> tuple[float, float]:
    """Audio times (s from the start of `samples`) at which the end-of-turn model was first
    asked, and at which the turn was taken; each verdict is in before the next frame."""
    asked = None
    for start in range(0, len(samples), FRAME):
        voice.receive((16_000, samples[start:start + FRAME].reshape(1, -1)))
        if asked is None and voice._check is not None:
            asked = (start + FRAME) / 16_000
        if voice._check is not None:
            wait_for(voice._check[1].done)
        if voice._pending is not None:
            voice._pending = None
            voice.event.clear()
            return asked, (start + FRAME) / 16_000
    raise AssertionError("the turn was never taken")


def test_the_model_is_asked_as_the_pause_starts_and_ends_no_turn_before_the_shortest_silence(handler):
    """Smart Turn runs beside the early transcript, at 0.1 s of silence, so both verdicts are
    in about when 0.2 s has passed (asked at 0.2 s, it finished ~80 ms after); a "finished"
    that comes sooner waits for that silence."""
    speech = question_speech("What is the capital of France?")
    samples = np.concatenate([silence(0.3), speech, silence(2.0)])
    ended = 0.3 + len(speech) / 16_000
    options = handler._detector.options
    assert options.check_silence_s < options.earliest_end_s == VOICE.end_of_turn_earliest_s
    handler._detector.options = replace(options, earliest_end_s=0.0)
    asked_at_once, taken_at_once = asked_and_taken(handler, samples)
    handler._detector.options = options
    asked, taken = asked_and_taken(handler, samples)
    for asked_at in (asked_at_once, asked):
        assert asked_at - ended < options.earliest_end_s - 0.05, (ended, asked_at)
    assert taken_at_once - asked_at_once <= 0.04  # the frame after the verdict
    assert taken - asked >= options.earliest_end_s - options.check_silence_s - 0.04, (asked, taken)
    assert taken < ended + VOICE.end_of_turn_fallback_silence_s / 2


def test_with_silence_turn_taking_a_pause_ends_the_turn(handler):
    """A persona (or the server) may choose the fixed pause instead: the old behaviour."""
    policy = TurnTakingPolicy(VOICE, have_model=True,
                              persona_turn_taking=lambda _: TurnTaking(end_of_turn="silence"))
    handler.turn_policy = policy
    handler._use_turn_options()
    first = PAUSE_SET[0]
    turns = speak(handler, np.concatenate([silence(0.3), paused_speech(first), silence(1.0)]))
    assert len(turns) > 1 and turns[0][1].ended_by == "silence"


def test_turn_taking_comes_from_the_server_then_the_persona_then_the_channel():
    card = TurnTaking(threshold=0.4, fallback_silence_s=2.0)
    policy = TurnTakingPolicy(VOICE, have_model=True, persona_turn_taking=lambda pid: card if pid == "slow" else None)
    web, phone = policy.options_for(None, phone=False), policy.options_for(None, phone=True)
    assert web.smart and web.threshold == VOICE.end_of_turn_threshold
    assert phone.threshold == VOICE.phone_end_of_turn_threshold > web.threshold  # 8 kHz audio: more certainty
    assert phone.fallback_silence_s == VOICE.phone_end_of_turn_fallback_silence_s
    # Asked as the pause starts, the model is less sure of phone audio: the phone asks later.
    assert phone.check_silence_s == VOICE.phone_end_of_turn_check_silence_s > web.check_silence_s
    slow_web, slow_phone = policy.options_for("slow", phone=False), policy.options_for("slow", phone=True)
    assert (slow_web.threshold, slow_web.fallback_silence_s) == (0.4, 2.0)
    assert slow_phone.threshold == VOICE.phone_end_of_turn_threshold  # a card cannot make the phone less careful
    # No model file: the same settings end turns on silence alone.
    assert not TurnTakingPolicy(VOICE, have_model=False).options_for(None, phone=False).smart


@pytest.mark.parametrize("turn_taking, error", [
    ({"end_of_turn": "guess"}, "turn_taking.end_of_turn"),
    ({"threshold": 2}, "turn_taking.threshold"),
    ({"fallback_silence_s": "long"}, "turn_taking.fallback_silence_s"),
    ({"patience": 1}, "unknown key(s) patience"),
])
def test_a_card_with_bad_turn_taking_is_refused_naming_the_field(turn_taking, error):
    card = {"id": "x", "name": "X", "system_prompt": "Be brief.", "greeting": "Hi.", "turn_taking": turn_taking}
    with pytest.raises(PersonaError, match=error.replace("(", r"\(").replace(")", r"\)")):
        parse_card(Path("x.yaml"), card)


@pytest.mark.parametrize("words, mid_phrase", [
    ("I'd like to book a table for", True), ("Tell me a story about a...", True), ("So what I want to know is...", True),
    ("How many legs does a spider have?", False), ("What is the capital of France?", False), ("", False),
    # A verb still waiting for its object, unless a question word stands for it.
    ("Could you remind me to call?", True), ("I'd like to order", True), ("Who do I need to call?", False),
    ("I want to eat", False), ("Remind me to call mum.", False),
])
def test_the_early_transcript_vetoes_a_phrase_that_cannot_end_there(words, mid_phrase):
    from handlers.voice.end_of_turn import ends_mid_phrase

    assert ends_mid_phrase(words) is mid_phrase
