"""OpenAI's moderation endpoint (POST /v1/moderations) through the openai SDK."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from config import ModerationSettings
from providers.errors import translate
from providers.moderation.base import STRICT, Verdict
from providers.openai.client import OpenAIConnection, make_client

# "strict" also flags any category OpenAI scores at 0.2 or more, though below its
# own thresholds: rude or edgy text it would let through. 0.2 keeps ordinary
# chat (scores well under 0.05) clear while catching insults and crude sexual talk.
STRICT_SCORE = 0.2


@dataclass(frozen=True)
class OpenAIModerationSettings(OpenAIConnection):
    model: str = ModerationSettings.openai_model
    name: str = "openai"

    @classmethod
    def from_env(cls, env: Mapping[str, str], moderation: ModerationSettings) -> "OpenAIModerationSettings":
        # The SDK gives up when the chain does, so an abandoned call frees its thread.
        return cls(**{**cls.connection_from_env(env), "timeout_s": moderation.timeout_s},
                   connect_timeout_s=min(cls.connect_timeout_s, moderation.timeout_s),
                   model=moderation.openai_model)


class OpenAIModerator:
    def __init__(self, settings: OpenAIModerationSettings):
        self.name = settings.name
        self._settings = settings
        self._client = make_client(settings)

    def check(self, text: str, policy: str) -> Verdict:
        try:
            response = self._client.moderations.create(input=text, model=self._settings.model)
        except Exception as exc:  # the engine never sees a vendor exception
            raise translate(exc, self.name) from exc
        result = response.results[0]
        categories = result.categories.model_dump(by_alias=True)
        flagged = {name for name, on in categories.items() if on}
        if policy == STRICT:
            scores = result.category_scores.model_dump(by_alias=True)
            flagged |= {name for name, score in scores.items() if (score or 0.0) >= STRICT_SCORE}
        return Verdict(bool(result.flagged or flagged), tuple(sorted(flagged)), self.name)
