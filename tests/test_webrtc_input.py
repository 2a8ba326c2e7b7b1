"""A WebRTC caller's audio reaches turn-taking as it arrives, not after a playout buffer
(handlers/voice/webrtc_input.py)."""
from __future__ import annotations

from aiortc import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from handlers.voice.webrtc_input import take_audio_frames_on_arrival

FRAME_SAMPLES = 960  # 20 ms of Opus at 48 kHz


class ConnectedTransport:
    state = "connected"


def frames_released(receiver: RTCRtpReceiver, packets: int) -> list[bool]:
    """For each 20 ms packet as it arrives, whether the receiver lets a frame go to the decoder."""
    buffer = receiver._RTCRtpReceiver__jitter_buffer
    released = []
    for index in range(packets):
        packet = RtpPacket(payload_type=111, sequence_number=100 + index, timestamp=FRAME_SAMPLES * index)
        packet._data = b"\xfc\xff\xfe"  # what the buffer joins into a frame
        released.append(buffer.add(packet)[1] is not None)
    return released


def test_a_callers_audio_frame_goes_on_as_soon_as_the_next_one_arrives():
    take_audio_frames_on_arrival()
    take_audio_frames_on_arrival()  # installing twice changes nothing
    receiver = RTCRtpReceiver("audio", ConnectedTransport())
    # aiortc's own buffer lets the first frame go with the fifth packet (80 ms later).
    assert frames_released(receiver, 5) == [False, True, True, True, True]


def test_video_keeps_aiortcs_buffer():
    take_audio_frames_on_arrival()
    receiver = RTCRtpReceiver("video", ConnectedTransport())
    assert receiver._RTCRtpReceiver__jitter_buffer.capacity == 512
