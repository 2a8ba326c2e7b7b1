"""The OpenAI-compatible HTTP API and the plumbing every HTTP request goes through."""
from __future__ import annotations

from fastapi import FastAPI

from handlers.api.audio_routes import build_audio_router
from handlers.api.auth import Authenticator
from handlers.api.body_limit import BodyLimitMiddleware
from handlers.api.catalog_routes import build_catalog_router
from handlers.api.chat_completions import build_chat_router
from handlers.api.errors import CATCH_ALL_PATH, UnknownV1Route, install_error_handlers
from handlers.api.openapi import install_openapi
from handlers.api.rate_limit import RateLimiter
from handlers.api.persona_routes import build_persona_router
from handlers.api.usage_routes import build_usage_router
from handlers.api.metrics import metrics_endpoint
from handlers.api.request_id import RequestIdMiddleware
from orchestrator.services import ChatServices
from personas.editor import PersonaEditor
from providers.base import SpeechToText, TextToSpeech


def install_api(app: FastAPI, services: ChatServices, stt: SpeechToText, tts: TextToSpeech,
                authenticator: Authenticator, limiter: RateLimiter) -> None:
    install_error_handlers(app)
    app.include_router(build_chat_router(services, authenticator, limiter), tags=["chat"])
    app.include_router(build_audio_router(stt, tts, authenticator, limiter), tags=["audio"])
    app.include_router(build_catalog_router(services, authenticator, limiter), tags=["catalog"])
    app.include_router(build_usage_router(services.usage, authenticator, limiter), tags=["usage"])
    app.include_router(build_persona_router(PersonaEditor(services.orchestrator.personas), authenticator, limiter),
                       tags=["catalog"])
    # After every /v1 route and before anything mounted at "/", which would answer in its own shape.
    app.add_route(CATCH_ALL_PATH, UnknownV1Route(), include_in_schema=False)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    install_openapi(app, (p.id for p in services.orchestrator.personas.all()), authenticator.config.enabled)
    # Outermost last: the request id wraps everything, including the size check.
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(RequestIdMiddleware)
