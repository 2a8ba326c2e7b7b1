"""A spoken turn when cloud speech fails: the user hears a reply, or an apology, never silence.

ElevenLabs is a local fake speaking its streaming wire protocol; the real SDK talks to it.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from providers.pcm import rms_dbfs
from handlers.voice.turn import Conversation, SpokenTurn, VoiceTurnRunner
from orchestrator.services import build_chat_services
from personas.cards import PersonaCatalog
from providers.base import AudioClip
from providers.breakers import ProviderPolicy
from providers.fallback import FallbackTTS
from tests.clients.voice_ws import espeak_clip
from tests.fakes.fixtures import _fake_vendors, vendor, vendors  # noqa: F401 - fixtures
from tests.fakes.providers import elevenlabs_tts
from tests.fakes.vendor_server import Fault
from tests.conftest import stored_settings

PERSONAS = Path(__file__).resolve().parent.parent / "personas"


@pytest.fixture
def runner(tmp_path, vendor, whisper, piper, fast_llm):
    services = build_chat_services(stored_settings(tmp_path), PersonaCatalog(PERSONAS, "concise"), fast_llm)
    chain = FallbackTTS([elevenlabs_tts(vendor), piper], policy=ProviderPolicy(fail_max=2, reset_timeout_s=60))
    runner = VoiceTurnRunner(whisper, chain, services.orchestrator, 24_000, apology_tts=piper)
    runner.warmup()
    yield runner
    services.close()


def spoken_turn(text: str) -> SpokenTurn:
    now = time.perf_counter()
    return SpokenTurn(AudioClip(16_000, espeak_clip(text)), now, now)


def hear(runner: VoiceTurnRunner, conversation: Conversation) -> np.ndarray:
    audio = [out[1] for out in runner.run(spoken_turn("what is the capital of France"), conversation)
             if isinstance(out, tuple)]
    return np.concatenate(audio) if audio else np.zeros(0, np.int16)


def test_a_drop_after_audio_started_ends_in_a_spoken_apology(runner, vendor):
    vendor.fail_next(Fault(drop_after_chunks=2))
    conversation = Conversation(persona_id="concise")
    audio = hear(runner, conversation)
    apology = runner.apology()[1]
    assert len(audio) > len(apology)  # some cloud speech was heard first...
    assert np.array_equal(audio[-len(apology):], apology)  # ...then the apology, not silence
    assert rms_dbfs(audio[:-len(apology)]) > -50
    assert conversation.last_turn["error"] == "text-to-speech failed"


def test_a_failing_primary_trips_its_breaker_and_turns_go_on_locally(runner, vendor):
    vendor.fail_always(Fault(status=503))
    conversation = Conversation(persona_id="concise")
    for _ in range(3):
        audio = hear(runner, conversation)
        assert rms_dbfs(audio) > -40 and "error" not in conversation.last_turn
        assert conversation.last_turn["providers"]["tts"] == "offline-piper"
    calls_while_open = vendor.hits("/stream")
    assert runner.tts.breaker_states()["elevenlabs"] == "open"
    hear(runner, conversation)
    assert vendor.hits("/stream") == calls_while_open  # open: the primary is not called at all
