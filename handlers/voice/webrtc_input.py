"""A WebRTC caller's audio feeds a VAD, not a loudspeaker: take each frame as it arrives.

aiortc (under FastRTC) gives every incoming audio track a playout jitter buffer that holds
four 20 ms frames before it lets one go. A loudspeaker needs that, or it runs dry; turn
taking does not, and with it the end of every caller's words reached the VAD ~80 ms late
(the websocket and phone routes have no such buffer). Our receivers pass each packet on as
soon as every packet before it is in: an Opus packet is a whole frame, so nothing needs to
wait for the next one (aiortc's buffer, built for video frames split over packets, cannot
know a frame is whole before the next packet starts another; that held the caller's last
20 ms, and a sender that sends in bursts, as aiortc does, a burst).

A lost packet holds the ones behind it until HOLE_WAIT_PACKETS have come, then the stream
goes on without it, at most that many packets behind (one packet goes out per packet in).
aiortc's buffer waited until it overflowed and then stayed 16 packets (320 ms) behind for
the rest of the call.
"""
from __future__ import annotations

import logging

from aiortc.jitterbuffer import JitterBuffer, JitterFrame

log = logging.getLogger(__name__)

CAPACITY = 16  # packets, as aiortc's audio buffer
# Packets that may arrive behind a missing one before it is given up: a packet that is merely
# late (reordered) comes within a packet or two; waiting longer only delays the caller.
HOLE_WAIT_PACKETS = 3
_BUFFER = "_RTCRtpReceiver__jitter_buffer"  # aiortc 1.16's private name (pinned in requirements.txt)


class ArrivalOrderAudioBuffer(JitterBuffer):
    """Puts packets back in order and lets each go the moment it is next in line."""

    def __init__(self) -> None:
        super().__init__(capacity=CAPACITY)

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        # Called by `add` once the packet is stored; one frame out per packet in, as aiortc expects.
        packet = self._packets[self._origin % self.capacity]
        if packet is None:
            waiting = [offset for offset in range(1, self.capacity)
                       if self._packets[(self._origin + offset) % self.capacity] is not None]
            if len(waiting) < HOLE_WAIT_PACKETS:
                return None
            self.remove(waiting[0])  # the missing packet(s): the caller's audio goes on without them
            packet = self._packets[self._origin % self.capacity]
        self.remove(1)
        return JitterFrame(data=packet._data, timestamp=packet.timestamp)


def take_audio_frames_on_arrival() -> None:
    """Install, once per process, before the first WebRTC offer is answered."""
    from aiortc import rtcrtpreceiver

    receiver = rtcrtpreceiver.RTCRtpReceiver
    if getattr(receiver, "_takes_audio_on_arrival", False):
        return
    stock_init = receiver.__init__

    def __init__(self, kind, transport) -> None:  # noqa: ANN001 - aiortc's signature
        stock_init(self, kind, transport)
        if kind != "audio":
            return
        if isinstance(getattr(self, _BUFFER, None), JitterBuffer):
            setattr(self, _BUFFER, ArrivalOrderAudioBuffer())
        else:  # another aiortc: its own buffer stays, and the latency with it
            log.warning("aiortc's audio jitter buffer not found; WebRTC input keeps its playout delay")

    receiver.__init__ = __init__
    receiver._takes_audio_on_arrival = True
