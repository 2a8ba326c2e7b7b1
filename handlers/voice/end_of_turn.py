"""Is the user done talking? Turn-taking settings per persona and channel, and the
verdict on one pause: the end-of-turn model's, checked against the early transcript.

Smart Turn hears intonation, and is fooled by flat speech (espeak-ng's every phrase
falls like a full stop): "I'd like to book a table for" scores 0.96 "finished". A
transcript ending on a word that cannot end a sentence ("for", "the", "and", "um")
vetoes that verdict. The veto costs no time overall: the reply needs the transcript
anyway, and this one (started at the pause) is the one the turn then uses.
"""
from __future__ import annotations

import logging
import re
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np

from config import VoiceSettings
from personas.cards import TurnTaking
from handlers.voice.turn_detector import SILENCE, SMART, TurnDetectorOptions
from providers.offline.end_of_turn import EndOfTurnModel

log = logging.getLogger(__name__)

# Closed-class words a finished English sentence does not end on (prepositions,
# articles, conjunctions, auxiliaries, possessives, fillers).
DANGLING_WORDS = frozenset("""
a an the this these those my your his her our their its some any every
to for of in on at by with from about into onto over under until than like as
and or but so because if that which who whose when where while although though
is are was were am be been being do does did have has had will would can could
should shall may might must um uh er erm hmm mm
""".split())
EARLY_TRANSCRIPT_WAIT_S = 2.0  # past this, trust the model alone rather than stall the turn

# A few workers: a check may wait on its early transcript, and must not hold up another
# connection's check meanwhile. Each model run uses one thread.
_checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="end-of-turn")


# A question may end on one of these ("How many legs does a spider have?"); a statement not.
QUESTION_ENDINGS = frozenset("""
is are was were am be been do does did have has had will would can could should shall may might must
""".split())


# Verbs a request names an object for: "remind me to call..." stops before who; "what
# do I need to buy?" does not (its "what" is the object), so a question word first spares it.
OBJECT_VERBS = frozenset("""
call phone ring text email message tell ask invite meet visit buy order book get find make bring
take give send show play watch read write cook pick pay
""".split())
QUESTION_WORDS = frozenset("who whom what which where when how why whose".split())


def ends_mid_phrase(text: str) -> bool:
    words = re.findall(r"[a-z']+", text.lower())
    if not words:
        return False
    last = words[-1].strip("'")
    if last in QUESTION_ENDINGS and text.rstrip().endswith("?"):
        return False
    if last in OBJECT_VERBS and len(words) > 1 and words[-2] == "to":
        return words[0] not in QUESTION_WORDS
    return last in DANGLING_WORDS


@dataclass(frozen=True)
class Verdict:
    finished: bool
    probability: float
    words: str | None = None  # the early transcript, when it was consulted


class EndOfTurnJudge:
    def __init__(self, model: EndOfTurnModel):
        self.model = model

    def ask(self, samples_16k: np.ndarray, threshold: float, early: Future | None) -> Future:
        return _checks.submit(self.judge, samples_16k, threshold, early)

    def judge(self, samples_16k: np.ndarray, threshold: float, early: Future | None) -> Verdict:
        probability = self.model.probability(samples_16k)
        if probability < threshold or early is None:
            return Verdict(probability >= threshold, probability)
        try:
            words, _ = early.result(timeout=EARLY_TRANSCRIPT_WAIT_S)
        except FutureTimeout:
            return Verdict(True, probability)
        except Exception:  # noqa: BLE001 - a failed early STT: the turn's own STT will retry
            return Verdict(True, probability)
        return Verdict(not ends_mid_phrase(words or ""), probability, words)


class TurnTakingPolicy:
    """Turn-detector options for one connection: server defaults (config.VoiceSettings),
    then the persona's card, then the channel (8 kHz phone audio fools the model more)."""

    def __init__(self, voice: VoiceSettings, have_model: bool,
                 persona_turn_taking: Callable[[str | None], TurnTaking | None] = lambda _: None):
        self.voice = voice
        self.have_model = have_model
        self.persona_turn_taking = persona_turn_taking

    def base(self) -> TurnDetectorOptions:
        v = self.voice
        return TurnDetectorOptions(
            speech_probability=v.speech_probability, min_speech_s=v.min_speech_s,
            end_of_turn_silence_s=v.end_of_turn_silence_s, max_turn_s=v.max_continuous_speech_s,
            end_of_turn=v.end_of_turn, check_silence_s=v.end_of_turn_check_silence_s,
            earliest_end_s=v.end_of_turn_earliest_s, fallback_silence_s=v.end_of_turn_fallback_silence_s,
            threshold=v.end_of_turn_threshold)

    def options_for(self, persona_id: str | None, phone: bool) -> TurnDetectorOptions:
        options = self.base()
        v = self.voice
        if phone:
            options = replace(options, threshold=v.phone_end_of_turn_threshold,
                              check_silence_s=v.phone_end_of_turn_check_silence_s,
                              fallback_silence_s=v.phone_end_of_turn_fallback_silence_s)
        try:
            card = self.persona_turn_taking(persona_id)
        except Exception:  # noqa: BLE001 - an unknown persona is reported where the turn runs
            card = None
        if card is not None:
            changes: dict[str, Any] = {k: getattr(card, k) for k in ("end_of_turn", "threshold",
                                       "fallback_silence_s") if getattr(card, k) is not None}
            if phone and "threshold" in changes:  # the phone stays at least as cautious
                changes["threshold"] = max(changes["threshold"], v.phone_end_of_turn_threshold)
            options = replace(options, **changes)
        if options.end_of_turn == SMART and not self.have_model:
            options = replace(options, end_of_turn=SILENCE)
        return options
