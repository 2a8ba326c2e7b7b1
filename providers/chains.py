"""Build the LLM, STT and TTS fallback chains from the environment.

A cloud vendor joins a chain when its key is present; the order is the default
below or COZY_LLM_ORDER / COZY_STT_ORDER / COZY_TTS_ORDER (e.g. "openai,groq").
The offline provider always comes last, whatever the order says: it is what
keeps the assistant talking when the network is gone.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from providers.breakers import ProviderPolicy
from providers.fallback import (
    LLM_POLICY,
    STT_POLICY,
    TTS_POLICY,
    FallbackChatModel,
    FallbackSTT,
    FallbackTTS,
)
from providers.sdk import MissingSDKError
from providers.tts_cache import CachedTTS, RedisTtsCache, TtsCache

log = logging.getLogger(__name__)

OFFLINE = "offline"
DEFAULT_LLM_ORDER = ("groq", "openai")  # Groq first: the fastest first token
DEFAULT_STT_ORDER = ("groq", "openai")
DEFAULT_TTS_ORDER = ("elevenlabs", "openai")

# The local models are the last resort: nothing to fall back to, so let them take their time.
OFFLINE_POLICY_CHANGES = {"first_output_timeout_s": 60.0, "stall_timeout_s": 30.0, "retries": 0}


def _openai_llm(env: Mapping[str, str]) -> Any:
    from providers.openai.llm import OpenAIChatModel, OpenAIChatSettings
    return OpenAIChatModel(OpenAIChatSettings.from_env(env))


def _groq_llm(env: Mapping[str, str]) -> Any:
    from providers.groq.llm import GroqChatModel, GroqChatSettings
    return GroqChatModel(GroqChatSettings.from_env(env))


def _openai_stt(env: Mapping[str, str]) -> Any:
    from providers.openai.stt import OpenAISTT, OpenAISTTSettings
    return OpenAISTT(OpenAISTTSettings.from_env(env))


def _groq_stt(env: Mapping[str, str]) -> Any:
    from providers.groq.stt import GroqSTT, GroqSTTSettings
    return GroqSTT(GroqSTTSettings.from_env(env))


def _openai_tts(env: Mapping[str, str]) -> Any:
    from providers.openai.tts import OpenAITTS, OpenAITTSSettings
    return OpenAITTS(OpenAITTSSettings.from_env(env))


def _elevenlabs_tts(env: Mapping[str, str]) -> Any:
    from providers.elevenlabs.tts import ElevenLabsTTS, ElevenLabsTTSSettings
    return ElevenLabsTTS(ElevenLabsTTSSettings.from_env(env))


Vendor = tuple[Callable[[Mapping[str, str]], bool], Callable[[Mapping[str, str]], Any]]

# name -> (is it configured?, build it). A compatible local server (OPENAI_BASE_URL)
# needs no key for chat; audio stays with real OpenAI keys, as most local servers lack it.
LLM_VENDORS: dict[str, Vendor] = {
    "groq": (lambda env: bool(env.get("GROQ_API_KEY")), _groq_llm),
    "openai": (lambda env: bool(env.get("OPENAI_API_KEY") or env.get("OPENAI_BASE_URL")), _openai_llm),
}
STT_VENDORS: dict[str, Vendor] = {
    "groq": (lambda env: bool(env.get("GROQ_API_KEY")), _groq_stt),
    "openai": (lambda env: bool(env.get("OPENAI_API_KEY")), _openai_stt),
}
TTS_VENDORS: dict[str, Vendor] = {
    "elevenlabs": (lambda env: bool(env.get("ELEVENLABS_API_KEY")), _elevenlabs_tts),
    "openai": (lambda env: bool(env.get("OPENAI_API_KEY")), _openai_tts),
}


def chain_order(env: Mapping[str, str], variable: str, default: tuple[str, ...],
                known: Mapping[str, Vendor]) -> list[str]:
    """Vendor names in the order to try them, offline excluded (it is always last)."""
    raw = env.get(variable, "")
    names = [n.strip().lower() for n in raw.split(",") if n.strip()] or list(default)
    unknown = [n for n in names if n != OFFLINE and n not in known]
    if unknown:
        raise ValueError(f"{variable}: unknown provider(s) {unknown}; "
                         f"choose from {sorted(known) + [OFFLINE]}")
    if OFFLINE in names[:-1]:
        log.warning("%s lists %s before other providers; it always goes last", variable, OFFLINE)
    return list(dict.fromkeys(n for n in names if n != OFFLINE))


def _providers(env: Mapping[str, str], variable: str, default: tuple[str, ...],
               vendors: Mapping[str, Vendor], offline: Any) -> list[Any]:
    chosen = []
    for name in chain_order(env, variable, default, vendors):
        configured, build = vendors[name]
        if not configured(env):
            continue
        try:
            chosen.append(build(env))
        except (MissingSDKError, ValueError) as exc:
            # Start degraded rather than not at all; the log says how to fix it.
            log.warning("%s: leaving out %s: %s", variable, name, exc)
    return [*chosen, offline]


def _policies(base: ProviderPolicy, env: Mapping[str, str],
              offline: Any) -> tuple[ProviderPolicy, dict[str, ProviderPolicy]]:
    policy = base.with_env(env)
    return policy, {offline.name: replace(policy, **OFFLINE_POLICY_CHANGES)}


def build_chains(env: Mapping[str, str], offline_llm: Any, offline_stt: Any, offline_tts: Any,
                 cache_dir: Path | None, redis: Any = None) -> tuple[FallbackChatModel, FallbackSTT, Any]:
    """(llm, stt, tts). The tts is a CachedTTS over a FallbackTTS (its `.inner`) when
    cache_dir (or a Redis client, which replicas share) is given, else the FallbackTTS itself."""
    llm_policy, llm_overrides = _policies(LLM_POLICY, env, offline_llm)
    llm = FallbackChatModel(_providers(env, "COZY_LLM_ORDER", DEFAULT_LLM_ORDER, LLM_VENDORS, offline_llm),
                            llm_policy, llm_overrides)
    stt_policy, stt_overrides = _policies(STT_POLICY, env, offline_stt)
    stt = FallbackSTT(_providers(env, "COZY_STT_ORDER", DEFAULT_STT_ORDER, STT_VENDORS, offline_stt),
                      stt_policy, stt_overrides)
    tts_policy, tts_overrides = _policies(TTS_POLICY, env, offline_tts)
    tts_chain = FallbackTTS(_providers(env, "COZY_TTS_ORDER", DEFAULT_TTS_ORDER, TTS_VENDORS, offline_tts),
                            tts_policy, tts_overrides)
    log.info("provider chains: llm=%s stt=%s tts=%s", llm.provider_names, stt.provider_names,
             tts_chain.provider_names)
    cache = RedisTtsCache(redis) if redis is not None else TtsCache(Path(cache_dir)) if cache_dir is not None \
        else None
    tts = CachedTTS(tts_chain, cache) if cache is not None else tts_chain
    return llm, stt, tts


# A persona's `model:` entries: "vendor:model" for a cloud model, or a local model's name.
_MODEL_VARIABLES = {"openai": "COZY_OPENAI_LLM_MODEL", "groq": "COZY_GROQ_LLM_MODEL"}


class PersonaModels:
    """The chat model a persona's `model:` names ("smollm2-135m", "openai:gpt-4o-mini",
    "groq:llama-3.1-8b-instant,qwen2.5-1.5b"), built once per name and shared by every turn.

    A cloud entry joins only when its key is set; the chain always ends on a local model (the
    persona's, else the server's), so a pinned model falls back as the default chain does.
    `local(name)` gives a local model by name, loading it the first time."""

    def __init__(self, env: Mapping[str, str], default: Any, local: Callable[[str], Any]):
        self._env = env
        self.default = default
        self._local = local
        self._chains: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, spec: str | None) -> Any:
        if not spec:
            return self.default
        with self._lock:
            if spec not in self._chains:
                try:
                    self._chains[spec] = self._build(spec)
                except Exception as exc:  # the persona still answers, with the server's model
                    log.warning("model '%s' is unavailable (%s); using the default chain", spec, exc)
                    self._chains[spec] = self.default
            return self._chains[spec]

    def _build(self, spec: str) -> Any:
        providers, local = [], None
        for entry in (e.strip() for e in spec.split(",") if e.strip()):
            vendor, _, model = entry.partition(":")
            if model:
                configured, build = LLM_VENDORS[vendor]
                if configured(self._env):
                    providers.append(build({**self._env, _MODEL_VARIABLES[vendor]: model}))
            elif local is None:
                local = self._local(entry)
        offline = local or self._local(None)
        policy, overrides = _policies(LLM_POLICY, self._env, offline)
        return FallbackChatModel([*providers, offline], policy, overrides, name=f"llm:{spec}")
