"""The voice starts on the reply's first clause, before the model has finished its first
sentence; a reply talked over stops the model too. The model here is scripted (it writes
at the pace the test allows); speech synthesis, moderation and storage are the real ones."""
from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest

from handlers.voice.sentences import SentenceChunker
from handlers.voice.turn import Conversation, SpokenTurn, VoiceTurnRunner
from orchestrator.services import build_chat_services
from personas.cards import PersonaCatalog
from providers.base import AudioClip, ChatDelta
from providers.call_log import CallLog
from providers.moderation.base import Verdict
from tests.conftest import stored_settings

PERSONAS = Path(__file__).resolve().parent.parent / "personas"
# No clause break: the old rule waited for the sentence's end. The new one cuts before "is"
# once two words have come after it (so the next piece is never a lone word).
FIRST_WORDS = "The sky on a clear day is blue "
REST_OF_SENTENCE = "because air scatters the blue part of sunlight the most. "
SECOND_SENTENCE = "Sunsets look red for the same reason."


class ScriptedModel:
    """Writes the first words, then waits for `go` before finishing the first sentence;
    after that, while `endless`, goes on writing until it is cancelled or closed."""

    name = "scripted"

    def __init__(self, wait_for_go: bool, endless: bool = False):
        self.wait_for_go = wait_for_go
        self.endless = endless
        self.go = threading.Event()
        self.sentence_written = threading.Event()
        self.stopped = threading.Event()
        self.tokens_after_stop_asked: int | None = None
        self.stop_asked = threading.Event()

    def stream(self, messages, options, cancelled=None):
        try:
            for word in FIRST_WORDS.split(" ")[:-1]:
                yield ChatDelta(text=word + " ")
            if self.wait_for_go:
                self.go.wait(60)  # not a timing: a test that fails does not hang
            for word in REST_OF_SENTENCE.split(" ")[:-1]:
                yield ChatDelta(text=word + " ")
            self.sentence_written.set()
            yield ChatDelta(text=SECOND_SENTENCE)
            while self.endless and not (cancelled is not None and cancelled.is_set()):
                if self.stop_asked.is_set():
                    self.tokens_after_stop_asked = (self.tokens_after_stop_asked or 0) + 1
                yield ChatDelta(text=" And more.")
                self.go.wait(0.05)  # a model's pace: ~20 pieces a second
            yield ChatDelta(finish_reason="stop", prompt_tokens=10, completion_tokens=10)
        finally:
            self.stopped.set()


@pytest.fixture
def make_runner(piper, tmp_path):
    made = []

    def make(model, early_reply: bool = True, moderator=None):
        services = build_chat_services(stored_settings(tmp_path / str(len(made))),
                                       PersonaCatalog(PERSONAS, "concise"), model, moderator=moderator)
        made.append(services)
        return VoiceTurnRunner(None, piper, services.orchestrator, 24_000, early_reply=early_reply), services

    yield make
    for services in made:
        services.close()


def heard_turn(text: str) -> SpokenTurn:
    words: Future = Future()
    words.set_result((text, CallLog()))  # transcribed during the pause
    now = time.perf_counter()
    return SpokenTurn(AudioClip(16_000, np.zeros(16_000, np.int16)), now, now, words)


def test_the_first_clause_is_spoken_before_the_first_sentence_is_written(make_runner):
    model = ScriptedModel(wait_for_go=True)
    runner, _ = make_runner(model)
    conversation = Conversation(persona_id="concise")
    sentence_done_at_first_audio = None
    for output in runner.run(heard_turn("Why is the sky blue?"), conversation):
        if isinstance(output, tuple) and sentence_done_at_first_audio is None:
            sentence_done_at_first_audio = model.sentence_written.is_set()
            model.go.set()  # the listener hears the start: the model may finish its sentence
    assert sentence_done_at_first_audio is False
    reply = conversation.transcript[-1]
    assert reply["role"] == "assistant" and reply["content"].startswith("The sky on a clear day is blue")


def test_without_early_reply_the_voice_waits_for_the_whole_first_sentence(make_runner):
    model = ScriptedModel(wait_for_go=False)
    runner, _ = make_runner(model, early_reply=False)
    first_audio_after_sentence = None
    for output in runner.run(heard_turn("Why is the sky blue?"), Conversation(persona_id="concise")):
        if isinstance(output, tuple) and first_audio_after_sentence is None:
            first_audio_after_sentence = model.sentence_written.is_set()
    assert first_audio_after_sentence is True


