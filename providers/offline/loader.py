"""Load and warm the offline models, reporting each step as it goes."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from config import Settings
from providers import model_files
from providers.offline.end_of_turn import SmartTurn, load_smart_turn
from providers.offline.llm import LlamaChatModel
from providers.offline.kokoro import KokoroTTS
from providers.offline.lazy import Lazy
from providers.offline.stt import OfflineWhisper, WhisperSTT
from providers.offline.tts import EspeakTTS, PiperTTS
from providers.offline.voices import OfflineVoices
from providers.offline.vad import SileroVad

log = logging.getLogger(__name__)


@dataclass
class OfflineModels:
    vad: SileroVad
    stt: OfflineWhisper
    tts: OfflineVoices
    espeak: EspeakTTS
    llm: LlamaChatModel
    end_of_turn: SmartTurn | None = None  # None: turns end on silence alone
    later: tuple[Lazy, ...] = ()  # loaded after start-up (preload_later), or by the first turn that needs one

    def preload_later(self) -> None:
        for model in self.later:
            model.preload()


def _multilingual_whisper(settings: Settings) -> WhisperSTT:
    resolve = model_files.resolve
    for name in ("whisper-base/config.json", "whisper-base/tokenizer.json", "whisper-base/vocabulary.json"):
        resolve(name, settings.models_dir)
    model = resolve("whisper-base", settings.models_dir)
    stt = WhisperSTT(model.parent, threads=settings.models.llm_threads,  # COZY_STT_THREADS was measured on tiny.en
                     short_window=settings.models.stt_window == "short")
    stt.warmup()
    return stt


def _kokoro(settings: Settings, espeak: EspeakTTS) -> KokoroTTS:
    resolve = model_files.resolve
    voices = {voice: resolve(f"kokoro-voice-{voice}", settings.models_dir) for voice in model_files.KOKORO_VOICES}
    kokoro = KokoroTTS(resolve("kokoro-v1.0-int8", settings.models_dir), voices, espeak,
                       threads=settings.models.llm_threads)
    kokoro.warmup()
    return kokoro



def load_offline_models(settings: Settings, progress: Callable[[str], None] = log.info) -> OfflineModels:
    m = settings.models
    steps = 5
    began = time.perf_counter()

    def step(index: int, what: str) -> None:
        progress(f"[{index}/{steps}] {what} ({time.perf_counter() - began:.1f}s)")

    step(1, "voice activity and end-of-turn detectors")
    vad = SileroVad(model_files.resolve("silero-vad-v5", settings.models_dir, m.vad_path, progress),
                    threshold=settings.voice.speech_probability)
    vad.warmup()
    try:
        end_of_turn_path, end_of_turn_error = model_files.resolve(
            "smart-turn-v3.2", settings.models_dir, m.end_of_turn_path, progress), ""
    except model_files.ModelFileError as exc:  # the voice still works, on silence alone
        end_of_turn_path, end_of_turn_error = None, str(exc)
    end_of_turn = load_smart_turn(end_of_turn_path, end_of_turn_error)

    step(2, "speech recognition (Whisper tiny.en; multilingual base after start-up)")
    stt_model = model_files.resolve("whisper-tiny.en", settings.models_dir, m.stt_path, progress)
    english = WhisperSTT(stt_model if stt_model.is_dir() else stt_model.parent, threads=m.stt_threads,
                         short_window=m.stt_window == "short")
    english.warmup()
    multilingual = Lazy("multilingual Whisper base", lambda: _multilingual_whisper(settings))
    stt = OfflineWhisper(english, multilingual)

    step(3, "speech synthesis (Piper; Kokoro after start-up; espeak-ng fallback)")
    espeak = EspeakTTS()
    espeak.warmup()
    piper = PiperTTS(model_files.resolve("piper-joe-medium", settings.models_dir, m.tts_voice_path, progress))
    kokoro = Lazy("Kokoro voices", lambda: _kokoro(settings, espeak))
    tts = OfflineVoices({"en_US-joe-medium": piper}, espeak, kokoro)
    tts.warmup()

    step(4, f"language model ({m.llm})")
    llm_path = model_files.resolve(m.llm, settings.models_dir, m.llm_path, progress)
    llm = LlamaChatModel(llm_path, m.llm, threads=m.llm_threads, decode_threads=m.llm_decode_threads,
                         context_tokens=m.llm_context_tokens,
                         prompt_cache_bytes=m.llm_prompt_cache_mb * 1024 * 1024)

    step(5, "warming the language model")
    llm.warmup()
    progress(f"models ready in {time.perf_counter() - began:.1f}s")
    return OfflineModels(vad=vad, stt=stt, tts=tts, espeak=espeak, llm=llm, end_of_turn=end_of_turn,
                         later=(multilingual, kokoro))


def local_models(settings: Settings, default: LlamaChatModel, default_queue) -> Callable[[str | None], object]:
    """A local chat model by name (None: the server's), each behind its own fair queue,
    loaded the first time a persona asks for it."""
    from providers.local_queue import FairQueue, QueuedChatModel

    m = settings.models
    loaded = {m.llm: QueuedChatModel(default, default_queue)}

    def get(name: str | None):
        name = name or m.llm
        if name not in loaded:
            path = model_files.resolve(name, settings.models_dir)
            model = LlamaChatModel(path, name, threads=m.llm_threads, decode_threads=m.llm_decode_threads,
                                   context_tokens=m.llm_context_tokens,
                                   prompt_cache_bytes=m.llm_prompt_cache_mb * 1024 * 1024)
            model.warmup()
            loaded[name] = QueuedChatModel(model, FairQueue(f"llm:{name}", m.local_queue_max,
                                                            m.local_queue_per_user, m.local_queue_max_wait_s))
        return loaded[name]

    return get
