"""Fallback chains over real vendor SDKs talking to fake vendors on 127.0.0.1."""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

import pytest

from providers.base import ChatOptions
from providers.breakers import ProviderPolicy
from providers.call_log import CallLog
from providers.chains import build_chains
from providers.errors import ProviderError, ProviderInterrupted, ProviderTimeout
from providers.fallback import FallbackChatModel, FallbackSTT, FallbackTTS, voice_for
from providers.tts_cache import CachedTTS
from tests.fakes.providers import (
    ScriptedChatModel,
    ScriptedSTT,
    ScriptedTTS,
    elevenlabs_tts,
    groq_llm,
    groq_stt,
    openai_llm,
    openai_stt,
    openai_tts,
    speech,
)
from tests.fakes.vendor_server import Fault

pytest_plugins = ["tests.fakes.fixtures"]  # the fake vendor servers

USER = [{"role": "user", "content": "Tell me something."}]
REPLY = "Hello from the fake."
RESET_S = 0.3
FAST = ProviderPolicy(fail_max=2, reset_timeout_s=RESET_S, first_output_timeout_s=1.5,
                      stall_timeout_s=1.5, retries=0, backoff_s=0.01, max_backoff_s=0.05)


def reply(llm, log: CallLog | None = None) -> str:
    return "".join(delta.text for delta in llm.stream(USER, ChatOptions(), log=log))


def served(llm, expected: str = REPLY) -> str:
    """Who answered one call, as that call's own log says."""
    log = CallLog()
    assert reply(llm, log) == expected
    return log.provider


def tripped_chain(vendors) -> FallbackChatModel:
    """openai (primary, failing with 500s) then groq; the openai breaker is open."""
    primary, secondary = vendors
    primary.fail_always(Fault(status=500))
    llm = FallbackChatModel([openai_llm(primary), groq_llm(secondary)], FAST)
    for _ in range(FAST.fail_max):
        assert served(llm) == "groq"
    return llm


def test_failing_primary_trips_its_breaker_and_calls_complete_on_the_next(vendors, caplog):
    caplog.set_level(logging.INFO, logger="providers.breakers")
    llm = tripped_chain(vendors)

    assert llm.breaker_states() == {"openai": "open", "groq": "closed"}
    assert vendors[0].hits() == 2 and vendors[1].hits() == 2
    assert "llm: openai breaker closed -> open" in caplog.text
    [event] = llm.recent_breaker_events()
    assert (event.provider, event.old_state, event.new_state) == ("openai", "closed", "open")
    assert llm.stats()["openai"] == {"calls": 2, "successes": 0, "failures": 2, "skipped": 0, "refused": 0}


def test_open_breaker_skips_the_primary_without_calling_it(vendors):
    llm = tripped_chain(vendors)
    for _ in range(5):
        assert reply(llm) == REPLY
    assert vendors[0].hits() == 2  # still only the two calls that tripped it
    assert llm.stats()["openai"]["skipped"] == 5
    assert llm.stats()["groq"]["successes"] == 7


def test_after_the_reset_timeout_one_trial_call_goes_through_and_closes(vendors):
    llm = tripped_chain(vendors)
    changes = []
    llm.add_state_listener(lambda event: changes.append(event.new_state))
    vendors[0].fail_always(None)  # the primary recovers
    time.sleep(RESET_S + 0.05)

    assert served(llm) == "openai"
    assert vendors[0].hits() == 3
    assert llm.breaker_states()["openai"] == "closed"
    assert changes == ["half-open", "closed"]


def test_a_failed_trial_call_opens_the_breaker_again(vendors):
    llm = tripped_chain(vendors)
    time.sleep(RESET_S + 0.05)
    assert served(llm) == "groq"  # the trial fails, groq answers
    assert vendors[0].hits() == 3
    assert llm.breaker_states()["openai"] == "open"
    assert reply(llm) == REPLY
    assert vendors[0].hits() == 3  # open again: not called


def test_only_one_trial_call_at_a_time_while_half_open(vendors):
    llm = tripped_chain(vendors)
    vendors[0].fail_always(None)
    vendors[0].fail_next(Fault(delay_s=0.5))  # the trial call is slow to answer
    time.sleep(RESET_S + 0.05)
    served = {}
    trial = threading.Thread(target=lambda: served.setdefault("trial", reply(llm)))
    trial.start()
    time.sleep(0.15)
    began = time.monotonic()
    assert reply(llm) == REPLY  # not held up behind the trial: served by groq
    assert time.monotonic() - began < 0.3
    trial.join()
    assert served["trial"] == REPLY
    assert vendors[0].hits() == 3  # exactly one trial request reached the primary
    assert llm.breaker_states()["openai"] == "closed"


