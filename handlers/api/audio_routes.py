"""POST /v1/audio/transcriptions and /v1/audio/speech, through the provider chain."""
from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Iterator

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from handlers.api.audio_codec import MEDIA_TYPES, AudioDecodeError, StreamEncoder, decode_audio
from handlers.api.errors import ApiError, busy_error
from handlers.api.schemas import (ERROR_RESPONSES, UNAVAILABLE_RESPONSE, SpeechRequest, Transcription,
                                  VerboseTranscription)
from handlers.api.turn_bridge import iterate_in_thread
from providers.pcm import SPEECH_RATE, resample
from handlers.voice.sentences import SentenceChunker
from providers.base import AudioClip, SpeechToText, TextToSpeech
from providers.errors import ModelBusy
from providers.fallback import transcribe_as
from providers.languages import SPOKEN_LANGUAGES, is_chinese, iso_language

log = logging.getLogger(__name__)
MAX_UPLOAD_BYTES = 25 * 1024 * 1024  # OpenAI's own limit
SYNTHESIS_RATE = 24_000
TEXT_FORMATS = ("text", "srt", "vtt")
# Control characters say nothing aloud, and some voices fail on them (Piper on NUL).
_UNSPEAKABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _timestamp(seconds: float, decimal: str) -> str:
    millis = round(seconds * 1000)
    hours, minutes, secs = millis // 3_600_000, millis // 60_000 % 60, millis // 1000 % 60
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis % 1000:03d}"


def subtitles(text: str, duration: float, response_format: str) -> str:
    """The whole transcript as one cue: the recogniser gives no segment times."""
    if response_format == "srt":
        return f"1\n{_timestamp(0, ',')} --> {_timestamp(duration, ',')}\n{text}\n\n"
    return f"WEBVTT\n\n{_timestamp(0, '.')} --> {_timestamp(duration, '.')}\n{text}\n\n"


async def _read_upload(file: UploadFile) -> bytes:
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise ApiError(413, f"The file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB.", param="file")
    return data


def build_audio_router(stt: SpeechToText, tts: TextToSpeech, authenticate, limiter) -> APIRouter:
    router = APIRouter()

    @router.post("/v1/audio/transcriptions", response_model=Transcription | VerboseTranscription,
                 operation_id="createTranscription", responses={
                     **ERROR_RESPONSES, **UNAVAILABLE_RESPONSE,
                     200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
    async def create_transcription(
        file: UploadFile = File(...), model: str = Form(..., min_length=1, max_length=128),
        language: str | None = Form(None, max_length=16), prompt: str | None = Form(None, max_length=4096),
        response_format: str = Form("json"), temperature: float | None = Form(None, ge=0, le=1),
        stream: bool | None = Form(None), user_id: str = Depends(authenticate),
    ):
        limiter.request(user_id)
        if response_format not in ("json", "verbose_json", *TEXT_FORMATS):
            raise ApiError(400, f"response_format '{response_format}' is not supported; use json, verbose_json, "
                           "text, srt or vtt.", param="response_format")
        if stream:  # a client asking for events would misread a plain body
            raise ApiError(400, "Streamed transcription is not supported; leave 'stream' unset.", param="stream")
        code = iso_language(language)  # absent: the recognizer detects it
        if code is not None and code not in SPOKEN_LANGUAGES:
            raise ApiError(400, f"Language '{language}' is not supported by this server; use "
                           f"{', '.join(SPOKEN_LANGUAGES)}, or leave it out to detect it.", param="language")
        data = await _read_upload(file)
        try:
            samples = await asyncio.to_thread(decode_audio, data, SPEECH_RATE)
        except AudioDecodeError as exc:
            raise ApiError(400, f"Could not read the audio: {exc}.", param="file") from None
        duration = len(samples) / SPEECH_RATE
        limiter.audio(user_id, duration, param="file")
        try:
            text = await asyncio.to_thread(transcribe_as, stt, AudioClip(SPEECH_RATE, samples), user_id, code)
        except ModelBusy as exc:
            raise busy_error(exc, "speech recognizer") from None
        except Exception:
            log.exception("transcription failed")
            raise ApiError(503, "Speech recognition is unavailable right now; try again shortly.",
                           "server_error") from None
        if response_format == "text":
            return PlainTextResponse(text + "\n")
        if response_format in ("srt", "vtt"):
            return PlainTextResponse(subtitles(text, duration, response_format))
        if response_format == "verbose_json":
            heard = code or ("zh" if is_chinese(text) else "en")
            return JSONResponse(VerboseTranscription(language=SPOKEN_LANGUAGES[heard], duration=round(duration, 3),
                                                     text=text).model_dump())
        return JSONResponse({"text": text})

    @router.post("/v1/audio/speech", response_class=StreamingResponse, operation_id="createSpeech", responses={
        **ERROR_RESPONSES, **UNAVAILABLE_RESPONSE,
        200: {"description": "Audio, streamed as it is synthesised",
              "content": {media: {"schema": {"type": "string", "format": "binary"}}
                          for media in sorted(set(MEDIA_TYPES.values()))}}})
    async def create_speech(body: SpeechRequest, user_id: str = Depends(authenticate)):
        limiter.request(user_id)
        text = _UNSPEAKABLE.sub(" ", body.input).strip()
        if not text:
            raise ApiError(400, "'input' has no text to speak.", param="input")
        if body.stream_format == "sse":
            raise ApiError(400, "stream_format 'sse' is not supported; the audio itself is streamed.",
                           param="stream_format")
        limiter.audio(user_id, len(text) / 14, param="input")  # about 14 characters a second of speech
        voice = body.voice if isinstance(body.voice, str) else None

        def synthesise(cancelled: threading.Event) -> Iterator[bytes]:
            encoder = StreamEncoder(body.response_format, SYNTHESIS_RATE)
            chunker = SentenceChunker()
            for piece in chunker.push(text + " ") + chunker.flush():
                for clip in tts.synthesize(piece, voice):
                    if cancelled.is_set():
                        return
                    data = encoder.encode(resample(clip.samples, clip.sample_rate, SYNTHESIS_RATE))
                    if data:
                        yield data
            yield encoder.finish()

        chunks = iterate_in_thread(synthesise)
        try:
            first = await anext(chunks)  # a failure before any audio is a proper HTTP error
        except StopAsyncIteration:
            first = b""
        except Exception:
            log.exception("speech synthesis failed")
            raise ApiError(503, "Speech synthesis is unavailable right now; try again shortly.",
                           "server_error") from None

        async def body_bytes():
            yield first
            async for chunk in chunks:
                yield chunk

        return StreamingResponse(body_bytes(), media_type=MEDIA_TYPES[body.response_format])

    return router
