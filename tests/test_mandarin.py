"""Mandarin Chinese end to end, offline: espeak-ng asks, Whisper base hears, Qwen answers in
Chinese, Kokoro speaks it, and an independent Whisper hears the answer. Personas sound apart."""
from __future__ import annotations

import io
import json
import time

import httpx
import numpy as np
import openai
import pytest
import soundfile as sf

from providers import model_files
from providers.base import AudioClip
from tests.clients.voice_ws import VoiceWebsocketClient, espeak_clip

# "法国的首都是哪里？" as espeak-ng's Mandarin voice reads pinyin (its `cmn` voice would read the
# tone digits in English). 法 is given the fourth tone: espeak's dipping third tone is heard as
# "啊" by Whisper base, which then misses 法国 in most clips.
QUESTION_ZH = "fa4guo2 de shou3du1 shi4 na3li3?"
QUESTION_EN = "What is the capital of France?"


@pytest.fixture(scope="module")
def listener(settings):
    """A multilingual Whisper of the test's own, to hear what the app said."""
    from providers.offline.stt import WhisperSTT

    model = model_files.resolve("whisper-base", settings.models_dir)
    for name in ("config.json", "tokenizer.json", "vocabulary.json"):
        model_files.resolve(f"whisper-base/{name}", settings.models_dir)
    return WhisperSTT(model.parent)


def chinese_question() -> np.ndarray:
    return espeak_clip(QUESTION_ZH, voice="cmn-latn-pinyin")


async def spoken_turn(base_url: str, persona: str, speech: np.ndarray):
    async with VoiceWebsocketClient(base_url) as client:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            chosen = await http.post("/voice/settings", json={"webrtc_id": client.websocket_id, "persona_id": persona})
            assert chosen.status_code == 200, chosen.text
        return await client.speak(speech, listen_s=60)


def median_pitch_hz(samples: np.ndarray, rate: int) -> float:
    """Median fundamental frequency over voiced 40 ms frames (autocorrelation, 70-400 Hz)."""
    audio = samples.astype(np.float32) / 32768
    frame, hop = int(0.04 * rate), int(0.01 * rate)
    low, high = int(rate / 400), int(rate / 70)
    loud = 0.3 * np.sqrt(np.mean(audio ** 2))
    pitches = []
    for start in range(0, len(audio) - frame, hop):
        window = audio[start:start + frame] * np.hanning(frame)
        if np.sqrt(np.mean(window ** 2)) < loud:
            continue
        correlation = np.correlate(window, window, "full")[frame - 1:]
        lag = low + int(np.argmax(correlation[low:high]))
        if correlation[lag] > 0.4 * correlation[0]:  # clearly periodic: voiced
            pitches.append(rate / lag)
    assert len(pitches) > 20, "too little voiced speech to measure"
    return float(np.median(pitches))


async def test_a_mandarin_question_is_heard_and_answered_in_chinese(running_app, listener):
    turn = await spoken_turn(running_app.base_url, "xiaobei", chinese_question())
    said = " ".join(m["content"] for m in turn.transcript() if m["role"] == "user")
    answered = " ".join(m["content"] for m in turn.transcript() if m["role"] == "assistant")
    assert "法国" in said or "首都" in said, (said, running_app.log_tail())
    assert "巴黎" in answered, answered
    assert turn.last_turn()["language"] == "zh-CN"
    assert turn.last_turn()["voice"].startswith("offline=kokoro:zf_xiaobei")
    heard = listener.transcribe(AudioClip(24_000, turn.audio), "zh")
    assert "巴黎" in heard, f"the reply audio was heard as {heard!r} (written: {answered!r})"


async def test_the_bilingual_persona_answers_in_the_language_it_is_asked_in(running_app):
    chinese = await spoken_turn(running_app.base_url, "bilingual", chinese_question())
    english = await spoken_turn(running_app.base_url, "bilingual", espeak_clip(QUESTION_EN))
    assert chinese.last_turn()["language"] == english.last_turn()["language"] == "auto"
    said_zh = " ".join(m["content"] for m in chinese.transcript() if m["role"] == "user")
    answer_zh = " ".join(m["content"] for m in chinese.transcript() if m["role"] == "assistant")
    answer_en = " ".join(m["content"] for m in english.transcript() if m["role"] == "assistant")
    assert "首都" in said_zh or "法国" in said_zh, said_zh
    assert "巴黎" in answer_zh, answer_zh
    assert "paris" in answer_en.lower() and "巴黎" not in answer_en, answer_en


