"""Baseline: stock FastRTC ReplyOnPause on the same VAD model.

Started by bench/voice_latency.py; serves the stock handler's websocket route only.
- `COZY_STOCK_REPLY=echo` (the idle-CPU figure): the handler echoes what it heard.
- `COZY_STOCK_REPLY=answer` (the latency baseline): what a FastRTC demo does with our
  offline models, on stock turn-taking: Whisper tiny.en as faster-whisper runs it, the
  model's reply to the persona's prompt and the words, spoken a whole sentence at a time.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import uvicorn  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastrtc import ReplyOnPause, Stream  # noqa: E402

from config import Settings  # noqa: E402
from providers import model_files  # noqa: E402
from providers.offline.vad import SileroVad  # noqa: E402


def echo(audio):
    yield audio


def answering(settings: Settings):
    """A stock-style reply function: transcribe, stream the reply, speak each sentence."""
    from orchestrator.sentences import SentenceSplitter
    from personas.cards import PersonaCatalog
    from providers.base import AudioClip, ChatOptions
    from providers.offline.llm import LlamaChatModel
    from providers.offline.stt import WhisperSTT
    from providers.offline.tts import PiperTTS

    resolve = model_files.resolve
    stt = WhisperSTT(resolve("whisper-tiny.en", settings.models_dir).parent, short_window=False)
    llm_name = settings.models.llm
    llm = LlamaChatModel(resolve(llm_name, settings.models_dir, settings.models.llm_path), llm_name,
                         threads=settings.models.llm_threads)
    tts = PiperTTS(resolve("piper-joe-medium", settings.models_dir))
    persona = PersonaCatalog(settings.personas_dir, settings.default_persona).get(settings.default_persona)
    for model in (stt, llm, tts):
        model.warmup()

    def answer(audio: tuple[int, np.ndarray]):
        rate, samples = audio
        text = stt.transcribe(AudioClip(rate, samples.reshape(-1).astype(np.int16)))
        if not text:
            return
        messages = [{"role": "system", "content": persona.system_prompt}, {"role": "user", "content": text}]
        splitter = SentenceSplitter(first_piece_words=None)
        options = ChatOptions(max_tokens=persona.max_reply_tokens, temperature=0)
        for delta in llm.stream(messages, options):
            for piece in splitter.push(delta.text or ""):
                yield from speak(piece)
        for piece in splitter.flush():
            yield from speak(piece)

    def speak(piece: str):
        for clip in tts.synthesize(piece):
            yield clip.sample_rate, clip.samples.reshape(1, -1)

    return answer


settings = Settings.from_env()
vad = SileroVad(model_files.resolve("silero-vad-v5", settings.models_dir))
reply = answering(settings) if os.environ.get("COZY_STOCK_REPLY", "echo") == "answer" else echo
stream = Stream(ReplyOnPause(reply, model=vad, input_sample_rate=16_000), modality="audio",
                mode="send-receive", concurrency_limit=8, verbose=False)
app = FastAPI()
stream.mount(app, path="/voice")

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["COZY_PORT"]), log_level="warning")
