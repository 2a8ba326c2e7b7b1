"""The tool servers and the call policy, read from `tools/servers.yaml`.

The file is data an operator edits; a mistake is reported with the field at fault
instead of a stack trace. `COZY_TOOLS_CONFIG` points at another file.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from config import ToolSettings

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent / "servers.yaml"

SIDE_EFFECT_LEVELS = ("read_only", "write", "network", "dangerous")
CHANNELS = ("voice", "phone", "text", "api", "realtime")
DECISIONS = ("allow", "confirm", "deny")  # ordered from least to most strict
ARGUMENT_KINDS = ("path", "command", "url")


class ToolsConfigError(ValueError):
    """A servers.yaml that cannot be used; the message names the field."""


@dataclass(frozen=True)
class ResourceLimits:
    """rlimits applied to a stdio server before it runs (see tools/sandbox.py)."""

    address_space_mb: int = 2048
    cpu_seconds: int = 600  # lifetime CPU; a runaway server is killed and restarted
    open_files: int = 256
    file_size_mb: int = 256


@dataclass(frozen=True)
class ToolSpec:
    name: str
    side_effect: str
    timeout_s: float
    max_result_bytes: int
    argument_kinds: dict[str, str] = field(default_factory=dict)  # argument name -> path|command|url


@dataclass(frozen=True)
class ServerSpec:
    name: str
    tools: dict[str, ToolSpec]
    command: str | None = None
    args: tuple[str, ...] = ()
    url: str | None = None  # a streamable HTTP endpoint instead of a command
    env: dict[str, str] = field(default_factory=dict)
    pass_env: tuple[str, ...] = ()  # names copied from our environment (secrets never pass)
    cwd: Path = PROJECT_ROOT
    start_timeout_s: float = 20.0
    max_message_bytes: int = 1_000_000  # one JSON-RPC message; a bigger one kills the server
    limits: ResourceLimits = ResourceLimits()
    # Our own servers: told who the user is (user, session, persona, channel); every
    # other server gets a stable per-server pseudonym instead.
    share_identity: bool = False
    # Written and reviewed by us. An unvetted server's network tools reach out only
    # through the gateway's egress proxy, and need the user's yes by default.
    vetted: bool = False
    # Tools the engine itself calls, never the model, so a user can see and erase what
    # this server stores about them: {"export": tool, "erase": tool}.
    privacy: dict[str, str] = field(default_factory=dict)

    @property
    def transport(self) -> str:
        return "http" if self.url else "stdio"


@dataclass(frozen=True)
class Policy:
    """What each side-effect level may do, per channel and per persona; the stricter wins."""

    channels: dict[str, dict[str, str]]
    personas: dict[str, dict[str, str]] = field(default_factory=dict)

    def decision(self, persona_id: str, channel: str, side_effect: str) -> str:
        wanted = [self.channels.get(channel, {}).get(side_effect, "deny"),
                  self.personas.get(persona_id, {}).get(side_effect, "allow")]
        if side_effect == "dangerous":
            wanted.append("confirm")  # never runs without the user saying yes, whatever the file says
        return max(wanted, key=DECISIONS.index)


@dataclass(frozen=True)
class ArgumentLimits:
    max_json_bytes: int = 16_000
    max_string_chars: int = 4_000
    max_depth: int = 6
    max_items: int = 100


@dataclass(frozen=True)
class ToolsConfig:
    servers: tuple[ServerSpec, ...]
    policy: Policy
    argument_limits: ArgumentLimits = ArgumentLimits()
    pins_path: Path = PROJECT_ROOT / "data" / "tools" / "pins.json"
    log_dir: Path = PROJECT_ROOT / "data" / "tools" / "logs"
    allow_private_hosts: tuple[str, ...] = ()  # "host:port" a network tool may reach on a private address
    confirmation_ttl_s: float = 300.0
    identity_key_path: Path = PROJECT_ROOT / "data" / "tools" / "identity.key"  # keys the pseudonyms
    state_dir: Path = PROJECT_ROOT / "data" / "tools"  # "{state_dir}" in a server's env
    # "{db_url}" in a server's env: the engine's PostgreSQL (COZY_DB_URL), "" on the DuckDB file.
    # Replicas share it, so a server keeping user data there (notes) is the same on all of them.
    db_url: str | None = None

    def server_env(self, spec: ServerSpec) -> ServerSpec:
        """The spec as started: "{state_dir}" and "{db_url}" in its env filled in."""
        folder, url = str(self.state_dir), self.db_url or ""
        return replace(spec, env={k: v.replace("{state_dir}", folder).replace("{db_url}", url)
                                  for k, v in spec.env.items()})

    def tool_spec(self, server: str, tool: str) -> ToolSpec | None:
        for spec in self.servers:
            if spec.name == server:
                return spec.tools.get(tool)
        return None


def _mapping(where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ToolsConfigError(f"{where} must be a mapping")
    return value


def _number(where: str, value: Any, kind: type = float) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ToolsConfigError(f"{where} must be a positive number")
    return kind(value)


def _decisions(where: str, table: Any) -> dict[str, str]:
    table = _mapping(where, table)
    for level, decision in table.items():
        if level not in SIDE_EFFECT_LEVELS:
            raise ToolsConfigError(f"{where}: unknown side-effect level '{level}' "
                                   f"(known: {', '.join(SIDE_EFFECT_LEVELS)})")
        if decision not in DECISIONS:
            raise ToolsConfigError(f"{where}.{level} must be one of {', '.join(DECISIONS)}")
    return dict(table)


def _policy(data: dict[str, Any]) -> Policy:
    channels = _mapping("policy.channels", data.get("channels"))
    unknown = sorted(set(channels) - set(CHANNELS))
    if unknown:
        raise ToolsConfigError(f"policy.channels: unknown channel(s) {', '.join(unknown)}")
    return Policy(
        channels={name: _decisions(f"policy.channels.{name}", channels.get(name)) for name in CHANNELS},
        personas={pid: _decisions(f"policy.personas.{pid}", table)
                  for pid, table in _mapping("policy.personas", data.get("personas")).items()},
    )


def _tool(where: str, name: str, data: Any, defaults: dict[str, Any]) -> ToolSpec:
    data = _mapping(where, data)
    level = data.get("side_effect")
    if level not in SIDE_EFFECT_LEVELS:
        raise ToolsConfigError(f"{where}.side_effect must be one of {', '.join(SIDE_EFFECT_LEVELS)}")
    kinds = _mapping(f"{where}.argument_kinds", data.get("argument_kinds"))
    if any(kind not in ARGUMENT_KINDS for kind in kinds.values()):
        raise ToolsConfigError(f"{where}.argument_kinds values must be one of {', '.join(ARGUMENT_KINDS)}")
    return ToolSpec(
        name=name,
        side_effect=level,
        timeout_s=_number(f"{where}.timeout_s", data.get("timeout_s", defaults.get("timeout_s", 10.0))),
        max_result_bytes=_number(f"{where}.max_result_bytes",
                                 data.get("max_result_bytes", defaults.get("max_result_bytes", 16_000)), int),
        argument_kinds=dict(kinds),
    )


def _command(value: Any) -> str:
    # "python" means the interpreter running the engine, so servers use our venv.
    return sys.executable if value == "python" else str(value)


def _server(index: int, data: Any, defaults: dict[str, Any], base: Path) -> ServerSpec:
    data = _mapping(f"servers[{index}]", data)
    name = data.get("name")
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ToolsConfigError(f"servers[{index}].name must be letters, digits, '-' or '_'")
    where = f"servers.{name}"
    if bool(data.get("command")) == bool(data.get("url")):
        raise ToolsConfigError(f"{where}: give exactly one of 'command' or 'url'")
    tools = _mapping(f"{where}.tools", data.get("tools"))
    if not tools:
        raise ToolsConfigError(f"{where}.tools must declare each tool and its side_effect")
    limits = {**_mapping("defaults.limits", defaults.get("limits")),
              **_mapping(f"{where}.limits", data.get("limits"))}
    try:
        resource_limits = ResourceLimits(**{k: int(v) for k, v in limits.items()})
    except TypeError as exc:
        raise ToolsConfigError(f"{where}.limits: {exc}") from exc
    env = _mapping(f"{where}.env", data.get("env"))
    return ServerSpec(
        name=name,
        tools={tool: _tool(f"{where}.tools.{tool}", tool, spec, defaults) for tool, spec in tools.items()},
        command=_command(data["command"]) if data.get("command") else None,
        args=tuple(str(a) for a in data.get("args") or ()),
        url=data.get("url"),
        env={str(k): str(v) for k, v in env.items()},
        pass_env=tuple(str(n) for n in data.get("pass_env") or ()),
        cwd=(base / data["cwd"]) if data.get("cwd") else PROJECT_ROOT,
        start_timeout_s=_number(f"{where}.start_timeout_s",
                                data.get("start_timeout_s", defaults.get("start_timeout_s", 20.0))),
        max_message_bytes=_number(f"{where}.max_message_bytes",
                                  data.get("max_message_bytes", defaults.get("max_message_bytes", 1_000_000)), int),
        limits=resource_limits,
        share_identity=_flag(f"{where}.share_identity", data.get("share_identity", False)),
        vetted=_flag(f"{where}.vetted", data.get("vetted", False)),
        privacy=_privacy(where, data.get("privacy") or {}),
    )


def _privacy(where: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or set(value) - {"export", "erase"} \
            or not all(isinstance(v, str) and v for v in value.values()):
        raise ToolsConfigError(f"{where}.privacy must map 'export' and/or 'erase' to tool names")
    return dict(value)


def _flag(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ToolsConfigError(f"{where} must be true or false")
    return value


def parse_config(data: Any, base: Path = PROJECT_ROOT) -> ToolsConfig:
    data = _mapping("servers.yaml", data)
    defaults = _mapping("defaults", data.get("defaults"))
    servers = tuple(_server(i, s, defaults, base) for i, s in enumerate(data.get("servers") or ()))
    names = [s.name for s in servers]
    if len(names) != len(set(names)):
        raise ToolsConfigError("servers: each server needs a different name")
    tool_names = [tool for s in servers for tool in s.tools]
    repeated = sorted({t for t in tool_names if tool_names.count(t) > 1})
    if repeated:  # the model calls tools by name, so a name must mean one tool
        raise ToolsConfigError(f"servers: tool name(s) {', '.join(repeated)} declared by more than one server")
    limits = _mapping("arguments", data.get("arguments"))
    network = _mapping("network", data.get("network"))

    def path(key: str, default: Path) -> Path:
        raw = data.get(key)
        return (base / Path(raw).expanduser()) if raw else default

    allow_private = tuple(str(h).lower() for h in network.get("allow_private") or ())
    if allow_private:  # network servers apply the same exception to redirects they follow
        servers = tuple(replace(s, env={"COZY_NETWORK_ALLOWED_HOSTS": ",".join(allow_private), **s.env})
                        for s in servers)
    try:
        argument_limits = ArgumentLimits(**{k: int(v) for k, v in limits.items()})
    except TypeError as exc:
        raise ToolsConfigError(f"arguments: {exc}") from exc
    return ToolsConfig(
        servers=servers,
        policy=_policy(_mapping("policy", data.get("policy"))),
        argument_limits=argument_limits,
        pins_path=path("pins_path", ToolsConfig.pins_path),
        log_dir=path("log_dir", ToolsConfig.log_dir),
        allow_private_hosts=allow_private,
        confirmation_ttl_s=_number("confirmation_ttl_s", data.get("confirmation_ttl_s", 300.0)),
        identity_key_path=path("identity_key_path", ToolsConfig.identity_key_path),
        state_dir=path("state_dir", ToolsConfig.state_dir),
    )


def load_config(path: Path = DEFAULT_CONFIG_PATH) -> ToolsConfig:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ToolsConfigError(f"{path}: cannot read tools config: {exc}") from exc
    try:
        return parse_config(data, PROJECT_ROOT)
    except ToolsConfigError as exc:
        raise ToolsConfigError(f"{path.name}: {exc}") from exc


def with_state(config: ToolsConfig, tools: ToolSettings, data_dir: Path, db_url: str | None = None) -> ToolsConfig:
    """Where the gateway keeps its state: what the environment names (ToolSettings), else what
    the servers file names, else a folder in the data dir (so one COZY_DATA_DIR moves it all);
    with `db_url` (COZY_DB_URL) the pins and the notes are in that shared database instead."""
    fallback = tools.under(data_dir)

    def pick(name: str) -> Path:
        named = getattr(config, name)
        return getattr(tools, name) or (named if named != getattr(ToolsConfig, name) else getattr(fallback, name))
    return replace(config, db_url=db_url,
                   **{name: pick(name) for name in ("state_dir", "pins_path", "log_dir", "identity_key_path")})
