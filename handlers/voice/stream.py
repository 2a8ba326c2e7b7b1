"""The one FastRTC Stream every channel shares: Gradio UI, mounted routes, phone."""
from __future__ import annotations

from typing import Any

from fastrtc import Stream

from config import VoiceSettings
from handlers.voice.end_of_turn import EndOfTurnJudge, TurnTakingPolicy
from handlers.voice.reply_on_pause import CozyReplyOnPause
from handlers.voice.identity import VoiceIdentities
from handlers.voice.turn import VoiceTurnRunner
from handlers.voice.webrtc_input import take_audio_frames_on_arrival
from handlers.voice.webrtc_output import send_audio_frames_as_given
from personas.cards import PersonaCatalog
from providers.offline.end_of_turn import EndOfTurnModel
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
                       rtc_configuration: Any = None, end_of_turn: EndOfTurnModel | None = None,
                       personas: PersonaCatalog | None = None) -> Stream:
    # Turn-taking per connection: server defaults, the persona's card, then the channel.
    policy = TurnTakingPolicy(voice, have_model=end_of_turn is not None,
                              persona_turn_taking=(lambda pid: personas.get(pid).turn_taking) if personas
                              else (lambda _: None))
    warm_fastrtc_resampling()
    take_audio_frames_on_arrival()
    send_audio_frames_as_given()
    handler = CozyReplyOnPause(runner, vad, policy.options_for(default_persona, phone=False),
                               output_sample_rate=voice.output_sample_rate,
                               default_persona=default_persona, identities=identities,
                               judge=EndOfTurnJudge(end_of_turn) if end_of_turn else None,
                               turn_policy=policy)
    return Stream(handler, modality="audio", mode="send-receive", rtc_configuration=rtc_configuration,
                  concurrency_limit=voice.concurrency_limit, verbose=False)
