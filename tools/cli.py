"""Operator commands for tools.

    python -m tools.cli list            servers, each persona's tools and policy, disabled tools and why
    python -m tools.cli approve NAME    approve the held-back version of a tool (after a change or a flag)

`list` starts the configured servers to see what they really offer today, so it
also pins clean tools seen for the first time, as the app would.
"""
from __future__ import annotations

import argparse
import logging
import sys

from config import Settings
from personas.cards import PersonaCatalog
from tools.audit import MemoryAuditSink
from tools.config import CHANNELS, ToolsConfigError, load_config, with_state
from tools.gateway import ToolGateway
from tools.pins import PinError, PinStore
from tools.policy import side_effect_decision


def _personas() -> PersonaCatalog:
    settings = Settings.from_env()
    return PersonaCatalog(settings.personas_dir, settings.default_persona)


def render_listing(gateway: ToolGateway, personas: PersonaCatalog) -> str:
    lines = ["Servers:"]
    for status in gateway.manager.status():
        problem = f"  ({status.last_error})" if status.last_error else ""
        lines.append(f"  {status.name:<14} {status.state:<8} restarts={status.restarts}{problem}")
    entries = gateway.catalog.entries()
    disabled = [e for e in entries if not e.enabled]
    lines.append("\nDisabled tools:" if disabled else "\nDisabled tools: none")
    lines += [f"  {e.name} (server {e.server}): {e.disabled_reason}" for e in disabled]
    usable = {e.name: e for e in entries if e.spec is not None}
    policy = gateway.config.policy
    for persona in personas.all():
        lines.append(f"\nPersona {persona.id} ({persona.name}):")
        if not persona.allowed_tools:
            lines.append("  no tools")
        for allowed in persona.allowed_tools:
            matches = [e for e in usable.values() if allowed in (e.name, e.server)]
            if not matches:
                lines.append(f"  {allowed:<16} -            not served by any configured server")
            for entry in matches:
                assert entry.spec is not None
                level = entry.spec.side_effect
                per_channel = "  ".join(f"{c}={side_effect_decision(policy, persona.id, c, level)}" for c in CHANNELS)
                state = "" if entry.enabled else "  DISABLED"
                lines.append(f"  {entry.name:<16} {level:<12} {per_channel}{state}")
    for message in personas.errors:
        lines.append(f"\n(persona card rejected: {message})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.cli", description="CozyEngine tool servers")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="each persona's tools, their side-effect level, and disabled tools")
    approve = commands.add_parser("approve", help="approve the held-back version of a tool")
    approve.add_argument("tool")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    settings = Settings.from_env()
    try:
        config = with_state(load_config(settings.tools.config_path), settings.tools, settings.data_dir,
                            settings.db_url)
    except ToolsConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.command == "approve":
        try:
            pins = PinStore(config.pins_path, config.db_url)
            try:
                pin = pins.approve(args.tool)
            finally:
                pins.close()
        except PinError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"approved {args.tool} from server {pin['server']} (sha256 {pin['sha256'][:12]}…); "
              "a running engine uses it after its next tool listing or restart")
        return 0
    gateway = ToolGateway(config, audit=MemoryAuditSink())
    with gateway:
        print(render_listing(gateway, _personas()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
