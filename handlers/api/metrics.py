"""Prometheus metrics, one registry for the whole process, served at /metrics."""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.requests import Request
from starlette.responses import Response

from orchestrator.turn_record import TurnRecord

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_REQUESTS = Counter("cozy_http_requests_total", "HTTP requests by route and status",
                        ["route", "method", "status"], registry=REGISTRY)
HTTP_LATENCY = Histogram("cozy_http_request_seconds", "HTTP request latency by route (to the last byte)",
                         ["route", "method"], registry=REGISTRY,
                         buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
# From each turn's record (orchestrator/turn_record.py), every channel alike. Labels are
# stage names, channels, and the providers and models the configuration names: never users.
TURN_STAGE = Histogram("cozy_turn_stage_seconds", "Time per stage of a turn, by who served it",
                       ["stage", "channel", "provider", "model"], registry=REGISTRY,
                       buckets=(0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10))
TURN_FALLBACKS = Counter("cozy_turn_fallbacks_total", "Providers that failed a turn's call before another served it",
                         ["stage", "provider", "kind"], registry=REGISTRY)
CONTEXT_DEGRADED = Counter("cozy_context_degraded_total", "Context engines that timed out or failed in a turn",
                           ["engine", "outcome"], registry=REGISTRY)
TURN_TOKENS = Counter("cozy_turn_tokens_total", "Model tokens, as the vendor (or the local tokenizer) counted them",
                      ["direction", "provider", "model"], registry=REGISTRY)
TURN_COST = Counter("cozy_turn_cost_usd_total", "What turns cost in USD, priced from the price table (COZY_PRICES)",
                    ["provider", "model"], registry=REGISTRY)
TURN_TOOL_CALLS = Counter("cozy_turn_tool_calls_total", "Tool calls the model made in turns, by outcome",
                          ["channel", "outcome"], registry=REGISTRY)
VOICE_SESSIONS = Gauge("cozy_voice_sessions_active", "Open voice connections", registry=REGISTRY)
LOCAL_QUEUE_WAIT = Histogram("cozy_local_queue_wait_seconds", "Time a request waited for a local model",
                             ["queue"], registry=REGISTRY,
                             buckets=(0.01, 0.1, 0.5, 1, 2, 5, 10, 20, 30, 60, 90))
TOOL_CALLS = Counter("cozy_tool_calls_total", "Tool calls by decision", ["tool", "decision"], registry=REGISTRY)
MODERATION_FLAGS = Counter("cozy_moderation_flags_total", "Texts flagged by moderation, one per category",
                           ["direction", "category", "channel", "moderator"], registry=REGISTRY)


class ProviderChainCollector:
    """Reads the fallback chains' own counters at scrape time: calls, failures and
    breaker state per provider, without the chains knowing about Prometheus."""

    def __init__(self, chains: dict[str, object]):
        self.chains = chains  # modality -> a fallback adapter (or a plain provider)

    def collect(self):
        calls = CounterMetricFamily("cozy_provider_calls", "Provider calls by outcome",
                                    labels=["modality", "provider", "outcome"])
        breaker = GaugeMetricFamily("cozy_breaker_state", "Circuit breaker: 0 closed, 1 half-open, 2 open",
                                    labels=["modality", "provider"])
        levels = {"closed": 0, "half-open": 1, "open": 2}
        for modality, chain in self.chains.items():
            for provider, counters in getattr(chain, "stats", dict)().items():
                for outcome, value in counters.items():
                    calls.add_metric([modality, provider, outcome], value)
            for provider, state in getattr(chain, "breaker_states", dict)().items():
                breaker.add_metric([modality, provider], levels.get(state, 0))
        yield calls
        yield breaker


class CountingAuditSink:
    """Counts tool calls by decision on the way to the real audit sink."""

    def __init__(self, inner):
        self.inner = inner

    def record(self, event) -> None:
        TOOL_CALLS.labels(event.tool, event.decision).inc()
        self.inner.record(event)


class LocalQueueCollector:
    """Requests waiting for each local model, and those refused because its queue was full."""

    def __init__(self, queues: dict[str, object]):
        self.queues = queues

    def collect(self):
        waiting = GaugeMetricFamily("cozy_local_queue_waiting", "Requests waiting for a local model",
                                    labels=["queue"])
        refused = CounterMetricFamily("cozy_local_queue_refused", "Requests refused: the queue was full",
                                      labels=["queue"])
        for queue in self.queues.values():
            stats = queue.stats()
            waiting.add_metric([queue.name], stats.waiting)
            refused.add_metric([queue.name], stats.refused)
        yield waiting
        yield refused


def count_moderation_flag(flag) -> None:
    """The orchestrator's `on_flag` hook (an orchestrator.moderation.ModerationFlag)."""
    for category in flag.categories or ("unspecified",):
        MODERATION_FLAGS.labels(flag.direction, category, flag.channel, flag.moderator).inc()


def observe_queue_wait(queue: str, seconds: float) -> None:
    LOCAL_QUEUE_WAIT.labels(queue).observe(seconds)


_collectors: dict[str, object] = {}


def _replace_collector(kind: str, collector: object) -> None:
    """Register a scrape-time collector, replacing the one of its kind registered before."""
    if kind in _collectors:
        REGISTRY.unregister(_collectors[kind])
    _collectors[kind] = collector
    REGISTRY.register(collector)


def register_local_queues(queues: dict[str, object]) -> None:
    _replace_collector("local_queues", LocalQueueCollector(queues))


def register_provider_chains(chains: dict[str, object]) -> None:
    """Export these chains' counters (replacing chains registered before)."""
    _replace_collector("provider_chains", ProviderChainCollector(chains))


def observe_turn_record(record: TurnRecord) -> None:
    """The orchestrator's `on_record` hook: one finished turn's record (any channel)."""
    for stage in record.stages:
        TURN_STAGE.labels(stage.name, record.channel, stage.provider, stage.model).observe(stage.seconds)
        for fallback in stage.fallbacks:
            TURN_FALLBACKS.labels(stage.name, fallback.provider, fallback.kind).inc()
        if stage.name.startswith("context_") and stage.outcome != "ok":
            CONTEXT_DEGRADED.labels(stage.name.removeprefix("context_"), stage.outcome).inc()
        if stage.tokens_in:
            TURN_TOKENS.labels("in", stage.provider, stage.model).inc(stage.tokens_in)
        if stage.tokens_out:
            TURN_TOKENS.labels("out", stage.provider, stage.model).inc(stage.tokens_out)
        if stage.cost_usd:
            TURN_COST.labels(stage.provider, stage.model).inc(stage.cost_usd)
        if stage.name == "tool":
            TURN_TOOL_CALLS.labels(record.channel, stage.outcome).inc()


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
