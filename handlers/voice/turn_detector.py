"""End-of-turn detection from a stream of VAD probabilities.

Stock ReplyOnPause judges 0.6 s chunks, so it notices the end of speech 0.6-1.2 s
late. Scoring every 32 ms window and counting trailing silence ends the turn a
fixed, configurable time after the user stops.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class TurnEvent(Enum):
    SPEECH_STARTED = "speech_started"
    PAUSE_STARTED = "pause_started"  # brief silence: a good moment to transcribe early
    SPEECH_RESUMED = "speech_resumed"
    TURN_ENDED = "turn_ended"


@dataclass
class TurnDetectorOptions:
    window_s: float = 0.032
    speech_probability: float = 0.5
    min_speech_s: float = 0.2  # speech before a turn counts (coughs and clicks do not)
    end_of_turn_silence_s: float = 0.5
    early_transcribe_silence_s: float = 0.1
    max_turn_s: float = 30.0


class TurnDetector:
    def __init__(self, options: TurnDetectorOptions):
        self.options = options
        self.reset()

    def reset(self) -> None:
        self.in_turn = False
        self.speech_s = 0.0  # speech heard in the current candidate/turn
        self.silence_s = 0.0  # trailing silence
        self.turn_s = 0.0
        self._pause_reported = False

    def feed(self, probabilities: list[float]) -> list[TurnEvent]:
        events: list[TurnEvent] = []
        o = self.options
        for probability in probabilities:
            speaking = probability >= o.speech_probability
            if not self.in_turn:
                # A candidate start: speech must accumulate before silence wipes it.
                if speaking:
                    self.speech_s += o.window_s
                    self.silence_s = 0.0
                    if self.speech_s >= o.min_speech_s:
                        self.in_turn = True
                        self.turn_s = self.speech_s
                        events.append(TurnEvent.SPEECH_STARTED)
                else:
                    self.silence_s += o.window_s
                    if self.silence_s >= o.end_of_turn_silence_s:
                        self.speech_s = 0.0
                continue
            self.turn_s += o.window_s
            if speaking:
                self.speech_s += o.window_s
                if self._pause_reported:
                    events.append(TurnEvent.SPEECH_RESUMED)
                self.silence_s = 0.0
                self._pause_reported = False
            else:
                self.silence_s += o.window_s
                if not self._pause_reported and self.silence_s >= o.early_transcribe_silence_s:
                    self._pause_reported = True
                    events.append(TurnEvent.PAUSE_STARTED)
            if self.silence_s >= o.end_of_turn_silence_s or self.turn_s >= o.max_turn_s:
                events.append(TurnEvent.TURN_ENDED)
                self.reset()
        return events