def test_talking_over_the_reply_stops_the_model_and_keeps_what_was_heard(make_runner):
    model = ScriptedModel(wait_for_go=False, endless=True)
    runner, services = make_runner(model)
    conversation = Conversation(persona_id="concise")
    turn = runner.run(heard_turn("Why is the sky blue?"), conversation)
    first_audio_at, first_piece_s = None, 0.0
    for output in turn:
        if isinstance(output, tuple):
            if first_audio_at is None:
                first_audio_at, first_piece_s = time.perf_counter(), output[1].size / output[0]
            else:
                break  # the second piece is out
    while time.perf_counter() < first_audio_at + first_piece_s:  # the listener has heard the first piece
        time.sleep(0.02)
    conversation.barged_in_at = time.perf_counter()
    conversation.barged_in.set()
    model.stop_asked.set()
    turn.close()  # what the handler does on barge-in
    assert model.stopped.wait(30), "the model must stop writing once the caller talks over the reply"
    # At most the piece it was writing, and the one the moderation gate read ahead for a sentence end.
    assert (model.tokens_after_stop_asked or 0) <= 2
    deadline = time.monotonic() + 30

    def saved_reply() -> str:  # kept off the speaking thread: the writer saves it as it stops
        sessions = services.conversations.sessions("local")
        messages = services.conversations.messages("local", sessions[0]["id"]) if sessions else []
        return messages[-1]["content"] if len(messages) == 2 else ""

    while (not saved_reply() or "And more" in saved_reply()) and time.monotonic() < deadline:
        time.sleep(0.02)
    saved = saved_reply()
    assert saved.startswith("The sky") and "And more" not in saved  # what was heard, not what was written
    assert len(saved) < len(FIRST_WORDS + REST_OF_SENTENCE + SECOND_SENTENCE)


class FlagsTogether:
    """A moderator that flags two words only when they come in the same text."""

    name = "together"

    def __init__(self, *words: str):
        self.words = words
        self.asked: list[str] = []

    def check(self, text: str, policy: str) -> Verdict:
        self.asked.append(text)
        return Verdict(all(w in text for w in self.words), ("harassment",), self.name)


def test_a_first_sentence_spoken_in_pieces_is_still_checked_whole(make_runner):
    model = ScriptedModel(wait_for_go=False)
    moderator = FlagsTogether("clear day", "scatters")  # either side of the first cut
    runner, _ = make_runner(model, moderator=moderator)
    conversation = Conversation(persona_id="concise")
    list(runner.run(heard_turn("Why is the sky blue?"), conversation))
    spoken = conversation.transcript[-1]["content"]
    assert spoken.startswith("The sky on a clear day") and "scatters" not in spoken  # refused before the rest
    assert any(t.startswith("The sky on a clear day is blue because") for t in moderator.asked)
    assert "Sunsets" not in spoken


def test_a_first_sentence_without_a_break_is_cut_before_a_phrase_never_into_one_word_pieces():
    def pieces(text: str) -> list[str]:
        chunker, out = SentenceChunker(), []
        for word in text.split(" "):
            out += chunker.push(word + " ")
        return out + chunker.flush()

    assert pieces("The sky on a clear day is blue because air scatters light.") == [
        "The sky on a clear day", "is blue because air scatters light."]
    assert pieces("Bees make honey from the nectar of flowers.") == ["Bees make honey", "from the nectar of flowers."]
    # A name is not cut at its "and", nor a subject from its verb; a short sentence is cut
    # before its verb once the verb is in, so the voice starts three tokens sooner.
    assert pieces("William Shakespeare wrote Romeo and Juliet in the late sixteenth century.")[0] == \
        "William Shakespeare wrote Romeo and Juliet"
    assert pieces("The capital of France is Paris. It is lovely.") == ["The capital of France", "is Paris.",
                                                                       "It is lovely."]
    assert pieces("Spiders have eight legs.") == ["Spiders have eight legs."]  # no phrase starts inside
    # As the model writes it, a token at a time: the cut comes as "is" begins, before "Paris".
    chunker = SentenceChunker()
    assert [chunker.push(token) for token in ("The", " capital", " of", " France", " is")] == \
        [[], [], [], [], ["The capital of France"]]
    assert chunker.push(" Paris.") == [] and chunker.flush() == ["is Paris."]
    assert pieces("I think the answer you are looking for is probably Paris.")[0] == \
        "I think the answer you are looking"
    for text in ("I think the answer you are looking for is probably Paris.",
                 "A spider has eight legs and most spiders have eight eyes as well.",
                 "Romeo and Juliet was written by William Shakespeare."):
        assert all(len(piece.split()) >= 2 for piece in pieces(text)), pieces(text)
        assert len(pieces(text)[0].split()) >= 3, pieces(text)


async def test_a_spoken_question_is_answered_in_pieces_whisper_still_understands(running_app, whisper):
    """Over the websocket, with the reply spoken clause first: what the caller hears is
    still the answer, in words a speech recogniser gets."""
    from tests.clients.voice_ws import VoiceWebsocketClient, espeak_clip

    async with VoiceWebsocketClient(running_app.base_url) as client:
        turn = await client.speak(espeak_clip("what is the capital of France"), listen_s=25)
    assert "france" in turn.transcript()[0]["content"].lower(), running_app.log_tail()
    heard = whisper.transcribe(AudioClip(24_000, turn.audio)).lower()
    assert "paris" in heard, heard
