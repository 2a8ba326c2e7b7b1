"""A reply's audio leaves over WebRTC frame by frame, as it is given, not a frame late.

aiortc's Opus encoder resamples what it is given to 48 kHz, in 20 ms frames. Our replies go
out at 24 kHz, and the resampler keeps back a few samples (its filter's delay): a call's first
20 ms frame makes 19.7 ms of output, so no packet, until the next frame comes 20 ms later
(FastRTC paces frames in real time). From then on every packet carried audio 20 ms old: the
first sound of every reply reached the caller 20 ms late. Given PRIME_S of silence first, more
than that delay at every rate we send, the resampler has a whole frame each time a frame
comes: each packet leaves with its own frame, 2 ms of silence behind.
"""
from __future__ import annotations

import math

PRIME_S = 0.002  # 8 kHz needs 2 ms; 16-44.1 kHz need 1 (measured with aiortc 1.16's encoder)


def _silence_before(frame):  # noqa: ANN001, ANN202 - PyAV's AudioFrame
    import av

    samples = math.ceil(frame.sample_rate * PRIME_S)
    silence = av.AudioFrame(format=frame.format.name, layout=frame.layout.name, samples=samples)
    for plane in silence.planes:
        plane.update(bytes(plane.buffer_size))
    silence.sample_rate = frame.sample_rate
    silence.time_base = frame.time_base
    silence.pts = None if frame.pts is None else frame.pts - samples
    return silence


def send_audio_frames_as_given() -> None:
    """Install, once per process, before the first WebRTC offer is answered."""
    from aiortc.codecs import opus

    encoder = opus.OpusEncoder
    if getattr(encoder, "_sends_frames_as_given", False):
        return
    stock_encode = encoder.encode

    def encode(self, frame, force_keyframe: bool = False):  # noqa: ANN001, ANN202 - aiortc's signature
        if not getattr(self, "_resampler_primed", False):
            self._resampler_primed = True
            if frame.sample_rate != opus.SAMPLE_RATE:  # at 48 kHz nothing is kept back
                self.resampler.resample(_silence_before(frame))  # under a frame: nothing comes out
        return stock_encode(self, frame, force_keyframe)

    encoder.encode = encode
    encoder._sends_frames_as_given = True
