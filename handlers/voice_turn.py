"""One spoken turn: audio -> STT -> orchestrator (streamed) -> TTS per sentence -> audio.

The model writes in a background thread while this generator speaks what is
ready, so text generation and synthesis overlap. Whatever fails, the user hears
a short apology instead of silence, and the connection stays usable.
"""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastrtc import AdditionalOutputs

from handlers.audio import resample
from handlers.sentences import SentenceChunker
from orchestrator.chat import ChatOrchestrator
from orchestrator.turns import TurnDelta, TurnDone, TurnRequest, TurnToolResult
from storage.conversations import SessionNotFound
from providers.base import AudioClip, SpeechToText, TextToSpeech
from providers.errors import ModelBusy
from providers.fallback import transcribe_as

log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong on my side. Could you say that again?"
BUSY = "Sorry, I'm busy with other people right now. Please say that again in a few seconds."
ONE_MOMENT = "One moment, I'm just finishing with someone else."
ONE_MOMENT_AFTER_S = 1.5  # waiting in the model's queue this long, the caller hears why
# The reply's audio is produced faster than it is played: the turn says "listening" only
# once the caller has heard it (or talked over it), at most this long after its last words.
LONGEST_PLAYBACK_WAIT_S = 30.0


def served_by(provider: Any) -> str:
    """Which provider answered last: a fallback chain knows; a single provider is itself."""
    return getattr(provider, "last_served_by", None) or provider.name


@dataclass
class SpokenTurn:
    """A user turn as the turn detector handed it over."""

    audio: AudioClip
    speech_ended_at: float  # perf_counter when the last speech window arrived
    turn_detected_at: float
    early_transcript: Future | None = None  # transcription started during the pause


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

    def show(self, state: str) -> AdditionalOutputs:
        """The voice state the page shows (listening, hearing, heard, thinking, speaking)."""
        self.last_turn["state"] = state
        return self.outputs()

    def outputs(self) -> AdditionalOutputs:
        return AdditionalOutputs(list(self.transcript), dict(self.last_turn))


