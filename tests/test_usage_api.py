"""GET /v1/usage and daily budgets, through the real API with the real `openai` SDK as
client, against the fake OpenAI vendor (which reports known `usage`)."""
from __future__ import annotations

import json

import openai
import pytest
from starlette.testclient import TestClient

from config import Settings, UsageSettings
from fastapi import FastAPI
from handlers.api import install_api
from handlers.api.auth import AuthConfig, Authenticator
from handlers.api.rate_limit import RateLimiter, RateLimits
from handlers.api.metrics import REGISTRY, observe_turn_record
from orchestrator.pricing import PriceTable
from orchestrator.services import build_chat_services
from personas.cards import PersonaCatalog
from providers.moderation.offline import OfflineModerator
from orchestrator.turns import TurnRequest
from space.typed_turn import run_typed_turn, start_chat
from tests.conftest import ROOT
from tests.fakes.providers import RecordingTTS, ScriptedSTT, openai_llm

pytestmark = pytest.mark.storage  # also run on PostgreSQL (make test)

pytest_plugins = ["tests.fakes.fixtures"]  # the fake vendor servers

KEYS = {"key-ada": "ada", "key-bob": "bob", "key-root": "root"}
PRICES = "openai:\n  gpt-4.1-mini: {input_per_1m: 0.40, output_per_1m: 1.60}\n"


def api(vendor, tmp_path, **usage):
    prices = tmp_path / "prices.yaml"
    prices.write_text(PRICES)
    settings = Settings(data_dir=tmp_path, usage=UsageSettings(prices_path=prices, **usage))
    services = build_chat_services(settings, PersonaCatalog(ROOT / "personas", "concise"), openai_llm(vendor),
                                   moderator=OfflineModerator(), on_record=observe_turn_record)
    app = FastAPI()
    install_api(app, services, ScriptedSTT(), RecordingTTS(),
                Authenticator(AuthConfig(KEYS, admins=frozenset({"root"}))), RateLimiter(RateLimits()))
    return services, TestClient(app)


def sdk(http: TestClient, key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url="http://testserver/v1", http_client=http, max_retries=0)


def ask(client: openai.OpenAI, words: str):
    return client.chat.completions.create(model="concise", messages=[{"role": "user", "content": words}])


def usage_of(http: TestClient, key: str, **params):
    return http.get("/v1/usage", params=params, headers={"authorization": f"Bearer {key}"})


def cost_counted() -> float:
    return REGISTRY.get_sample_value("cozy_turn_cost_usd_total", {"provider": "openai", "model": "gpt-4.1-mini"}) or 0.0


def test_usage_totals_are_the_vendors_counts_and_cost_is_the_price_table_applied(vendor, tmp_path):
    services, http = api(vendor, tmp_path)
    counted_before = cost_counted()
    with http:
        replies = [ask(sdk(http, "key-ada"), words) for words in ("Hello there.", "What is tea made of, please?")]
        response = usage_of(http, "key-ada")
    stored = services.db.read("SELECT metadata FROM messages WHERE user_id = 'ada' AND role = 'assistant'")
    services.close()
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list"
    [row] = [r for r in body["data"] if r["provider"] == "openai"]
    tokens_in = sum(r.usage.prompt_tokens for r in replies)
    tokens_out = sum(r.usage.completion_tokens for r in replies)
    assert (row["model"], row["input_tokens"], row["output_tokens"]) == ("gpt-4.1-mini", tokens_in, tokens_out)
    rates = PriceTable.load(tmp_path / "prices.yaml").rates_for("openai", "gpt-4.1-mini")
    assert row["cost_usd"] == pytest.approx(tokens_in * rates.input_per_1m / 1e6 + tokens_out * rates.output_per_1m / 1e6)
    assert cost_counted() - counted_before == pytest.approx(row["cost_usd"])  # /metrics counts the same
    # Each reply is stored with its record priced: the same money as the day's total.
    stored_cost = sum(stage.get("cost_usd") or 0 for (metadata,) in stored for stage in json.loads(metadata)["record"]["stages"])
    assert len(stored) == 2 and stored_cost == pytest.approx(row["cost_usd"]) and stored_cost > 0


def test_another_users_usage_is_invisible_and_only_an_admin_may_ask_for_it(vendor, tmp_path):
    services, http = api(vendor, tmp_path)
    with http:
        ask(sdk(http, "key-ada"), "Hello there.")
        bob_own = usage_of(http, "key-bob")
        bob_asks = usage_of(http, "key-bob", user="ada")
        admin_asks = usage_of(http, "key-root", user="ada")
    services.close()
    assert bob_own.status_code == 200 and bob_own.json()["data"] == []
    assert bob_asks.status_code == 403 and bob_asks.json()["error"]["param"] == "user"
    assert admin_asks.status_code == 200 and admin_asks.json()["data"][0]["input_tokens"] > 0


def test_a_daily_token_budget_turns_the_next_request_into_a_429(vendor, tmp_path):
    services, http = api(vendor, tmp_path, daily_budget_tokens=1)
    with http:
        ask(sdk(http, "key-ada"), "Hello there.")  # within budget when it starts; it uses it up
        with pytest.raises(openai.RateLimitError) as refused:
            ask(sdk(http, "key-ada"), "And again?")
        ask(sdk(http, "key-bob"), "Hello there.")  # budgets are per user
    services.close()
    error = refused.value.body
    assert error["code"] == "insufficient_quota" and "budget of 1 tokens" in error["message"]


def test_over_budget_a_typed_page_turn_is_told_why_and_the_model_is_not_asked(vendor, tmp_path):
    services, http = api(vendor, tmp_path, daily_budget_tokens=1)
    with http:
        ask(sdk(http, "key-ada"), "Hello there.")  # uses up Ada's budget
    calls_before = vendor.hits("/chat/completions")
    request = TurnRequest(text="What is tea made of?", user_id="ada", persona_id="concise", channel="text")
    chat = start_chat([], request.text, "Concise")
    updates = list(run_typed_turn(services.orchestrator, request, chat, "Concise", "model", lambda _: None))
    sessions = services.db.read("SELECT count(*) FROM sessions WHERE user_id = 'ada'")[0][0]
    services.close()
    shown = updates[-1].chat[-1]["content"]
    assert "budget of 1 tokens" in shown and "midnight UTC" in shown, shown
    assert updates[-1].done and vendor.hits("/chat/completions") == calls_before  # no paid call for a refused turn
    assert sessions == 1  # the refused turn left no empty conversation behind
