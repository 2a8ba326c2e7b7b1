"""One record per turn: who served each stage, how long it took, what it used.

Vendors are fake servers on 127.0.0.1 speaking their wire protocols (the real SDKs
talk to them); the orchestrator, chains, storage and metrics are the real ones.
"""
from __future__ import annotations

import json
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from fastapi import FastAPI
from handlers.api import install_api
from handlers.api.auth import AuthConfig, Authenticator
from handlers.api.rate_limit import RateLimiter, RateLimits
from handlers.api.metrics import observe_turn_record
from handlers.voice.turn import Conversation, SpokenTurn, VoiceTurnRunner
from orchestrator.pricing import PriceTable
from orchestrator.services import build_chat_services
from orchestrator.turn_record import TurnRecord
from orchestrator.turns import TurnDelta, TurnDone, TurnRequest
from personas.cards import PersonaCatalog
from providers.base import ChatOptions
from providers.breakers import ProviderPolicy
from providers.call_log import FailedAttempt
from providers.fallback import FallbackChatModel
from providers.moderation.offline import OfflineModerator
from tests.conftest import ROOT, stored_settings
from tests.fakes.providers import RecordingTTS, ScriptedSTT, groq_llm, openai_llm, speech
from tests.fakes.vendor_server import Fault

pytestmark = pytest.mark.storage  # also run on PostgreSQL (make test)

pytest_plugins = ["tests.fakes.fixtures"]  # the fake vendor servers

POLICY = ProviderPolicy(fail_max=5, reset_timeout_s=60, first_output_timeout_s=5, stall_timeout_s=5, retries=0)
QUESTION = "What is the capital of France?"


def services_for(tmp_path, model, **options):
    """The real services; moderation by the offline word lists, whatever keys the environment has."""
    return build_chat_services(stored_settings(tmp_path), PersonaCatalog(ROOT / "personas", "concise"), model,
                               moderator=OfflineModerator(), **options)


def run_turn(orchestrator, user_id: str, first_words: threading.Event | None = None,
             channel: str = "text") -> TurnDone:
    for item in orchestrator.run(TurnRequest(text=QUESTION, user_id=user_id, persona_id="concise",
                                             channel=channel)):
        if isinstance(item, TurnDelta) and first_words is not None:
            first_words.set()
        if isinstance(item, TurnDone):
            return item
    raise AssertionError("the turn ended without a TurnDone")


def stored_metadata(services, done: TurnDone, user_id: str) -> dict:
    [reply] = [m for m in services.conversations.messages(user_id, done.session_id) if m["role"] == "assistant"]
    return json.loads(reply["metadata"])


def vendor_usage(request) -> tuple[int, int]:
    """What the fake vendor reported as usage for this request (tests/fakes/wire.py counts it so)."""
    prompt = sum(len(str(m.get("content", "")).split()) for m in request.body["messages"])
    return prompt, 5  # five text chunks in the scripted reply


