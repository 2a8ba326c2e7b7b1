"""The canned lines (the apology, "busy", "one moment") in the persona's language: a Chinese
persona's caller hears them in Mandarin, in the local voice, as an independent Whisper hears
them; an English persona's caller still hears English, made at start-up."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from handlers.voice.turn import Conversation, SpokenTurn, VoiceTurnRunner
from orchestrator.services import build_chat_services
from personas.cards import PersonaCatalog
from providers.base import AudioClip
from providers.errors import ModelBusy
from providers.local_queue import FairQueue
from providers.offline.lazy import Lazy
from providers.offline.loader import _kokoro
from providers.offline.voices import OfflineVoices
from tests.conftest import ROOT, stored_settings
from tests.fakes.providers import RecordingTTS, ScriptedChatModel, ScriptedSTT, speech
from tests.test_mandarin import listener  # noqa: F401 - fixture: the multilingual Whisper base
from tests.test_voice_waiting import local_chain, wait_until


class BrokenSTT:
    name = "broken-stt"

    def __init__(self, error: Exception):
        self.error = error

    def transcribe(self, audio: AudioClip, language: str | None = "en") -> str:
        raise self.error


@pytest.fixture(scope="module")
def kokoro(settings, espeak):
    return Lazy("Kokoro voices", lambda: _kokoro(settings, espeak))


@pytest.fixture(scope="module")
def local_voice(piper, espeak, kokoro):
    """The local voice as the app builds it (providers/offline/loader.py): Piper for English,
    Kokoro, loaded on first use, for Chinese."""
    return OfflineVoices({"en_US-joe-medium": piper}, espeak, kokoro)


def runner_for(tmp_path, stt, local_voice, llm=None, queue_position=None):
    services = build_chat_services(stored_settings(tmp_path), PersonaCatalog(ROOT / "personas", "concise"),
                                   llm or ScriptedChatModel())
    runner = VoiceTurnRunner(stt, RecordingTTS(), services.orchestrator, 24_000, apology_tts=local_voice,
                             queue_position=queue_position)
    return services, runner


def heard_turn(runner: VoiceTurnRunner, conversation: Conversation) -> np.ndarray:
    now = time.perf_counter()
    audio = [out[1] for out in runner.run(SpokenTurn(speech(1.0), now, now), conversation)
             if isinstance(out, tuple)]
    return np.concatenate(audio) if audio else np.zeros(0, np.int16)


@pytest.mark.parametrize("error, words, reported", [
    (RuntimeError("speech recognition is down"), ["抱歉", "问题"], "speech-to-text failed"),
    (ModelBusy("the queue is full", retry_after_s=3.0), ["抱歉", "别人"], "busy: try again in a few seconds"),
], ids=["apology", "busy"])
def test_a_chinese_persona_hears_the_canned_line_in_mandarin(tmp_path, local_voice, kokoro, listener,  # noqa: F811
                                                             whisper, error, words, reported):
    services, runner = runner_for(tmp_path, BrokenSTT(error), local_voice)
    try:
        runner.warmup()
        english = heard_turn(runner, Conversation(persona_id="concise"))
        heard_en = whisper.transcribe(AudioClip(24_000, english)).lower()
        assert "sorry" in heard_en, heard_en
        chinese_conversation = Conversation(persona_id="xiaobei")  # language: zh-CN
        chinese = heard_turn(runner, chinese_conversation)
        assert chinese_conversation.last_turn["error"] == reported
        heard = listener.transcribe(AudioClip(24_000, chinese), "zh")
        assert all(word in heard for word in words), f"the {reported!r} line was heard as {heard!r}"
        assert "sorry" not in heard.lower()
    finally:
        services.close()


def test_start_up_makes_only_the_english_lines(tmp_path, piper, espeak):
    """The Chinese voice loads when a Chinese line is first said, not at start-up."""
    kokoro = Lazy("Kokoro voices", lambda: pytest.fail("start-up loaded the Chinese voice"))
    services, runner = runner_for(tmp_path, BrokenSTT(RuntimeError()), OfflineVoices({"joe": piper}, espeak, kokoro))
    try:
        runner.warmup()
        assert kokoro.available is None
        english = runner.apology()[1]  # made by warmup(), in Piper's voice
        assert runner.apology("en")[1] is english and runner.apology("en-US")[1] is english
        assert runner.apology(None)[1] is english  # "auto": not known before the words are
        assert kokoro.available is None
    finally:
        services.close()


def test_a_chinese_caller_waiting_for_the_model_hears_one_moment_in_mandarin(tmp_path, local_voice, listener):  # noqa: F811
    queue = FairQueue("llm:test", max_waiting=4, max_waiting_per_requester=2, max_wait_s=60)
    services, runner = runner_for(tmp_path, ScriptedSTT(text="现在几点了？"), local_voice,
                                  llm=local_chain(queue, tmp_path), queue_position=queue.position)
    someone_else_done, holding = threading.Event(), threading.Event()

    def someone_else() -> None:
        with queue.turn("someone-else"):
            holding.set()
            someone_else_done.wait(60)

    threading.Thread(target=someone_else, daemon=True).start()
    assert holding.wait(10)
    audio: list[np.ndarray] = []

    def caller() -> None:
        now = time.perf_counter()
        for out in runner.run(SpokenTurn(speech(1.0), now, now), Conversation(user_id="caller",
                                                                              persona_id="xiaobei")):
            if isinstance(out, tuple):
                audio.append(out[1])

    call = threading.Thread(target=caller, daemon=True)
    call.start()
    try:
        assert wait_until(lambda: audio, timeout_s=60), "the waiting caller heard nothing"
        one_moment = audio[0]  # all the caller hears while the model is someone else's
    finally:
        someone_else_done.set()
    call.join(30)
    services.close()
    heard = listener.transcribe(AudioClip(24_000, one_moment), "zh")
    assert "稍等" in heard, heard
