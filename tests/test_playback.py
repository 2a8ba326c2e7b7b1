"""What a caller heard of a reply: Twilio's echoed marks, and the words within that time."""
from __future__ import annotations

from handlers.voice.playback import PlaybackClock, SpokenReply


def test_heard_is_what_twilio_echoed_and_cleared_audio_is_never_heard():
    clock = PlaybackClock()
    marks = [clock.sent(0.5) for _ in range(4)]  # two seconds sent, in four chunks
    assert marks == ["0.500", "1.000", "1.500", "2.000"]
    clock.echoed(marks[0])
    clock.echoed(marks[1])
    assert clock.heard_s == 1.0
    clock.cleared()  # barge-in: Twilio drops the rest, then echoes its marks anyway
    clock.echoed(marks[2])
    clock.echoed(marks[3])
    assert clock.heard_s == 1.0
    clock.echoed("not a mark of ours")
    clock.echoed(None)
    assert clock.heard_s == 1.0
    # The next reply's audio counts on from what was heard.
    assert clock.sent(0.25) == "1.250"


def test_the_heard_part_of_a_reply_is_whole_sentences_then_a_share_of_the_cut_one():
    reply = SpokenReply()
    reply.add("Once upon a time there was a dragon.", 2.0)
    reply.add("It lived in a lighthouse by the sea.", 1.0)
    reply.add("It lived in a lighthouse by the sea.", 1.0)  # the same sentence, a second clip
    reply.add("The end.", 1.0)
    assert reply.seconds == 5.0
    assert reply.heard(0.0) == ""
    assert reply.heard(1.0) == "Once upon a time"
    assert reply.heard(2.0) == "Once upon a time there was a dragon."
    assert reply.heard(3.0) == "Once upon a time there was a dragon. It lived in a"
    assert reply.heard(99.0) == "Once upon a time there was a dragon. It lived in a lighthouse by the sea. The end."
