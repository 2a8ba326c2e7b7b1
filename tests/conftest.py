"""Shared fixtures: real models loaded once, and the real app on a loopback port."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from providers import model_files  # noqa: E402
from storage.backends import Store, open_database  # noqa: E402
from tests import postgres_service  # noqa: E402

# Which database the stores and every started app use: `pytest --db postgres` runs the
# same tests on a real PostgreSQL (tests marked `storage` are the ones where it matters).
DB_BACKEND = {"name": "duckdb"}


def pytest_addoption(parser):
    parser.addoption("--db", choices=("duckdb", "postgres"), default="duckdb",
                     help="database backend for stores and started apps")


def pytest_configure(config):
    DB_BACKEND["name"] = config.getoption("--db")
    config.addinivalue_line("markers", "storage: stored data matters here; CI runs these on PostgreSQL too")


def pytest_unconfigure(config):
    postgres_service.stop_shared_server()


def database_url() -> str | None:
    """A fresh PostgreSQL database under `--db postgres`; None for the DuckDB file."""
    return postgres_service.shared_server().new_database() if DB_BACKEND["name"] == "postgres" else None


def stored_settings(data_dir: Path, **changes) -> Settings:
    """Settings for services built in the test process, on the backend `--db` chose."""
    return Settings(data_dir=data_dir, db_url=database_url(), **changes)


def new_store(folder: Path) -> Store:
    """The database a test's stores use: a DuckDB file in `folder`, or a fresh PostgreSQL database."""
    return open_database(folder / "cozy.duckdb", database_url())


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def vad(settings):
    from providers.offline.vad import SileroVad

    return SileroVad(model_files.resolve("silero-vad-v5", settings.models_dir))


@pytest.fixture(scope="session")
def smart_turn(settings):
    from providers.offline.end_of_turn import SmartTurn

    return SmartTurn(model_files.resolve("smart-turn-v3.2", settings.models_dir))


@pytest.fixture(scope="session")
def whisper(settings):
    from providers.offline.stt import WhisperSTT

    return WhisperSTT(model_files.resolve("whisper-tiny.en", settings.models_dir).parent)


@pytest.fixture(scope="session")
def piper(settings):
    from providers.offline.tts import PiperTTS

    return PiperTTS(model_files.resolve("piper-joe-medium", settings.models_dir))


@pytest.fixture(scope="session")
def espeak():
    from providers.offline.tts import EspeakTTS

    return EspeakTTS()


@pytest.fixture(scope="session")
def fast_llm(settings):
    """SmolLM2-135M: fast, for tests where the words do not matter."""
    from providers.offline.llm import LlamaChatModel

    path = model_files.resolve("smollm2-135m", settings.models_dir)
    return LlamaChatModel(path, "smollm2-135m", threads=2, context_tokens=2048)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningApp:
    def __init__(self, base_url: str, process: subprocess.Popen, log_path: Path):
        self.base_url = base_url
        self.process = process
        self.log_path = log_path

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def start_app(tmp_dir: Path, extra_env: dict[str, str] | None = None, ready_timeout_s: float = 240,
              app_file: Path = ROOT / "app.py", port_variable: str = "COZY_PORT") -> RunningApp:
    """`app_file` may be another copy of the app (a built Space folder); it runs from its folder.
    A Space is told its port as PORT (`port_variable`)."""
    port = free_port()
    # The joined and unpacked models stay where `make setup` put them, whatever data dir a test uses.
    # The Chinese models load when a test first needs them: loading them in the background at
    # start would take the CPU from what a test times just after start (tests/test_mandarin.py
    # exercises that first-use load).
    env = {**os.environ, "COZY_HOST": "127.0.0.1", port_variable: str(port),
           "COZY_MODELS_DIR": str(Settings.from_env().models_dir), "COZY_PRELOAD_MODELS": "0",
           **(extra_env or {})}
    if "COZY_DB_URL" not in (extra_env or {}) and (url := database_url()):
        env["COZY_DB_URL"] = url  # under --db postgres every app gets a database of its own
    log_path = tmp_dir / f"app-{port}.log"
    process = subprocess.Popen([sys.executable, str(app_file)], cwd=app_file.parent, env=env,
                               stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    app = RunningApp(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app exited with {process.returncode}:\n{app.log_tail()}")
        try:
            if httpx.get(f"{app.base_url}/healthz", timeout=2).status_code == 200:
                return app
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"app not ready after {ready_timeout_s}s:\n{app.log_tail()}")


def stop_app(app: RunningApp) -> None:
    app.process.terminate()
    try:
        app.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        app.process.kill()
        app.process.wait(timeout=20)  # until it is gone, its DuckDB lock with it


def isolated_env(data_dir: Path) -> dict[str, str]:
    """A fresh data directory (database, tool state) that still uses the joined default
    model, so tests never write into the developer's ./data."""
    model = model_files.resolve("qwen2.5-1.5b", Settings.from_env().models_dir)
    return {"COZY_DATA_DIR": str(data_dir), "COZY_LLM_PATH": str(model)}


@pytest.fixture(scope="session")
def running_app(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app")
    app = start_app(folder, isolated_env(folder / "data"))
    yield app
    stop_app(app)
