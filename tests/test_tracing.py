"""With OTEL_EXPORTER_OTLP_ENDPOINT set, each turn is a trace: a `turn` span and one per stage."""
from __future__ import annotations

import time

import openai
import pytest

from config import Settings
from handlers.tracing import TurnTracer
from providers import model_files
from tests.conftest import isolated_env, start_app, stop_app
from tests.fakes.otlp_collector import FakeCollector


@pytest.fixture(scope="module")
def collector():
    with FakeCollector() as running:
        yield running


@pytest.fixture(scope="module")
def traced_app(tmp_path_factory, collector):
    folder = tmp_path_factory.mktemp("traced-app")
    fast = model_files.resolve("smollm2-135m", Settings.from_env().models_dir)
    app = start_app(folder, {**isolated_env(folder / "data"), "COZY_LLM": "smollm2-135m", "COZY_LLM_PATH": str(fast),
                             "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "200",
                             "OTEL_SERVICE_NAME": "cozy-test"})
    yield app
    stop_app(app)


def wait_for_spans(collector, predicate, timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        spans = collector.received()
        if predicate(spans):
            return spans
        time.sleep(0.1)
    raise AssertionError(f"spans never arrived: {[s.name for s in collector.received()]}")


def attributes(span) -> dict:
    values = {}
    for item in span.attributes:
        value = item.value
        values[item.key] = next(getattr(value, kind) for kind in ("string_value", "int_value", "double_value",
                                                                   "bool_value") if value.HasField(kind))
    return values


def test_an_api_turn_is_one_trace_with_a_span_per_stage(traced_app, collector):
    client = openai.OpenAI(base_url=f"{traced_app.base_url}/v1", api_key="unused", max_retries=0, timeout=120)
    reply = client.chat.completions.create(model="concise", messages=[{"role": "user", "content": "Say hello."}])
    assert reply.choices[0].message.content
    spans = wait_for_spans(collector, lambda spans: any(s.name == "turn" for s in spans))
    [turn] = [s for s in spans if s.name == "turn"]
    children = [s for s in spans if s.trace_id == turn.trace_id and s.name != "turn"]
    assert {s.parent_span_id for s in children} == {turn.span_id}
    names = {s.name for s in children}
    assert {"context", "llm_first_token", "llm"} <= names, names
    assert attributes(turn)["cozy.channel"] == "api"
    [llm] = [s for s in children if s.name == "llm"]
    llm_facts = attributes(llm)
    assert llm_facts["cozy.model"] and llm_facts["cozy.outcome"] == "ok" and llm_facts["gen_ai.usage.output_tokens"] > 0
    for span in children:  # each stage lies within its turn
        assert turn.start_time_unix_nano <= span.start_time_unix_nano <= span.end_time_unix_nano
        assert span.end_time_unix_nano <= turn.end_time_unix_nano


def test_without_an_endpoint_there_is_no_tracer():
    assert TurnTracer.from_env({}) is None
