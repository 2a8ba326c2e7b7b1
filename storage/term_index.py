"""Words worth searching by: the shared tokenizer of the memory and knowledge indexes.

Both indexes keep (item, owner, term) rows and score a query by the summed inverse
document frequency of the terms it shares with an item (BM25 without length
normalisation). Unlike DuckDB's FTS extension, rows can be added incrementally.

Chinese (and Japanese kanji) is written without spaces, so a run of those characters
gives its overlapping character pairs ("我喜欢天文" -> 我喜, 喜欢, 欢天, 天文), the
usual way to index CJK without a dictionary: a query shares pairs with a text that
holds the same words, whatever their segmentation.
"""
from __future__ import annotations

import re

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"(?P<cjk>[{_CJK}]+)|(?P<word>[a-z0-9][a-z0-9'\-]*)")
# Particles and pronouns that carry no topic on their own; a pair of two of them is skipped.
CJK_STOP_CHARS = frozenset("的了是我你他她它们吗呢吧啊在和有就都也很这那个么什怎样哪谁请")
STOPWORDS = frozenset("""
a an and are as at be been but by can could did do does doing for from had has have having he her
hers him his how i i'm if in into is it it's its just me more most my no nor not now of off on once
only or other our ours out over own same she should so some such than that the their them then there
these they this those through to too under until up very was we were what when where which while who
whom why will with would you your yours yourself tell know like also about please okay ok yes hi
hello hey really much many get got say said think want let's lets
""".split())


def _stem(word: str) -> str:
    # Plural folding only ("stars"/"star", "loves"/"love", "hobbies"/"hobby"):
    # enough for recall, without a stemmer dependency on the hot path.
    if word.endswith("'s"):
        word = word[:-2]
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("es") and word[:-2].endswith(("s", "x", "z", "ch", "sh")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")) and len(word) > 3:
        return word[:-1]
    return word


def terms_of(text: str, limit: int = 200) -> list[str]:
    """Distinct search terms of a text, in first-seen order."""
    seen: dict[str, None] = {}
    for match in _TOKEN.finditer(text.lower()):
        for term in _cjk_terms(match["cjk"]) if match["cjk"] else _word_terms(match["word"]):
            seen.setdefault(term, None)
            if len(seen) >= limit:
                return list(seen)
    return list(seen)


def _word_terms(word: str) -> list[str]:
    word = word.strip("'-")
    return [] if len(word) < 2 or word in STOPWORDS else [_stem(word)]


def _cjk_terms(run: str) -> list[str]:
    if len(run) == 1:
        return [] if run in CJK_STOP_CHARS else [run]
    pairs = (run[i:i + 2] for i in range(len(run) - 1))
    return [pair for pair in pairs if not (pair[0] in CJK_STOP_CHARS and pair[1] in CJK_STOP_CHARS)]
