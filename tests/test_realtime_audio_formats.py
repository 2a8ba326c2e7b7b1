"""The Realtime API's G.711 codecs are bit-exact with the CCITT reference (Python's audioop,
which Twilio's mu-law matches), over every 16-bit sample and every code byte."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from handlers.realtime.audio_formats import PCM, PCMA, PCMU, NotAudio, decode, encode

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the independent reference; gone in Python 3.13, hence our own codec

EVERY_SAMPLE = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
EVERY_CODE = bytes(range(256))


@pytest.mark.parametrize("format_type, to_law, from_law", [(PCMU, audioop.lin2ulaw, audioop.ulaw2lin),
                                                           (PCMA, audioop.lin2alaw, audioop.alaw2lin)])
def test_g711_matches_the_reference(format_type, to_law, from_law):
    assert encode(format_type, EVERY_SAMPLE) == to_law(EVERY_SAMPLE.tobytes(), 2)
    assert decode(format_type, EVERY_CODE).tobytes() == from_law(EVERY_CODE, 2)


def test_pcm_is_little_endian_16_bit_and_odd_bytes_are_refused():
    samples = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    assert encode(PCM, samples) == b"\x00\x00\x01\x00\xff\xff\xff\x7f\x00\x80"
    assert decode(PCM, encode(PCM, samples)).tolist() == samples.tolist()
    with pytest.raises(NotAudio):
        decode(PCM, b"\x00\x01\x02")
