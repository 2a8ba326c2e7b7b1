"""CozyEngine composition root: read config, build the parts, wire them, serve.

`python app.py` serves on 127.0.0.1:7860: the Gradio UI at `/`, the voice Stream
under `/voice` (WebRTC, websocket and telephone routes), the OpenAI-compatible API
under `/v1`, `/metrics` and `/healthz`. `uvicorn app:app` works too; the models
load when the module is imported.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable
from typing import Any
from contextlib import asynccontextmanager
from dataclasses import replace

# Belt and braces: nothing in this process may reach for a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
from fastapi import FastAPI  # noqa: E402

from config import Settings  # noqa: E402
from handlers.api import install_api  # noqa: E402
from handlers.api.auth import LOCAL_USER, AuthConfig, Authenticator, check_bind_address  # noqa: E402
from handlers.voice.ice_servers import rtc_configuration  # noqa: E402
from handlers.visitor_limits import VisitorLimiter  # noqa: E402
from handlers.visitors import BrowserIdentity, VisitorCookieMiddleware, VisitorCookies  # noqa: E402
from handlers.warming_up import WarmingUp  # noqa: E402
from handlers.draining import Drain, draining_server  # noqa: E402
from handlers.api.rate_limit import RateLimiter, RateLimits  # noqa: E402
from handlers.http_routes import build_routes  # noqa: E402
from handlers.api.metrics import (VOICE_SESSIONS, CountingAuditSink, count_moderation_flag,  # noqa: E402
                              observe_queue_wait, observe_turn_record, register_local_queues,
                              register_provider_chains)
from handlers.api.request_id import configure_logging  # noqa: E402
from handlers.voice.stream import build_voice_stream  # noqa: E402
from handlers.voice.end_of_turn import EndOfTurnJudge  # noqa: E402
from handlers.realtime.responder import Responder  # noqa: E402
from handlers.realtime.route import build_realtime_router  # noqa: E402
from handlers.voice.turn import VoiceTurnRunner, greeting_audio  # noqa: E402
from handlers.voice.identity import VoiceIdentities, VoiceTokens, load_secret  # noqa: E402
from handlers.voice.replica_routes import VoiceRoutes  # noqa: E402
from handlers.voice.slots import VoiceSlots, guard_webrtc_offers, on_connection_end  # noqa: E402
from handlers.voice.websocket_guard import build_guard_routes  # noqa: E402
from handlers.phone.telephone import PhoneLine, build_telephone_routes  # noqa: E402
from handlers.phone.fastphone import start_fastphone  # noqa: E402
from handlers.tracing import TurnTracer  # noqa: E402
from orchestrator.services import build_chat_services  # noqa: E402
from personas.cards import PersonaCatalog  # noqa: E402
from providers.chains import PersonaModels, build_chains  # noqa: E402
from providers.local_queue import FairQueue, QueuedChatModel, QueuedSTT, position_in_any  # noqa: E402
from providers.offline.loader import load_offline_models, local_models  # noqa: E402
from space.offline_assets import OfflinePageMiddleware  # noqa: E402
from space.ui import NO_TURN_NOTE, PageAccess, build_ui  # noqa: E402
from storage.audit import DuckDbAuditSink  # noqa: E402
from storage.redis_state import connect as connect_redis  # noqa: E402
from handlers.knowledge_mcp import KnowledgeEndpoint  # noqa: E402
from tools.config import ServerSpec, ToolSpec, load_config, with_state  # noqa: E402
from tools.gateway import ToolGateway  # noqa: E402
from tools.runner import GatewayToolRunner  # noqa: E402
from tools.servers.knowledge import build_knowledge_server  # noqa: E402

log = logging.getLogger("cozyengine")


def build_app(settings: Settings, progress: Callable[[str], None] = log.info, drain: Drain | None = None) -> FastAPI:
    personas = PersonaCatalog(settings.personas_dir, settings.default_persona, public=settings.public)
    # Replicas share limits, confirmations and the phrase cache through Redis (deploy/).
    shared = connect_redis(settings.redis_url) if settings.redis_url else None
    models = load_offline_models(settings, progress=progress)
    m = settings.models
    queues = {modality: FairQueue(f"{modality}:{model.name}", m.local_queue_max, m.local_queue_per_user,
                                  m.local_queue_max_wait_s, on_wait=observe_queue_wait)
              for modality, model in (("llm", models.llm), ("stt", models.stt))}
    register_local_queues(queues)
    llm, stt, tts = build_chains(os.environ, QueuedChatModel(models.llm, queues["llm"]),
                                 QueuedSTT(models.stt, queues["stt"]), models.tts,
                                 cache_dir=settings.data_dir / "cache" / "tts", redis=shared)
    tracer = TurnTracer.from_env()  # None unless OTEL_EXPORTER_OTLP_ENDPOINT is set

    def on_record(record) -> None:
        observe_turn_record(record)
        if tracer is not None:
            tracer.export(record)

    services = build_chat_services(settings, personas, llm, on_moderation_flag=count_moderation_flag,
                                   on_record=on_record)
    services.orchestrator.model_for = PersonaModels(os.environ, llm, local_models(settings, models.llm, queues["llm"]))
    audit = DuckDbAuditSink(services.db)
    knowledge_mcp = KnowledgeEndpoint(build_knowledge_server(services.knowledge.search))
    progress("starting tool servers")
    gateway = start_tools(settings, audit, knowledge_mcp.url(settings.port), shared)
    services.orchestrator.tools = GatewayToolRunner(gateway)
    services.personal_data.tool_servers = gateway  # "forget me" reaches the notes server's file too
    # The apology is made once, by the local voice: it must play when the chain is what broke.
    runner = VoiceTurnRunner(stt, tts, services.orchestrator, settings.voice.output_sample_rate,
                             apology_tts=models.tts, queue_position=position_in_any(queues["stt"], queues["llm"]),
                             early_reply=settings.voice.early_reply)
    if drain is not None:  # on SIGTERM, turns being thought or spoken are finished first
        drain.busy += [lambda: runner.in_flight.count > 0, lambda: services.orchestrator.in_flight.count > 0]
    progress("warming up the voice")
    runner.warmup()
    authenticator = Authenticator(AuthConfig.from_settings(settings.api), public=settings.public)
    # With API identities or visitors, voice connections carry one too (GET /voice/token).
    secret = load_secret(settings.secret, settings.data_dir) if settings.public or authenticator.config.enabled \
        else None
    limiter = VisitorLimiter(settings.visitor_limits, redis=shared) if settings.public else None
    # With replicas, each files the voice connections it holds, so their side routes find it.
    routes = VoiceRoutes(shared, settings.replica_url) if shared is not None and secret else None
    identities = VoiceIdentities(VoiceTokens(secret) if secret else None, limiter, routes)
    browser = BrowserIdentity(VisitorCookies(secret)) if settings.public else BrowserIdentity(None, LOCAL_USER)
    ice = rtc_configuration(settings.turn_servers)
    stream = build_voice_stream(runner, models.vad, settings.voice, personas.get(None).id, identities, ice,
                                end_of_turn=models.end_of_turn, personas=personas)
    services.orchestrator.warm(personas.get(None).id, "voice", models.llm)  # ~1 s: the first turn starts warm
    if settings.models.preload:
        models.preload_later()  # the multilingual Whisper and Kokoro, while the server starts answering
    register_provider_chains({"llm": llm, "stt": stt, "tts": getattr(tts, "inner", tts)})
    slots = VoiceSlots(settings.voice.concurrency_limit)
    guard_webrtc_offers(stream, slots)
    on_connection_end(stream, identities.forget)
    VOICE_SESSIONS.set_function(slots.open_count)
    model_names = {"vad": models.vad.name, "stt": " → ".join(getattr(stt, "provider_names", [stt.name])),
                   "llm": " → ".join(getattr(llm, "provider_names", [llm.name])),
                   "tts": " → ".join(getattr(getattr(tts, "inner", tts), "provider_names", [tts.name]))}

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        async with knowledge_mcp.running():
            yield
        log.info("shutting down: stopping tool servers, finishing memory updates, checkpointing")
        await asyncio.to_thread(gateway.stop)
        await asyncio.to_thread(services.close)
        if tracer is not None:
            await asyncio.to_thread(tracer.shutdown)
        if shared is not None:
            shared.close()

    app = FastAPI(title="CozyEngine", version="0.1.0", lifespan=lifespan)
    api_limits = RateLimiter(RateLimits.from_settings(settings.api), redis=shared)  # one per user, whichever route they call
    install_api(app, services, stt, tts, authenticator, api_limits)
    judge = EndOfTurnJudge(models.end_of_turn) if models.end_of_turn is not None else None
    app.include_router(build_realtime_router(personas, stt, Responder(services.orchestrator, tts), models.vad,
                                             judge, authenticator, api_limits, slots))
    app.mount(knowledge_mcp.path, knowledge_mcp.asgi)
    app.include_router(build_routes(stream, personas, model_names, slots, identities, authenticator, browser))
    # A phone caller is their number, kept as a keyed hash: the key is made once in data_dir.
    phone_line = PhoneLine(settings.phone, secret or load_secret(settings.secret, settings.data_dir),
                           personas.get(None).id, frozenset(p.id for p in personas.all()))
    app.include_router(build_telephone_routes(phone_line))
    # Before mount: these guarded routes win over FastRTC's own.
    app.include_router(build_guard_routes(stream, slots, identities, phone_line=phone_line,
                                          start_timeout_s=settings.api.voice_start_timeout_s))
    stream.mount(app, path="/voice")
    access = PageAccess(browser, identities, limiter, settings.visitor_limits.upload_bytes,
                        login_button=settings.hf_oauth,
                        voice_note=NO_TURN_NOTE if settings.public and ice is None else "",
                        queue_position=queues["llm"].position,
                        is_admin=lambda user: user in settings.api.admins or (
                            not settings.public and not authenticator.config.enabled and user == LOCAL_USER),
                        speak=lambda persona: greeting_audio(tts, persona, settings.voice.output_sample_rate))
    blocks = build_ui(stream, services, personas, model_names, gateway, audit, access,
                      guard_voice=lambda component: guard_webrtc_offers(component, slots))
    stream.ui = blocks
    if settings.phone.mode == "fastphone":
        start_fastphone(stream, settings.phone.hf_token, settings.port + 1)
    app.add_middleware(OfflinePageMiddleware)  # the page loads nothing from other servers
    if settings.public:
        app.add_middleware(VisitorCookieMiddleware, cookies=browser.cookies)
    # Mounted last: Gradio at "/" would otherwise shadow the routes above.
    return gr.mount_gradio_app(app, blocks, path="", max_file_size=settings.visitor_limits.upload_bytes)


def start_tools(settings: Settings, audit: DuckDbAuditSink, knowledge_url: str, redis: Any = None) -> ToolGateway:
    # Tool state lives beside the rest of the data, so one COZY_DATA_DIR moves everything.
    config = with_state(load_config(settings.tools.config_path), settings.tools, settings.data_dir, settings.db_url)
    # The knowledge server is served by this app, so it answers once the app is up;
    # the gateway's supervisor keeps retrying until then.
    knowledge = ServerSpec(name="knowledge", url=knowledge_url, start_timeout_s=5, share_identity=True,
                           vetted=True, tools={
        "knowledge_search": ToolSpec("knowledge_search", "read_only", timeout_s=5, max_result_bytes=8000)})
    gateway = ToolGateway(replace(config, servers=(*config.servers, knowledge)), audit=CountingAuditSink(audit),
                          redis=redis)
    log.info("starting tool servers")
    gateway.start(wait_s=10)
    for entry in gateway.catalog.entries():
        if not entry.enabled:
            log.warning("tool %s disabled: %s", entry.name, entry.disabled_reason)
    return gateway


def main() -> None:
    import uvicorn

    settings = Settings.from_env()
    if "--phone" in sys.argv[1:]:  # the same as COZY_PHONE=fastphone
        settings = replace(settings, phone=replace(settings.phone, mode="fastphone"))
    check_bind_address(settings.host, AuthConfig.from_settings(settings.api), settings.public)
    if settings.public or AuthConfig.from_settings(settings.api).enabled:
        load_secret(settings.secret, settings.data_dir)  # a missing, unwritable key stops us here, clearly
    if settings.public:
        log.info("public mode: every visitor is an identity of their own; the API needs keys")
    drain = Drain(None, timeout_s=settings.drain_timeout_s,
                  replica=settings.replica if os.environ.get("COZY_REPLICA") else None)
    drain.app = WarmingUp(lambda progress: build_app(settings, progress, drain))
    # Our own access log (handlers/api/request_id.py) covers the routes; uvicorn's would also
    # print the knowledge server's secret path.
    # SIGTERM drains first (handlers/draining.py). Open browsers keep event streams open: on
    # shutdown give them 5 s, then close them and finish our own work (tool servers, memory
    # updates, checkpoint).
    config = uvicorn.Config(drain, host=settings.host, port=settings.port, log_config=None, access_log=False,
                            timeout_graceful_shutdown=5)
    draining_server(config, drain).run()


configure_logging(os.environ.get("COZY_LOG_LEVEL", "INFO"), os.environ.get("COZY_LOG_FORMAT", "json") == "json")

if __name__ == "__main__":
    main()
else:
    app = build_app(Settings.from_env())
