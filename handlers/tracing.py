"""OpenTelemetry traces of turns: a trace per turn, a span per stage of its record.

Only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the SDK's own variables configure the
rest: `OTEL_SERVICE_NAME`, headers, `OTEL_BSP_SCHEDULE_DELAY`...); otherwise there is no
tracer and a turn costs nothing more. Spans are made from the finished record, so the
channels and the orchestrator need no tracing code: each stage is added to the record as
it ends, with its duration, which gives the span its start and end.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from orchestrator.turn_record import Stage, TurnRecord

log = logging.getLogger(__name__)

FAILED_OUTCOMES = {"failed", "timeout"}


class TurnTracer:
    def __init__(self, provider: Any):
        from opentelemetry import trace

        self._trace = trace
        self._provider = provider
        self._tracer = provider.get_tracer("cozyengine")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "TurnTracer | None":
        if not environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME",
                                                                                         "cozyengine")}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # endpoint from the environment
        log.info("tracing turns to %s", environ["OTEL_EXPORTER_OTLP_ENDPOINT"])
        return cls(provider)

    def export(self, record: TurnRecord) -> None:
        """One finished turn: a `turn` span over every stage, and a child span per stage."""
        if not record.stages:
            return
        whole = record.first("turn")
        start = min(_start_ns(s) for s in record.stages)
        end = max(_end_ns(s) for s in record.stages)
        root = self._tracer.start_span("turn", start_time=start, attributes={
            "cozy.channel": record.channel, "gen_ai.usage.input_tokens": record.tokens_in,
            "gen_ai.usage.output_tokens": record.tokens_out, "cozy.cost_usd": record.cost_usd})
        context = self._trace.set_span_in_context(root)
        for stage in record.stages:
            if stage is whole:
                continue
            span = self._tracer.start_span(stage.name, context=context, start_time=_start_ns(stage),
                                           attributes=_attributes(stage))
            if stage.outcome in FAILED_OUTCOMES:
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, stage.outcome))
            span.end(end_time=_end_ns(stage))
        root.end(end_time=end)

    def shutdown(self) -> None:
        """Send what is still batched (at exit)."""
        self._provider.shutdown()


def _start_ns(stage: Stage) -> int:
    return int((stage.ended_at - stage.seconds) * 1e9)


def _end_ns(stage: Stage) -> int:
    return int(stage.ended_at * 1e9)


def _attributes(stage: Stage) -> dict[str, Any]:
    facts = {"cozy.provider": stage.provider, "cozy.model": stage.model, "cozy.outcome": stage.outcome,
             "cozy.detail": stage.detail, "gen_ai.usage.input_tokens": stage.tokens_in,
             "gen_ai.usage.output_tokens": stage.tokens_out, "cozy.audio_in_s": stage.audio_in_s,
             "cozy.audio_out_s": stage.audio_out_s, "cozy.characters": stage.characters,
             "cozy.cost_usd": stage.cost_usd or None,
             "cozy.fallbacks": [f"{f.provider}: {f.kind}" for f in stage.fallbacks] or None}
    return {key: value for key, value in facts.items() if value not in (None, "")}
