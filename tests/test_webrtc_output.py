"""A reply's audio leaves over WebRTC with each frame FastRTC gives the encoder
(handlers/voice/webrtc_output.py)."""
from __future__ import annotations

import fractions

import av
import numpy as np
import pytest
from aiortc.codecs.opus import OpusEncoder

from handlers.voice.webrtc_output import send_audio_frames_as_given


def frame(rate: int, index: int, layout: str) -> av.AudioFrame:
    """The index-th 20 ms frame of a tone, as FastRTC hands a reply to aiortc (s16)."""
    samples = rate // 50
    channels = 1 if layout == "mono" else 2
    t = (np.arange(samples) + index * samples) / rate
    tone = (8000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    audio = av.AudioFrame.from_ndarray(np.repeat(tone, channels)[None], format="s16", layout=layout)
    audio.sample_rate, audio.pts, audio.time_base = rate, index * samples, fractions.Fraction(1, rate)
    return audio


@pytest.mark.parametrize("rate", [8000, 16000, 24000, 44100, 48000])
@pytest.mark.parametrize("layout", ["mono", "stereo"])
def test_every_frame_of_a_reply_leaves_as_a_packet_when_it_is_given(rate, layout):
    send_audio_frames_as_given()
    send_audio_frames_as_given()  # installing twice changes nothing
    encoder = OpusEncoder()
    sent = [encoder.encode(frame(rate, index, layout)) for index in range(6)]
    # Stock aiortc sends nothing for the first frame below 48 kHz: the reply starts 20 ms late.
    assert [len(payloads) for payloads, _ in sent] == [1] * 6
    # RTP time moves on 20 ms a packet, from the first.
    assert [timestamp for _, timestamp in sent] == [960 * index for index in range(6)]
