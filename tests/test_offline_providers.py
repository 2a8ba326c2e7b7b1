"""The offline providers, on the real local models."""
from __future__ import annotations

import functools
import threading

import numpy as np
import pytest

from providers.pcm import rms_dbfs
from providers.base import AudioClip, ChatOptions
from tests.clients.voice_ws import espeak_clip


@pytest.fixture(scope="module")
def question() -> np.ndarray:
    return espeak_clip("what is the capital of France")


def test_vad_hears_speech_and_not_silence(vad, question):
    speech_s, spans = vad.vad((16_000, question))
    assert speech_s > 0.5 * len(question) / 16_000 and spans
    assert vad.vad((16_000, np.zeros(16_000, np.int16)))[0] == 0.0


def test_vad_stream_scores_audio_as_it_arrives(vad, question):
    stream = vad.stream()
    probabilities = []
    for start in range(0, len(question), 320):  # 20 ms frames, as a call delivers them
        probabilities += stream.feed(question[start:start + 320])
    assert len(probabilities) == len(question) // 512
    assert max(probabilities) > 0.9


def test_vad_scores_digital_silence_without_the_model_and_still_hears_speech_after_it(vad, question):
    stream, runs = vad.stream(), []
    run = vad.run
    vad.run = lambda *args: runs.append(1) or run(*args)
    try:
        assert stream.feed(np.zeros(16_000, np.int16)) == [0.0] * (16_000 // 512) and runs == []
        after = stream.feed(question)
    finally:
        del vad.run
    assert runs and max(after) > 0.9  # speech right after silence is heard as before


def test_whisper_transcribes_speech(whisper, question):
    text = whisper.transcribe(AudioClip(16_000, question)).lower()
    assert "capital" in text and "france" in text


def test_whisper_accepts_other_rates_and_returns_nothing_for_a_blip(whisper, question):
    import soxr

    at_48k = (soxr.resample(question.astype(np.float32) / 32768, 16_000, 48_000) * 32767).astype(np.int16)
    assert "france" in whisper.transcribe(AudioClip(48_000, at_48k)).lower()
    assert whisper.transcribe(AudioClip(16_000, np.zeros(800, np.int16))) == ""


SPOKEN = {  # what espeak says, and words Whisper tiny.en hears in it with its full 30 s window
    "what is the capital of France": ("capital", "france"),
    "who wrote romeo and juliet": ("romeo", "juliet"),
    "please remember that my favourite colour is green": ("remember", "green"),
    "set a timer for ten minutes": ("minutes",),
    "could you remind me to call my mother tomorrow morning": ("remind", "mother", "tomorrow"),
}


@pytest.fixture(scope="module")
def full_window_whisper(settings):
    from providers import model_files
    from providers.offline.stt import WhisperSTT

    return WhisperSTT(model_files.resolve("whisper-tiny.en", settings.models_dir).parent, short_window=False)


def test_a_short_clip_in_the_short_window_is_heard_as_in_the_full_one(whisper, full_window_whisper):
    # A spoken turn is encoded in an 8 s window instead of Whisper's 30 s (4x faster here).
    assert whisper.short_window and not full_window_whisper.short_window
    for text, words in SPOKEN.items():
        clip = AudioClip(16_000, espeak_clip(text))
        for model in (whisper, full_window_whisper):
            heard = model.transcribe(clip).lower()
            assert all(word in heard for word in words), (model.short_window, text, heard)


def test_words_that_loop_in_the_short_window_are_heard_again_in_a_wider_one(whisper):
    from providers.offline.stt import loops

    assert loops("Who wrote, wrote, wrote and do it!") and loops("Thank you very much. Thank you very much.")
    assert not any(map(loops, ("What is 2 plus 2?", "bye bye", "I had had enough", "Who wrote Romeo and Juliet?")))
    # Bare espeak (no silence around it): the 8 s window alone hears "Who wrote, wrote, wrote and do it!"
    heard = whisper.transcribe(AudioClip(16_000, espeak_clip("who wrote romeo and juliet"))).lower()
    assert "romeo" in heard and not loops(heard), heard


def test_the_short_window_hears_nothing_in_silence_or_noise_and_long_clips_get_the_full_one(whisper):
    from providers.offline.stt import short_window_frames

    rng = np.random.default_rng(7)
    assert whisper.transcribe(AudioClip(16_000, np.zeros(16_000, np.int16))) == ""  # not " you"
    assert whisper.transcribe(AudioClip(16_000, rng.normal(0, 200, 16_000).astype(np.int16))) == ""
    assert short_window_frames(16_000 * 3) == 800 and short_window_frames(16_000 * 15) == 1600
    assert short_window_frames(16_000 * 29) is None  # too long for a short window: faster-whisper's own
    long_clip = np.concatenate([espeak_clip("what is the capital of France"), np.zeros(16_000 * 28, np.int16)])
    assert "france" in whisper.transcribe(AudioClip(16_000, long_clip)).lower()


def noiseless(piper, monkeypatch) -> None:
    """Piper's synthesis made repeatable. Its noise is drawn inside the ONNX graph (RandomNormalLike
    nodes with no seed attribute), so any non-zero noise_scale / noise_w_scale sounds different on
    each call (once, "Paris" was heard as "Perris"). Seeding numpy does nothing; onnxruntime.set_seed
    only repeats the sequence, so the audio would hang on how many syntheses the shared fixture has
    done before. With both at zero the same text gives the same samples, in any process."""
    from piper import SynthesisConfig

    still = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    monkeypatch.setattr(piper._voice, "synthesize", functools.partial(piper._voice.synthesize, syn_config=still))


@pytest.mark.parametrize("tts_name", ["piper", "espeak"])
def test_tts_speaks_audibly(tts_name, request, whisper, monkeypatch):
    tts = request.getfixturevalue(tts_name)
    if tts_name == "piper":
        noiseless(tts, monkeypatch)
    sentence = "The capital of France is Paris."
    clips = list(tts.synthesize(sentence))
    audio = np.concatenate([c.samples for c in clips])
    assert 1.0 < len(audio) / clips[0].sample_rate < 5.0
    assert rms_dbfs(audio) > -35
    if tts_name == "piper":  # what makes the round trip below the same every run
        assert np.array_equal(audio, np.concatenate([c.samples for c in tts.synthesize(sentence)]))
    # What it said is what was asked: round-trip it through speech recognition.
    assert "paris" in whisper.transcribe(AudioClip(clips[0].sample_rate, audio)).lower()


def test_llm_streams_and_respects_the_token_limit(fast_llm):
    deltas = list(fast_llm.stream([{"role": "user", "content": "Count from one to fifty."}],
                                  ChatOptions(temperature=0, max_tokens=8)))
    assert sum(1 for d in deltas if d.text) <= 8
    assert deltas[-1].finish_reason == "length"


def test_llm_stops_when_cancelled(fast_llm):
    cancelled = threading.Event()
    texts = []
    for delta in fast_llm.stream([{"role": "user", "content": "Tell me a long story."}],
                                 ChatOptions(max_tokens=200), cancelled):
        texts.append(delta.text)
        if len(texts) == 3:
            cancelled.set()
    assert texts[-1] == "" and len(texts) == 4  # three tokens, then the closing delta


def test_the_prompt_cache_counts_every_byte_it_keeps_and_still_restores_prompts(settings):
    # Before: each kept state also held ~256 x vocabulary floats the cache did not count,
    # so RAM grew by tens of MB per distinct prompt past the configured ceiling.
    from providers import model_files
    from providers.offline.llm import LlamaChatModel

    capacity = 24 * 1024 * 1024
    llm = LlamaChatModel(model_files.resolve("smollm2-135m", settings.models_dir), "smollm2-135m",
                         threads=2, context_tokens=2048, prompt_cache_bytes=capacity)
    options = ChatOptions(max_tokens=8, temperature=0)

    def reply(prompt: str) -> str:
        return "".join(d.text for d in llm.stream([{"role": "user", "content": prompt}], options))

    first = reply("Name a colour.")
    for index in range(12):
        reply(f"Count to {index} in words, please, and say nothing else at all.")
        cache = llm._llm.cache
        assert cache.cache_size <= capacity
        assert all(state.scores.nbytes <= 4 for state in cache.cache_state.values())
    kept = llm._llm.cache.cache_state.values()
    assert sum(s.llama_state_size + s.input_ids.nbytes for s in kept) == llm._llm.cache.cache_size - len(kept) * 4
    reply("Name a colour.")  # evaluated again: now it is the newest entry
    assert reply("Name a colour.") == first  # restored from the cache, same words
