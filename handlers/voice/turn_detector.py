"""End-of-turn detection from a stream of VAD probabilities.

Stock ReplyOnPause judges 0.6 s chunks, so it notices the end of speech 0.6-1.2 s
late. Scoring every 32 ms window and counting trailing silence ends the turn a
fixed, configurable time after the user stops ("silence" mode).

In "smart" mode a short silence only asks whether the turn is over (CHECK_TURN);
the handler asks the end-of-turn model and calls `end_now()` if it is, once the
silence has lasted `earliest_end_s` (`too_soon`). Otherwise the turn ends at a longer
fallback silence, so a user who pauses mid-sentence is not cut.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class TurnEvent(Enum):
    SPEECH_STARTED = "speech_started"
    PAUSE_STARTED = "pause_started"  # brief silence: a good moment to transcribe early
    SPEECH_RESUMED = "speech_resumed"
    CHECK_TURN = "check_turn"  # smart mode: short silence, ask the end-of-turn model
    TURN_ENDED = "turn_ended"


SMART = "smart"
SILENCE = "silence"
END_OF_TURN_MODES = (SMART, SILENCE)


@dataclass
class TurnDetectorOptions:
    window_s: float = 0.032
    speech_probability: float = 0.5
    min_speech_s: float = 0.2  # speech before a turn counts (coughs and clicks do not)
    end_of_turn_silence_s: float = 0.5  # silence mode: the silence that ends a turn
    # Whisper takes ~110 ms of a short clip, so its words are in about when a turn may end
    # (0.2 s). (At 0.064 s it ran at the gaps between words, and restarted the prefill.)
    early_transcribe_silence_s: float = 0.1
    max_turn_s: float = 30.0
    end_of_turn: str = SILENCE  # or SMART
    check_silence_s: float = 0.2  # smart mode: silence before the model is asked
    earliest_end_s: float = 0.0  # smart mode: a "finished" verdict ends the turn no sooner
    fallback_silence_s: float = 1.2  # smart mode: the silence that ends a turn anyway
    threshold: float = 0.5  # smart mode: model probability that counts as "finished"

    @property
    def smart(self) -> bool:
        return self.end_of_turn == SMART

    @property
    def ending_silence_s(self) -> float:
        return self.fallback_silence_s if self.smart else self.end_of_turn_silence_s


class TurnDetector:
    def __init__(self, options: TurnDetectorOptions):
        self.options = options
        # Counts pauses, never reset: a model verdict holds for the pause it was asked about only.
        self.pause_index = 0
        self.last_turn_s = 0.0  # how long the turn that ended last was (max length or not)
        self.reset()

    def reset(self) -> None:
        self.in_turn = False
        self.speech_s = 0.0  # speech heard in the current candidate/turn
        self.silence_s = 0.0  # trailing silence
        self.turn_s = 0.0
        self._pause_reported = False
        self._check_asked = False
        self.pause_index += 1

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
                    if self.silence_s >= o.ending_silence_s:
                        self.speech_s = 0.0
                continue
            self.turn_s += o.window_s
            if speaking:
                self.speech_s += o.window_s
                if self._pause_reported:
                    events.append(TurnEvent.SPEECH_RESUMED)
                if self.silence_s > 0:
                    self.pause_index += 1
                self.silence_s = 0.0
                self._pause_reported = False
                self._check_asked = False
            else:
                self.silence_s += o.window_s
                if not self._pause_reported and self.silence_s >= o.early_transcribe_silence_s:
                    self._pause_reported = True
                    events.append(TurnEvent.PAUSE_STARTED)
                if o.smart and not self._check_asked and self.silence_s >= o.check_silence_s:
                    self._check_asked = True
                    events.append(TurnEvent.CHECK_TURN)
            if self.silence_s >= o.ending_silence_s or self.turn_s >= o.max_turn_s:
                events.append(TurnEvent.TURN_ENDED)
                self.last_turn_s = self.turn_s
                self.reset()
        return events

    def in_pause(self, pause_index: int) -> bool:
        """Still in the same silence as when a check was asked for."""
        return self.in_turn and self.silence_s > 0 and self.pause_index == pause_index

    def too_soon(self, pause_index: int) -> bool:
        """Still in that silence, and it is too short yet for a "finished" verdict to end the turn."""
        return self.in_pause(pause_index) and self.silence_s < self.options.earliest_end_s

    def end_now(self) -> list[TurnEvent]:
        """The model says the turn is over: end it without waiting for the fallback."""
        if not self.in_turn:
            return []
        self.last_turn_s = self.turn_s
        self.reset()
        return [TurnEvent.TURN_ENDED]
