"""Shared pieces for the tool tests: configs, a local web server, a scripted resolver.

Everything stays on this machine: servers run over stdio, the web server binds
127.0.0.1, and names resolve from a table (any other name fails, as offline DNS would).
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from tools.config import PROJECT_ROOT, ToolsConfig, load_config
from tools.gateway import ToolCallContext
from tools.ssrf import BlockedUrl

CORPUS_PATH = Path(__file__).with_name("attack_corpus.yaml")
CORPUS: dict[str, Any] = yaml.safe_load(CORPUS_PATH.read_text(encoding="utf-8"))

BUILTIN_TOOLS = {
    "clock": {"current_time": {"side_effect": "read_only"}, "convert_time": {"side_effect": "read_only"}},
    "calculator": {"calculate": {"side_effect": "read_only"}},
    "notes": {"add_note": {"side_effect": "write"}, "add_reminder": {"side_effect": "write"},
              "list_notes": {"side_effect": "read_only"}, "delete_note": {"side_effect": "dangerous"}},
    "fetch_url": {"fetch_url": {"side_effect": "network", "timeout_s": 8}},
}
POLICY = {
    "channels": {
        "voice": {"read_only": "allow", "write": "allow", "network": "allow", "dangerous": "confirm"},
        "phone": {"read_only": "allow", "write": "allow", "network": "deny", "dangerous": "confirm"},
        "text": {"read_only": "allow", "write": "allow", "network": "allow", "dangerous": "confirm"},
        "api": {"read_only": "allow", "write": "allow", "network": "allow", "dangerous": "deny"},
    },
    "personas": {"companion": {"network": "deny"}},
}


def builtin(name: str, **extra: Any) -> dict[str, Any]:
    # As in tools/servers.yaml: our own servers are vetted, and notes is told who the user is
    # and has the engine's privacy tools.
    privacy = {"privacy": {"export": "export_notes", "erase": "forget_user"}} if name == "notes" else {}
    return {"name": name, "command": "python", "args": ["-m", f"tools.servers.{name}"], "vetted": True,
            "share_identity": name == "notes", "tools": BUILTIN_TOOLS[name], **privacy, **extra}


def hostile(name: str, tools: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "command": "python", "args": ["-m", f"tests.hostile_servers.{name}"],
            "tools": tools, **extra}


def write_config(folder: Path, servers: list[dict[str, Any]], allow_private: Iterable[str] = (),
                 **extra: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = {
        "defaults": {"timeout_s": 10, "max_result_bytes": 16000, "start_timeout_s": 20},
        "pins_path": str(folder / "pins.json"),
        "identity_key_path": str(folder / "identity.key"),
        "log_dir": str(folder / "logs"),
        "network": {"allow_private": list(allow_private)},
        "policy": POLICY,
        "servers": servers,
        **extra,
    }
    path = folder / "servers.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def config_at(path: Path) -> ToolsConfig:
    return load_config(path)


def context(persona_id: str = "tester", allowed: Iterable[str] = (), channel: str = "voice",
            user_id: str = "alice", session_id: str = "session-1", confirmed: bool = False) -> ToolCallContext:
    return ToolCallContext(user_id=user_id, session_id=session_id, persona_id=persona_id,
                           allowed_tools=tuple(allowed), channel=channel, confirmed=confirmed)


class TableResolver:
    """DNS from a table; a name not in it does not resolve (fail closed, like offline DNS)."""

    def __init__(self, table: dict[str, list[str]]):
        self.table = table

    def __call__(self, host: str, port: int) -> list[str]:
        if host not in self.table:
            raise BlockedUrl(f"cannot resolve {host}")
        return list(self.table[host])


PAGE_HTML = """<html><head><title>t</title><style>body{color:red}</style><script>alert('x')</script></head>
<body><h1>Opening hours</h1><p>Open daily from 9 to 17.</p></body></html>"""


class LocalWebServer:
    """127.0.0.1 web server: /page (HTML), /big (300 kB), /redirect/<corpus id> (302 to a blocked place)."""

    def __init__(self) -> None:
        redirects = {case["id"]: case["location"] for case in CORPUS["redirects"]}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/redirect/"):
                    self.send_response(302)
                    self.send_header("Location", redirects[self.path.rsplit("/", 1)[1]])
                    self.end_headers()
                    return
                body, kind = {"/page": (PAGE_HTML, "text/html; charset=utf-8"),
                              "/big": ("word " * 60_000, "text/plain")}.get(self.path, ("missing", "text/plain"))
                data = body.encode()
                self.send_response(200 if self.path in ("/page", "/big") else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"http://{self.host_port}{path}"

    def __enter__(self) -> LocalWebServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


__all__ = ["CORPUS", "CORPUS_PATH", "PROJECT_ROOT", "LocalWebServer", "TableResolver", "builtin", "config_at",
           "context", "hostile", "write_config"]
