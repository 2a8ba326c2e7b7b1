"""The one FastRTC Stream every channel shares: Gradio UI, mounted routes, phone."""
from __future__ import annotations

from typing import Any

from fastrtc import Stream

from config import VoiceSettings
from handlers.voice.reply_on_pause import CozyReplyOnPause
from handlers.voice.turn_detector import TurnDetectorOptions
from handlers.voice.identity import VoiceIdentities
from handlers.voice.turn import VoiceTurnRunner
from providers.offline.vad import SileroVad


def warm_fastrtc_resampling() -> None:
    """FastRTC resamples phone audio with librosa (8 kHz in, our rates out); its first
    call takes seconds, which would land on the first caller's first words."""
    import librosa
    import numpy as np

    silence = np.zeros(1600, dtype=np.float32)
    librosa.resample(silence, orig_sr=8000, target_sr=16000)
    librosa.resample(silence, orig_sr=24000, target_sr=8000)


def build_voice_stream(runner: VoiceTurnRunner, vad: SileroVad, voice: VoiceSettings,
                       default_persona: str, identities: VoiceIdentities | None = None,
                       rtc_configuration: Any = None) -> Stream:
    turn_options = TurnDetectorOptions(
        speech_probability=voice.speech_probability,
        min_speech_s=voice.min_speech_s,
        end_of_turn_silence_s=voice.end_of_turn_silence_s,
        max_turn_s=voice.max_continuous_speech_s,
    )
    warm_fastrtc_resampling()
    handler = CozyReplyOnPause(runner, vad, turn_options, output_sample_rate=voice.output_sample_rate,
                               default_persona=default_persona, identities=identities)
    return Stream(handler, modality="audio", mode="send-receive", rtc_configuration=rtc_configuration,
                  concurrency_limit=voice.concurrency_limit, verbose=False)
