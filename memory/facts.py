"""Durable facts in what a user says, found offline by patterns.

No model call: the language model is the scarcest thing on a small machine, and
these run off the hot path for every turn. Each fact has a memory category
(checked against the persona's memory policy) and, for some, a profile key.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_END = r"(?=\s+(?:and|but|because|so|though)\b|[.,!?;]|$)"
_PHRASE = r"([^.,!?;]{2,60}?)"


@dataclass(frozen=True)
class Fact:
    category: str  # name | preferences | facts | feelings
    memory: str  # how the memory reads, about the user in the third person
    profile_key: str | None = None
    profile_value: str | None = None


def _name(value: str) -> str:
    return " ".join(part.capitalize() for part in value.split())


def _full_name(match: re.Match) -> str:
    # A second word counts as a surname only when spoken capitalised ("Ada Lovelace",
    # not "Ada and ..."); the pattern itself is case-blind.
    second = (match[2] or "").strip()
    if second and second[0].isupper() and second.lower() not in {"and", "but", "i", "so"}:
        return _name(f"{match[1]} {second}")
    return _name(match[1])


def _third_person(text: str) -> str:
    text = re.sub(r"\bmy\b", "their", text, flags=re.I)
    text = re.sub(r"\bI(?:'m| am)\b", "they are", text)
    text = re.sub(r"\bI\b", "they", text)
    return text[0].upper() + text[1:]


_RULES: list[tuple[re.Pattern, callable]] = [
    (re.compile(r"\b(?:my name is|my name's|call me|i'm called|i am called)\s+([a-z][a-z'\-]+)(\s+[a-z][a-z'\-]+)?", re.I),
     lambda m: Fact("name", f"Their name is {_full_name(m)}", "name", _full_name(m))),
    (re.compile(r"\bi\s+(?:really\s+|absolutely\s+)?(love|like|enjoy|adore|prefer)\s+" + _PHRASE + _END, re.I),
     lambda m: Fact("preferences", f"{m[1].lower().capitalize()}s {m[2].strip()}", "likes", m[2].strip())),
    (re.compile(r"\bi\s+(?:really\s+)?(hate|dislike|can't stand|cannot stand)\s+" + _PHRASE + _END, re.I),
     lambda m: Fact("preferences", f"Dislikes {m[2].strip()}", "dislikes", m[2].strip())),
    (re.compile(r"\bmy\s+favou?rite\s+([a-z ]{2,30}?)\s+is\s+" + _PHRASE + _END, re.I),
     lambda m: Fact("preferences", f"Their favourite {m[1].strip()} is {m[2].strip()}",
                    f"favourite {m[1].strip().lower()}", m[2].strip())),
    (re.compile(r"\bi\s+live\s+in\s+" + _PHRASE + _END, re.I),
     lambda m: Fact("facts", f"Lives in {m[1].strip()}", "location", m[1].strip())),
    (re.compile(r"\bi(?:'m| am)\s+from\s+" + _PHRASE + _END, re.I),
     lambda m: Fact("facts", f"Is from {m[1].strip()}", "hometown", m[1].strip())),
    (re.compile(r"\bi\s+work\s+(as|at|in|for)\s+" + _PHRASE + _END, re.I),
     lambda m: Fact("facts", f"Works {m[1].lower()} {m[2].strip()}", "work", f"{m[1].lower()} {m[2].strip()}")),
    (re.compile(r"\bi(?:'m| am)\s+(\d{1,3})\s+years?\s+old", re.I),
     lambda m: Fact("facts", f"Is {m[1]} years old", "age", m[1])),
    (re.compile(r"\bi\s+speak\s+([a-z]+(?:\s+and\s+[a-z]+)?)", re.I),
     lambda m: Fact("facts", f"Speaks {_name(m[1]).replace(' And ', ' and ')}", "languages",
                    _name(m[1]).replace(" And ", " and "))),
    (re.compile(r"\bi\s+have\s+((?:a|an|two|three|four|\d+)\s+[^.,!?;]{2,50}?)" + _END, re.I),
     lambda m: Fact("facts", f"Has {m[1].strip()}")),
    (re.compile(r"\bremember\s+(?:that\s+)?([^.!?]{4,120})", re.I),
     lambda m: Fact("facts", _third_person(m[1].strip()))),
    (re.compile(r"\bi(?:'m| am)\s+feeling\s+" + _PHRASE + _END + r"|\bi\s+feel\s+" + _PHRASE + _END, re.I),
     lambda m: Fact("feelings", f"Said they feel {(m[1] or m[2]).strip()}")),
]


# Chinese: no spaces between words, so a phrase ends at punctuation, a space or the next
# clause's "我"; the memories read in Chinese, as the user said them.
_ZH_END = r"(?=[，。！？；、,.!?;\s]|我|但|因为|所以|$)"
_ZH_PHRASE = r"([^，。！？；、,.!?;\s]{1,30}?)"
_ZH_QUESTION = re.compile(r"什么|谁|啥|哪|吗|呢|几|多少")


def _unless_question(build):
    """"我叫什么名字" asks; it does not tell."""
    return lambda m: None if _ZH_QUESTION.search(m[1]) else build(m)


_RULES_ZH: list[tuple[re.Pattern, callable]] = [
    (re.compile(r"(?:我叫|我的名字是|我的名字叫|我名叫|叫我)([\u4e00-\u9fff]{1,4}?|[A-Za-z][A-Za-z'\-]{1,30})" + _ZH_END),
     _unless_question(lambda m: Fact("name", f"名字是{m[1]}", "name", m[1]))),
    (re.compile(r"我(?:很|非常|特别|最|真的)?(?:喜欢|爱|热爱)" + _ZH_PHRASE + _ZH_END),
     _unless_question(lambda m: Fact("preferences", f"喜欢{m[1]}", "likes", m[1]))),
    (re.compile(r"我(?:不喜欢|讨厌|受不了)" + _ZH_PHRASE + _ZH_END),
     _unless_question(lambda m: Fact("preferences", f"不喜欢{m[1]}", "dislikes", m[1]))),
    (re.compile(r"我(?:住在|生活在)" + _ZH_PHRASE + _ZH_END),
     _unless_question(lambda m: Fact("facts", f"住在{m[1]}", "location", m[1]))),
    (re.compile(r"我(?:来自|是从)" + _ZH_PHRASE + r"(?:来的)?" + _ZH_END),
     _unless_question(lambda m: Fact("facts", f"来自{m[1]}", "hometown", m[1]))),
    (re.compile(r"我(?:今年)?(\d{1,3})岁"),
     lambda m: Fact("facts", f"今年{m[1]}岁", "age", m[1])),
    (re.compile(r"我(?:是|当)(?:一名|一个)?" + r"([^，。！？；、,.!?;\s]{1,12}?)" + r"(?=[，。！？；、,.!?;\s]|$)"),
     _unless_question(lambda m: Fact("facts", f"是{m[1]}", "work", m[1]) if m[1].endswith(("师", "生", "员", "家", "者")) else None)),
]


def extract_facts(text: str) -> list[Fact]:
    facts: list[Fact] = []
    seen: set[str] = set()
    for pattern, build in (*_RULES, *_RULES_ZH):
        for match in pattern.finditer(text):
            fact = build(match)
            if fact is not None and fact.memory.lower() not in seen:
                seen.add(fact.memory.lower())
                facts.append(fact)
    return facts
