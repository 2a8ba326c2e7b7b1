"""Whisper on CTranslate2 (faster-whisper), from local model folders.

English goes to tiny.en, the fastest; any other language, or "auto" (detect it), to the
multilingual base model, loaded when first needed.

A spoken turn is a few seconds long, and faster-whisper pads every clip to Whisper's
30 s window, so the encoder spends most of its time on silence. Clips that fit get an
8 s window instead (the encoder takes any width up to 30 s; the multilingual model keeps
the 10 s it was measured in): on this 2-core machine tiny.en transcribes a spoken turn
about 4x faster, with the same word error rate on espeak speech (bench/stt_window.py).
At 6 s and narrower, the decoder starts repeating itself ("Thank you very much. Thank
you very much. ...").
"""
from __future__ import annotations

import math
import re
import threading
from pathlib import Path

import numpy as np

from providers.base import AudioClip
from providers.languages import SPOKEN_LANGUAGES, iso_language
from providers.offline.lazy import Lazy
from providers.pcm import SPEECH_RATE, resample, to_float32

# Greedy decoding serves English; Chinese from the small base model needs the beam (on
# espeak-ng's Mandarin it found 首都 in 5 of 6 clips with it, 1 of 6 without).
BEAM_SIZE = 5
# English words Whisper is unsure of (average log-probability under this) are decoded again with
# the beam, from the same encoding: greedy, tiny.en heard "how many days are there until" as
# "how many very smart now until?" (-0.71), where the beam hears "until" and the end-of-turn
# check knows the sentence goes on. Sure words (most, -0.1 to -0.5) cost no beam time.
DOUBTFUL_LOGPROB = -0.6
# Whisper writes Chinese in traditional or simplified characters as it likes; a simplified
# prompt steers it to simplified, what a zh-CN user reads (and what the persona writes).
_PROMPTS = {"zh": "以下是普通话的句子。"}
# "auto" chooses among the languages the offline voices speak: Whisper base alone would
# call a short English phrase Welsh or Nynorsk now and then.
AUTO_LANGUAGES = tuple(SPOKEN_LANGUAGES)


FULL_WINDOW_FRAMES = 3000  # Whisper's 30 s, in 10 ms feature frames
SHORT_WINDOW_FRAMES = 800  # the narrowest window that decodes as well as the full one
# ... nearly: in 1 of 56 bare espeak clips it loops ("Who wrote, wrote, wrote and do it!"),
# where 10 s hears "Who wrote Romeo and Juliet?". Words that loop are decoded again in this.
LOOP_FREE_WINDOW_FRAMES = 1000
WINDOW_MARGIN_FRAMES = 100  # silence after the last word: the decoder needs to hear it end
# faster-whisper's "no speech" rule (its defaults): a window Whisper thinks is silent
# and whose words it is unsure of says nothing. In the short window silence decodes as
# " you" with some confidence, so a window Whisper is all but sure is silent says nothing
# either (spoken "yes", "no", "hi" score under 0.4).
NO_SPEECH_PROBABILITY = 0.6
LEAST_AVERAGE_LOGPROB = -1.0
SURELY_SILENT = 0.9


def short_window_frames(samples: int, narrowest: int = SHORT_WINDOW_FRAMES) -> int | None:
    """The encoder width for a clip of `samples` (16 kHz), or None: it needs the full window."""
    frames = math.ceil(samples / 160) + WINDOW_MARGIN_FRAMES
    width = max(narrowest, frames)
    return width if width < FULL_WINDOW_FRAMES else None


def loops(text: str) -> bool:
    """Whisper's loop in a narrow window: a word three times running, or a run of words twice
    ("Thank you very much. Thank you very much.")."""
    words = re.findall(r"\w+", text.lower())
    for n in range(1, 7):
        least = 3 if n == 1 else 2
        for i in range(len(words) - n * least + 1):
            if all(words[i + k * n:i + (k + 1) * n] == words[i:i + n] for k in range(1, least)):
                return True
    return False


def _beam_size(code: str) -> int:
    return 1 if code == "en" else BEAM_SIZE


def _most_tokens(seconds: float) -> int:
    """A cap on what one window may say: speech is under ~10 tokens a second, and Whisper
    on unclear audio can loop ("帮你帮我帮你…") until its 448-token limit."""
    return int(min(440, 16 + 12 * min(seconds, 30.0)))


