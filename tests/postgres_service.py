"""A real PostgreSQL for tests: Debian's server binaries, a cluster in a temporary folder,
listening on 127.0.0.1 only; each caller gets a database of its own.

PostgreSQL refuses to run as root, so as root the cluster is run as the `postgres` user
that Debian's package creates.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg


def server_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self) -> None:
        binaries = server_binaries()
        if binaries is None:
            raise RuntimeError("PostgreSQL server binaries not found: apt-get install postgresql")
        self.port = _free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="cozy-pg-"))
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.folder, "postgres", "postgres")
        data, log = self.folder / "data", self.folder / "server.log"
        self._ctl = [str(binaries / "pg_ctl"), "-D", str(data)]
        self._run([str(binaries / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                   "--no-sync"])
        # fsync stays on: the durability tests kill the app and expect every commit back.
        options = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.folder} " \
                  "-c max_connections=300"
        self._run([*self._ctl, "-l", str(log), "-o", options, "-w", "-t", "60", "start"])
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, command: list[str]) -> None:
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.folder)

    def new_database(self) -> str:
        """A fresh, empty database; returns its URL."""
        name = f"cozy_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run([*self._ctl, "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


_server: PostgresServer | None = None


def shared_server() -> PostgresServer:
    """One server per test run, started on first use."""
    global _server
    if _server is None:
        _server = PostgresServer()
    return _server


def stop_shared_server() -> None:
    global _server
    if _server is not None:
        _server.stop()
        _server = None

