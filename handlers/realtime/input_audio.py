"""The input audio buffer of a Realtime session, and its turn detection.

`server_vad` is our voice route's detector (Silero VAD per 32 ms window, a silence that
ends the turn) with the client's threshold and silence; `semantic_vad` asks our
end-of-turn model (Smart Turn) at a short pause, with a longer silence to fall back on,
as the voice route does; `null` leaves the commit to the client. Times are on the
session's audio clock: milliseconds of input audio since the first append.
"""
from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import numpy as np

from handlers.voice.end_of_turn import EndOfTurnJudge
from handlers.voice.turn_detector import SILENCE, SMART, TurnDetector, TurnDetectorOptions, TurnEvent
from providers.pcm import SPEECH_RATE

MIN_COMMIT_MS = 100  # OpenAI's own minimum: less cannot hold a word
MAX_BUFFER_S = 120.0  # a client that never commits cannot grow the buffer without end
MAX_VAD_TURN_S = 30.0  # endless noise ends the turn, as on the voice route
# semantic_vad's eagerness: the silence after which the turn ends even if the model is unsure.
EAGERNESS_FALLBACK_S = {"low": 2.0, "medium": 1.2, "auto": 1.2, "high": 0.6}
SEMANTIC_THRESHOLD = 0.5


class BufferFull(ValueError):
    pass


class InputAudio:
    def __init__(self, vad: Any, judge: EndOfTurnJudge | None):
        self._vad = vad
        self._judge = judge
        self._samples: list[np.ndarray] = []
        self._buffered = 0  # samples (16 kHz) since the last commit or clear
        self.clock_samples = 0  # every sample appended this session
        self.turn_detection: dict[str, Any] | None = None
        self._detector: TurnDetector | None = None
        self._stream = None
        self._check: tuple[Future, int] | None = None  # the end-of-turn model's pending verdict, and its pause
        self.speech_started_ms: int | None = None

    def configure(self, turn_detection: dict[str, Any] | None) -> None:
        self.turn_detection = turn_detection
        self._check = None
        if turn_detection is None:
            self._detector = self._stream = None
            return
        if turn_detection["type"] == "semantic_vad" and self._judge is not None:
            options = TurnDetectorOptions(end_of_turn=SMART, max_turn_s=MAX_VAD_TURN_S, threshold=SEMANTIC_THRESHOLD,
                                          fallback_silence_s=EAGERNESS_FALLBACK_S[turn_detection["eagerness"]])
        else:  # server_vad, or semantic_vad on a server without the end-of-turn model
            silence_ms = turn_detection.get("silence_duration_ms")
            if silence_ms is None:
                silence_ms = EAGERNESS_FALLBACK_S[turn_detection.get("eagerness", "auto")] * 1000
            options = TurnDetectorOptions(end_of_turn=SILENCE, max_turn_s=MAX_VAD_TURN_S,
                                          speech_probability=turn_detection.get("threshold", 0.5),
                                          end_of_turn_silence_s=max(0.064, silence_ms / 1000))
        self._detector = TurnDetector(options)
        self._stream = self._vad.stream()

    @property
    def buffered_ms(self) -> int:
        return round(self._buffered * 1000 / SPEECH_RATE)

    @property
    def clock_ms(self) -> int:
        return round(self.clock_samples * 1000 / SPEECH_RATE)

    def append(self, samples_16k: np.ndarray) -> list[tuple[str, int]]:
        """Add audio; returns ("speech_started" | "speech_stopped", audio ms) as they happen."""
        if self._detector is None and (self._buffered + samples_16k.size) / SPEECH_RATE > MAX_BUFFER_S:
            raise BufferFull(f"The input audio buffer holds at most {MAX_BUFFER_S:g} s: commit or clear it.")
        self._samples.append(samples_16k)
        self._buffered += samples_16k.size
        self.clock_samples += samples_16k.size
        if self._detector is None:
            return []
        events: list[tuple[str, int]] = []
        for event in self._detector.feed(self._stream.feed(samples_16k)) + self._verdict():
            if event is TurnEvent.SPEECH_STARTED:
                spoken_ms = round(self._detector.speech_s * 1000)
                self.speech_started_ms = max(0, self.clock_ms - spoken_ms)
                events.append(("speech_started", self.speech_started_ms))
            elif event is TurnEvent.CHECK_TURN and self._judge is not None:
                self._check = (self._judge.ask(self.samples()[-8 * SPEECH_RATE:], SEMANTIC_THRESHOLD, None),
                               self._detector.pause_index)
            elif event is TurnEvent.TURN_ENDED:
                self._check = None
                events.append(("speech_stopped", self.clock_ms))
        if self._detector.in_turn or events:
            return events
        self._keep_padding()
        return events

    def _verdict(self) -> list[TurnEvent]:
        """The end-of-turn model's answer, once it has one, for the pause it was asked about."""
        if self._check is None or not self._check[0].done():
            return []
        future, pause = self._check
        self._check = None
        try:
            finished = future.result().finished
        except Exception:  # noqa: BLE001 - no verdict: the fallback silence decides
            return []
        return self._detector.end_now() if finished and self._detector.in_pause(pause) else []

    def _keep_padding(self) -> None:
        """Before speech, keep only the padding the client asked for (the start of the first word)."""
        keep = int((self.turn_detection or {}).get("prefix_padding_ms", 300) * SPEECH_RATE / 1000)
        if self._buffered > keep * 2:
            tail = self.samples()[-keep:] if keep else np.zeros(0, dtype=np.int16)
            self._samples, self._buffered = [tail], tail.size

    def samples(self) -> np.ndarray:
        return np.concatenate(self._samples) if self._samples else np.zeros(0, dtype=np.int16)

    def take(self) -> np.ndarray:
        """The buffer's audio, for a commit; the buffer is empty after."""
        audio = self.samples()
        self.clear()
        return audio

    def clear(self) -> None:
        self._samples, self._buffered = [], 0
        self.speech_started_ms = None
        if self._detector is not None:
            self._detector.reset()
        self._check = None

    @property
    def in_speech(self) -> bool:
        return bool(self._detector is not None and self._detector.in_turn)