def test_two_conversations_at_once_each_record_names_the_provider_that_served_it(vendors, tmp_path):
    """Ada's call finds OpenAI failing and falls back to Groq; Bob's, made while Ada's is
    still streaming, is served by OpenAI. A label read from the shared chain ("who served
    last") names the same provider for both; each record names its own."""
    primary, secondary = vendors
    primary.fail_next(Fault(status=500))  # only the first request (Ada's) fails
    secondary.fail_next(Fault(chunk_delay_s=0.2))  # Ada's fallback reply streams slowly
    chain = FallbackChatModel([openai_llm(primary), groq_llm(secondary)], POLICY)
    services = services_for(tmp_path, chain)
    try:
        ada_streaming, ada = threading.Event(), {}
        thread = threading.Thread(target=lambda: ada.setdefault(
            "done", run_turn(services.orchestrator, "ada", ada_streaming)))
        thread.start()
        assert ada_streaming.wait(30), "Ada's reply never started"
        bob = run_turn(services.orchestrator, "bob")
        thread.join(30)
        ada = ada["done"]

        [ada_call] = ada.record.all("llm")
        assert (ada_call.provider, ada_call.model) == ("groq", "llama-3.1-8b-instant")
        [fallback] = ada_call.fallbacks
        assert (fallback.provider, fallback.kind) == ("openai", "status_500")
        [bob_call] = bob.record.all("llm")
        assert (bob_call.provider, bob_call.model, bob_call.fallbacks) == ("openai", "gpt-4.1-mini", [])
        assert ada.record.first("llm_first_token").provider == "groq"

        # What is stored with each reply: the real model, not the chain's name "llm".
        assert stored_metadata(services, ada, "ada")["model"] == "llama-3.1-8b-instant"
        assert stored_metadata(services, bob, "bob")["model"] == "gpt-4.1-mini"
        saved = TurnRecord.from_dict(stored_metadata(services, ada, "ada")["record"])
        assert saved.all("llm")[0].fallbacks == [FailedAttempt("openai", fallback.reason, "status_500")]
    finally:
        services.close()


class FirstSentenceWaits(RecordingTTS):
    """Speaks like RecordingTTS, but its first sentence waits until the test lets it go."""

    def __init__(self):
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def synthesize(self, text: str, voice: str | None = None):
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(30), "never released"
        yield from super().synthesize(text, voice)


