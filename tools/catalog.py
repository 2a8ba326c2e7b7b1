"""The tools the servers listed, each judged: declared? clean? unchanged?

Rebuilt for a server every time it (re)connects, so a server that changes its
tools on restart is checked again. A tool is usable only when servers.yaml
declares it for that server (a same-named tool from another server is
shadowing, not a second copy) and its description passes the integrity checks.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

import mcp_types

from tools.config import ToolsConfig, ToolSpec
from tools.integrity import fingerprint, scan_tool
from tools.pins import PinError, PinStore
from tools.schemas import harden_schema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    server: str
    description: str
    parameters: dict[str, Any]  # hardened; what the model sees and what arguments are checked against
    reserved_arguments: tuple[str, ...]  # filled by the gateway from the call context
    spec: ToolSpec | None  # None: the server listed a tool servers.yaml does not declare for it
    enabled: bool
    disabled_reason: str
    sha256: str


class ToolCatalog:
    def __init__(self, config: ToolsConfig, pins: PinStore):
        self.config = config
        self.pins = pins
        self._entries: dict[tuple[str, str], CatalogEntry] = {}
        self._lock = threading.Lock()
        self._declared_names = {tool for spec in config.servers for tool in spec.tools}

    def update(self, server: str, tools: list[mcp_types.Tool]) -> None:
        # The engine's own privacy tools are not for any model: they are not catalogued at all.
        engine_only = set(next((s.privacy.values() for s in self.config.servers if s.name == server), ()))
        judged = [self._judge(server, tool) for tool in tools if tool.name not in engine_only]
        with self._lock:
            self._entries = {key: e for key, e in self._entries.items() if key[0] != server}
            self._entries.update({(e.server, e.name): e for e in judged})
        for entry in judged:
            if not entry.enabled:
                log.warning("tool %s from server %s disabled: %s", entry.name, server, entry.disabled_reason)

    def _judge(self, server: str, tool: mcp_types.Tool) -> CatalogEntry:
        raw_schema = tool.input_schema if isinstance(tool.input_schema, dict) else {}
        description = tool.description or ""
        parameters, reserved = harden_schema(raw_schema)
        digest = fingerprint(tool.name, description, raw_schema)
        spec = self.config.tool_spec(server, tool.name)

        def entry(enabled: bool, reason: str = "") -> CatalogEntry:
            return CatalogEntry(tool.name, server, description, parameters, reserved, spec, enabled, reason, digest)

        if spec is None:
            owner = next((s.name for s in self.config.servers if tool.name in s.tools), None)
            why = (f"shadows tool {tool.name} of server {owner}" if owner
                   else f"not declared for server {server} in servers.yaml")
            return entry(False, why)
        findings = scan_tool(tool.name, description, raw_schema, self._declared_names)
        try:
            verdict = self.pins.verdict(tool.name, server, digest, findings)
        except PinError as exc:
            return entry(False, str(exc))
        return entry(verdict.enabled, verdict.reason)

    def get(self, name: str) -> CatalogEntry | None:
        """The entry for a tool name from the server that declares it."""
        with self._lock:
            for (server, tool), entry in self._entries.items():
                if tool == name and entry.spec is not None:
                    return entry
        return None

    def entries(self) -> list[CatalogEntry]:
        with self._lock:
            return sorted(self._entries.values(), key=lambda e: (e.server, e.name))
