"""The one door between the orchestrator and tools: every call passes five layers.

1 allowlist (the persona's tools)  2 side-effect policy per channel/persona, with
confirmation  3 arguments (schema, caps, paths, commands, SSRF)  4 sandboxed
execution (timeout, result cap, scrubbed and rlimited servers)  5 an audit event
for every attempt. Denials and failures are ordinary `ToolResult`s, never
exceptions: the model reads why, the user hears a short reason, the log keeps both.

    gateway = ToolGateway.from_env()   # reads tools/servers.yaml (or COZY_TOOLS_CONFIG)
    gateway.start()                    # app start-up: starts and lists the servers
    gateway.schemas_for("concise", persona.allowed_tools, "voice")
    gateway.call(ToolCallContext(...), "current_time", '{"timezone": "Europe/Paris"}')
    gateway.stop()                     # app shutdown
"""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from config import Settings
from tools.arguments import ArgumentError, check_arguments, parse_arguments
from tools.audit import AuditEvent, AuditSink, JsonlAuditSink
from tools.catalog import CatalogEntry, ToolCatalog
from tools.config import ServerSpec, ToolsConfig, load_config, with_state
from tools.connection import ServerCrashed, ServerUnavailable
from tools.egress_proxy import EgressProxy
from tools.identity import Pseudonyms
from tools.manager import ToolServerManager
from tools.pins import PinStore
from tools.policy import (
    ConfirmationBook,
    PolicyDenied,
    check_allowlist,
    check_side_effect,
    side_effect_decision,
)
from tools.redaction import redact, redact_text
from tools.results import defuse, render_result, render_untrusted
from tools.schemas import openai_tool
from tools.ssrf import Resolver, UrlGuard

log = logging.getLogger(__name__)

META_PREFIX = "cozyengine/"  # _meta keys the gateway sets; servers trust these, never arguments
REFUSED_META_KEY = META_PREFIX + "refused"  # a server's own security refusal (e.g. a blocked redirect)
REFUSAL_MAX_BYTES = 2000  # a refusal says why in a sentence or two
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class ToolCallContext:
    """Who is calling, from where; set by the orchestrator, never by the model."""

    user_id: str
    session_id: str
    persona_id: str
    allowed_tools: tuple[str, ...]
    channel: str = "text"  # voice | phone | text | api | realtime
    confirmed: bool = False  # the user said yes to the call they were asked about


@dataclass(frozen=True)
class ToolResult:
    ok: bool
    content: str  # for the model: a delimited block, data not instructions
    error: str | None  # short, for the user, when denied or failed
    latency_ms: float
    audit_id: str
    tool: str
    needs_confirmation: bool = False  # ask the user; a yes makes the same call pass with confirmed=True


class _Denied(Exception):
    def __init__(self, denied: PolicyDenied):
        super().__init__(denied.reason)
        self.layer, self.reason, self.hint = denied.layer, denied.reason, denied.hint
        self.needs_confirmation = denied.needs_confirmation


class _RefusedByServer(Exception):
    """The server said it refused the call; its words go to the model as untrusted data."""

    def __init__(self, content: str, flags: list[str]):
        super().__init__("the tool refused the request")
        self.content, self.flags = content, flags


class _Failed(Exception):
    """The call ran (or tried to) and did not produce a result."""

    def __init__(self, reason: str, content: str | None = None):
        super().__init__(reason)
        self.content = content  # the server's own error text, already delimited


