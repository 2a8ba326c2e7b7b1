"""Offline speech: Piper (neural, natural) and espeak-ng (instant, robotic fallback)."""
from __future__ import annotations

import ctypes
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from providers.base import AudioClip


class PiperTTS:
    name = "offline-piper"

    def __init__(self, voice_path: Path):
        from piper import PiperVoice

        config_path = Path(str(voice_path) + ".json")
        if not config_path.is_file():
            raise FileNotFoundError(f"Piper voice {voice_path} needs its config beside it: {config_path}")
        self._voice = PiperVoice.load(str(voice_path), config_path=str(config_path))
        self.sample_rate = self._voice.config.sample_rate
        self._lock = threading.Lock()

    def synthesize(self, text: str, voice: str | None = None) -> Iterator[AudioClip]:
        # Piper yields one chunk per sentence; callers already feed it one sentence
        # or clause at a time, which is what keeps the first audio early.
        with self._lock:
            chunks = [c.audio_int16_array for c in self._voice.synthesize(text)]
        for samples in chunks:
            yield AudioClip(self.sample_rate, samples)

    def warmup(self) -> None:
        for _ in self.synthesize("Hello."):
            pass


class EspeakTTS:
    """libespeak-ng from the espeakng-loader wheel, driven through ctypes.

    No model to load, so it answers in milliseconds: the voice of last resort for
    apologies when everything else has failed.
    """

    name = "offline-espeak"
    _AUDIO_OUTPUT_SYNCHRONOUS = 2
    _CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

    def __init__(self, default_voice: str = "en-us"):
        import espeakng_loader

        self._lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
        data_path = espeakng_loader.get_data_path().encode()
        self.sample_rate = self._lib.espeak_Initialize(self._AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, 0)
        if self.sample_rate <= 0:
            raise RuntimeError("espeak-ng failed to initialise")
        self._default_voice = default_voice
        self._pieces: list[np.ndarray] = []
        self._callback = self._CALLBACK(self._collect)  # keep a reference: C holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)
        self._lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self._lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        self._lock = threading.Lock()

    def _collect(self, wav, count, _events) -> int:
        if count > 0:
            self._pieces.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    def synthesize(self, text: str, voice: str | None = None) -> Iterator[AudioClip]:
        with self._lock:
            self._lib.espeak_SetVoiceByName((voice or self._default_voice).encode())
            self._pieces = []
            data = text.encode("utf-8")
            espeak_chars_utf8 = 1
            self._lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, espeak_chars_utf8, None, None)
            pieces, self._pieces = self._pieces, []
        if pieces:
            yield AudioClip(self.sample_rate, np.concatenate(pieces).astype(np.int16))

    def ipa(self, text: str, voice: str = "en-us") -> str:
        """The text's phonemes in IPA, clause by clause; "^" ties multi-letter phonemes ("a^ɪ")."""
        ipa_with_ties = 0x02 | 0x80 | (ord("^") << 8)  # espeak_TextToPhonemes's phonememode bits
        with self._lock:
            self._lib.espeak_SetVoiceByName(voice.encode())
            remaining = ctypes.c_char_p(text.encode("utf-8"))
            pointer = ctypes.pointer(remaining)
            clauses = []
            while remaining.value:  # espeak advances the pointer one clause per call
                clauses.append(self._lib.espeak_TextToPhonemes(pointer, 1, ipa_with_ties).decode("utf-8"))
        return " ".join(c.strip() for c in clauses if c.strip())

    def warmup(self) -> None:
        for _ in self.synthesize("ok"):
            pass
