"""A throwaway redis-server for tests: loopback only, a free port, nothing saved to disk.

Use `pytest_plugins = ["tests.redis_service"]` for the `redis_url` fixture, or
`with redis_server(folder) as url:` to stop the server in the middle of a test.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from tests.conftest import free_port

REDIS_SERVER = shutil.which("redis-server")
READY_TIMEOUT_S = 15.0


@contextmanager
def redis_server(folder: Path) -> Iterator[str]:
    """Start redis-server, wait until it answers PING, yield its URL; stop it afterwards."""
    if REDIS_SERVER is None:
        raise RuntimeError("redis-server is not installed (Debian: apt-get install redis-server)")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = folder / f"redis-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen([REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                    "--appendonly", "no", "--dir", str(folder)],
                                   stdout=log_file, stderr=subprocess.STDOUT)
    try:
        probe = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=0.5)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if probe.ping():
                    break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server not answering after {READY_TIMEOUT_S}s:\n"
                                       f"{log_path.read_text()}") from None
                time.sleep(0.01)  # a poll interval, not a guess at the start-up time
        probe.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def redis_url(tmp_path) -> Iterator[str]:
    if REDIS_SERVER is None:
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    with redis_server(tmp_path / "redis") as url:
        yield url