class WhisperSTT:
    name = "offline-whisper"

    def __init__(self, model_dir: Path, threads: int = 1, short_window: bool = True,
                 narrowest_window: int | None = None):
        from faster_whisper import WhisperModel

        if not (model_dir / "tokenizer.json").is_file():
            raise FileNotFoundError(f"{model_dir} has no tokenizer.json; point COZY_STT_PATH at a "
                                    "faster-whisper model folder")
        self._model = WhisperModel(str(model_dir), device="cpu", compute_type="int8",
                                   cpu_threads=threads, local_files_only=True)
        self.multilingual = self._model.model.is_multilingual
        self.short_window = short_window  # False: faster-whisper's own 30 s window, always
        # Frames (benches compare widths); the multilingual model keeps the 10 s it was measured in.
        self.narrowest_window = narrowest_window or (LOOP_FREE_WINDOW_FRAMES if self.multilingual
                                                     else SHORT_WINDOW_FRAMES)
        # CTranslate2 releases the GIL but one model object decodes one request at a time.
        self._lock = threading.Lock()

    def transcribe(self, audio: AudioClip, language: str | None = "en") -> str:
        return self.transcribe_detecting(audio, language)[0]

    def transcribe_detecting(self, audio: AudioClip, language: str | None = "en") -> tuple[str, str]:
        """(text, the language Whisper heard or was told)."""
        code = iso_language(language) if self.multilingual else "en"
        samples = resample(to_float32(audio.samples), audio.sample_rate, SPEECH_RATE)
        if len(samples) < SPEECH_RATE // 10:
            return "", code or "en"
        with self._lock:
            if code is None:
                _, _, probabilities = self._model.detect_language(samples)
                likely = dict(probabilities)
                code = max(AUTO_LANGUAGES, key=lambda lang: likely.get(lang, 0.0))
            width = short_window_frames(len(samples), self.narrowest_window) if self.short_window else None
            if width is not None:
                text = self._decode_window(samples, width, code)
                if width < LOOP_FREE_WINDOW_FRAMES and loops(text):
                    text = self._decode_window(samples, LOOP_FREE_WINDOW_FRAMES, code)
                return text, code
            segments, _ = self._model.transcribe(
                samples, language=code, beam_size=_beam_size(code), temperature=0.0,
                without_timestamps=True, condition_on_previous_text=False,
                vad_filter=False, initial_prompt=_PROMPTS.get(code),
                max_new_tokens=_most_tokens(len(samples) / SPEECH_RATE),
            )
            return " ".join(s.text.strip() for s in segments).strip(), code

    def _decode_window(self, samples: np.ndarray, width: int, code: str) -> str:
        """One window `width` frames wide, decoded as faster-whisper decodes one (greedy for
        sure English words, its beam for the rest; its blank and symbol suppression; its no-speech rule)."""
        import ctranslate2
        from faster_whisper.tokenizer import Tokenizer

        padded = np.zeros(width * 160, dtype=np.float32)
        padded[:len(samples)] = samples
        features = self._model.feature_extractor(padded)[:, :width]
        tokenizer = Tokenizer(self._model.hf_tokenizer, self.multilingual, task="transcribe", language=code)
        prompt = []
        if _PROMPTS.get(code):
            prompt = [tokenizer.sot_prev, *tokenizer.encode(" " + _PROMPTS[code])]
        prompt += [*tokenizer.sot_sequence, tokenizer.no_timestamps]
        encoded = self._model.model.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])),
                                           to_cpu=False)

        def decode(beam_size: int) -> tuple[list[int], float, float]:
            result = self._model.model.generate(
                encoded, [prompt], beam_size=beam_size,
                max_length=len(prompt) + _most_tokens(len(samples) / SPEECH_RATE),
                suppress_blank=True, suppress_tokens=[-1], return_scores=True, return_no_speech_prob=True)[0]
            tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
            # (tokens, average log-probability as faster-whisper scores it, no-speech probability)
            return tokens, result.scores[0] * len(tokens) / (len(tokens) + 1), result.no_speech_prob

        tokens, average_logprob, silent = decode(_beam_size(code))
        if code == "en" and tokens and average_logprob < DOUBTFUL_LOGPROB:
            tokens, average_logprob, silent = max(decode(BEAM_SIZE), (tokens, average_logprob, silent),
                                                  key=lambda decoded: decoded[1])
        if silent > NO_SPEECH_PROBABILITY and (average_logprob < LEAST_AVERAGE_LOGPROB or silent > SURELY_SILENT):
            return ""
        return tokenizer.decode(tokens).strip()

    def warmup(self) -> None:
        self.transcribe(AudioClip(SPEECH_RATE, np.zeros(SPEECH_RATE, dtype=np.int16)))


class OfflineWhisper:
    """tiny.en for English; the multilingual model for the rest and for detection."""

    name = "offline-whisper"

    def __init__(self, english: WhisperSTT, multilingual: Lazy | None = None):
        self._english = english
        self._multilingual = multilingual

    def _model_for(self, language: str | None) -> WhisperSTT:
        if iso_language(language) == "en" or self._multilingual is None:
            return self._english
        try:
            return self._multilingual.get()
        except Exception:
            if iso_language(language) is None:
                return self._english  # detection unavailable: English is the best guess
            raise

    def transcribe(self, audio: AudioClip, language: str | None = "en") -> str:
        return self._model_for(language).transcribe(audio, language)

    def transcribe_detecting(self, audio: AudioClip, language: str | None = "en") -> tuple[str, str]:
        return self._model_for(language).transcribe_detecting(audio, language)

    def warmup(self) -> None:
        self._english.warmup()
