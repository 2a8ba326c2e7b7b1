"""FastRTC's ReplyOnPause, with the turn-taking and the defects of 0.0.34 fixed.

What differs from the stock handler, and why:
- End of turn is found from 32 ms VAD windows scored as audio arrives (stock: 0.6 s
  chunks). A short silence asks the end-of-turn model whether the user is done, beside
  the early transcript (handlers/voice/end_of_turn.py); its "yes" ends the turn at 0.2 s
  of silence at the soonest; if not, the turn ends at a longer fallback silence,
  so a mid-sentence "um..." is not answered. The model runs off the receive thread.
- While the user speaks, the local model evaluates the start of the next prompt
  (persona, style, history), then their words so far, transcribed every second.
  Transcription starts during the pause, before the turn is confirmed, and is kept
  if the user does not speak again; once it is in, the model evaluates the rest of
  the reply's prompt (handlers/voice/speculation.py), cancelled if they speak again.
- The output queue is cleared *before* the reply is signalled: stock sets the event
  first, and its clear_queue() then sometimes wiped the start of the reply.
- emit() waits on the event when idle instead of returning at once: stock spins
  about a core per idle connection.
- Barge-in happens when the user starts talking, not when they stop; on the phone
  a Twilio `clear` also stops what the caller's handset has buffered.
- A failing turn is logged and the connection keeps going (stock re-raises, which
  ends the websocket's emit loop for good).
- Connection settings (persona) come from `set_args` without ever blocking: stock
  waits for Gradio inputs forever on a plain websocket client.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import av
import numpy as np
from aiortc import RTCDataChannel
from fastrtc import AlgoOptions, ReplyOnPause
from fastrtc.utils import create_message, current_context, split_output

from providers.pcm import SPEECH_RATE, resample, to_mono_int16
from handlers.voice.end_of_turn import EndOfTurnJudge, TurnTakingPolicy
from handlers.voice.turn_detector import TurnDetector, TurnDetectorOptions, TurnEvent
from handlers.visitor_limits import LimitReached
from handlers.voice.identity import VoiceIdentities
from handlers.voice.speculation import SpeculativePrefill
from handlers.voice.turn import Conversation, SpokenTurn, VoiceTurnRunner, transcribe_logged
from providers.base import AudioClip
from providers.offline.vad import SileroVad

log = logging.getLogger(__name__)

IDLE_WAIT_S = 0.2  # how long an idle emit() waits for a turn; a turn wakes it at once
# Audio kept before a turn is confirmed (0.2 s of speech, plus the VAD's onset), so its first
# word is not cut. Not more: Whisper tiny hears the same words differently after a long lead
# of silence ("how many days are there until" as "how many may mark their own deal?" after
# 0.7 s), and the end-of-turn check reads those words.
PREROLL_S = 0.5
# While the user speaks, their words so far are transcribed this often (~80 ms of Whisper
# each), so the model has read most of the question by the time they stop.
PARTIAL_EVERY_S = 1.0

class EarlyTranscriber:
    """One worker for every connection: early transcriptions queue behind each other rather
    than fighting the main STT call for the same two cores. It counts what it holds, so a
    partial transcript (read-ahead only) never queues in front of someone's pause."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="early-stt")
        self._lock = threading.Lock()
        self._held = 0

    def submit(self, *args: Any) -> Future:
        with self._lock:
            self._held += 1
        future = self._pool.submit(*args)
        future.add_done_callback(self._done)
        return future

    def _done(self, _: Future) -> None:
        with self._lock:
            self._held -= 1

    def idle(self) -> bool:
        with self._lock:
            return self._held == 0


_early_stt = EarlyTranscriber()