class ToolGateway:
    def __init__(self, config: ToolsConfig, audit: AuditSink | None = None, resolver: Resolver | None = None,
                 redis: Any = None):
        self.config = config
        self.audit = audit if audit is not None else JsonlAuditSink(config.log_dir.parent / "audit.jsonl")
        self.pins = PinStore(config.pins_path, config.db_url)
        self.catalog = ToolCatalog(config, self.pins)
        self.url_guard = UrlGuard(resolver, config.allow_private_hosts)
        self.egress = EgressProxy(self.url_guard, on_refused=self._egress_refused)
        self.servers = {spec.name: spec for spec in config.servers}
        self.manager = ToolServerManager([self._with_egress(config.server_env(spec)) for spec in config.servers],
                                         config.log_dir,
                                         on_listed=self.catalog.update)
        self.pseudonyms = Pseudonyms(config.identity_key_path)
        # With Redis, a yes said on one replica confirms the call another one asked about.
        self.confirmations = ConfirmationBook(config.confirmation_ttl_s, redis=redis)

    def _with_egress(self, spec: ServerSpec) -> ServerSpec:
        """An unvetted stdio server with a network tool reaches out only through our proxy."""
        networked = any(tool.side_effect == "network" for tool in spec.tools.values())
        if spec.vetted or spec.transport != "stdio" or not networked:
            return spec
        return replace(spec, env={**spec.env, **self.egress.listen_for(spec.name)})

    def _egress_refused(self, server: str, target: str, reason: str) -> None:
        self._record(AuditEvent(tool="(egress)", user_id="", session_id="", persona_id="", channel="",
                                arguments=redact_text(target), decision="denied", layer="egress",
                                reason=defuse(reason)[:200], server=server, side_effect="network"))

    @classmethod
    def from_env(cls, audit: AuditSink | None = None) -> ToolGateway:
        """The gateway on its own (tools.cli): config and state as Settings reads them
        (COZY_TOOLS_CONFIG, COZY_DATA_DIR...); audit to <state dir>/audit.jsonl when no sink is given."""
        settings = Settings.from_env()
        config = with_state(load_config(settings.tools.config_path), settings.tools, settings.data_dir,
                            settings.db_url)
        audit_path = settings.tools.audit_path or config.state_dir / "audit.jsonl"
        return cls(config, audit if audit is not None else JsonlAuditSink(audit_path))

    # lifecycle ---------------------------------------------------------------------------
    def start(self, wait_s: float | None = None) -> None:
        self.manager.start(wait_s)

    def stop(self) -> None:
        self.manager.stop()
        self.egress.stop()
        self.pins.close()

    def __enter__(self) -> ToolGateway:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def refresh(self) -> None:
        """Judge the current listings again, e.g. after an operator approved a tool."""
        for server, tools in self.manager.listed_tools().items():
            self.catalog.update(server, tools)

    # what the model may see ---------------------------------------------------------------
    def schemas_for(self, persona_id: str, allowed_tools: Iterable[str], channel: str) -> list[dict[str, Any]]:
        """OpenAI function tools this persona may call on this channel (confirm-level included)."""
        allowed = set(allowed_tools)
        return [openai_tool(entry.name, entry.description, entry.parameters)
                for entry in self.catalog.entries()
                if entry.enabled and entry.spec is not None
                and (entry.name in allowed or entry.server in allowed)
                and side_effect_decision(self.config.policy, persona_id, channel, entry.spec.side_effect) != "deny"]

    # calls -------------------------------------------------------------------------------
    def call(self, context: ToolCallContext, name: str, arguments_json: str | dict[str, Any] | None) -> ToolResult:
        started = time.perf_counter()
        shown_name = name if isinstance(name, str) and _SAFE_NAME.match(name) else "(invalid tool name)"
        event = AuditEvent(tool=shown_name, user_id=context.user_id, session_id=context.session_id,
                           persona_id=context.persona_id, channel=context.channel,
                           arguments=redact(arguments_json) if isinstance(arguments_json, dict)
                           else redact_text(str(arguments_json or "")), confirmed=context.confirmed)
        needs_confirmation = False
        try:
            content = self._call(context, shown_name, arguments_json, event)
            ok, error = True, None
        except _Denied as denied:
            event.decision, event.layer, event.reason = "denied", denied.layer, denied.reason
            ok, error, needs_confirmation = False, denied.reason, denied.needs_confirmation
            content = self._notice(shown_name, "denied", f"Not run: {denied.reason}. {denied.hint}".strip())
        except _RefusedByServer as refused:
            # Our words for the user and the audit; the server's own only as flagged data.
            event.decision, event.layer, event.reason, event.flags = "denied", "tool", str(refused), refused.flags
            ok, error = False, str(refused)
            content = self._notice(shown_name, "denied", f"Not run: {refused}.") + "\n" + refused.content
        except _Failed as failed:
            event.decision, event.error = "allowed", str(failed)
            ok, error = False, str(failed)
            content = failed.content or self._notice(shown_name, "error", f"Failed: {failed}")
        except Exception as exc:
            log.exception("tool call %s failed inside the gateway", shown_name)
            event.error = f"internal error: {type(exc).__name__}"  # decision stays what it had reached
            ok, error = False, "the tool could not be run"
            content = self._notice(shown_name, "error", "Failed: the tool could not be run")
        event.latency_ms = round((time.perf_counter() - started) * 1000, 2)
        self._record(event)
        return ToolResult(ok, content, error, event.latency_ms, event.id, shown_name, needs_confirmation)

    def _call(self, context: ToolCallContext, name: str, arguments_json: Any, event: AuditEvent) -> str:
        try:
            entry = self._listed_entry(context, name, event)
            assert entry.spec is not None
            if not entry.enabled:
                raise PolicyDenied("integrity", f"{name} is disabled: {entry.disabled_reason}")
            decision = check_side_effect(self.config.policy, context.persona_id, context.channel,
                                         entry.spec.side_effect)
            if entry.spec.side_effect == "network" and not self.servers[entry.server].vetted:
                decision = "confirm"  # its egress is filtered, but a server may ignore the proxy
            arguments = self._checked_arguments(entry, arguments_json, event)
            if decision == "confirm":
                self.confirmations.require(context.session_id, name, arguments, context.confirmed)
        except PolicyDenied as denied:
            raise _Denied(denied) from None
        event.decision = "allowed"
        return self._execute(context, entry, arguments, event)

    def _listed_entry(self, context: ToolCallContext, name: str, event: AuditEvent) -> CatalogEntry:
        """The tool as listed by the server that declares it, if the persona may use it at all."""
        entry = self.catalog.get(name)
        server = entry.server if entry else next((s.name for s in self.config.servers if name in s.tools), None)
        if server is None:
            raise PolicyDenied("allowlist", f"there is no tool named {name}")
        event.server = server
        check_allowlist(name, server, context.persona_id, context.allowed_tools)
        if entry is None or entry.spec is None:
            raise _Failed(f"{name} is unavailable right now (its server {server} has not listed it)")
        event.side_effect = entry.spec.side_effect
        return entry

    def _checked_arguments(self, entry: CatalogEntry, arguments_json: Any, event: AuditEvent) -> dict[str, Any]:
        assert entry.spec is not None
        try:
            arguments = parse_arguments(arguments_json, self.config.argument_limits)
            event.arguments = redact(arguments)
            check_arguments(arguments, entry.parameters, entry.spec.argument_kinds,
                            self.config.argument_limits, self.url_guard)
        except ArgumentError as exc:
            raise PolicyDenied("arguments", defuse(str(exc))) from None
        return arguments

    def _execute(self, context: ToolCallContext, entry: CatalogEntry, arguments: dict[str, Any],
                 event: AuditEvent) -> str:
        assert entry.spec is not None
        trusted, meta = self._identity_for(self.servers[entry.server], context)
        arguments = {**arguments, **{name: trusted[name] for name in entry.reserved_arguments}}
        timeout_s = entry.spec.timeout_s
        try:
            result = self.manager.call(entry.server, entry.name, arguments, meta, timeout_s)
        except TimeoutError:
            event.layer = "sandbox"
            raise _Failed(f"{entry.name} took longer than {timeout_s:g}s and was stopped") from None
        except ServerCrashed as exc:
            event.layer = "sandbox"
            raise _Failed(f"{entry.name} failed: its {exc}; the server is being restarted") from None
        except ServerUnavailable:
            raise _Failed(f"{entry.name} is unavailable right now") from None
        except Exception as exc:  # noqa: BLE001 - MCP/protocol errors from a misbehaving server
            log.warning("tool %s: %r", entry.name, exc)
            raise _Failed(f"{entry.name} failed: the tool server gave no usable answer") from None
        refused = (result.meta or {}).get(REFUSED_META_KEY)
        if refused:
            rendered = render_untrusted(entry.name, str(refused), REFUSAL_MAX_BYTES, status="denied")
            raise _RefusedByServer(rendered.text, rendered.flags)
        rendered = render_result(entry.name, result, entry.spec.max_result_bytes)
        event.result_bytes, event.truncated, event.flags = rendered.result_bytes, rendered.truncated, rendered.flags
        if result.is_error:
            raise _Failed(f"{entry.name} reported an error", rendered.text)
        return rendered.text

    def _identity_for(self, server: ServerSpec, context: ToolCallContext) -> tuple[dict[str, str], dict[str, str]]:
        """(values for reserved arguments, _meta) as this server may know them: our own servers
        are told who is calling; any other gets a stable pseudonym of its own, and nothing more."""
        if server.share_identity:
            return ({"user_id": context.user_id, "session_id": context.session_id},
                    {META_PREFIX + "user_id": context.user_id, META_PREFIX + "session_id": context.session_id,
                     META_PREFIX + "persona_id": context.persona_id, META_PREFIX + "channel": context.channel})
        user = self.pseudonyms.of(server.name, "user", context.user_id)
        session = self.pseudonyms.of(server.name, "session", context.session_id)
        return {"user_id": user, "session_id": session}, {META_PREFIX + "user": user}

    # what a user may see and erase ----------------------------------------------------------
    def stored_about(self, user_id: str) -> dict[str, str]:
        """What each tool server with an export tool holds about this user, as it words it."""
        return self._privacy_calls(user_id, "export")

    def erase_identity(self, user_id: str) -> dict[str, str]:
        """Have every tool server with an erase tool delete this user's data; server -> outcome."""
        return self._privacy_calls(user_id, "erase")

    def _privacy_calls(self, user_id: str, kind: str) -> dict[str, str]:
        outcomes: dict[str, str] = {}
        context = ToolCallContext(user_id=user_id, session_id="", persona_id="", allowed_tools=(), channel="")
        for server in self.servers.values():
            tool = server.privacy.get(kind)
            if not tool:
                continue
            _, meta = self._identity_for(server, context)
            # Recorded without the user: after an erasure nothing may point back at them.
            event = AuditEvent(tool=tool, user_id="", session_id="", persona_id="", channel="", arguments="",
                               decision="allowed", layer="privacy", server=server.name, side_effect="write")
            started = time.perf_counter()
            try:
                result = self.manager.call(server.name, tool, {}, meta, 10.0)
                text = "\n".join(getattr(c, "text", "") for c in result.content)
                outcomes[server.name] = defuse(text)[:20_000] if not result.is_error else "failed"
            except Exception as exc:  # noqa: BLE001 - one server down must not stop the others
                log.warning("%s of %s failed: %r", kind, server.name, exc)
                event.error = f"{type(exc).__name__}"
                outcomes[server.name] = f"unavailable: {server.name} did not answer; try again"
            event.latency_ms = round((time.perf_counter() - started) * 1000, 2)
            self._record(event)
        return outcomes

    @staticmethod
    def _notice(tool: str, status: str, text: str) -> str:
        # Our own words (not the tool's), in the same block shape the model sees for every tool.
        return f'<tool_result tool="{tool}" status="{status}" trust="gateway">\n{defuse(text)}\n</tool_result>'

    def _record(self, event: AuditEvent) -> None:
        try:
            self.audit.record(event)
        except Exception:
            log.exception("audit sink failed; event %s: %s %s %s", event.id, event.tool, event.decision, event.reason)
