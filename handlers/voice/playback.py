"""What the caller has actually heard of a reply, so a cut-off reply is kept as far as it was heard.

On the phone it is exact: each media chunk sent to Twilio is followed by a `mark`, and
Twilio echoes a mark once the audio before it has played. After a `clear` (barge-in),
Twilio echoes the marks of the audio it dropped too; those are not heard and are ignored.
Elsewhere (WebRTC plays in real time, a websocket client as it receives) the heard part
is estimated from the clock: the time since the reply's first audio went out.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field


class PlaybackClock:
    """Seconds of audio sent on a phone stream, and how many of them the caller has heard."""

    def __init__(self):
        self._lock = threading.Lock()
        self.sent_s = 0.0
        self.heard_s = 0.0
        self._outstanding: set[str] = set()
        self._dropped: set[str] = set()

    def sent(self, seconds: float) -> str:
        """Count a chunk; returns the name of the mark to send after it."""
        with self._lock:
            self.sent_s += seconds
            name = f"{self.sent_s:.3f}"
            self._outstanding.add(name)
            return name

    def echoed(self, name: object) -> None:
        """Twilio says the audio up to this mark has played."""
        if not isinstance(name, str):
            return
        with self._lock:
            if name in self._dropped:
                self._dropped.discard(name)
                return
            if name in self._outstanding:
                self._outstanding.discard(name)
                self.heard_s = max(self.heard_s, float(name))

    def cleared(self) -> None:
        """Twilio drops what it had not played yet: that much was sent but never heard."""
        with self._lock:
            self._dropped |= self._outstanding
            self._outstanding.clear()
            self.sent_s = self.heard_s


@dataclass
class SpokenReply:
    """A reply's sentences as they were sent, each with its audio length."""

    pieces: list[tuple[str, float]] = field(default_factory=list)

    def add(self, text: str, seconds: float) -> None:
        if self.pieces and self.pieces[-1][0] == text:
            self.pieces[-1] = (text, self.pieces[-1][1] + seconds)  # one sentence, several clips
        else:
            self.pieces.append((text, seconds))

    @property
    def seconds(self) -> float:
        return sum(s for _, s in self.pieces)

    def heard(self, heard_s: float) -> str:
        """The words within the first `heard_s` seconds (a sentence cut mid-way: its words
        in proportion to the part played)."""
        words: list[str] = []
        left = heard_s
        for text, seconds in self.pieces:
            if left >= seconds - 1e-6:
                words.append(text)
                left -= seconds
                continue
            if left > 0 and seconds > 0:
                split = text.split()
                taken = int(len(split) * left / seconds)
                if taken:
                    words.append(" ".join(split[:taken]))
            break
        return " ".join(words).strip()
