"""Thinking during the pause: the local model reads the reply's prompt while the user is
silent. A turn that is taken starts from it; one the user talks on through leaves nothing."""
from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastrtc import AdditionalOutputs

from handlers.voice.reply_on_pause import CozyReplyOnPause
from handlers.voice.turn import VoiceTurnRunner
from handlers.voice.turn_detector import TurnDetectorOptions
from orchestrator.services import build_chat_services
from personas.cards import PersonaCatalog
from providers.base import ChatOptions
from tests.clients.voice_ws import espeak_clip
from tests.conftest import stored_settings

PERSONAS = Path(__file__).resolve().parent.parent / "personas"
FRAME = 320  # 20 ms at 16 kHz
QUESTION = "what is the capital of France"


@pytest.fixture
def voice(whisper, piper, fast_llm, vad, tmp_path):
    """A connection's handler on real models and a real database; every reported turn
    record is kept in `records`."""
    records = []
    services = build_chat_services(stored_settings(tmp_path), PersonaCatalog(PERSONAS, "concise"), fast_llm,
                                   on_record=records.append)
    runner = VoiceTurnRunner(whisper, piper, services.orchestrator, 24_000)
    handler = CozyReplyOnPause(runner, vad, TurnDetectorOptions(), default_persona="concise").copy()
    handler._clear_queue = lambda: None
    handler.services, handler.records = services, records
    yield handler
    services.close()


def feed(handler, samples: np.ndarray) -> None:
    for start in range(0, len(samples), FRAME):
        handler.receive((16_000, samples[start:start + FRAME].reshape(1, -1)))


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(16_000 * seconds), np.int16)


