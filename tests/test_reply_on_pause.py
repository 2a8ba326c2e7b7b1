"""The Stream's handler, driven frame by frame as FastRTC drives it."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from fastrtc import AdditionalOutputs


from providers.pcm import rms_dbfs
from handlers.voice.reply_on_pause import CozyReplyOnPause
from handlers.voice.turn_detector import TurnDetectorOptions
from handlers.voice.turn import VoiceTurnRunner
from orchestrator.services import build_chat_services
from personas.cards import PersonaCatalog
from tests.clients.voice_ws import espeak_clip
from tests.conftest import stored_settings

PERSONAS = Path(__file__).resolve().parent.parent / "personas"
FRAME = 320  # 20 ms at 16 kHz


class FlakySTT:
    """Real Whisper behind a switch that makes it fail, to exercise the apology path."""

    name = "flaky-whisper"

    def __init__(self, whisper):
        self.whisper = whisper
        self.broken = False

    def transcribe(self, audio, language="en"):
        if self.broken:
            raise RuntimeError("speech recognition is down")
        return self.whisper.transcribe(audio, language)


@pytest.fixture
def flaky_stt(whisper):
    return FlakySTT(whisper)


@pytest.fixture
def handler(flaky_stt, piper, fast_llm, vad, tmp_path):
    settings = stored_settings(tmp_path)
    services = build_chat_services(settings, PersonaCatalog(PERSONAS, "concise"), fast_llm)
    runner = VoiceTurnRunner(flaky_stt, piper, services.orchestrator, 24_000)
    runner.warmup()
    prototype = CozyReplyOnPause(runner, vad, TurnDetectorOptions(), default_persona="concise")
    connection = prototype.copy()  # FastRTC copies the handler per connection
    connection.cleared = 0

    def clear_queue():
        connection.cleared += 1

    connection._clear_queue = clear_queue
    connection.services = services
    yield connection
    services.close()


def speak(handler, samples: np.ndarray) -> None:
    for start in range(0, len(samples), FRAME):
        handler.receive((16_000, samples[start:start + FRAME].reshape(1, -1)))


def collect_reply(handler, timeout_s: float = 30) -> tuple[np.ndarray, list]:
    audio, outputs = [], []
    deadline = time.monotonic() + timeout_s
    started = False
    while time.monotonic() < deadline:
        output = handler.emit()
        started = started or handler.generator is not None  # a state note before the turn is not it
        if output is None:
            if started and handler.generator is None:
                break
            continue
        if isinstance(output, AdditionalOutputs):
            outputs.append(output.args)
        else:
            audio.append(output[1])
    return (np.concatenate(audio) if audio else np.zeros(0, np.int16)), outputs


@pytest.fixture(scope="module")
def utterance() -> np.ndarray:
    return np.concatenate([espeak_clip("what time is it in Paris"), np.zeros(16_000, np.int16)])


def test_a_turn_gets_a_spoken_reply_and_transcript(handler, utterance):
    speak(handler, utterance)
    audio, outputs = collect_reply(handler)
    assert rms_dbfs(audio) > -40
    transcript, turn = outputs[-1]
    assert "paris" in transcript[0]["content"].lower()
    assert transcript[-1]["role"] == "assistant"
    assert turn["stages_s"]["endpointing_s"] < 1.0


def test_a_failing_stage_is_apologised_for_and_the_next_turn_works(handler, flaky_stt, whisper, utterance):
    flaky_stt.broken = True
    speak(handler, utterance)
    audio, outputs = collect_reply(handler)
    apology = handler.runner.apology()[1]
    assert len(audio) == len(apology) and rms_dbfs(audio) > -40
    assert outputs[-1][1]["error"] == "speech-to-text failed"
    from providers.base import AudioClip
    assert "again" in whisper.transcribe(AudioClip(24_000, audio)).lower()  # heard: "...say that again?"

    flaky_stt.broken = False
    speak(handler, utterance)
    audio, outputs = collect_reply(handler)
    assert rms_dbfs(audio) > -40 and "error" not in outputs[-1][1]


def test_talking_over_the_reply_stops_it(handler, utterance):
    speak(handler, utterance)
    first = None
    while first is None or isinstance(first, AdditionalOutputs):
        first = handler.emit()
    assert handler.generator is not None  # replying
    cleared_before = handler.cleared
    speak(handler, utterance[:16_000])  # the user starts talking again
    assert handler.cleared > cleared_before, "queued reply audio must be dropped at once"
    handler.emit()  # the interrupted reply is closed on the emitting thread
    speak(handler, utterance[16_000:])
    audio, outputs = collect_reply(handler)
    assert rms_dbfs(audio) > -40  # and the new question is answered
    users = [m for m in outputs[-1][0] if m["role"] == "user"]
    assert len(users) == 2


def test_an_idle_connection_does_not_spin(handler):
    calls, deadline = 0, time.monotonic() + 0.5
    while time.monotonic() < deadline:
        assert handler.emit() is None
        calls += 1
    assert calls <= 15  # stock FastRTC returns at once: thousands of calls in 0.5 s


def test_a_malformed_frame_is_dropped_and_the_call_goes_on(handler, utterance):
    handler.receive((16_000, np.array([[np.nan, np.inf]], dtype=np.float32)))
    handler.receive((16_000, np.zeros((2, 0), dtype=np.int16)))
    speak(handler, utterance)
    audio, _ = collect_reply(handler)
    assert rms_dbfs(audio) > -40


def test_a_phone_caller_is_not_the_local_user(handler, utterance):
    handler.phone_mode = True
    speak(handler, utterance)
    audio, _ = collect_reply(handler)
    assert rms_dbfs(audio) > -40
    caller = handler.conversation.user_id
    assert caller.startswith("phone:") and handler.conversation.channel == "phone"
    conversations = handler.services.conversations
    assert conversations.sessions("local") == []
    assert [s["id"] for s in conversations.sessions(caller)] == [handler.conversation.session_id]


def test_each_webrtc_frame_reaches_the_vad_as_it_arrives(handler):
    """WebRTC delivers 20 ms Opus frames at 48 kHz; each must come out at 16 kHz at once (FastRTC's
    own resampler held them until 60 ms had gathered)."""
    import av

    def frame(index: int):
        samples = (np.sin(np.arange(960) / 10) * 8000).astype(np.int16).reshape(1, -1)
        audio = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        audio.sample_rate, audio.pts = 48_000, index * 960
        return audio

    handler.expected_layout = "mono"
    out = [sum(f.samples for f in handler.resample(frame(i))) for i in range(5)]
    assert all(n > 0 for n in out), out  # nothing held back
    assert abs(sum(out) - 5 * 320) <= 64, out  # 20 ms at 16 kHz each, give or take the filter's delay
