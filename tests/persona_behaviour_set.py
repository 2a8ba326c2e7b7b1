"""What each shipped persona must do, checked on the default offline model over a fixed
prompt set (tests/test_persona_behaviour.py holds the floor; bench/persona_behaviour.py
prints every reply and the pass rate per persona)."""
from __future__ import annotations

import re

from providers.languages import CJK

PROMPTS = [
    "Why is the sky blue?",
    "Tell me something about the moon.",
    "I had a long day at work.",
    "How do plants make food?",
    "What should I cook tonight?",
    "Can you tell me about dragons?",
]
PROMPTS_ZH = ["天空为什么是蓝色的？", "给我讲讲月亮。", "我今天工作很累。", "植物怎么制造食物？", "今晚我该做什么菜？",
              "你能给我讲讲龙吗？"]

_SENTENCE_END = re.compile(r"[.!?。！？]+[\"')”’]*(?=\s|$)")


def sentences(reply: str) -> int:
    return len(_SENTENCE_END.findall(reply.strip())) or (1 if reply.strip() else 0)


def one_sentence(reply: str) -> bool:
    return sentences(reply) == 1


def ends_with_question(reply: str) -> bool:
    return reply.strip().rstrip("\"')”’ ").endswith(("?", "？"))


def story_with_a_choice(reply: str) -> bool:
    """A few sentences of story, ending on a question that offers at least two ways on."""
    last = re.split(r"(?<=[.!])\s+", reply.strip())[-1]
    return sentences(reply) >= 3 and ends_with_question(reply) and bool(re.search(r"\bor\b", last, re.I))


def warm_and_short(reply: str) -> bool:
    return 1 <= sentences(reply) <= 3 and not re.search(r"^\s*([-*•]|\d+\.)\s", reply, re.M)


def in_chinese(reply: str) -> bool:
    letters = [c for c in reply if c.isalpha()]
    return bool(letters) and sum(bool(CJK.match(c)) for c in letters) / len(letters) > 0.8


# persona -> (what it must do, its check, the prompts it is asked)
SIGNATURES = {
    "concise": ("one sentence", one_sentence, PROMPTS),
    "tutor": ("ends with a guiding question", ends_with_question, PROMPTS),
    "storyteller": ("a story that ends offering a choice", story_with_a_choice, PROMPTS),
    "companion": ("one to three warm sentences, no lists", warm_and_short, PROMPTS),
    "xiaobei": ("answers in Chinese", in_chinese, PROMPTS_ZH),
}
