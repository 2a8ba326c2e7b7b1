"""A local OpenTelemetry collector, as far as OTLP/HTTP traces go: `POST /v1/traces` with a
protobuf ExportTraceServiceRequest; keeps the spans it was sent."""
from __future__ import annotations

import threading

from fastapi import FastAPI, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                      ExportTraceServiceResponse)

from tests.fakes.loopback import LoopbackServer


class FakeCollector:
    def __init__(self):
        self.spans: list = []  # opentelemetry.proto.trace.v1.Span messages
        self._lock = threading.Lock()
        self.app = FastAPI()
        self.app.post("/v1/traces")(self._traces)
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _traces(self, request: Request) -> Response:
        body = ExportTraceServiceRequest.FromString(await request.body())
        with self._lock:
            for resource_spans in body.resource_spans:
                for scope_spans in resource_spans.scope_spans:
                    self.spans.extend(scope_spans.spans)
        return Response(ExportTraceServiceResponse().SerializeToString(), media_type="application/x-protobuf")

    def received(self) -> list:
        with self._lock:
            return list(self.spans)

    def __enter__(self) -> "FakeCollector":
        self._loopback = LoopbackServer(self.app, "FakeCollector").start()
        self.port = self._loopback.port
        return self

    def __exit__(self, *exc: object) -> None:
        self._loopback.stop()
