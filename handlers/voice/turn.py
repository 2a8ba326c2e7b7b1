"""One spoken turn: audio -> STT -> orchestrator (streamed) -> TTS per sentence -> audio.

The model writes in a background thread while this generator speaks what is
ready, so text generation and synthesis overlap; the first piece spoken is the
first sentence's first clause (or first few words), so the voice starts before
the model has finished its first sentence. Whatever fails, the user hears a short
apology instead of silence, and the connection stays usable.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastrtc import AdditionalOutputs

from providers.pcm import resample
from handlers.voice.playback import PlaybackClock, SpokenReply
from handlers.voice.sentences import FIRST_PIECE_WORDS, SentenceChunker
from orchestrator.chat import ChatOrchestrator
from orchestrator.in_flight import InFlight
from orchestrator.turn_record import TurnRecord
from personas.cards import Persona, PersonaError
from orchestrator.turns import OverBudget, TurnDelta, TurnDone, TurnRequest, TurnToolResult
from providers.base import AudioClip, SpeechToText, TextToSpeech
from providers.call_log import CallLog, synthesize_logged
from providers.errors import ModelBusy
from providers.fallback import transcribe_as
from providers.foreground import FOREGROUND
from providers.languages import iso_language

log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong on my side. Could you say that again?"
BUSY = "Sorry, I'm busy with other people right now. Please say that again in a few seconds."
ONE_MOMENT = "One moment, I'm just finishing with someone else."
LET_ME_CHECK = "Let me check."
# The same lines for a Chinese persona; the local voice reads Chinese text in a Chinese voice.
CANNED_ZH = {APOLOGY: "抱歉，我这边出了点问题。请再说一遍好吗？",
             BUSY: "抱歉，我正在和别人说话，请过几秒再说一遍。",
             ONE_MOMENT: "请稍等，我马上就好。", LET_ME_CHECK: "我查一下。"}
# Heard nothing this long after they stopped talking, and waiting behind or beside someone
# else's turn (for speech recognition or the model), a caller hears why; or, for a turn
# offered tools (a local model reads their schemas, calls one, reads its result: seconds),
# that the assistant is checking.
ONE_MOMENT_AFTER_S = 1.5
WAIT_POLL_S = 0.1
# A transcription the pause did not start: run beside the turn, so the turn can speak while it waits.
_stt_jobs = ThreadPoolExecutor(max_workers=4, thread_name_prefix="voice-stt")
# The reply's audio is produced faster than it is played: the turn says "listening" only
# once the caller has heard it (or talked over it), at most this long after its last words.
LONGEST_PLAYBACK_WAIT_S = 30.0
PHONE_SAMPLE_RATE = 8_000  # Twilio's mu-law


def canned_line(text: str, language: str | None = None) -> str:
    """A canned line in the persona's language (a card's "zh-CN"); English otherwise, and
    for "auto" (None), whose language is not known before the words are."""
    return CANNED_ZH.get(text, text) if iso_language(language) == "zh" else text


def transcribe_logged(stt: SpeechToText, audio: AudioClip, requester: str,
                      language: str | None = "en") -> tuple[str, CallLog]:
    """The words, and who transcribed them (this call's own answer, not the chain's latest).
    language None detects it (a persona with `language: auto`)."""
    log = CallLog()
    return transcribe_as(stt, audio, requester, language, log=log), log


def _add_speech(record: TurnRecord, seconds: float, log: CallLog, characters: int, audio_s: float) -> None:
    """One "tts" stage per voice that spoke in this turn, summed over its sentences."""
    for stage in record.all("tts"):
        if (stage.provider, stage.model) == (log.provider or "", log.model or ""):
            stage.seconds += seconds
            stage.characters = (stage.characters or 0) + characters
            stage.audio_out_s = (stage.audio_out_s or 0.0) + audio_s
            stage.fallbacks += log.fallbacks
            return
    record.add("tts", seconds, log, characters=characters, audio_out_s=audio_s)


def greeting_audio(tts: TextToSpeech, persona: Persona, rate: int) -> tuple[int, np.ndarray]:
    """The persona's greeting in its own voice (the page's "Try this voice")."""
    clips = [resample(c.samples, c.sample_rate, rate) for c in tts.synthesize(persona.greeting, persona.speech_voice)]
    return rate, np.concatenate(clips) if clips else np.zeros(0, dtype=np.int16)


class StopWhenEither:
    """The reply writer's cancel flag: set by the speaker (hang-up, a failed voice), or by the
    caller talking over the reply, at once. Waiting for the speaker to notice the barge-in would
    let the model write on until the sentence being synthesized is done."""

    def __init__(self, own: threading.Event, barged_in: threading.Event):
        self._own, self._barged_in = own, barged_in

    def set(self) -> None:
        self._own.set()

    def is_set(self) -> bool:
        return self._own.is_set() or self._barged_in.is_set()


@dataclass
class SpokenTurn:
    """A user turn as the turn detector handed it over."""

    audio: AudioClip
    speech_ended_at: float  # perf_counter when the last speech window arrived
    turn_detected_at: float
    early_transcript: Future | None = None  # transcribe_logged started during the pause
    # What ended it: the end-of-turn model ("smart-turn-v3.2"), "silence" (a fixed pause),
    # "fallback silence" (the model was not sure) or "max length"; the record keeps it.
    ended_by: str = "silence"


@dataclass
class WaitNotice:
    """When to say "One moment" (at most once a turn). It counts from the end of the caller's
    speech, so it includes the wait for speech recognition, which eight callers at once make long."""

    deadline: float  # perf_counter
    said: bool = False

    def poll_s(self) -> float | None:
        """How long to wait for work before looking again (None: for as long as it takes)."""
        return None if self.said else max(WAIT_POLL_S, self.deadline - time.perf_counter())

    def now(self, waiting: bool) -> bool:
        """Whether to say it now (and never again this turn): past the deadline, still waiting."""
        if self.said or not waiting or time.perf_counter() < self.deadline:
            return False
        self.said = True
        return True


@dataclass
class Conversation:
    """What one connection carries from turn to turn."""

    user_id: str = "local"
    persona_id: str | None = None
    session_id: str | None = None
    channel: str = "voice"
    transcript: list[dict[str, str]] = field(default_factory=list)
    last_turn: dict[str, Any] = field(default_factory=dict)
    turns: int = 0  # numbers each turn, so a page can tell a new turn from a repeated update
    barged_in: threading.Event = field(default_factory=threading.Event)  # the caller talked over a reply
    barged_in_at: float = 0.0  # perf_counter when they did
    playback: PlaybackClock | None = None  # a phone stream's: what the caller has heard (Twilio's marks)

    def show(self, state: str) -> AdditionalOutputs:
        """The voice state the page shows (listening, hearing, heard, thinking, speaking)."""
        self.last_turn["state"] = state
        return self.outputs()

    def outputs(self) -> AdditionalOutputs:
        return AdditionalOutputs(list(self.transcript), dict(self.last_turn))

    def next_request(self, text: str = "", record: TurnRecord | None = None) -> TurnRequest:
        """This connection's next turn as the orchestrator gets it (the speculative prefill
        builds its prompt from the same request, so the two prompts match)."""
        return TurnRequest(text=text, user_id=self.user_id, session_id=self.session_id,
                           persona_id=self.persona_id, channel=self.channel, record=record,
                           restart_missing_session=True)


class ReplySpeech:
    """One reply's audio as it goes out, and what of it the caller heard when they cut in.

    Heard: on the phone, what Twilio's echoed marks say has played (handlers/voice/playback.py);
    elsewhere, the time from the reply's first audio to the caller's first word. A reply
    saved whole before the cut is trimmed in storage; one still being written is saved
    as heard (TurnRequest.heard_reply)."""

    def __init__(self, orchestrator: ChatOrchestrator, conversation: Conversation):
        self.orchestrator = orchestrator
        self.conversation = conversation
        self.audio = SpokenReply()
        self.first_audio_at: float | None = None
        self.played_by = time.perf_counter()  # when the audio sent so far will have played
        self.message_id: str | None = None
        self._base_s = 0.0  # the phone stream's seconds sent before this reply, taken at its first audio
        self._heard: str | None = None

    def sent(self, piece: str, seconds: float) -> None:
        now = time.perf_counter()
        if self.first_audio_at is None:
            self.first_audio_at = now
            if self.conversation.playback is not None:
                self._base_s = self.conversation.playback.sent_s
        self.audio.add(piece, seconds)
        self.played_by = max(self.played_by, now) + seconds

    def heard_text(self) -> str | None:
        """What the caller heard, once they cut in. The writer stops at that moment and asks
        at once, perhaps before the speaker (mid-synthesis) has measured it: measure here."""
        if self._heard is None and self.conversation.barged_in.is_set():
            return self._measure()
        return self._heard

    def _measure(self) -> str:
        playback = self.conversation.playback
        if self.first_audio_at is None:
            heard_s = 0.0
        elif playback is not None:
            heard_s = playback.heard_s - self._base_s
        else:
            heard_s = self.conversation.barged_in_at - self.first_audio_at
        self._heard = self.audio.heard(max(0.0, heard_s))
        return self._heard

    def cut_off(self, writer: threading.Thread, pieces: queue.Queue) -> None:
        """The caller talked over the reply while it was being spoken."""
        heard = self._measure()
        if self.message_id is not None:
            self.orchestrator.conversations.keep_heard(self.message_id, heard)
            return
        # Saved whole already, or about to be: its TurnDone comes through the queue.
        threading.Thread(target=self._trim_when_saved, args=(writer, pieces, heard), daemon=True,
                         name="reply-trim").start()

    def _trim_when_saved(self, writer: threading.Thread, pieces: queue.Queue, heard: str) -> None:
        writer.join(timeout=60)
        while True:
            try:
                kind, value = pieces.get_nowait()
            except queue.Empty:
                return  # cut while written: the orchestrator saved what was heard
            # An interrupted reply too: the writer stops the moment the caller cuts in, which
            # can be before the speaker has measured what was heard (it may be mid-synthesis).
            if kind == "done" and value.message_id is not None:
                self.orchestrator.conversations.keep_heard(value.message_id, heard)
                return

    def keep_heard(self, conversation: Conversation) -> None:
        """Talked over after the reply had been written and sent: trim the saved reply."""
        heard = self._measure()
        if self.message_id is not None and heard != " ".join(p for p, _ in self.audio.pieces):
            self.orchestrator.conversations.keep_heard(self.message_id, heard)


class VoiceTurnRunner:
    def __init__(self, stt: SpeechToText, tts: TextToSpeech, orchestrator: ChatOrchestrator,
                 output_sample_rate: int, apology_tts: TextToSpeech | None = None,
                 queue_position: Callable[[str], int | None] | None = None, early_reply: bool = True):
        self.stt = stt
        self.in_flight = InFlight()
        # Turns transcribing, thinking or voicing (not only playing out): what shares the cores.
        self.producing = InFlight()
        # Speak the first clause, think during the pause; False: the first sentence, whole,
        # and nothing evaluated before the turn is taken (COZY_EARLY_REPLY=0, for comparison).
        self.early_reply = early_reply
        self.queue_position = queue_position  # the local models' queues: how many go before a user
        self.tts = tts
        self.orchestrator = orchestrator
        self.output_sample_rate = output_sample_rate
        self._apology_tts = apology_tts or tts
        self._canned: dict[str, np.ndarray] = {}  # sentences said when the chain may be what broke

    def warmup(self) -> None:
        # English only: the Chinese lines would load the Chinese voice now; _say caches them on first use.
        for text in (APOLOGY, BUSY, ONE_MOMENT, LET_ME_CHECK):
            self._say(text)

    def _to_output(self, clip: AudioClip, rate: int | None = None) -> np.ndarray:
        return resample(clip.samples, clip.sample_rate, rate or self.output_sample_rate)

    def _reply_rate(self, conversation: Conversation) -> int:
        # A phone line plays 8 kHz: resampling the voice straight to it once, rather than
        # to the browser rate here and again to 8 kHz in FastRTC, costs less and sounds better.
        return PHONE_SAMPLE_RATE if conversation.channel == "phone" else self.output_sample_rate

    def _speak_all(self, tts: TextToSpeech, text: str) -> np.ndarray:
        clips = [self._to_output(c) for c in tts.synthesize(text)]
        return np.concatenate(clips) if clips else np.zeros(0, dtype=np.int16)

    def _say(self, text: str, language: str | None = None) -> tuple[int, np.ndarray]:
        """Pre-synthesised at start-up by the local voice, so it plays even when TTS is what broke;
        in the persona's language (`language`, as persona_speech gives it)."""
        text = canned_line(text, language)
        if text not in self._canned:
            self._canned[text] = self._speak_all(self._apology_tts, text)
        return self.output_sample_rate, self._canned[text]

    def apology(self, language: str | None = None) -> tuple[int, np.ndarray]:
        return self._say(APOLOGY, language)

    def _waits_in_queue(self, user_id: str) -> bool:
        return bool(self.queue_position is not None and self.queue_position(user_id))

    def _waits_on_others(self, user_id: str, own_turns: int) -> bool:
        """This turn is slowed by someone else's: queued for a local model, or another turn is
        being worked on beside it, spoken (transcribed, written or voiced) or typed
        (`own_turns`: whether this one is in the orchestrator yet). Two at once each run at
        about half speed on two cores, with nothing queued."""
        return (self._waits_in_queue(user_id) or self.producing.count > 1
                or self.orchestrator.in_flight.count > own_turns)

    def notice(self, text: str) -> Iterator[Any]:
        """Say this instead of a reply (a limit, a missing identity), in the local voice."""
        yield self.output_sample_rate, self._speak_all(self._apology_tts, text)

    def busy(self, language: str | None = None) -> tuple[int, np.ndarray]:
        """Said when a local model's queue is full: at once, instead of a long silence."""
        return self._say(BUSY, language)

    def persona_speech(self, conversation: Conversation) -> tuple[str | None, str | None]:
        """(language for speech recognition, voice for the TTS chain) of the conversation's persona."""
        try:
            persona = self.orchestrator.personas.get(conversation.persona_id)
        except PersonaError:  # deleted meanwhile: the orchestrator says so when the turn runs
            return "en", None
        return persona.stt_language, persona.speech_voice

    def _transcribe(self, turn: SpokenTurn, requester: str, language: str | None,
                    notice: WaitNotice) -> Iterator[Any]:
        """Yields "one moment" if the words are long in coming; returns (text, call log)."""
        if turn.early_transcript is not None:
            try:
                return (yield from self._wait_for(turn.early_transcript, requester, language, notice))
            except ModelBusy:
                raise
            except Exception:  # the early attempt failed: try once more, for real
                log.warning("early transcription failed; transcribing again", exc_info=True)
        job = _stt_jobs.submit(transcribe_logged, self.stt, turn.audio, requester, language)
        return (yield from self._wait_for(job, requester, language, notice))

    def _wait_for(self, job: Future, requester: str, language: str | None, notice: WaitNotice) -> Iterator[Any]:
        while True:
            try:
                return job.result(timeout=notice.poll_s())
            except TimeoutError:
                # Not started (early transcriptions run one at a time), or queued for a model.
                not_started = not job.running() and not job.done()
                if notice.now(not_started or self._waits_on_others(requester, own_turns=0)):
                    yield self._say(ONE_MOMENT, language)

    def run(self, turn: SpokenTurn, conversation: Conversation) -> Iterator[Any]:
        """One spoken turn, from the words heard to the last audio, counted while it runs."""
        return self.in_flight.track(self._run(turn, conversation))

    def _run(self, turn: SpokenTurn, conversation: Conversation) -> Iterator[Any]:
        speech = yield from self.producing.track(self._produce(turn, conversation))
        if speech is None:  # nothing was said but a notice: nothing to wait for
            return
        # "Speaking" lasts while the caller hears the reply, not while it is made.
        if conversation.barged_in.wait(min(speech.played_by - time.perf_counter(), LONGEST_PLAYBACK_WAIT_S)):
            speech.keep_heard(conversation)  # talked over its last words: keep what was heard
        yield conversation.show("listening")

    def _produce(self, turn: SpokenTurn, conversation: Conversation) -> Iterator[Any]:
        """The turn's work: its words, its reply, and that reply's audio; returns the reply's
        ReplySpeech, or None when a notice was said instead."""
        timings: dict[str, float] = {"endpointing_s": turn.turn_detected_at - turn.speech_ended_at}
        record = TurnRecord(conversation.channel)
        record.add("endpointing", timings["endpointing_s"], provider="local", model=turn.ended_by)
        conversation.turns += 1
        language, voice = self.persona_speech(conversation)
        conversation.last_turn = {"stages_s": timings, "providers": {}, "turn": conversation.turns, "tools": [],
                                  "turn_starts_at": len(conversation.transcript),
                                  "language": language or "auto", "voice": voice}
        yield conversation.show("heard")
        stt_log = CallLog()
        notice = WaitNotice(turn.speech_ended_at + ONE_MOMENT_AFTER_S)
        try:
            started = time.perf_counter()
            try:
                text, stt_log = yield from self._transcribe(turn, conversation.user_id, language, notice)
            finally:
                timings["stt_s"] = time.perf_counter() - started
                record.add("stt", timings["stt_s"], stt_log, audio_in_s=turn.audio.duration_s,
                           outcome="ok" if stt_log.provider else "failed")
            conversation.last_turn["providers"]["stt"] = stt_log.provider
        except ModelBusy as busy:
            log.info("speech-to-text busy: %s", busy)
            self.orchestrator.report(record)
            yield self.busy(language)
            conversation.last_turn["error"] = "busy: try again in a few seconds"
            yield conversation.outputs()
            return
        except Exception:
            log.exception("speech-to-text failed")
            self.orchestrator.report(record)
            yield self.apology(language)
            conversation.last_turn["error"] = "speech-to-text failed"
            yield conversation.outputs()
            return
        if not text:
            log.info("turn had no words (noise?); not replying")
            self.orchestrator.report(record)
            yield conversation.show("listening")
            return
        conversation.transcript.append({"role": "user", "content": text})
        refusal = self.orchestrator.budget_refusal(conversation.user_id)
        if refusal:  # said, in words, instead of a reply the model would be paid for
            log.info("voice turn refused: daily budget used")
            self.orchestrator.report(record)
            conversation.last_turn["error"] = "daily budget used"
            yield from self.notice(f"{refusal} It resets at midnight UTC.")
            yield conversation.outputs()
            return
        yield conversation.show("thinking")
        conversation.barged_in.clear()
        return (yield from self._reply(text, turn, conversation, timings, record, voice, language, notice))

    def _reply(self, text: str, turn: SpokenTurn, conversation: Conversation,
               timings: dict[str, float], record: TurnRecord, voice: str | None,
               language: str | None, notice: WaitNotice) -> Iterator[Any]:
        """Speaks the reply; returns when (perf_counter) its audio will have been played."""
        request = conversation.next_request(text, record)
        pieces: queue.Queue = queue.Queue()
        cancelled = StopWhenEither(threading.Event(), conversation.barged_in)
        writer = threading.Thread(target=self._write_reply, args=(request, pieces, cancelled),
                                  name="reply-writer", daemon=True)
        llm_started = time.perf_counter()
        writer.start()
        spoken: list[str] = []
        heard_audio = False
        speech = ReplySpeech(self.orchestrator, conversation)
        request.heard_reply = speech.heard_text  # a reply still being written when cut off keeps this
        live_reply = {"role": "assistant", "content": ""}  # streams into the transcript as it is spoken
        done: TurnDone | None = None
        try:
            while True:
                try:
                    kind, value = pieces.get(timeout=None if spoken else notice.poll_s())
                except queue.Empty:
                    others = self._waits_on_others(conversation.user_id, own_turns=1)
                    if notice.now(others or record.first("tools") is not None):
                        yield self._say(ONE_MOMENT if others else LET_ME_CHECK, language)
                    continue
                if kind == "piece":
                    piece, piece_ready_at = value
                    if not spoken:
                        conversation.transcript.append(live_reply)
                    live_reply["content"] = " ".join([*spoken, piece])
                    yield conversation.show("speaking")
                    tts_log, synthesis_s, audio_s = CallLog(), 0.0, 0.0
                    try:
                        clips = iter(synthesize_logged(self.tts, piece, tts_log, voice))
                        while True:
                            asked = time.perf_counter()
                            # The caller waits for the first clip: the model writing on steps aside.
                            with nullcontext() if heard_audio else FOREGROUND.hold():
                                clip = next(clips, None)
                            synthesis_s += time.perf_counter() - asked  # not the time the caller took to read it
                            if clip is None:
                                break
                            audio_s += clip.duration_s
                            if not heard_audio:
                                heard_audio = True
                                now = time.perf_counter()
                                timings["first_audio_s"] = now - turn.speech_ended_at
                                timings["tts_first_audio_s"] = now - piece_ready_at
                                timings["llm_first_piece_s"] = piece_ready_at - llm_started
                                timings["reply_started_s"] = llm_started - turn.speech_ended_at
                                record.add("tts_first_audio", timings["tts_first_audio_s"], tts_log)
                                record.add("first_audio", timings["first_audio_s"])
                            rate = self._reply_rate(conversation)
                            samples = self._to_output(clip, rate)
                            speech.sent(piece, samples.size / rate)
                            yield rate, samples
                    except Exception:
                        log.exception("text-to-speech failed")
                        cancelled.set()
                        record.add("tts", synthesis_s, tts_log, outcome="failed", characters=len(piece))
                        yield self.apology(language)
                        conversation.last_turn["error"] = "text-to-speech failed"
                        break
                    _add_speech(record, synthesis_s, tts_log, len(piece), audio_s)
                    conversation.last_turn["providers"]["tts"] = tts_log.provider
                    spoken.append(piece)
                elif kind == "tool":
                    result: TurnToolResult = value
                    conversation.last_turn["tools"].append(
                        {"name": result.call.name, "ok": result.ok, "latency_ms": round(result.latency_ms, 1)})
                    yield conversation.outputs()
                elif kind == "done":
                    done = value
                    speech.message_id = done.message_id
                    conversation.session_id = done.session_id
                    conversation.last_turn["session_id"] = done.session_id
                    llm_calls = done.record.all("llm")
                    if llm_calls:
                        conversation.last_turn["providers"]["llm"] = llm_calls[-1].provider
                    if done.record.first_token_s is not None:
                        timings["llm_first_token_s"] = done.record.first_token_s
                    conversation.last_turn["orchestrator"] = done.metrics.as_dict()
                    break
                elif kind == "busy":
                    log.info("reply refused, model busy: %s", value)
                    yield self.busy(language)
                    conversation.last_turn["error"] = "busy: try again in a few seconds"
                    break
                elif kind == "refused":
                    yield from self.notice(value)
                    conversation.last_turn["error"] = "daily budget used"
                    break
                elif kind == "error":
                    log.error("reply failed: %s", value)
                    yield self.apology(language)
                    conversation.last_turn["error"] = "the reply could not be generated"
                    break
        finally:
            if conversation.barged_in.is_set():  # talked over: what was heard is known before the writer stops
                speech.cut_off(writer, pieces)
            cancelled.set()  # barge-in closes us: stop the writer too
            # The record is whole now: stored with the reply (when the turn got that far) and counted.
            record.add("turn", time.perf_counter() - turn.speech_ended_at)
            if done is not None:
                self.orchestrator.finish_record(done)
            else:
                self.orchestrator.report(record)
        timings["turn_s"] = time.perf_counter() - turn.speech_ended_at
        if spoken:
            live_reply["content"] = " ".join(spoken)  # what was said, not what was about to be
        else:  # nothing of it was heard
            conversation.transcript[:] = [m for m in conversation.transcript if m is not live_reply]
        yield conversation.outputs()
        return speech

    def _write_reply(self, request: TurnRequest, pieces: queue.Queue, cancelled: StopWhenEither) -> None:
        chunker = SentenceChunker(first_piece_words=FIRST_PIECE_WORDS if self.early_reply else None)

        def put_pieces(new_pieces: list[str]) -> None:
            for piece in new_pieces:
                pieces.put(("piece", (piece, time.perf_counter())))

        try:
            items = self.orchestrator.run(request, cancelled)
            for item in items:
                if isinstance(item, TurnDone) and cancelled.is_set():
                    pieces.put(("done", item))  # saved whole before the cut: ReplySpeech trims it
                    break
                if cancelled.is_set():
                    items.close()
                    break
                if isinstance(item, TurnDelta):
                    put_pieces(chunker.push_whole(item.text) if item.whole and self.early_reply
                               else chunker.push(item.text))
                elif isinstance(item, TurnToolResult):
                    pieces.put(("tool", item))
                elif isinstance(item, TurnDone):
                    put_pieces(chunker.flush())
                    pieces.put(("done", item))
        except ModelBusy as exc:  # load, not a fault: said as such
            pieces.put(("busy", str(exc)))
        except OverBudget as exc:  # spent while this turn was transcribed: said, not a fault
            pieces.put(("refused", str(exc)))
        except Exception as exc:  # reported to the speaking side, which apologises
            log.exception("orchestrator failed")
            pieces.put(("error", f"{type(exc).__name__}: {exc}"))
