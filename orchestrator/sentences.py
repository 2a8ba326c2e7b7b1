"""Cut a streamed reply into clauses and sentences, as it arrives.

The first piece is cut at the first clause break once it has a few words, so a
listener hears something while the model is still writing; later pieces are
whole sentences. A first sentence with no early break is cut by words instead
(`first_piece_words`), before a word a phrase starts with ("is", "because",
"from"...), and only once two more words have come: neither piece is ever a lone
word, and no piece ends on a word that leans on the next ("the", "of"). Pieces keep the text exactly (markdown, the spaces after a
sentence), so joined they are what was pushed: the moderation gate checks them
before an API client sees them, and the voice cleans them for speech
(handlers/voice/sentences.py).
"""
from __future__ import annotations

import re

from providers.languages import CJK

_SENTENCE_END = re.compile(r"([.!?…]+[\"')\]]*)(\s+|$)")
_CLAUSE_END = re.compile(r"([,;:—–]+)(\s+)")
# Chinese marks need no space after them (there is none) and are never decimals: cut at once.
_CJK_SENTENCE_END = re.compile(r"[。！？]+[”’」』）]*\s*")
_CJK_CLAUSE_END = re.compile(r"[，；：、]+\s*")
_WHOLE_WORD = re.compile(r"\S+\s+")  # a word the model has finished (whitespace came after it)
_KEPT_FOR_NEXT = 2  # words that must follow a cut by count, so the next piece is not one word
_FEWEST_WORDS = 3  # in a first piece cut by count
# Words a phrase starts with: cutting before one sounds like a breath, not a stumble.
_JOINERS = frozenset("and but or so because which who that when where while with from in on at of for to by "
                     "as is are was were than".split())
# Words that lean on the next one: never cut right after them ("the | nectar").
_CLINGERS = frozenset("the a an my your his her its our their this these those of to very".split())


_ENDS_SENTENCE = re.compile(r"(?:[.!?…]+[\"')\]]*|[。！？]+[”’」』）]*)\s*$")


def ends_sentence(piece: str) -> bool:
    """Whether a piece closes its sentence (a first clause does not)."""
    return bool(_ENDS_SENTENCE.search(piece))


def _words(text: str) -> float:
    """Words in `text`; two Chinese characters count as one (a typical Mandarin word)."""
    chinese = len(CJK.findall(text))
    return len(CJK.sub(" ", text).split()) + chinese / 2


class SentenceSplitter:
    def __init__(self, first_clause_words: int = 4, max_chars: int = 220, first_piece_words: int | None = 7):
        self._buffer = ""
        self._first = True
        self._first_clause_words = first_clause_words
        self._first_piece_words = first_piece_words  # None: the first piece waits for a break
        self._max_chars = max_chars

    def push(self, text: str) -> list[str]:
        self._buffer += text
        pieces = []
        while (end := self._next_cut()) is not None:
            pieces.append(self._buffer[:end])
            self._buffer = self._buffer[end:]
            self._first = False
        return pieces

    def flush(self) -> list[str]:
        piece, self._buffer = self._buffer, ""
        return [piece] if piece else []

    def push_whole(self, text: str) -> list[str]:
        """A piece already cut this way (the moderation gate's), with anything buffered before it."""
        piece, self._buffer = self._buffer + text, ""
        self._first = self._first and not piece
        return [piece] if piece else []

    def _next_cut(self) -> int | None:
        match = _SENTENCE_END.search(self._buffer)
        # "3.5" or "e.g." mid-stream: a sentence end needs whitespace after it,
        # which the regex demands unless the buffer ends there (wait for more).
        ends = [match.end(2)] if match and match.end(2) > match.end(1) else []
        if (chinese := _CJK_SENTENCE_END.search(self._buffer)) is not None:
            ends.append(chinese.end())
        if ends:
            return min(ends)
        if self._first:
            for clause in sorted([*_CLAUSE_END.finditer(self._buffer), *_CJK_CLAUSE_END.finditer(self._buffer)],
                                 key=lambda c: c.start()):
                if _words(self._buffer[:clause.start()]) >= self._first_clause_words:
                    return clause.end()
            if self._first_piece_words is not None:
                cut = self._cut_by_words()
                if cut is not None:
                    return cut
        if len(self._buffer) > self._max_chars:
            cut = self._buffer.rfind(" ", 0, self._max_chars)
            return cut if cut > 0 else self._max_chars
        return None

    def _cut_by_words(self) -> int | None:
        words = [(w.start(), w.group().strip().strip("\"'(")) for w in _WHOLE_WORD.finditer(self._buffer)]
        if len(words) < max(self._first_piece_words, _FEWEST_WORDS + _KEPT_FOR_NEXT):
            return None
        latest = len(words) - _KEPT_FOR_NEXT  # the first piece is words[:cut], the next one has the rest
        for index in range(_FEWEST_WORDS, latest + 1):
            word, before = words[index][1], words[index - 1][1]
            # "Romeo and Juliet": a name goes on; a cut there would split it.
            if word.lower() in _JOINERS and before.lower() not in _CLINGERS and not (word == "and" and before[:1].isupper()):
                return words[index][0]
        return None  # no phrase starts yet: the sentence's end (or a clause) will come first