class VoiceTurnRunner:
    def __init__(self, stt: SpeechToText, tts: TextToSpeech, orchestrator: ChatOrchestrator,
                 output_sample_rate: int, apology_tts: TextToSpeech | None = None,
                 queue_position: Callable[[str], int | None] | None = None):
        self.stt = stt
        self.queue_position = queue_position  # the local LLM's queue: how many go before a user
        self.tts = tts
        self.orchestrator = orchestrator
        self.output_sample_rate = output_sample_rate
        self._apology_tts = apology_tts or tts
        self._canned: dict[str, np.ndarray] = {}  # sentences said when the chain may be what broke

    def warmup(self) -> None:
        for text in (APOLOGY, BUSY, ONE_MOMENT):
            self._say(text)

    def _to_output(self, clip: AudioClip) -> np.ndarray:
        return resample(clip.samples, clip.sample_rate, self.output_sample_rate)

    def _speak_all(self, tts: TextToSpeech, text: str) -> np.ndarray:
        clips = [self._to_output(c) for c in tts.synthesize(text)]
        return np.concatenate(clips) if clips else np.zeros(0, dtype=np.int16)

    def _say(self, text: str) -> tuple[int, np.ndarray]:
        """Pre-synthesised at start-up by the local voice, so it plays even when TTS is what broke."""
        if text not in self._canned:
            self._canned[text] = self._speak_all(self._apology_tts, text)
        return self.output_sample_rate, self._canned[text]

    def apology(self) -> tuple[int, np.ndarray]:
        return self._say(APOLOGY)

    def _waits_in_queue(self, user_id: str) -> bool:
        return bool(self.queue_position is not None and self.queue_position(user_id))

    def notice(self, text: str) -> Iterator[Any]:
        """Say this instead of a reply (a limit, a missing identity), in the local voice."""
        yield self.output_sample_rate, self._speak_all(self._apology_tts, text)

    def busy(self) -> tuple[int, np.ndarray]:
        """Said when a local model's queue is full: at once, instead of a long silence."""
        return self._say(BUSY)

    def _transcribe(self, turn: SpokenTurn, requester: str) -> str:
        if turn.early_transcript is not None:
            try:
                return turn.early_transcript.result()
            except ModelBusy:
                raise
            except Exception:  # the early attempt failed: try once more, for real
                log.warning("early transcription failed; transcribing again", exc_info=True)
        return transcribe_as(self.stt, turn.audio, requester)

    def run(self, turn: SpokenTurn, conversation: Conversation) -> Iterator[Any]:
        timings: dict[str, float] = {"endpointing_s": turn.turn_detected_at - turn.speech_ended_at}
        conversation.turns += 1
        conversation.last_turn = {"stages_s": timings, "providers": {}, "turn": conversation.turns, "tools": [],
                                  "turn_starts_at": len(conversation.transcript)}
        yield conversation.show("heard")
        try:
            started = time.perf_counter()
            text = self._transcribe(turn, conversation.user_id)
            timings["stt_s"] = time.perf_counter() - started
            conversation.last_turn["providers"]["stt"] = served_by(self.stt)
        except ModelBusy as busy:
            log.info("speech-to-text busy: %s", busy)
            yield self.busy()
            conversation.last_turn["error"] = "busy: try again in a few seconds"
            yield conversation.outputs()
            return
        except Exception:
            log.exception("speech-to-text failed")
            yield self.apology()
            conversation.last_turn["error"] = "speech-to-text failed"
            yield conversation.outputs()
            return
        if not text:
            log.info("turn had no words (noise?); not replying")
            yield conversation.show("listening")
            return
        conversation.transcript.append({"role": "user", "content": text})
        yield conversation.show("thinking")
        conversation.barged_in.clear()
        played_by = yield from self._reply(text, turn, conversation, timings)
        # "Speaking" lasts while the caller hears the reply, not while it is made.
        conversation.barged_in.wait(min(played_by - time.perf_counter(), LONGEST_PLAYBACK_WAIT_S))
        yield conversation.show("listening")

    def _reply(self, text: str, turn: SpokenTurn, conversation: Conversation,
               timings: dict[str, float]) -> Iterator[Any]:
        """Speaks the reply; returns when (perf_counter) its audio will have been played."""
        request = TurnRequest(text=text, user_id=conversation.user_id,
                              session_id=conversation.session_id,
                              persona_id=conversation.persona_id, channel=conversation.channel)
        pieces: queue.Queue = queue.Queue()
        cancelled = threading.Event()
        writer = threading.Thread(target=self._write_reply, args=(request, pieces, cancelled),
                                  name="reply-writer", daemon=True)
        llm_started = time.perf_counter()
        writer.start()
        spoken: list[str] = []
        heard_audio = False
        played_by = time.perf_counter()
        live_reply = {"role": "assistant", "content": ""}  # streams into the transcript as it is spoken
        told_to_wait = False
        try:
            while True:
                try:
                    kind, value = pieces.get(timeout=ONE_MOMENT_AFTER_S if not told_to_wait else None)
                except queue.Empty:
                    told_to_wait = True
                    if not spoken and self._waits_in_queue(conversation.user_id):
                        yield self._say(ONE_MOMENT)
                    continue
                if kind == "piece":
                    piece, piece_ready_at = value
                    if not spoken:
                        conversation.transcript.append(live_reply)
                    live_reply["content"] = " ".join([*spoken, piece])
                    yield conversation.show("speaking")
                    try:
                        for clip in self.tts.synthesize(piece):
                            if not heard_audio:
                                heard_audio = True
                                now = time.perf_counter()
                                timings["first_audio_s"] = now - turn.speech_ended_at
                                timings["tts_first_audio_s"] = now - piece_ready_at
                                timings["llm_first_piece_s"] = piece_ready_at - llm_started
                                timings["reply_started_s"] = llm_started - turn.speech_ended_at
                            samples = self._to_output(clip)
                            played_by = max(played_by, time.perf_counter()) + samples.size / self.output_sample_rate
                            yield self.output_sample_rate, samples
                    except Exception:
                        log.exception("text-to-speech failed")
                        cancelled.set()
                        yield self.apology()
                        conversation.last_turn["error"] = "text-to-speech failed"
                        break
                    spoken.append(piece)
                elif kind == "first_token":
                    timings["llm_first_token_s"] = value - llm_started
                elif kind == "tool":
                    result: TurnToolResult = value
                    conversation.last_turn["tools"].append(
                        {"name": result.call.name, "ok": result.ok, "latency_ms": round(result.latency_ms, 1)})
                    yield conversation.outputs()
                elif kind == "done":
                    done: TurnDone = value
                    conversation.session_id = done.session_id
                    conversation.last_turn["session_id"] = done.session_id
                    conversation.last_turn["providers"].update(llm=served_by(self.orchestrator.model),
                                                               tts=served_by(self.tts))
                    conversation.last_turn["orchestrator"] = done.metrics.as_dict()
                    break
                elif kind == "busy":
                    log.info("reply refused, model busy: %s", value)
                    yield self.busy()
                    conversation.last_turn["error"] = "busy: try again in a few seconds"
                    break
                elif kind == "error":
                    log.error("reply failed: %s", value)
                    yield self.apology()
                    conversation.last_turn["error"] = "the reply could not be generated"
                    break
        finally:
            cancelled.set()  # barge-in closes us: stop the writer too
        timings["turn_s"] = time.perf_counter() - turn.speech_ended_at
        if spoken:
            live_reply["content"] = " ".join(spoken)  # what was said, not what was about to be
        else:  # nothing of it was heard
            conversation.transcript[:] = [m for m in conversation.transcript if m is not live_reply]
        yield conversation.outputs()
        return played_by

    def _write_reply(self, request: TurnRequest, pieces: queue.Queue, cancelled: threading.Event) -> None:
        chunker = SentenceChunker()

        def put_pieces(new_pieces: list[str]) -> None:
            for piece in new_pieces:
                pieces.put(("piece", (piece, time.perf_counter())))

        try:
            try:
                items = self.orchestrator.run(request, cancelled)
                first_item = next(items)
            except SessionNotFound:  # the conversation was deleted meanwhile: start a new one
                request.session_id = None
                items = self.orchestrator.run(request, cancelled)
                first_item = next(items)
            first = True
            for item in itertools.chain([first_item], items):
                if cancelled.is_set():
                    items.close()
                    break
                if isinstance(item, TurnDelta):
                    if first:
                        pieces.put(("first_token", time.perf_counter()))
                        first = False
                    put_pieces(chunker.push(item.text))
                elif isinstance(item, TurnToolResult):
                    pieces.put(("tool", item))
                elif isinstance(item, TurnDone):
                    put_pieces(chunker.flush())
                    pieces.put(("done", item))
        except ModelBusy as exc:  # load, not a fault: said as such
            pieces.put(("busy", str(exc)))
        except Exception as exc:  # reported to the speaking side, which apologises
            log.exception("orchestrator failed")
            pieces.put(("error", f"{type(exc).__name__}: {exc}"))
