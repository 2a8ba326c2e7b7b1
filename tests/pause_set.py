"""Spoken turns for end-of-turn detection, shared by tests/test_end_of_turn.py and
bench/end_of_turn.py.

The pause set: requests broken by natural mid-sentence pauses (a phrase, a pause, "um",
a pause, the rest), which must reach the assistant as one turn. The questions: complete
turns, which should be answered soon after the user stops. Speech is espeak-ng's, whose
flat, falling prosody makes every phrase sound finished: a harder case for a model that
listens for intonation than most people are.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tests.clients.voice_ws import espeak_clip

RATE = 16_000


@dataclass(frozen=True)
class PausedUtterance:
    first: str
    rest: str
    pause_s: float  # each of the two pauses, before and after the "um"
    filler: str = "um"

    @property
    def text(self) -> str:
        return f"{self.first}... {self.filler}... {self.rest}"


PAUSE_SET = (
    PausedUtterance("I'd like to book a table for", "four people", 0.7),
    PausedUtterance("Can you tell me about the", "history of Rome", 0.6),
    PausedUtterance("So what I want to know is", "how far away the sun is", 0.8),
    PausedUtterance("My name is", "Alice", 0.5),
    PausedUtterance("I was thinking that maybe we could", "go for a walk", 0.9),
    PausedUtterance("What's the weather going to be like in", "Paris tomorrow", 0.6),
    PausedUtterance("Could you remind me to call", "my sister tonight", 1.0),
    PausedUtterance("I need a recipe for", "pancakes", 0.7),
    PausedUtterance("Play me some music by", "the Beatles", 0.5),
    PausedUtterance("How many days are there until", "Christmas", 0.8),
    PausedUtterance("Set a timer for", "ten minutes", 0.6),
    PausedUtterance("Tell me a story about a", "dragon", 0.9, filler="uh"),
)

QUESTIONS = (
    "What is the capital of France?",
    "Tell me a short fact about the moon.",
    "How many legs does a spider have?",
    "What colour is the sky on a clear day?",
    "Who wrote Romeo and Juliet?",
    "What is two plus two?",
    "Can you recommend a good book?",
    "Thank you very much.",
    "What time is it?",
    "Is it going to rain today?",
)


def trimmed(samples: np.ndarray, floor: int = 200) -> np.ndarray:
    """Speech without espeak's leading and trailing near-silence, so "end of speech" is the
    clip's end."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > floor)
    return samples[loud[0]:loud[-1] + 1] if loud.size else samples


def silence(seconds: float, rate: int = RATE) -> np.ndarray:
    return np.zeros(int(rate * seconds), np.int16)


def paused_speech(utterance: PausedUtterance, rate: int = RATE) -> np.ndarray:
    return np.concatenate([trimmed(espeak_clip(utterance.first, rate)), silence(utterance.pause_s, rate),
                           trimmed(espeak_clip(utterance.filler, rate)), silence(utterance.pause_s, rate),
                           trimmed(espeak_clip(utterance.rest, rate))])


def question_speech(text: str, rate: int = RATE) -> np.ndarray:
    return trimmed(espeak_clip(text, rate))