async def test_two_personas_answer_in_voices_told_apart_by_ear(running_app):
    question = espeak_clip(QUESTION_EN)
    low = await spoken_turn(running_app.base_url, "companion", question)  # Piper's Joe
    high = await spoken_turn(running_app.base_url, "tutor", question)  # Kokoro's Heart
    assert low.last_turn()["voice"].startswith("offline=piper:") and high.last_turn()["voice"].startswith(
        "offline=kokoro:af_heart")
    low_hz, high_hz = median_pitch_hz(low.audio, 24_000), median_pitch_hz(high.audio, 24_000)
    assert high_hz > 1.1 * low_hz, f"median pitch {low_hz:.0f} Hz (companion) vs {high_hz:.0f} Hz (tutor)"


def test_transcription_takes_a_language_or_detects_it(running_app):
    client = openai.OpenAI(base_url=f"{running_app.base_url}/v1", api_key="none", max_retries=0, timeout=60)

    def wav(samples: np.ndarray) -> tuple[str, bytes, str]:
        buffer = io.BytesIO()
        sf.write(buffer, samples, 16_000, format="WAV")
        return "question.wav", buffer.getvalue(), "audio/wav"

    told = client.audio.transcriptions.create(model="whisper-1", file=wav(chinese_question()), language="zh")
    detected = client.audio.transcriptions.create(model="whisper-1", file=wav(chinese_question()),
                                                  response_format="verbose_json")
    english = client.audio.transcriptions.create(model="whisper-1", file=wav(espeak_clip(QUESTION_EN)))
    assert "首都" in told.text or "法国" in told.text, told.text
    assert detected.language == "chinese" and ("首都" in detected.text or "法国" in detected.text), detected
    assert "capital" in english.text.lower() and "france" in english.text.lower(), english.text
    with pytest.raises(openai.BadRequestError) as refused:
        client.audio.transcriptions.create(model="whisper-1", file=wav(chinese_question()), language="tlh")
    assert refused.value.body["param"] == "language"


def test_speech_reads_chinese_in_a_chinese_voice(running_app, listener):
    client = openai.OpenAI(base_url=f"{running_app.base_url}/v1", api_key="none", max_retries=0, timeout=60)
    # "alloy" is OpenAI's voice: offline, the Chinese text picks the Chinese voice itself.
    speech = client.audio.speech.create(model="tts-1", voice="alloy", input="法国的首都是巴黎。",
                                        response_format="wav")
    samples, rate = sf.read(io.BytesIO(speech.content), dtype="int16")
    assert "巴黎" in listener.transcribe(AudioClip(rate, samples), "zh")


def test_a_chinese_name_told_once_is_recalled_in_a_new_session_and_by_no_one_else(running_app):
    """Through the API as a client uses it: sessions, `X-Session-Id`, end users (`user`)."""
    client = openai.OpenAI(base_url=f"{running_app.base_url}/v1", api_key="none", max_retries=0, timeout=120)
    http = httpx.Client(base_url=running_app.base_url, timeout=30)

    def ask(text: str, user: str) -> str:
        session = http.post("/v1/chat/sessions", json={"persona_id": "xiaobei", "user": user}).json()["id"]
        reply = client.chat.completions.create(model="xiaobei", user=user, messages=[{"role": "user", "content": text}],
                                               extra_headers={"X-Session-Id": session})
        return reply.choices[0].message.content

    ask("我叫李雷，我喜欢天文学。", "lilei")
    deadline = time.monotonic() + 30  # memories are learnt off the hot path: poll until stored
    while "李雷" not in json.dumps(http.get("/v1/users/me", params={"user": "lilei"}).json(), ensure_ascii=False):
        assert time.monotonic() < deadline, "the name was never remembered"
        time.sleep(0.2)
    assert "李雷" in ask("我叫什么名字？", "lilei")
    assert "李雷" not in ask("我叫什么名字？", "hanmeimei")