def wait_for(condition, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def pause_until_prefilled(handler):
    """Say the question and fall silent long enough for the early transcript (not for the
    turn to end): the prefill runs; returns it once it has stopped."""
    feed(handler, np.concatenate([espeak_clip(QUESTION), silence(0.25)]))
    speculation = handler.speculation.current
    assert speculation is not None, "a pause must start a speculative prefill"
    assert speculation.finished.wait(120)
    return speculation


def reply(handler, timeout_s: float = 60) -> list:
    outputs, deadline, started = [], time.monotonic() + timeout_s, False
    while time.monotonic() < deadline:
        output = handler.emit()
        started = started or handler.generator is not None
        if output is None and started and handler.generator is None:
            break
        if isinstance(output, AdditionalOutputs):
            outputs.append(output.args)
    return outputs


def test_a_prefill_the_user_talks_on_through_leaves_no_trace(voice):
    speculation = pause_until_prefilled(voice)
    assert speculation.outcome == "evaluated" and "france" in speculation.request.text.lower()
    feed(voice, espeak_clip("and also of Spain"))  # they were not done: the prefill was for nothing
    assert speculation.cancelled.is_set()
    voice.reset()  # the call ends before the turn does

    services = voice.services
    assert services.learner.wait_idle()
    assert services.conversations.sessions("local") == []  # no conversation opened, no message kept
    assert services.memory.list("local") == [] and services.profile.get("local") == {}
    assert voice.records == [] and services.usage.rows("local") == []  # no turn recorded, nothing billed
    assert voice.conversation.transcript == [] and voice.conversation.session_id is None


def test_a_taken_turn_starts_from_the_prefilled_prompt_and_the_words_written_ahead(voice, fast_llm):
    speculation = pause_until_prefilled(voice)
    assert speculation.outcome == "evaluated"
    ahead = fast_llm._ahead.kept  # the reply's first tokens, written while the turn was undecided
    assert ahead is not None and ahead.tokens
    written = " ".join(fast_llm._llm.detokenize(ahead.tokens).decode("utf-8", errors="ignore").split())
    feed(voice, silence(0.5))  # the turn ends
    outputs = reply(voice)
    transcript, _ = outputs[-1]
    assert transcript[-1]["role"] == "assistant" and transcript[-1]["content"]
    said = " ".join(transcript[-1]["content"].split())
    assert said.startswith(" ".join(written.split()[:3])), (said, written)  # what was written is what is said
    llm = [stage for stage in voice.records[-1].all("llm")]
    # The real prompt is the prefilled one, token for token, so llama.cpp evaluated nothing again.
    assert llm and llm[0].tokens_in == len(ahead.prompt)
    assert list(fast_llm._llm.input_ids[:len(ahead.prompt)]) == ahead.prompt


BEES = [{"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": "What do bees make?"}]


def reply_text(llm, messages, options) -> tuple[str, int | None]:
    """The reply's text, and how many tokens the model counted for it."""
    parts, counted = [], None
    for delta in llm.stream(messages, options):
        parts.append(delta.text)
        counted = delta.completion_tokens if delta.finish_reason else counted
    return "".join(parts), counted


def test_a_reply_written_ahead_is_the_reply_the_model_writes(fast_llm):
    options = ChatOptions(max_tokens=40, temperature=0)
    list(fast_llm.stream([{"role": "user", "content": "Hello there"}], options))
    plain, plain_tokens = reply_text(fast_llm, BEES, options)
    list(fast_llm.stream([{"role": "user", "content": "Hello there"}], options))  # the model holds another prompt
    assert fast_llm.prefill(BEES, [], threading.Event(), options) is True
    assert fast_llm._ahead.kept is not None and len(fast_llm._ahead.kept.tokens) > 5
    ahead, ahead_tokens = reply_text(fast_llm, BEES, options)
    assert ahead == plain and fast_llm._ahead.used > 5  # the same words, the first ones already written
    assert ahead_tokens == plain_tokens  # and billed the same: tokens written ahead count as the reply's


def test_words_written_ahead_serve_only_the_prompt_and_sampling_they_were_written_for(fast_llm):
    options = ChatOptions(max_tokens=12, temperature=0)
    assert fast_llm.prefill(BEES, [], threading.Event(), options) is True
    other = [BEES[0], {"role": "user", "content": "What do cows drink?"}]
    reply_text(fast_llm, other, options)
    assert fast_llm._ahead.used == 0 and fast_llm._ahead.kept is None  # another question: written afresh
    assert fast_llm.prefill(BEES, [], threading.Event(), options) is True
    reply_text(fast_llm, BEES, ChatOptions(max_tokens=12, temperature=0.9))
    assert fast_llm._ahead.used == 0  # other sampling: not its sample
    seeded = ChatOptions(max_tokens=12, temperature=0.7, seed=7)
    assert fast_llm.prefill(BEES, [], threading.Event(), seeded) is True
    assert fast_llm._ahead.kept is None  # a seeded reply is never written ahead: the seed must give it


def test_a_talked_over_prefill_keeps_nothing_written(fast_llm):
    options = ChatOptions(max_tokens=40, temperature=0)
    list(fast_llm.stream([{"role": "user", "content": "Hello there"}], options))

    class TalkedOverAfterAFewTokens:
        checks = 0

        def is_set(self) -> bool:
            self.checks += 1
            return self.checks > 4

    assert fast_llm.prefill(BEES, [], TalkedOverAfterAFewTokens(), options) is True  # the prompt was read
    assert fast_llm._ahead.kept is None
    reply_text(fast_llm, BEES, options)
    assert fast_llm._ahead.used == 0


def test_a_cancelled_prefill_stops_between_chunks_on_a_prefix_the_reply_reuses(fast_llm):
    messages = [{"role": "system", "content": "You answer in one short sentence. " * 20},
                {"role": "user", "content": "What do bees make?"}]
    options = ChatOptions(max_tokens=12, temperature=0)
    list(fast_llm.stream([{"role": "user", "content": "Hello there"}], options))  # the model holds another prompt

    class CancelledAfterFirstChunk:
        checks = 0

        def is_set(self) -> bool:
            self.checks += 1
            return self.checks > 1

    flag = CancelledAfterFirstChunk()
    assert fast_llm.prefill(messages, [], flag) is False
    assert flag.checks == 2  # one chunk evaluated, then it gave the model back
    partial = list(fast_llm._llm.input_ids[:fast_llm._llm.n_tokens])
    deltas = list(fast_llm.stream(messages, options))
    prompt_tokens = deltas[-1].prompt_tokens
    # It stopped part-way through the prompt, and what it had evaluated is the prompt's own start.
    assert len(partial) < prompt_tokens
    assert list(fast_llm._llm.input_ids[:len(partial)]) == partial
    assert "".join(d.text or "" for d in deltas).strip()


def prompt_tokens(llm, messages) -> list[int]:
    """The tokens a reply to `messages` is asked with (as llama-cpp renders and reads them)."""
    rendered = llm._formatter(messages=messages)
    return llm._llm.tokenize(rendered.prompt.encode(), add_bos=not rendered.added_special, special=True)


def test_words_so_far_are_read_up_to_the_last_word_and_no_further(fast_llm):
    system = {"role": "system", "content": "You answer in one short sentence, about the weather in Lyon."}
    question = [system, {"role": "user", "content": "What is the capital of France?"}]
    whole = prompt_tokens(fast_llm, question)
    list(fast_llm.stream([{"role": "user", "content": "Hello there"}], ChatOptions(max_tokens=2)))

    def read(messages) -> list[int]:
        """What the model holds after reading `messages` as words still being spoken."""
        assert fast_llm.prefill(messages, [], threading.Event(), unfinished=True) is True
        return list(fast_llm._llm.input_ids[:fast_llm._llm.n_tokens])

    # Before a word: the prompt up to where the user's message begins.
    before = fast_llm._tokens_through_last_words([system, {"role": "user", "content": ""}], [])
    assert fast_llm._llm.detokenize(before, special=True).decode().endswith("<|im_start|>user\n")
    assert read([system, {"role": "user", "content": ""}])[:len(before)] == before
    # Words so far: the same start and those words, without the template's end of the message,
    # the start of the prompt the turn will be asked with.
    so_far = fast_llm._tokens_through_last_words([system, {"role": "user", "content": "What is the"}], [])
    assert so_far[:len(before)] == before and whole[:len(so_far)] == so_far
    assert fast_llm._llm.detokenize(so_far[len(before):]).decode() == "What is the"
    assert read([system, {"role": "user", "content": "What is the"}]) == so_far  # and no further
    assert fast_llm._ahead.kept is None  # nothing sampled or written ahead for words still being spoken
    # The reply goes on from them.
    deltas = list(fast_llm.stream(question, ChatOptions(max_tokens=8, temperature=0)))
    assert deltas[-1].prompt_tokens == len(whole)
    assert list(fast_llm._llm.input_ids[:len(so_far)]) == so_far


def test_the_next_prompt_is_read_while_the_user_is_still_speaking(voice, fast_llm):
    pause_until_prefilled(voice)
    feed(voice, silence(0.6))  # the first turn ends and is answered: now there is history
    reply(voice)
    assert voice.conversation.session_id is not None

    heads = []  # what the start of speech set off (a pause between words may start more)
    warm_head = voice.speculation.warm_head
    voice.speculation.warm_head = lambda request: heads.append(warm_head(request)) or heads[-1]
    speech = espeak_clip("and what about the capital of Spain")
    feed(voice, speech[:16_000 // 2])  # half a second in: still speaking
    assert len(heads) == 1 and heads[0].head_only, "speech must start reading the next prompt"
    head = heads[0]
    assert head.finished.wait(120) and head.outcome == "evaluated"
    evaluated = list(fast_llm._llm.input_ids[:fast_llm._llm.n_tokens])
    assert "capital of France" in fast_llm._llm.detokenize(evaluated).decode(errors="ignore")  # the history

    feed(voice, np.concatenate([speech[16_000 // 2:], silence(0.6)]))  # they finish and stop: the turn
    transcript, _ = reply(voice)[-1]
    assert transcript[-1]["role"] == "assistant" and transcript[-1]["content"]
    assert "spain" in transcript[-2]["content"].lower()
    # The reply's prompt starts with all that was read while they spoke (it ends where
    # their message's words begin), so none of it was read again.
    assert fast_llm._llm.detokenize(evaluated).decode(errors="ignore").endswith("user\n")
    final = list(fast_llm._llm.input_ids[:fast_llm._llm.n_tokens])
    assert final[:len(evaluated)] == evaluated


def test_a_long_question_is_read_while_it_is_still_being_spoken(voice):
    partials = []
    start = voice.speculation.start

    def recording(transcript, request, partial=False):
        speculation = start(transcript, request, partial)
        if partial:
            partials.append(speculation)
        return speculation

    voice.speculation.start = recording
    speech = espeak_clip("could you tell me what the capital of France is and how many people live there")
    feed(voice, speech[:int(16_000 * 2.5)])  # two and a half seconds in, still speaking
    assert partials, "the words so far must be read while the user speaks"
    assert partials[0].finished.wait(120) and partials[0].outcome == "evaluated"
    heard_so_far = partials[0].request.text
    assert heard_so_far and "could you" in heard_so_far.lower()

    feed(voice, np.concatenate([speech[int(16_000 * 2.5):], silence(0.6)]))
    transcript, _ = reply(voice)[-1]
    question = transcript[-2]["content"].lower()
    assert "france" in question and transcript[-1]["content"]
    # What was read early starts the question the turn was asked (Whisper may hear the
    # cut-off end of the partial differently: llama.cpp reuses the prompt up to there).
    early, final = re.findall(r"[a-z']+", heard_so_far.lower()), re.findall(r"[a-z']+", question)
    shared = next((i for i, (a, b) in enumerate(zip(early, final)) if a != b), min(len(early), len(final)))
    assert shared >= 3, (heard_so_far, question)
