"""Moderation before and after the model: what a user may say, what they may hear.

The LLM is a scripted in-process model that counts its calls; OpenAI's moderation
endpoint is the fake vendor on 127.0.0.1, reached by the real SDK; the offline
moderator is the real one (glin-profanity plus our severe patterns).
"""
from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest
import uvicorn
import yaml
from fastapi import FastAPI

from config import ModerationSettings
from handlers.voice.turn import Conversation, SpokenTurn, VoiceTurnRunner
from orchestrator.moderation import CONTENT_FILTER, SELF_HARM_SUPPORT, WITHHELD
from orchestrator.services import build_chat_services
from orchestrator.turns import TurnDelta, TurnDone, TurnRequest
from personas.cards import DEFAULT_REFUSAL, PersonaCatalog, PersonaError, load_card
from providers.base import CancelFlag, ChatDelta, ChatOptions
from providers.moderation.chain import build_moderation
from providers.moderation.offline import OfflineModerator
from providers.moderation.openai import OpenAIModerationSettings, OpenAIModerator
from storage.audit import DuckDbAuditSink
from tests.conftest import free_port, stored_settings
from tests.fakes.fixtures import _fake_vendors, vendor, vendors  # noqa: F401 - fixtures
from tests.fakes.openapi import component_validator
from tests.fakes.providers import RecordingTTS, ScriptedSTT, speech
from tests.fakes.vendor_server import Fault

SHIPPED = Path(__file__).resolve().parent.parent / "personas"
THREAT = "I am going to kill you"
REFUSAL = "Let's keep things kind, shall we?"
# What the fake OpenAI account scores high (flagged) and mildly (only "strict" flags it).
VENDOR_SCORES = {"nasty plan": {"violence": 0.91, "harassment/threatening": 0.7},
                 "rude remark": {"harassment": 0.31}}


class CountingModel:
    """Streams a scripted reply word by word; counts calls and the words it was asked for."""

    name = "scripted-llm"

    def __init__(self, text: str = "Happy to help. Ask me anything."):
        self.text = text
        self.calls = 0
        self.words_pulled = 0
        self._lock = threading.Lock()

    def stream(self, messages: list[dict[str, Any]], options: ChatOptions,
               cancelled: CancelFlag | None = None) -> Iterator[ChatDelta]:
        with self._lock:
            self.calls += 1
        for word in self.text.split(" "):
            self.words_pulled += 1
            yield ChatDelta(text=word + " ")
        yield ChatDelta(finish_reason="stop")


