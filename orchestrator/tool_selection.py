"""Offer a request only the tools it looks like it needs.

Tool schemas are long (about a thousand prompt tokens for the companion's seven
tools), and on a small CPU every prompt token costs prefill time: offering them to
"what's the capital of France?" would add seconds to a spoken reply, and all seven
to "what time is it?" several more. A tool is offered when the request shares a
word with its name and description, or with the trigger words of its kind
(arithmetic wording brings the calculator).
"""
from __future__ import annotations

import re
from functools import lru_cache

from storage.term_index import terms_of

_ARITHMETIC = re.compile(r"\d\s*([-+*/x×÷^%]|plus|minus|times|divided|multiplied|percent|squared)\s*\d?|"
                         r"square root|to the power|how much is", re.I)
# "day" alone is everywhere ("on a clear day", "have a nice day"): asked about, it is the clock's.
_CALENDAR = re.compile(r"\b(what|which)('s| is)?\s+(the\s+)?(day|date|year|month)\b|"
                       r"\bday of the (week|month|year)\b", re.I)
# Words people use for a kind of tool that its own description may not contain,
# keyed by a fragment of the tool's name.
_TRIGGERS = {
    "time": "clock o'clock hour date timezone weekday today tonight tomorrow yesterday",
    "remind": "remind remember schedule appointment alarm",
    "note": "remember write jot",
    "calc": "calculate compute math sum total",
    "url": "website url link page web fetch",
    "knowledge": "document notes file look search",
}


@lru_cache(maxsize=256)
def _vocabulary(name: str, description: str) -> frozenset[str]:
    extra = " ".join(words for fragment, words in _TRIGGERS.items() if fragment in name)
    return frozenset(terms_of(f"{name.replace('_', ' ')} {description} {extra}", limit=500))


def _matches(word: str, vocabulary: frozenset[str]) -> bool:
    if word in vocabulary:
        return True
    # "calculating"/"calculate", "reminders"/"remind": a shared five-letter start.
    return len(word) >= 5 and any(len(v) >= 5 and v[:5] == word[:5] for v in vocabulary)


def relevant_tools(text: str, schemas: list[dict]) -> list[dict]:
    """The schemas this request looks like it needs (all of them for an empty text:
    an API client returning tool results continues a tool conversation)."""
    if not text:
        return list(schemas)
    arithmetic = bool(_ARITHMETIC.search(text))
    calendar = bool(_CALENDAR.search(text))
    # "12 times 7" is about the calculator, not the clock.
    words = terms_of(_ARITHMETIC.sub(" ", text), limit=60)
    chosen = []
    for schema in schemas:
        function = schema["function"]
        if (arithmetic and "calc" in function["name"]) or (calendar and "time" in function["name"]):
            chosen.append(schema)
            continue
        vocabulary = _vocabulary(function["name"], function.get("description") or "")
        if any(_matches(word, vocabulary) for word in words):
            chosen.append(schema)
    return chosen
