"""The moderation interface: one text in, a verdict out, under a named policy.

Policies, from the persona card (`moderation:`):
- "standard": flag what no persona should hear or say (threats, self-harm intent,
  sexual content involving minors, and whatever the vendor itself flags);
- "strict": also flag profanity and milder harassment;
- "off": nothing is checked (refused on a public server: personas/cards.py).
A moderator is only ever asked about "standard" and "strict".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

STRICT, STANDARD, OFF = "strict", "standard", "off"
POLICIES = (STRICT, STANDARD, OFF)


@dataclass(frozen=True)
class Verdict:
    flagged: bool
    categories: tuple[str, ...] = ()  # OpenAI's category names, plus "profanity" offline
    moderator: str = ""  # who decided: a chain stamps the provider that served


CLEAN = Verdict(False)


@runtime_checkable
class Moderator(Protocol):
    name: str

    def check(self, text: str, policy: str) -> Verdict: ...