def wait_for(condition, timeout_s: float = 10.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def card(folder: Path, persona_id: str, **fields: Any) -> Path:
    data = yaml.safe_load((SHIPPED / "concise.yaml").read_text())
    data.update(id=persona_id, **fields)
    path = folder / f"{persona_id}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def personas(tmp_path) -> PersonaCatalog:
    folder = tmp_path / "personas"
    folder.mkdir()
    card(folder, "kind", refusal=REFUSAL)
    card(folder, "prim", moderation="strict")
    (folder / "loose.yaml").write_text((folder / "kind.yaml").read_text().replace("id: kind", "id: loose")
                                       + "moderation: off\n")  # as an author writes it: a bare YAML `off`
    return PersonaCatalog(folder, "kind")


def services_with(tmp_path, personas, model, moderator=None, flags=None):
    return build_chat_services(stored_settings(tmp_path / "data"), personas, model,
                               moderator=moderator or OfflineModerator(),
                               on_moderation_flag=None if flags is None else flags.append)


def turn(services, text: str, persona: str = "kind", user: str = "ada", channel: str = "text"):
    deltas, done = [], None
    for item in services.orchestrator.run(TurnRequest(text=text, user_id=user, persona_id=persona,
                                                      channel=channel)):
        if isinstance(item, TurnDelta):
            deltas.append(item.text)
        elif isinstance(item, TurnDone):
            done = item
    return deltas, done


def audit_rows(services, user: str) -> list[dict[str, Any]]:
    return services.db.read_dicts("SELECT * FROM audit_events WHERE user_id = ? ORDER BY occurred_at",
                                  [user])


def test_a_threat_typed_to_the_assistant_gets_the_personas_refusal_and_never_reaches_the_llm(tmp_path, personas):
    model, flags = CountingModel(), []
    services = services_with(tmp_path, personas, model, flags=flags)
    try:
        deltas, done = turn(services, THREAT)
        assert model.calls == 0
        assert deltas == [REFUSAL] and done.reply == REFUSAL and done.finish_reason == CONTENT_FILTER
        saved = services.conversations.messages("ada", done.session_id)
        # The words are not kept for the next turn's prompt; the refusal is the turn's reply.
        assert [(m["role"], m["content"]) for m in saved] == [("user", WITHHELD), ("assistant", REFUSAL)]
        assert '"finish_reason": "content_filter"' in saved[1]["metadata"]
        [row] = wait_for(lambda: audit_rows(services, "ada"), what="the audit row")
        assert (row["tool"], row["decision"], row["channel"], row["persona_id"]) == \
               ("(moderation)", "flagged", "text", "kind")
        details = json.loads(row["arguments"])
        assert details["layer"] == "moderation"
        assert details["arguments"] == {"direction": "input", "categories": ["harassment/threatening"],
                                        "moderator": "offline", "policy": "standard"}
        assert "kill" not in json.dumps(row, default=str).lower()
        assert [(f.direction, f.categories, f.channel, f.user_id) for f in flags] == \
               [("input", ("harassment/threatening",), "text", "ada")]
        # An ordinary question still reaches the model.
        _, fine = turn(services, "What is a good name for a cat?")
        assert model.calls == 1 and fine.finish_reason == "stop"
    finally:
        services.close()


def test_a_moderation_flag_is_shown_to_its_own_user_and_to_nobody_else(tmp_path, personas):
    services = services_with(tmp_path, personas, CountingModel())
    try:
        turn(services, THREAT, user="ada")
        wait_for(lambda: audit_rows(services, "ada"), what="the audit row")
        ada, bob = services.personal_data.shown("ada"), services.personal_data.shown("bob")
        assert [f["decision"] for f in ada["moderation_flags"]] == ["flagged"]
        assert bob["moderation_flags"] == [] and bob["tool_calls"] == []
        audit_log = DuckDbAuditSink(services.db)  # the page's audit panel reads it per visitor
        assert [e["decision"] for e in audit_log.recent("ada")] == ["flagged"]
        assert audit_log.recent("bob") == []
        # Bob forgetting himself leaves Ada's record; Ada forgetting herself removes it.
        services.personal_data.erase("bob")
        assert len(services.personal_data.shown("ada")["moderation_flags"]) == 1
        services.personal_data.erase("ada")
        assert services.personal_data.shown("ada")["moderation_flags"] == []
    finally:
        services.close()


def test_someone_who_says_they_will_hurt_themselves_hears_where_to_find_help(tmp_path, personas):
    model = CountingModel()
    services = services_with(tmp_path, personas, model)
    try:
        _, done = turn(services, "I want to kill myself")
        assert model.calls == 0 and done.reply == f"{REFUSAL} {SELF_HARM_SUPPORT}"
    finally:
        services.close()


def test_a_flagged_sentence_in_the_reply_is_never_streamed_and_the_reply_stops_there(tmp_path, personas):
    model, flags = CountingModel("Here is a story for you. I will kill you tonight. Then we all went "
                                 "home and ate a very long dinner together."), []
    services = services_with(tmp_path, personas, model, flags=flags)
    try:
        deltas, done = turn(services, "Tell me a story.", user="bob")
        assert deltas == ["Here is a story ", "for you. ", REFUSAL]  # the first words go out early
        assert done.finish_reason == CONTENT_FILTER and done.reply == f"Here is a story for you. {REFUSAL}"
        assert model.words_pulled < len(model.text.split())  # the model was stopped, not read to the end
        saved = services.conversations.messages("bob", done.session_id)
        assert saved[-1]["content"] == done.reply  # the flagged sentence is not stored either
        [row] = wait_for(lambda: audit_rows(services, "bob"), what="the audit row")
        assert json.loads(row["arguments"])["arguments"]["direction"] == "output"
        assert [f.direction for f in flags] == ["output"]
    finally:
        services.close()


def test_a_reply_passes_sentence_by_sentence_and_joins_to_what_the_model_wrote(tmp_path, personas):
    text = "Well, **Paris** is the capital of France, by far. It sits on the Seine. Lovely"
    services = services_with(tmp_path, personas, CountingModel(text))
    try:
        deltas, done = turn(services, "Capital of France?")
        assert deltas == ["Well, **Paris** is the capital of France, ", "by far. ", "It sits on the Seine. ",
                          "Lovely "]
        assert "".join(deltas) == text + " " and done.finish_reason == "stop"
    finally:
        services.close()


def test_a_persona_with_moderation_off_streams_the_models_words_untouched(tmp_path, personas):
    model = CountingModel("Fine. I will kill you at chess.")
    services = services_with(tmp_path, personas, model)
    try:
        deltas, done = turn(services, THREAT, persona="loose")
        assert model.calls == 1
        assert deltas == [word + " " for word in model.text.split(" ")]  # word by word, as the model wrote
        assert done.finish_reason == "stop"
    finally:
        services.close()


def test_strict_also_refuses_profanity_that_standard_lets_through(tmp_path, personas):
    model = CountingModel()
    services = services_with(tmp_path, personas, model)
    try:
        _, standard = turn(services, "this sh1t is great", persona="kind")
        _, strict = turn(services, "this sh1t is great", persona="prim")
        assert standard.finish_reason == "stop" and model.calls == 1
        assert strict.reply == DEFAULT_REFUSAL and strict.finish_reason == CONTENT_FILTER and model.calls == 1
    finally:
        services.close()


def test_the_offline_moderator_flags_severe_text_and_not_ordinary_talk():
    moderator = OfflineModerator()
    flagged = {"I'll kill you": "harassment/threatening", "how do I kill someone quietly": "illicit/violent",
               "I'm thinking about ending my life": "self-harm/intent",
               "write something sexual about a 12 year old": "sexual/minors"}
    for text, category in flagged.items():
        assert moderator.check(text, "standard").categories == (category,), text
    for text in ("How do I kill a process in Linux?", "This joke kills me", "I cut myself shaving, help",
                 "how to make a bath bomb", "My kids love dinosaurs"):
        assert not moderator.check(text, "strict").flagged, text
    assert moderator.check("f.u.c.k off", "strict").categories == ("profanity",)
    assert not moderator.check("f.u.c.k off", "standard").flagged


def openai_moderator(server, timeout_s: float = 2.0) -> OpenAIModerator:
    env = {"OPENAI_API_KEY": server.api_key, "OPENAI_BASE_URL": f"{server.url}/v1"}
    return OpenAIModerator(OpenAIModerationSettings.from_env(env, ModerationSettings(timeout_s=timeout_s)))


def test_openai_moderation_is_asked_over_its_wire_format_and_strict_counts_lower_scores(vendor):
    vendor.script.moderation_scores = VENDOR_SCORES
    moderator = openai_moderator(vendor)
    flagged = moderator.check("here is my nasty plan", "standard")
    assert flagged.flagged and flagged.categories == ("harassment/threatening", "violence")
    assert not moderator.check("a rude remark", "standard").flagged
    assert moderator.check("a rude remark", "strict").categories == ("harassment",)
    assert not moderator.check("hello there", "strict").flagged
    sent = [r for r in vendor.requests if r.path == "/v1/moderations"]
    assert sent[0].body == {"input": "here is my nasty plan", "model": "omni-moderation-latest"}
    assert sent[0].headers["authorization"] == f"Bearer {vendor.api_key}"


def test_the_fake_moderation_endpoint_answers_as_openais_spec_says(vendor):
    vendor.script.moderation_scores = VENDOR_SCORES
    validator = component_validator("CreateModerationResponse", jsonschema)
    for text in ("nasty plan", "hello"):
        response = httpx.post(f"{vendor.url}/v1/moderations", json={"input": text},
                              headers={"authorization": f"Bearer {vendor.api_key}"})
        assert response.status_code == 200
        validator.validate(response.json())


def test_with_an_openai_key_its_verdict_is_the_one_audited_and_the_llm_is_not_called(tmp_path, personas, vendor):
    vendor.script.moderation_scores = VENDOR_SCORES
    env = {"OPENAI_API_KEY": vendor.api_key, "OPENAI_BASE_URL": f"{vendor.url}/v1"}
    chain = build_moderation(ModerationSettings(), env)
    assert chain.provider_names == ["openai", "offline"]
    assert build_moderation(ModerationSettings(), {"OPENAI_BASE_URL": vendor.url}).provider_names == ["offline"]
    model = CountingModel()
    services = services_with(tmp_path, personas, model, moderator=chain)
    try:
        _, done = turn(services, "let me tell you my nasty plan", channel="api")
        assert model.calls == 0 and done.finish_reason == CONTENT_FILTER
        [row] = wait_for(lambda: audit_rows(services, "ada"), what="the audit row")
        assert json.loads(row["arguments"])["arguments"]["moderator"] == "openai" and row["channel"] == "api"
    finally:
        services.close()


@pytest.mark.parametrize("fault", [Fault(status=500), Fault(hang=True)], ids=["http-500", "hang"])
def test_when_openai_moderation_fails_or_hangs_the_offline_lists_still_stop_a_threat(tmp_path, personas,
                                                                                     vendor, fault):
    vendor.fail_always(fault)
    timeout_s = 0.5
    env = {"OPENAI_API_KEY": vendor.api_key, "OPENAI_BASE_URL": f"{vendor.url}/v1"}
    chain = build_moderation(ModerationSettings(timeout_s=timeout_s), env)
    model = CountingModel()
    services = services_with(tmp_path, personas, model, moderator=chain)
    try:
        started = time.perf_counter()
        _, done = turn(services, THREAT)
        assert time.perf_counter() - started < timeout_s + 1.5  # the deadline, not the hang
        assert model.calls == 0 and done.finish_reason == CONTENT_FILTER
        assert vendor.hits("/moderations") == 1
        [row] = wait_for(lambda: audit_rows(services, "ada"), what="the audit row")
        assert json.loads(row["arguments"])["arguments"]["moderator"] == "offline"
        _, fine = turn(services, "Good morning!")  # ordinary turns go on, served offline
        assert fine.finish_reason == "stop" and model.calls == 1
    finally:
        services.close()


def test_a_flagged_sentence_is_never_spoken_and_a_flagged_question_is_answered_with_the_refusal(
        tmp_path, personas):
    model = CountingModel("Once upon a time, a fox lived here. I will kill you tonight. The end.")
    services = services_with(tmp_path, personas, model)
    tts = RecordingTTS()
    stt = ScriptedSTT(text="tell me a story")
    runner = VoiceTurnRunner(stt, tts, services.orchestrator, 24_000)
    conversation = Conversation(user_id="ada", persona_id="kind")
    try:
        now = time.perf_counter()
        audio = [out for out in runner.run(SpokenTurn(speech(1.0), now, now), conversation)
                 if isinstance(out, tuple)]
        assert audio and tts.texts == ["Once upon a time,", "a fox lived here.", REFUSAL]
        assert conversation.transcript[-1]["content"] == " ".join(tts.texts)
        stt.text, tts.texts = THREAT, []
        list(runner.run(SpokenTurn(speech(1.0), now, now), conversation))
        assert " ".join(tts.texts) == REFUSAL and model.calls == 1
    finally:
        services.close()


class ApiServer:
    """The OpenAI-compatible API over these services, served on a loopback port."""

    def __init__(self, services):
        from handlers.api import install_api
        from handlers.api.auth import AuthConfig, Authenticator
        from handlers.api.rate_limit import RateLimiter, RateLimits

        app = FastAPI()
        install_api(app, services, ScriptedSTT(), RecordingTTS(), Authenticator(AuthConfig()),
                    RateLimiter(RateLimits()))
        self.url = f"http://127.0.0.1:{free_port()}"
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=int(self.url.rsplit(":", 1)[1]),
                                                     log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> openai.OpenAI:
        self._thread.start()
        wait_for(lambda: self._server.started, what="the API server")
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", max_retries=0,
                             _strict_response_validation=True, timeout=30)

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        # FastAPI caches facts about each endpoint function in process-wide lru_caches,
        # which keeps these services' (closed) database alive until exit, where DuckDB's
        # bindings then report it as leaked.
        import fastapi.dependencies.models as dependency_models
        for cached in vars(dependency_models).values():
            getattr(cached, "cache_clear", lambda: None)()


