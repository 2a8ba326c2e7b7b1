"""The fair queue in front of a local model: round robin between people, bounded,
refusing at once, and never counted against the model's breaker; long audio is
transcribed a piece per turn, so a short clip is not held behind a long upload."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from providers.base import AudioClip, ChatDelta, ChatOptions
from providers.breakers import ProviderPolicy
from providers.errors import ModelBusy
from providers.fallback import FallbackChatModel, FallbackSTT
from providers.local_queue import FairQueue, QueuedChatModel, QueuedSTT, split_at_pauses
from tests.clients.voice_ws import espeak_clip


class SlowLocalModel:
    """A stand-in local model: each reply takes `seconds` of work, one at a time."""

    name = "offline-slow"

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.order: list[str] = []
        self._lock = threading.Lock()

    def stream(self, messages, options, cancelled=None):
        with self._lock:
            self.order.append(messages[-1]["content"])
            time.sleep(self.seconds)  # the model's own work
            yield ChatDelta(text="done")
            yield ChatDelta(finish_reason="stop")


def ask(llm, who: str, what: str, results: dict) -> threading.Thread:
    def run() -> None:
        try:
            results[what] = "".join(d.text for d in llm.stream([{"role": "user", "content": what}],
                                                              ChatOptions(requester=who)))
        except ModelBusy as busy:
            results[what] = busy
    thread = threading.Thread(target=run)
    thread.start()
    return thread


def wait_for(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the queue never reached the expected state"
        time.sleep(0.01)


def chain_over(model, queue: FairQueue, first_output_s: float) -> FallbackChatModel:
    policy = ProviderPolicy(fail_max=1, first_output_timeout_s=first_output_s, stall_timeout_s=first_output_s,
                            retries=0)
    return FallbackChatModel([QueuedChatModel(model, queue)], policy)


def test_people_are_served_in_turn_not_in_order_of_arrival():
    model = SlowLocalModel(0.2)
    queue = FairQueue("llm", max_waiting=8, max_waiting_per_requester=3)
    llm = chain_over(model, queue, first_output_s=5)
    results: dict = {}
    threads = [ask(llm, "ada", "ada-1", results)]
    wait_for(lambda: model.order)  # ada's first is running
    for what in ("ada-2", "ada-3"):
        threads.append(ask(llm, "ada", what, results))
        wait_for(lambda: queue.stats().waiting == len(threads) - 1)
    threads.append(ask(llm, "bob", "bob-1", results))
    for thread in threads:
        thread.join(10)
    assert model.order == ["ada-1", "ada-2", "bob-1", "ada-3"]
    assert all(value == "done" for value in results.values())


def test_time_in_the_queue_does_not_count_against_the_models_deadline_or_breaker():
    # Each reply takes 0.4 s and the first-output deadline is 0.6 s: the third caller
    # waits 0.8 s before the model starts on it, and is still served.
    model = SlowLocalModel(0.4)
    queue = FairQueue("llm", max_waiting=8, max_waiting_per_requester=8)
    llm = chain_over(model, queue, first_output_s=0.6)
    results: dict = {}
    threads = []
    for index in range(3):
        threads.append(ask(llm, f"user-{index}", f"q{index}", results))
        wait_for(lambda: len(model.order) + queue.stats().waiting == len(threads))
    for thread in threads:
        thread.join(10)
    assert results == {"q0": "done", "q1": "done", "q2": "done"}
    assert llm.breaker_states() == {"offline-slow": "closed"}


def test_a_full_queue_refuses_at_once_with_when_to_retry_and_the_breaker_stays_closed():
    model = SlowLocalModel(0.5)
    queue = FairQueue("llm", max_waiting=2, max_waiting_per_requester=1)
    llm = chain_over(model, queue, first_output_s=5)
    results: dict = {}
    threads = [ask(llm, "ada", "ada-1", results)]
    wait_for(lambda: model.order)
    threads.append(ask(llm, "ada", "ada-2", results))  # ada's one waiting place
    wait_for(lambda: queue.stats().waiting == 1)
    started = time.monotonic()
    threads.append(ask(llm, "ada", "ada-3", results))  # over ada's share
    threads[-1].join(2)
    threads.append(ask(llm, "bob", "bob-1", results))  # the last place in all
    wait_for(lambda: queue.stats().waiting == 2)
    threads.append(ask(llm, "cy", "cy-1", results))  # over the queue's length
    threads[-1].join(2)
    refused_after = time.monotonic() - started
    for thread in threads:
        thread.join(10)
    assert isinstance(results["ada-3"], ModelBusy) and results["ada-3"].per_requester
    assert isinstance(results["cy-1"], ModelBusy) and not results["cy-1"].per_requester
    assert results["cy-1"].retry_after_s >= 1 and refused_after < 1.0
    assert [results[k] for k in ("ada-1", "ada-2", "bob-1")] == ["done"] * 3
    assert llm.breaker_states() == {"offline-slow": "closed"}
    assert llm.stats()["offline-slow"]["refused"] == 2 and llm.stats()["offline-slow"]["failures"] == 0


def test_a_caller_who_leaves_the_queue_gives_its_place_back():
    model = SlowLocalModel(0.3)
    queue = FairQueue("llm", max_waiting=1, max_waiting_per_requester=1)
    first = threading.Thread(target=lambda: list(QueuedChatModel(model, queue).stream(
        [{"role": "user", "content": "first"}], ChatOptions(requester="ada"))))
    first.start()
    wait_for(lambda: model.order)
    gone = threading.Event()
    leaver = threading.Thread(target=lambda: list(QueuedChatModel(model, queue).stream(
        [{"role": "user", "content": "leaver"}], ChatOptions(requester="bob"), gone)))
    leaver.start()
    wait_for(lambda: queue.stats().waiting == 1)
    gone.set()
    wait_for(lambda: queue.stats().waiting == 0)
    first.join(5)
    leaver.join(5)
    assert model.order == ["first"]


def test_long_audio_is_cut_in_quiet_places_into_pieces_whisper_can_take():
    rate = 16_000
    rng = np.random.default_rng(0)
    samples = (rng.standard_normal(rate * 70) * 3000).astype(np.int16)
    samples[int(rate * 26.0):int(rate * 26.3)] = 0  # a pause inside the first cut's search window
    pieces = split_at_pauses(AudioClip(rate, samples))
    assert len(pieces) == 3
    assert sum(len(p.samples) for p in pieces) == len(samples)
    assert all(p.duration_s <= 28.0 for p in pieces)
    assert 26.0 <= pieces[0].duration_s <= 26.3


def test_a_short_clip_is_not_held_behind_a_long_upload(whisper):
    speech = AudioClip(16_000, espeak_clip("What is the capital of France?"))
    gap = np.zeros(16_000 * 2, dtype=np.int16)
    long_audio = AudioClip(16_000, np.concatenate([np.concatenate([speech.samples, gap])] * 30))  # ~2 minutes
    stt = FallbackSTT([QueuedSTT(whisper, FairQueue("stt", max_waiting=4, max_waiting_per_requester=1))])
    finished: dict[str, float] = {}

    def transcribe(who: str, clip: AudioClip) -> None:
        text = stt.transcribe(clip, "en", requester=who)
        assert "france" in text.lower()
        finished[who] = time.monotonic()

    uploader = threading.Thread(target=transcribe, args=("uploader", long_audio))
    uploader.start()
    wait_for(lambda: stt._slots[0].provider.queue.stats().served >= 1, timeout_s=60)  # a piece is done
    transcribe("speaker", speech)
    uploader.join(300)
    assert finished["speaker"] < finished["uploader"]
