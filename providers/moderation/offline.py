"""The offline moderator: no key, no download, a fraction of a millisecond.

Profanity (and the slurs in the same lists) comes from glin-profanity, a
maintained word-list package that also sees through leetspeak, separators and
look-alike letters; it is flagged only under "strict". The severe categories a
word list cannot express (a threat, self-harm intent, sexual content naming a
minor) are the few documented patterns in severe_patterns.yaml, flagged under
every policy.
"""
from __future__ import annotations

import re
from pathlib import Path

import yaml

from providers.moderation.base import STRICT, Verdict
from providers.sdk import import_sdk

GLIN_PIP = "glin-profanity==4.1.0"
PATTERNS_PATH = Path(__file__).with_name("severe_patterns.yaml")
PROFANITY = "profanity"
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


def load_patterns(path: Path = PATTERNS_PATH) -> dict[str, tuple[re.Pattern[str], ...]]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise ValueError(f"{path.name}: expected a mapping of category -> list of patterns")
    try:
        return {category: tuple(re.compile(p.strip(), re.IGNORECASE) for p in patterns)
                for category, patterns in data.items()}
    except re.error as exc:
        raise ValueError(f"{path.name}: a pattern does not compile: {exc}") from exc


class OfflineModerator:
    name = "offline"

    def __init__(self, patterns_path: Path = PATTERNS_PATH):
        glin = import_sdk("glin_profanity", GLIN_PIP)
        self._normalize = glin.normalize_unicode
        # English lists (our personas speak English; more languages mean more false
        # positives on ordinary English words), with leetspeak and obfuscation folding.
        self._profanity = glin.Filter({"languages": ["english"], "detect_leetspeak": True})
        self._patterns = load_patterns(patterns_path)

    def check(self, text: str, policy: str) -> Verdict:
        folded = " ".join(self._normalize(text).translate(_APOSTROPHES).split())
        categories = [category for category, patterns in self._patterns.items()
                      if any(p.search(folded) for p in patterns)]
        if policy == STRICT and self._profanity.is_profane(text):
            categories.append(PROFANITY)
        return Verdict(bool(categories), tuple(categories), self.name)
