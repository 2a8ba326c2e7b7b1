"""Prices and per-user usage: a turn's record priced from the table, added to the
user's daily totals in a real DuckDB file, seen only by that user, erased with them."""
from __future__ import annotations

import pytest

from orchestrator.pricing import DEFAULT_PRICES, PriceTable, PriceTableError
from orchestrator.turn_record import TurnRecord
from storage.erasure import PersonalData
from storage.usage import UsageStore
from tests.conftest import new_store

pytestmark = pytest.mark.storage  # also run on PostgreSQL (make test)


def _record(tokens_in: int, tokens_out: int) -> TurnRecord:
    record = TurnRecord("api")
    record.add("llm", 0.4, provider="groq", model="llama-3.1-8b-instant", tokens_in=tokens_in, tokens_out=tokens_out)
    record.add("tts", 0.2, provider="elevenlabs", model="eleven_flash_v2_5", characters=40)
    record.add("stt", 0.1, provider="offline-whisper", model="tiny.en", audio_in_s=2.5)
    return record


@pytest.fixture()
def db(tmp_path):
    database = new_store(tmp_path)
    yield database
    database.close()


def test_the_shipped_price_table_loads_and_prices_each_stage_from_what_it_used():
    table = PriceTable.load(DEFAULT_PRICES)
    record = table.price(_record(1200, 300))
    llm, tts, stt = record.stages
    assert llm.cost_usd == pytest.approx(1200 * 0.05 / 1e6 + 300 * 0.08 / 1e6)
    assert tts.cost_usd == pytest.approx(40 * 50.0 / 1e6)
    assert stt.cost_usd == 0  # offline: not in the table, costs nothing


@pytest.mark.parametrize("text, named", [
    ("groq: {llama: {input_per_1m: cheap}}", "groq.llama.input_per_1m"),
    ("groq: {llama: {input_per_million: 1}}", "groq.llama.input_per_million"),
    ("groq: {llama: {output_per_1m: -1}}", "groq.llama.output_per_1m"),
    ("groq: [llama]", "groq"),
    ("groq: {llama: {input_per_1m: [}", "cannot read"),
])
def test_a_bad_price_table_is_refused_naming_the_file_and_the_field(tmp_path, text, named):
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(PriceTableError) as caught:
        PriceTable.load(path)
    assert str(path) in str(caught.value) and named in str(caught.value)


def test_usage_adds_up_per_day_provider_and_model_and_only_its_owner_sees_it(db):
    table, usage = PriceTable.load(), UsageStore(db)
    first, second = table.price(_record(1000, 200)), table.price(_record(500, 50))
    usage.add("ada", first)
    usage.add("ada", second)
    usage.add("bob", table.price(_record(7, 7)))
    rows = {(r["provider"], r["model"]): r for r in usage.rows("ada")}
    assert set(rows) == {("groq", "llama-3.1-8b-instant"), ("elevenlabs", "eleven_flash_v2_5"),
                         ("offline-whisper", "tiny.en")}
    llm = rows[("groq", "llama-3.1-8b-instant")]
    assert (llm["input_tokens"], llm["output_tokens"]) == (1500, 250)
    assert llm["cost_usd"] == pytest.approx(first.stages[0].cost_usd + second.stages[0].cost_usd)
    assert rows[("elevenlabs", "eleven_flash_v2_5")]["characters"] == 80
    assert rows[("offline-whisper", "tiny.en")]["audio_seconds_in"] == pytest.approx(5.0)
    assert usage.spent_today("ada")[0] == 1750
    assert all(r["input_tokens"] == 7 for r in usage.rows("bob") if r["provider"] == "groq")
    assert usage.rows("dee") == []


def test_forget_me_erases_the_usage_too_and_no_one_elses(db):
    table, usage = PriceTable.load(), UsageStore(db)
    usage.add("ada", table.price(_record(10, 10)))
    usage.add("bob", table.price(_record(10, 10)))
    assert PersonalData(db).shown("ada")["usage"]
    erased = PersonalData(db).erase("ada")
    assert erased["erased"]["usage_daily"] == 3
    assert usage.rows("ada") == [] and usage.rows("bob")
