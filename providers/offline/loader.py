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
from providers.offline.stt import WhisperSTT
from providers.offline.tts import EspeakTTS, PiperTTS
from providers.offline.vad import SileroVad

log = logging.getLogger(__name__)


@dataclass
class OfflineModels:
    vad: SileroVad
    stt: WhisperSTT
    tts: PiperTTS
    espeak: EspeakTTS
    llm: LlamaChatModel
    end_of_turn: SmartTurn | None = None  # None: turns end on silence alone



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

    step(2, "speech recognition (Whisper tiny.en)")
    stt_model = model_files.resolve("whisper-tiny.en", settings.models_dir, m.stt_path, progress)
    stt = WhisperSTT(stt_model if stt_model.is_dir() else stt_model.parent, threads=m.llm_threads)
    stt.warmup()

    step(3, "speech synthesis (Piper, espeak-ng fallback)")
    espeak = EspeakTTS()
    espeak.warmup()
    tts = PiperTTS(model_files.resolve("piper-joe-medium", settings.models_dir, m.tts_voice_path, progress))
    tts.warmup()

    step(4, f"language model ({m.llm})")
    llm_path = model_files.resolve(m.llm, settings.models_dir, m.llm_path, progress)
    llm = LlamaChatModel(llm_path, m.llm, threads=m.llm_threads, context_tokens=m.llm_context_tokens,
                         prompt_cache_bytes=m.llm_prompt_cache_mb * 1024 * 1024)

    step(5, "warming the language model")
    llm.warmup()
    progress(f"models ready in {time.perf_counter() - began:.1f}s")
    return OfflineModels(vad=vad, stt=stt, tts=tts, espeak=espeak, llm=llm, end_of_turn=end_of_turn)
