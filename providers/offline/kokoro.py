"""Kokoro-82M (int8 ONNX): the offline neural voice for Chinese, and a second English voice.

The model reads phonemes (providers/offline/phonemes.py) with a voice's style vector, one
vector per phoneme count. A voice's first letter is its language: a/b English, z Mandarin.
"""
from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from providers.base import AudioClip
from providers.languages import CJK, is_chinese
from providers.offline.phonemes import ChinesePhonemes, english_phonemes

SAMPLE_RATE = 24_000
MAX_PHONEMES = 510  # the model's context, less its two boundary tokens
# Chinese runs keep their punctuation and numbers (misaki reads "3个" as 三个).
_CHINESE_OR_NOT = re.compile(rf"((?:{CJK.pattern}|[0-9%.，。！？、；：“”（）])+)|((?:(?!{CJK.pattern})[^，。！？、；：])+)")
_LATIN = re.compile(r"[A-Za-z]")
_VOCAB = json.loads((Path(__file__).with_name("kokoro_vocab.json")).read_text(encoding="utf-8"))["vocab"]


def voice_language(voice: str) -> str:
    return "zh" if voice.startswith("z") else "en"


class KokoroTTS:
    name = "offline-kokoro"

    def __init__(self, model_path: Path, voice_files: dict[str, Path], espeak, threads: int = 2):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(model_path), sess_options=options,
                                             providers=["CPUExecutionProvider"])
        self._styles = {name: np.fromfile(path, dtype=np.float32).reshape(-1, 1, 256)
                        for name, path in voice_files.items()}
        self._espeak = espeak
        self._chinese = ChinesePhonemes()
        self.sample_rate = SAMPLE_RATE
        self._lock = threading.Lock()  # one inference at a time: two would only split the cores

    @property
    def voices(self) -> tuple[str, ...]:
        return tuple(self._styles)

    def phonemes(self, text: str) -> str:
        """By script, not by voice: a Chinese voice may say an English word, and the reverse."""
        if not is_chinese(text):
            return english_phonemes(text, self._espeak)
        parts = []
        for chinese, other in _CHINESE_OR_NOT.findall(text):
            if chinese:
                parts.append(self._chinese(chinese))
            elif _LATIN.search(other):
                parts.append(english_phonemes(other, self._espeak))
        return " ".join(p for p in parts if p)

    def synthesize(self, text: str, voice: str | None = None) -> Iterator[AudioClip]:
        voice = voice or next(iter(self._styles))
        style = self._styles.get(voice)
        if style is None:
            raise ValueError(f"Kokoro voice '{voice}' is not installed; installed: {', '.join(self._styles)}")
        tokens = [_VOCAB[c] for c in self.phonemes(text) if c in _VOCAB]
        # Callers speak a sentence or clause at a time; a longer text is cut at the model's context.
        for start in range(0, len(tokens), MAX_PHONEMES):
            piece = tokens[start:start + MAX_PHONEMES]
            with self._lock:
                audio = self._session.run(None, {
                    "tokens": np.array([[0, *piece, 0]], dtype=np.int64),
                    "style": style[len(piece) - 1],
                    "speed": np.array([1.0], dtype=np.float32),
                })[0]
            samples = np.clip(np.asarray(audio, dtype=np.float32).ravel(), -1.0, 1.0)
            yield AudioClip(SAMPLE_RATE, (samples * 32767).astype(np.int16))

    def warmup(self) -> None:
        """One sentence per language: loads jieba's dictionary and runs the model once."""
        first_of_each = {voice_language(voice): voice for voice in reversed(self._styles)}
        for language, voice in first_of_each.items():
            for _ in self.synthesize("你好。" if language == "zh" else "Hello.", voice):
                pass
