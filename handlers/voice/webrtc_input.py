"""A WebRTC caller's audio feeds a VAD, not a loudspeaker: take each frame as it arrives.

aiortc (under FastRTC) gives every incoming audio track a playout jitter buffer that holds
four 20 ms frames before it lets one go. A loudspeaker needs that, or it runs dry; turn
taking does not, and with it the end of every caller's words reached the VAD ~80 ms late
(the websocket and phone routes have no such buffer): part of the ~0.25-0.3 s WebRTC took
over the websocket in bench/voice_latency.py. Our receivers release a frame as soon as the
packet after it arrives; packets are still put back in order, and a gap is handled as before.
"""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)

# Complete frames the buffer waits for before releasing the oldest: 1 releases a frame as
# the next packet comes (aiortc's JitterBuffer counts the frame itself). aiortc's own: 4.
AUDIO_PREFETCH_FRAMES = 1
_BUFFER = "_RTCRtpReceiver__jitter_buffer"  # aiortc 1.16's private name (pinned in requirements.txt)


def take_audio_frames_on_arrival() -> None:
    """Install, once per process, before the first WebRTC offer is answered."""
    from aiortc import rtcrtpreceiver
    from aiortc.jitterbuffer import JitterBuffer

    receiver = rtcrtpreceiver.RTCRtpReceiver
    if getattr(receiver, "_takes_audio_on_arrival", False):
        return
    stock_init = receiver.__init__

    def __init__(self, kind, transport) -> None:  # noqa: ANN001 - aiortc's signature
        stock_init(self, kind, transport)
        if kind != "audio":
            return
        if isinstance(getattr(self, _BUFFER, None), JitterBuffer):
            setattr(self, _BUFFER, JitterBuffer(capacity=16, prefetch=AUDIO_PREFETCH_FRAMES))
        else:  # another aiortc: its own buffer stays, and the latency with it
            log.warning("aiortc's audio jitter buffer not found; WebRTC input keeps its playout delay")

    receiver.__init__ = __init__
    receiver._takes_audio_on_arrival = True
