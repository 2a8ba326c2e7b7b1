"""The moderation chain: OpenAI's endpoint when a key is set, the offline list always last.

The same FallbackAdapter as the other modalities, so a failing or slow vendor is
skipped by its breaker and the offline moderator answers in its place. A verdict
names the provider that gave it: per-call facts travel with the call.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from config import ModerationSettings
from providers.breakers import ProviderPolicy
from providers.call_log import CallLog
from providers.fallback import FallbackAdapter
from providers.moderation.base import Verdict
from providers.sdk import MissingSDKError

log = logging.getLogger(__name__)


def moderation_policy(settings: ModerationSettings) -> ProviderPolicy:
    # One blocking call per text; a retry would double the wait in front of every turn.
    return ProviderPolicy(first_output_timeout_s=settings.timeout_s, stall_timeout_s=None, retries=0)


# The offline moderator takes well under a millisecond; this only bounds a bug.
OFFLINE_POLICY_CHANGES = {"first_output_timeout_s": 10.0}


class FallbackModerator(FallbackAdapter[Verdict]):
    def __init__(self, providers: Sequence[Any], policy: ProviderPolicy,
                 policies: Mapping[str, ProviderPolicy] | None = None, name: str = "moderation"):
        super().__init__(providers, policy, policies, name)

    def check(self, text: str, policy: str, log: CallLog | None = None) -> Verdict:
        def open_stream(provider: Any) -> tuple[Verdict]:
            return (replace(provider.check(text, policy), moderator=provider.name),)

        return list(self._run(open_stream, lambda verdict: True, log=log))[-1]


def build_moderation(settings: ModerationSettings, env: Mapping[str, str],
                     offline: Any = None) -> FallbackModerator:
    """OpenAI first when OPENAI_API_KEY is set (a keyless local server has no
    moderation endpoint), then `offline` (the word lists by default)."""
    if offline is None:
        from providers.moderation.offline import OfflineModerator
        offline = OfflineModerator()
    chosen: list[Any] = []
    if env.get("OPENAI_API_KEY"):
        try:
            from providers.moderation.openai import OpenAIModerationSettings, OpenAIModerator
            chosen.append(OpenAIModerator(OpenAIModerationSettings.from_env(env, settings)))
        except (MissingSDKError, ValueError) as exc:
            log.warning("moderation: leaving out openai: %s", exc)
    policy = moderation_policy(settings).with_env(env)
    chain = FallbackModerator([*chosen, offline], policy,
                              {offline.name: replace(policy, **OFFLINE_POLICY_CHANGES)})
    log.info("moderation chain: %s", chain.provider_names)
    return chain