def wait_until(predicate, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_two_calls_at_once_each_hear_which_model_answered_them(vendors, tmp_path):
    """Ada's reply falls back to Groq and is still being spoken when Bob's whole turn, served
    by OpenAI, is over: a label read from the chain as Ada's turn ends would say OpenAI."""
    primary, secondary = vendors
    primary.fail_next(Fault(status=500))
    services = services_for(tmp_path, FallbackChatModel([openai_llm(primary), groq_llm(secondary)], POLICY))
    tts = FirstSentenceWaits()
    runner = VoiceTurnRunner(ScriptedSTT(text=QUESTION), tts, services.orchestrator, 24_000)
    ada, bob = (Conversation(user_id=name, persona_id="concise") for name in ("ada", "bob"))
    try:
        now = time.perf_counter()
        thread = threading.Thread(target=lambda: list(runner.run(SpokenTurn(speech(1.0), now, now), ada)))
        thread.start()
        # Ada's reply is written (and saved), and her first sentence is being spoken
        assert tts.entered.wait(30) and wait_until(lambda: any(
            len(services.conversations.messages("ada", s["id"])) == 2 for s in services.conversations.sessions("ada")))
        list(runner.run(SpokenTurn(speech(1.0), now, now), bob))
        tts.release.set()
        thread.join(30)
        assert ada.last_turn["providers"]["llm"] == "groq" and bob.last_turn["providers"]["llm"] == "openai"
    finally:
        tts.release.set()
        services.close()


@pytest.mark.parametrize("make_model", [openai_llm, groq_llm], ids=["openai", "groq"])
def test_the_record_carries_the_vendors_own_token_counts(vendor, tmp_path, make_model):
    services = services_for(tmp_path, make_model(vendor))
    try:
        done = run_turn(services.orchestrator, "ada")
        [call] = done.record.all("llm")
        assert (call.tokens_in, call.tokens_out) == vendor_usage(vendor.requests[-1])
        assert (done.record.tokens_in, done.record.tokens_out) == vendor_usage(vendor.requests[-1])
        # priced from the shipped table once the turn is done
        assert done.record.cost_usd == PriceTable.load().price(TurnRecord.from_dict(done.record.as_dict())).cost_usd > 0
        stored = stored_metadata(services, done, "ada")["record"]
        assert (stored["tokens_in"], stored["tokens_out"]) == vendor_usage(vendor.requests[-1])
    finally:
        services.close()


def test_an_offline_model_counts_tokens_with_its_own_tokenizer(fast_llm, tmp_path):
    messages = [{"role": "system", "content": "You are brief."}, {"role": "user", "content": QUESTION}]
    *_, last = fast_llm.stream(messages, ChatOptions(max_tokens=8, temperature=0))
    # llama.cpp's own count, from a completion that is not streamed (which reports usage)
    expected = fast_llm._llm.create_chat_completion(messages=messages, max_tokens=1)["usage"]["prompt_tokens"]
    assert last.prompt_tokens == expected
    assert 0 < last.completion_tokens <= 8

    services = services_for(tmp_path, fast_llm)
    try:
        done = run_turn(services.orchestrator, "ada")
        [call] = done.record.all("llm")
        assert (call.provider, call.model) == ("offline-smollm2-135m", "smollm2-135m")
        assert call.tokens_in > 0 and 0 < call.tokens_out <= done.record.tokens_out
    finally:
        services.close()


def stage_samples(client: TestClient) -> list[dict[str, str]]:
    text = client.get("/metrics").text
    return [sample.labels for family in text_string_to_metric_families(text)
            if family.name == "cozy_turn_stage_seconds" for sample in family.samples
            if sample.name.endswith("_count")]


def test_voice_phone_and_api_turns_all_reach_the_stage_metrics(vendor, tmp_path):
    services = services_for(tmp_path, openai_llm(vendor, name="metrics-openai"), on_record=observe_turn_record)
    tts = RecordingTTS()
    runner = VoiceTurnRunner(ScriptedSTT(name="metrics-stt", text=QUESTION), tts, services.orchestrator, 24_000)
    app = FastAPI()
    install_api(app, services, runner.stt, tts, Authenticator(AuthConfig()), RateLimiter(RateLimits()))
    try:
        spoken_texts = {}
        for channel in ("voice", "phone"):
            conversation = Conversation(user_id=f"{channel}-caller", persona_id="concise", channel=channel)
            said_before, now = len(tts.texts), time.perf_counter()
            list(runner.run(SpokenTurn(speech(1.0), now, now + 0.1), conversation))
            assert "error" not in conversation.last_turn, conversation.last_turn
            spoken_texts[channel] = tts.texts[said_before:]
        with TestClient(app) as client:
            response = client.post("/v1/chat/completions", json={
                "model": "concise", "messages": [{"role": "user", "content": QUESTION}]})
            assert response.status_code == 200, response.text
            assert response.json()["usage"]["prompt_tokens"] == vendor_usage(vendor.requests[-1])[0]
            samples = stage_samples(client)

        ours = [s for s in samples if s.get("provider") == "metrics-openai"]
        assert {s["channel"] for s in ours if s["stage"] == "llm"} >= {"voice", "phone", "api"}
        assert {s["model"] for s in ours} == {"gpt-4.1-mini"}
        voice = {s["stage"]: s for s in samples if s["channel"] == "voice"}
        assert {"endpointing", "stt", "context", "llm_first_token", "llm", "tts_first_audio", "tts",
                "first_audio", "turn"} <= set(voice)
        assert voice["stt"]["provider"] == "metrics-stt" and voice["tts"]["provider"] == "recording-tts"
        assert voice["moderation"]["provider"] == "offline"

        # The voice turn's record, finished after its reply was spoken, is stored with the reply.
        caller = services.conversations.sessions("voice-caller")[0]["id"]
        [reply] = [m for m in services.conversations.messages("voice-caller", caller) if m["role"] == "assistant"]
        record = TurnRecord.from_dict(json.loads(reply["metadata"])["record"])
        assert record.channel == "voice"
        [spoken] = record.all("tts")
        assert spoken.characters == sum(len(text) for text in spoken_texts["voice"]) > 0
        assert spoken.audio_out_s == pytest.approx(0.05 * len(spoken_texts["voice"]))
        assert record.first("stt").audio_in_s == pytest.approx(1.0)
    finally:
        services.close()
