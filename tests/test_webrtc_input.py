"""A WebRTC caller's audio reaches turn-taking as it arrives, not after a playout buffer
(handlers/voice/webrtc_input.py)."""
from __future__ import annotations

from aiortc import RTCRtpReceiver
from aiortc.rtp import RtpPacket

from handlers.voice.webrtc_input import HOLE_WAIT_PACKETS, take_audio_frames_on_arrival

FRAME_SAMPLES = 960  # 20 ms of Opus at 48 kHz


class ConnectedTransport:
    state = "connected"


def audio_receiver() -> RTCRtpReceiver:
    take_audio_frames_on_arrival()
    return RTCRtpReceiver("audio", ConnectedTransport())


def released(receiver: RTCRtpReceiver, numbers: list[int]) -> list[int | None]:
    """For each 20 ms packet as it arrives (by number), which packet the receiver lets go to the decoder."""
    buffer = receiver._RTCRtpReceiver__jitter_buffer
    out = []
    for number in numbers:
        packet = RtpPacket(payload_type=111, sequence_number=100 + number, timestamp=FRAME_SAMPLES * number)
        packet._data = bytes([number])  # what the buffer hands on as the frame
        frame = buffer.add(packet)[1]
        out.append(None if frame is None else frame.timestamp // FRAME_SAMPLES)
        if frame is not None:
            assert frame.data == bytes([frame.timestamp // FRAME_SAMPLES])
    return out


def test_each_packet_of_a_callers_audio_goes_on_as_it_arrives():
    take_audio_frames_on_arrival()  # installing twice changes nothing
    # aiortc's own buffer lets the first frame go with the fifth packet (80 ms later), and the
    # last one a caller sends (the end of their words) only when another comes.
    assert released(audio_receiver(), [0, 1, 2, 3, 4]) == [0, 1, 2, 3, 4]


def test_packets_that_arrive_out_of_order_go_on_in_order():
    assert released(audio_receiver(), [0, 2, 1, 3, 4]) == [0, None, 1, 2, 3]


def test_a_lost_packet_holds_the_audio_behind_it_only_briefly():
    receiver = audio_receiver()
    after_the_loss = list(range(2, 2 + HOLE_WAIT_PACKETS + 4))
    out = released(receiver, [0, *after_the_loss])  # packet 1 never comes
    assert out[:HOLE_WAIT_PACKETS] == [0] + [None] * (HOLE_WAIT_PACKETS - 1)
    # Then the call goes on without it, every packet in order, a bounded number behind.
    assert out[HOLE_WAIT_PACKETS:] == list(range(2, 2 + len(after_the_loss) - HOLE_WAIT_PACKETS + 1))
    # A packet from before the hole that turns up late is not played out of order.
    assert released(receiver, [1]) == [None]


def test_video_keeps_aiortcs_buffer():
    take_audio_frames_on_arrival()
    receiver = RTCRtpReceiver("video", ConnectedTransport())
    assert receiver._RTCRtpReceiver__jitter_buffer.capacity == 512