class CozyReplyOnPause(ReplyOnPause):
    def __init__(self, runner: VoiceTurnRunner, vad: SileroVad, turn_options: TurnDetectorOptions,
                 output_sample_rate: int = 24_000, barge_in: bool = True,
                 default_persona: str | None = None, identities: VoiceIdentities | None = None,
                 judge: EndOfTurnJudge | None = None, turn_policy: TurnTakingPolicy | None = None):
        super().__init__(
            fn=runner.run,
            algo_options=AlgoOptions(max_continuous_speech_s=turn_options.max_turn_s),
            can_interrupt=barge_in,
            input_sample_rate=SPEECH_RATE,
            output_sample_rate=output_sample_rate,
            model=vad,
        )
        self.runner = runner
        self.vad = vad
        self.turn_options = turn_options
        self.default_persona = default_persona
        self._detector = TurnDetector(turn_options)
        self._vad_stream = vad.stream()
        self._lock = threading.Lock()
        self._reset_turn_audio()
        self._pending: SpokenTurn | None = None
        self._interrupt = False
        self._announced_audio = False
        self._watching_socket = False
        self._early: Future | None = None
        self._last_speech_at = 0.0
        self._partial_at_s = 0.0  # how far into the turn (audio s) the words were last transcribed
        self.conversation = Conversation(persona_id=default_persona)
        self.identities = identities
        self.speculation = SpeculativePrefill(runner.orchestrator) if runner.early_reply else None
        self.judge = judge
        self.turn_policy = turn_policy
        self._check: tuple[int, Future] | None = None  # the pause being judged, and the verdict
        self._ended_by_model = False  # the turn ending now was ended by the model's verdict
        self._options_key: tuple[str | None, bool] | None = None
        self._use_turn_options()

    def resample(self, frame: Any) -> Iterator[Any]:
        """A WebRTC frame at our rate. FastRTC sizes its resampler's output frames by the incoming
        frame's sample count (960 at 48 kHz, 20 ms), counted at our 16 kHz: 60 ms, so a caller's
        last words waited up to 40 ms more to reach the VAD. Ours passes on what each frame gives."""
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="s16", layout=self.expected_layout,
                                                rate=self.input_sample_rate)
        yield from self._resampler.resample(frame)

    def copy(self) -> "CozyReplyOnPause":
        return CozyReplyOnPause(self.runner, self.vad, self.turn_options, self.output_sample_rate,
                                self.can_interrupt, self.default_persona, self.identities,
                                self.judge, self.turn_policy)

    @property
    def _needs_additional_inputs(self) -> bool:
        return False

    def set_channel(self, channel: Any) -> None:
        """A page's WebRTC call: ask the page for its inputs at once (FastRTC's "send_input"),
        so the persona picked before Talk applies, and the call is bound to its visitor
        before its first turn (space/ui.py binds it when the inputs arrive)."""
        super().set_channel(channel)
        if not isinstance(channel, RTCDataChannel):  # websocket and phone clients send their settings themselves
            return
        try:
            channel.send(create_message("send_input", []))
        except Exception:  # noqa: BLE001 - a closed channel: the call is ending anyway
            log.debug("could not ask the page for its inputs", exc_info=True)

    def set_args(self, args: list[Any]) -> None:
        super().set_args(args)
        # Gradio sends [webrtc_value, persona_id, session_id]; an API client [persona_id].
        values = list(args[1:]) if len(args) > 1 else list(args)
        if values and isinstance(values[0], str) and values[0]:
            self.conversation.persona_id = values[0]
        if len(values) > 1 and (values[1] is None or isinstance(values[1], str)):
            self.conversation.session_id = values[1] or None
        self._use_turn_options()

    def _turn_options_key(self) -> tuple[str | None, bool]:
        return self.conversation.persona_id, self.phone_mode or self.conversation.channel == "phone"

    def _use_turn_options(self) -> None:
        """The persona's and channel's turn-taking; applied between turns only."""
        if self.turn_policy is None or self._detector.in_turn:
            return
        self._options_key = self._turn_options_key()
        self._detector.options = self.turn_policy.options_for(*self._options_key)

    # --- input side -------------------------------------------------------------

    def _reset_turn_audio(self) -> None:
        self._preroll: deque[np.ndarray] = deque()
        self._preroll_samples = 0
        self._turn_audio: list[np.ndarray] = []

    def _keep_audio(self, samples: np.ndarray) -> None:
        if self._detector.in_turn:
            self._turn_audio.append(samples)
            return
        self._preroll.append(samples)
        self._preroll_samples += len(samples)
        while self._preroll_samples - len(self._preroll[0]) > PREROLL_S * SPEECH_RATE:
            self._preroll_samples -= len(self._preroll.popleft())

    def _audio_so_far(self) -> AudioClip:
        parts = list(self._preroll) + self._turn_audio
        samples = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
        return AudioClip(SPEECH_RATE, samples)

    def receive(self, frame: tuple[int, np.ndarray]) -> None:
        try:
            self._receive(frame)
        except Exception:  # a bad frame must not end the call
            log.exception("dropping an audio frame that could not be processed")

    def _receive(self, frame: tuple[int, np.ndarray]) -> None:
        sample_rate, array = frame
        samples = to_mono_int16(array)
        if sample_rate != SPEECH_RATE:
            samples = resample(samples, sample_rate, SPEECH_RATE)
        was_in_turn = self._detector.in_turn
        if not was_in_turn and self.turn_policy is not None and self._options_key != self._turn_options_key():
            self._use_turn_options()  # the phone route says it is one only once the call is up
        probabilities = self._vad_stream.feed(samples)
        now = time.perf_counter()
        if any(p >= self.turn_options.speech_probability for p in probabilities):
            self._last_speech_at = now
        events = self._detector.feed(probabilities) + self._verdict()
        if was_in_turn or TurnEvent.SPEECH_STARTED not in events:
            self._keep_audio(samples)
        else:
            self._preroll.append(samples)  # the frame that confirmed speech belongs to the turn
        for event in events:
            self._on_turn_event(event, now)
        if self._detector.in_turn and not events and self._detector.silence_s == 0:
            self._read_ahead()

    def _read_ahead(self) -> None:
        """Mid-speech: have the model read the words so far, if nothing else is transcribing."""
        if self.speculation is None or self._detector.turn_s - self._partial_at_s < PARTIAL_EVERY_S:
            return
        if not _early_stt.idle():  # someone's pause (or another partial) is being transcribed
            return
        self._partial_at_s = self._detector.turn_s
        self.speculation.start(self._transcribe_so_far(), self.conversation.next_request(), partial=True)

    def _transcribe_so_far(self) -> Future:
        """(text, call log) of the turn's audio so far, from the early-STT worker."""
        language, _ = self.runner.persona_speech(self.conversation)
        return _early_stt.submit(transcribe_logged, self.runner.stt, self._audio_so_far(),
                                 self.conversation.user_id, language)

    def _on_turn_event(self, event: TurnEvent, now: float) -> None:
        if event is TurnEvent.SPEECH_STARTED:
            self.send_message_sync(create_message("log", "started_talking"))
            if self.can_interrupt and self._replying():
                self._barge_in()
            elif self.speculation is not None and not self._replying():
                self.speculation.warm_head(self.conversation.next_request())
            self._partial_at_s = self._detector.turn_s  # the first words so far: a second in

        elif event is TurnEvent.PAUSE_STARTED:
            self._early = self._transcribe_so_far()
            if self.speculation is not None:
                self.speculation.start(self._early, self.conversation.next_request())
        elif event is TurnEvent.SPEECH_RESUMED:
            self._early = None  # its words are incomplete now; let it finish unused
            if self.speculation is not None:
                self.speculation.cancel()
        elif event is TurnEvent.CHECK_TURN:
            if self.judge is not None:
                self._check = (self._detector.pause_index, self.judge.ask(
                    self._audio_so_far().samples, self._detector.options.threshold, self._early))
        elif event is TurnEvent.TURN_ENDED:
            self._check = None
            turn = SpokenTurn(self._audio_so_far(), self._last_speech_at, now, self._early,
                              ended_by=self._ended_by())
            log.debug("turn taken %.3f s after the last speech (%s)", now - self._last_speech_at, turn.ended_by)
            self._ended_by_model = False
            self._early = None
            self._reset_turn_audio()
            with self._lock:
                self._pending = turn
                # Clear first, then signal: the other order can wipe the new reply.
                if self.can_interrupt:
                    self.clear_queue()
                self.event.set()
            self._use_turn_options()

    def _ended_by(self) -> str:
        options = self._detector.options
        if self._ended_by_model:
            return self.judge.model.name if self.judge is not None else "model"
        if self._detector.last_turn_s >= options.max_turn_s:
            return "max length"
        return "fallback silence" if options.smart and self.judge is not None else "silence"

    def _verdict(self) -> list[TurnEvent]:
        """End the turn once the model has said the user is done, if they still are silent
        (and have been for the shortest silence that may end a turn)."""
        if self._check is None or not self._check[1].done():
            return []
        if self._detector.too_soon(self._check[0]):
            return []  # a quick verdict: heard once that silence has passed
        (pause, verdict), self._check = self._check, None
        try:
            finished = verdict.result().finished
        except Exception:  # noqa: BLE001 - the fallback silence still ends the turn
            log.warning("end-of-turn check failed; waiting for the fallback silence", exc_info=True)
            return []
        if not (finished and self._detector.in_pause(pause)):
            return []
        self._ended_by_model = True
        return self._detector.end_now()

    def _replying(self) -> bool:
        return self.generator is not None

    def _barge_in(self) -> None:
        self.conversation.barged_in_at = time.perf_counter()
        self.conversation.barged_in.set()
        with self._lock:
            self._interrupt = True
            self.clear_queue()
        # A reply not yet heard (its turn was taken at a short pause, "wait, stop, | I have a
        # question") has sent the client nothing to drop: it is only stopped.
        if self._announced_audio:
            self._clear_client_playback()

    def _clear_client_playback(self) -> None:
        """A websocket peer has the reply's audio ahead of its playback: Twilio is sent it a
        little faster than real time, a websocket client as fast as it is made (FastRTC
        0.0.34). Both keep playing what they hold unless told to clear it. (A WebRTC track
        is paced by the server, whose queue the barge-in has emptied.)"""
        context = current_context.get(None)
        websocket = getattr(context, "websocket", None)
        stream_id = getattr(context, "webrtc_id", None)
        if websocket is None or stream_id is None:
            return
        clear = {"event": "clear", "streamSid": stream_id} if self.phone_mode else {"event": "clear"}
        asyncio.run_coroutine_threadsafe(websocket.send_json(clear), self.loop)

    # --- output side ------------------------------------------------------------

    def emit(self) -> Any:
        if not self.event.wait(IDLE_WAIT_S):
            return None
        with self._lock:
            if self._interrupt:
                self._interrupt = False
                self._close_generator()
                self.generator = None
            if self.generator is None:
                turn, self._pending = self._pending, None
                if turn is None:
                    self.event.clear()
                    return None
                self.send_message_sync(create_message("log", "pause_detected"))
                self._announced_audio = False
                refusal = None
                if self.phone_mode:
                    self._as_phone_caller()
                else:
                    refusal = self._as_token_holder()
                self.generator = self.runner.notice(refusal) if refusal else self.runner.run(turn, self.conversation)
                self._reset_when_the_socket_ends()
            generator = self.generator
        try:
            output = next(generator)
        except StopIteration:
            return self._finish_turn(generator)
        except Exception:
            log.exception("voice turn failed; the connection stays open")
            return self._finish_turn(generator)
        if self.generator is not generator:  # the connection ended (reset) while this step ran
            _close(generator)
            return None
        audio, _ = split_output(output)
        if audio is not None and not self._announced_audio:
            self._announced_audio = True
            self.send_message_sync(create_message("log", "response_starting"))
        return output

    def _reset_when_the_socket_ends(self) -> None:
        """A websocket or phone connection: be reset when it ends, as a WebRTC peer is."""
        if self._watching_socket:
            return
        when_ended = getattr(getattr(current_context.get(None), "websocket", None), "when_ended", None)
        if when_ended is not None:
            when_ended(self.reset)
            self._watching_socket = True

    def _as_phone_caller(self) -> None:
        """A caller is not the local user: the identity their webhook token named
        (handlers/phone/telephone.py), and the phone channel's tool policy (no network
        tools; dangerous ones need a spoken yes)."""
        if self.conversation.channel != "phone":
            context = current_context.get(None)
            call_id = getattr(context, "webrtc_id", None) or uuid.uuid4().hex
            # A call our webhook answered is its caller's (their hashed number, remembered
            # from call to call); without one, a caller of this call alone.
            owner = self.identities.owner(call_id) if self.identities is not None else None
            self.conversation.user_id = owner or f"phone:{call_id}"[:128]
            persona = self.identities.persona(call_id) if self.identities is not None else None
            if persona:
                self.conversation.persona_id = persona
            # The guarded Twilio socket knows from its marks what the caller has heard.
            self.conversation.playback = getattr(getattr(context, "websocket", None), "playback", None)
            self.conversation.channel = "phone"

    def _as_token_holder(self) -> str | None:
        """With identities, a connection speaks as the identity its token named, within
        that identity's limits; returns what to say instead of a reply, if anything."""
        if self.identities is None or not self.identities.required:
            return None
        context = current_context.get(None)
        owner = self.identities.owner(getattr(context, "webrtc_id", None) or "")
        if owner is None:  # never as anyone else: no identity, no reply
            return "I don't know who you are yet. Please reload the page and try again."
        self.conversation.user_id = owner
        try:
            self.identities.check_turn(owner)
        except LimitReached as limit:
            return str(limit)
        return None

    def _finish_turn(self, generator: Any) -> None:
        with self._lock:
            if self.generator is generator:
                self.generator = None
            if self._pending is None:
                self.event.clear()
        return None

    def reset(self) -> None:
        # Called by FastRTC when a connection ends: drop per-turn state. A reply still being
        # made is closed now, not whenever it is collected: it saves what was said and stops
        # counting as in flight (a draining server waits for those).
        with self._lock:
            generator, self.generator = self.generator, None
        if generator is not None:
            _close(generator)
        super().reset()
        with self._lock:
            self._pending = None
            self._interrupt = False
        self._detector.reset()
        self._check = None
        self._ended_by_model = False
        if self.speculation is not None:
            self.speculation.cancel()
        self._reset_turn_audio()


def _close(generator: Any) -> None:
    try:
        generator.close()
    except ValueError:  # a step runs in emit right now: emit closes it when the step returns
        pass
    except Exception:  # noqa: BLE001 - closing is cleanup; the turn logs its own errors
        log.warning("closing an ended connection's reply failed", exc_info=True)