def test_rate_limit_before_output_falls_over_without_waiting(vendors):
    primary, secondary = vendors
    primary.fail_next(Fault(status=429, retry_after_s=30))
    llm = FallbackChatModel([openai_llm(primary), groq_llm(secondary)], replace(FAST, retries=2))
    began = time.monotonic()
    assert served(llm) == "groq"
    assert time.monotonic() - began < 1.0  # did not sit out the 30 s
    assert primary.hits() == 1


def test_transient_error_is_retried_on_the_same_provider_first(vendors):
    primary, secondary = vendors
    primary.fail_next(Fault(status=503))
    llm = FallbackChatModel([openai_llm(primary), groq_llm(secondary)], replace(FAST, retries=1))
    assert served(llm) == "openai"
    assert primary.hits() == 2 and secondary.hits() == 0


def test_mid_stream_drop_after_text_raises_and_is_never_retried(vendors):
    primary, secondary = vendors
    primary.fail_next(Fault(drop_after_chunks=3))  # role chunk, "Hello", " from", then the cut
    llm = FallbackChatModel([openai_llm(primary), groq_llm(secondary)], replace(FAST, retries=2))
    heard = []
    with pytest.raises(ProviderInterrupted) as caught:
        for delta in llm.stream(USER, ChatOptions()):
            heard.append(delta.text)
    assert heard == ["Hello", " from"]  # no silent truncation, no replayed words
    assert caught.value.provider == "openai"
    assert primary.hits() == 1 and secondary.hits() == 0
    assert llm.stats()["openai"]["failures"] == 1


def test_speech_drop_after_audio_started_raises(vendors):
    primary, secondary = vendors
    primary.fail_next(Fault(drop_after_chunks=2))
    tts = FallbackTTS([openai_tts(primary), elevenlabs_tts(secondary)], FAST)
    played = 0
    with pytest.raises(ProviderError):
        for clip in tts.synthesize("A long enough sentence to need several chunks of audio."):
            played += len(clip.samples)
    assert 0 < played < 24_000 * 10 * 56 // 1000
    assert secondary.hits() == 0


def test_hang_before_output_times_out_and_falls_over(vendors):
    primary, secondary = vendors
    primary.fail_next(Fault(hang=True))
    llm = FallbackChatModel([openai_llm(primary), groq_llm(secondary)],
                            replace(FAST, first_output_timeout_s=0.3))
    began = time.monotonic()
    assert served(llm) == "groq"
    assert time.monotonic() - began < 1.0


def test_stall_after_output_started_is_an_interruption(vendors):
    primary, secondary = vendors
    primary.fail_next(Fault(chunk_delay_s=0.5))
    llm = FallbackChatModel([openai_llm(primary), groq_llm(secondary)],
                            replace(FAST, stall_timeout_s=0.2))
    with pytest.raises(ProviderInterrupted) as caught:
        reply(llm)
    assert isinstance(caught.value.__cause__, ProviderTimeout)
    assert secondary.hits() == 0


def test_speech_to_text_falls_over(vendors):
    primary, secondary = vendors
    primary.fail_always(Fault(status=502))
    secondary.script.transcript = "from the second vendor"
    stt = FallbackSTT([groq_stt(primary), openai_stt(secondary)], FAST)
    log = CallLog()
    assert stt.transcribe(speech(), log=log) == "from the second vendor"
    assert log.provider == "openai" and [a.provider for a in log.fallbacks] == ["groq"]


def test_every_cloud_failing_ends_on_the_offline_provider(vendors):
    for server in vendors:
        server.fail_always(Fault(status=500))
    offline = ScriptedChatModel()
    llm = FallbackChatModel([openai_llm(vendors[0]), groq_llm(vendors[1]), offline], FAST)
    assert served(llm, "Offline here. ") == "offline-llm" and offline.calls == 1


def test_every_provider_failing_raises_one_provider_error(vendors):
    for server in vendors:
        server.fail_always(Fault(status=500))
    llm = FallbackChatModel([openai_llm(vendors[0]), groq_llm(vendors[1])], FAST)
    with pytest.raises(ProviderError, match="openai: HTTP 500.*groq: HTTP 500") as caught:
        reply(llm)
    assert type(caught.value) is ProviderError