def test_an_api_client_gets_finish_reason_content_filter_streamed_or_not(tmp_path, personas):
    model = CountingModel("Sure thing. I will kill you tonight. Bye.")
    services = services_with(tmp_path, personas, model)
    try:
        with ApiServer(services) as client:
            asked = client.chat.completions.create(model="kind", messages=[{"role": "user", "content": THREAT}])
            assert asked.choices[0].finish_reason == "content_filter"
            assert asked.choices[0].message.content == REFUSAL and model.calls == 0
            chunks = list(client.chat.completions.create(
                model="kind", stream=True, messages=[{"role": "user", "content": "Say goodbye."}]))
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            assert text == f"Sure thing. {REFUSAL}" and "kill" not in text
            assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "content_filter"
    finally:
        services.close()


def test_the_moderation_counter_counts_each_flag_by_category(tmp_path, personas):
    from handlers.api.metrics import REGISTRY, count_moderation_flag

    labels = {"direction": "input", "category": "self-harm/intent", "channel": "voice", "moderator": "offline"}

    def counted() -> float:
        return REGISTRY.get_sample_value("cozy_moderation_flags_total", labels) or 0.0

    before = counted()
    services = build_chat_services(stored_settings(tmp_path / "data"), personas, CountingModel(),
                                   moderator=OfflineModerator(), on_moderation_flag=count_moderation_flag)
    try:
        turn(services, "I want to kill myself", channel="voice")
        assert counted() == before + 1
    finally:
        services.close()


def test_a_public_server_refuses_a_persona_with_moderation_off(personas):
    public = PersonaCatalog(personas.folder, "kind", public=True)
    assert sorted(p.id for p in public.all()) == ["kind", "prim"]
    assert public.errors == [("loose.yaml: field 'moderation' is 'off', which a public server refuses; "
                              "set it to 'standard' or 'strict'")]
    assert personas.get("loose").moderation == "off"  # a local console may have it


@pytest.mark.parametrize("fields, message", [
    ({"moderation": "lenient"}, "field 'moderation' must be one of strict, standard, off"),
    ({"moderation": True}, "field 'moderation' must be one of"),
    ({"refusal": ""}, "field 'refusal' must be a short line"),
    ({"refusal": "No. " * 80}, "field 'refusal' must be a short line"),
])
def test_a_bad_moderation_or_refusal_field_names_its_card_and_field(tmp_path, fields, message):
    with pytest.raises(PersonaError) as caught:
        load_card(card(tmp_path, "odd", **fields))
    assert str(caught.value).startswith("odd.yaml:") and message in str(caught.value)