def test_caller_stopping_early_is_not_a_failure(vendor):
    llm = FallbackChatModel([openai_llm(vendor)], replace(FAST, fail_max=1))
    stream = llm.stream(USER, ChatOptions())
    assert next(stream).text == "Hello"
    stream.close()  # barge-in: the user started talking
    assert llm.breaker_states() == {"openai": "closed"}
    assert llm.stats()["openai"]["failures"] == 0


def test_cancel_while_waiting_for_the_first_token(vendor):
    vendor.fail_next(Fault(delay_s=1.0))
    cancelled = threading.Event()
    threading.Timer(0.1, cancelled.set).start()
    llm = FallbackChatModel([openai_llm(vendor)], FAST)
    began = time.monotonic()
    deltas = list(llm.stream(USER, ChatOptions(), cancelled))
    assert time.monotonic() - began < 0.5
    assert [d.finish_reason for d in deltas] == ["cancelled"]


def test_voices_can_be_given_per_provider(vendors):
    primary, secondary = vendors
    tts = FallbackTTS([elevenlabs_tts(primary), openai_tts(secondary)], FAST)
    voice = "elevenlabs=v123, openai=coral"
    assert list(tts.synthesize("Hi.", voice))
    assert primary.requests[-1].path == "/v1/text-to-speech/v123/stream"
    primary.fail_always(Fault(status=500))
    assert list(tts.synthesize("Hi.", voice))
    assert secondary.requests[-1].body["voice"] == "coral"
    assert voice_for("offline-piper", voice) is None and voice_for("x", "alloy") == "alloy"


# -- chains from the environment ----------------------------------------------------------

def env_for(vendors, **extra: str) -> dict[str, str]:
    primary, secondary = vendors
    return {"GROQ_API_KEY": primary.api_key, "GROQ_BASE_URL": primary.url,
            "OPENAI_API_KEY": secondary.api_key, "OPENAI_BASE_URL": f"{secondary.url}/v1", **extra}


def build(env, tmp_path):
    return build_chains(env, ScriptedChatModel(), ScriptedSTT(), ScriptedTTS(), tmp_path / "tts")


def test_chains_follow_the_keys_present_and_end_offline(vendors, tmp_path):
    llm, stt, tts = build(env_for(vendors), tmp_path)
    assert llm.provider_names == ["groq", "openai", "offline-llm"]
    assert stt.provider_names == ["groq", "openai", "offline-stt"]
    assert isinstance(tts, CachedTTS) and tts.inner.provider_names == ["openai", "offline-tts"]

    vendors[0].fail_always(Fault(status=500))  # Groq is down: OpenAI answers
    assert served(llm) == "openai"
    assert stt.transcribe(speech()) == "what is the weather like"
    log = CallLog()
    assert list(tts.synthesize("Hello.", log=log)) and log.provider == "openai"


def test_chain_order_from_env_keeps_offline_last(vendors, tmp_path):
    llm, _, tts = build(env_for(vendors, COZY_LLM_ORDER="offline, openai,groq",
                                  COZY_TTS_ORDER="offline"), tmp_path)
    assert llm.provider_names == ["openai", "groq", "offline-llm"]
    assert tts.inner.provider_names == ["offline-tts"]


def test_no_keys_means_offline_only(tmp_path):
    llm, stt, _ = build({}, tmp_path)
    assert (llm.provider_names, stt.provider_names) == (["offline-llm"], ["offline-stt"])
    assert reply(llm) == "Offline here. "


def test_unknown_provider_in_the_order_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="COZY_STT_ORDER.*'deepgram'"):
        build({"COZY_STT_ORDER": "deepgram,groq"}, tmp_path)


def test_a_prompt_too_long_for_the_model_does_not_open_its_breaker(fast_llm):
    """Client mistakes are not provider failures: the local model must stay up for everyone."""
    from providers.base import ChatOptions
    from providers.breakers import ProviderPolicy
    from providers.errors import ProviderError
    from providers.fallback import FallbackChatModel

    chain = FallbackChatModel([fast_llm], policy=ProviderPolicy(fail_max=2, reset_timeout_s=60, retries=0))
    too_long = [{"role": "user", "content": "word " * 5000}]  # over SmolLM's 2048-token window
    for _ in range(4):
        with pytest.raises(ProviderError, match="context window"):
            list(chain.stream(too_long, ChatOptions(max_tokens=4)))
    assert chain.breaker_states() == {fast_llm.name: "closed"}
    reply = "".join(d.text for d in chain.stream([{"role": "user", "content": "Hi"}], ChatOptions(max_tokens=4)))
    assert reply
