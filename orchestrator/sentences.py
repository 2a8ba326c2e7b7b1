"""Cut a streamed reply into clauses and sentences, as it arrives.

The first piece is cut at the first clause break once it has a few words, so a
listener hears something while the model is still writing; later pieces are
whole sentences. A first sentence with no early break is cut by words instead
(`first_piece_words`), before a word a phrase starts with ("is", "because",
"from"...), as soon as that word begins: "The capital of France | is Paris." starts
speaking two tokens sooner (~0.15 s of the 1.5B on two cores) than the whole
sentence would. No first piece is under three words, and no piece ends on a word
that leans on the next ("the", "of"). Pieces keep the text exactly (markdown, the
spaces after a sentence), so joined they are what was pushed: the moderation gate checks them
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
_KEPT_FOR_NEXT = 1  # the phrase's first word must have begun before the cut before it
_FEWEST_WORDS = 3  # in a first piece cut by count
# The rest of a first sentence cut early may be cut once more, when this long: a short
# first piece plays for about a second, and a long rest ("the sky is usually a light blue
# or sky blue color.") takes the model longer than that to write, a gap a listener hears.
_CONTINUED_WORDS = 6
# Words a phrase starts with: cutting before one sounds like a breath, not a stumble.
_JOINERS = frozenset("and but or so because which who that when where while with from in on at for to by "
                     "as is are was were than".split())  # not "of": "the capital | of France" is a stumble
# Words that lean on the next one: never cut right after them ("the | nectar").
_CLINGERS = frozenset("the a an my your his her its our their this these those of to very "
                      "i you we they he she it there".split())  # and a subject from its verb ("you | are")


_ENDS_SENTENCE = re.compile(r"(?:[.!?…]+[\"')\]]*|[。！？]+[”’」』）]*)\s*$")


def ends_sentence(piece: str) -> bool:
    """Whether a piece closes its sentence (a first clause does not)."""
    return bool(_ENDS_SENTENCE.search(piece))


def _words(text: str) -> float:
    """Words in `text`; two Chinese characters count as one (a typical Mandarin word)."""
    chinese = len(CJK.findall(text))
    return len(CJK.sub(" ", text).split()) + chinese / 2


class SentenceSplitter:
    def __init__(self, first_clause_words: int = 4, max_chars: int = 220, first_piece_words: int | None = 4):
        self._buffer = ""
        self._first = True
        self._continuing = False  # the first piece ended mid-sentence: the rest may be cut once
        self._first_clause_words = first_clause_words
        self._first_piece_words = first_piece_words  # None: the first piece waits for a break
        self._max_chars = max_chars

    def push(self, text: str) -> list[str]:
        self._buffer += text
        pieces = []
        while (end := self._next_cut()) is not None:
            pieces.append(self._buffer[:end])
            self._buffer = self._buffer[end:]
            self._cut(pieces[-1])
        return pieces

    def flush(self) -> list[str]:
        piece, self._buffer = self._buffer, ""
        return [piece] if piece else []

    def push_whole(self, text: str) -> list[str]:
        """A piece already cut this way (the moderation gate's), with anything buffered before it."""
        piece, self._buffer = self._buffer + text, ""
        if piece:
            self._cut(piece)
        return [piece] if piece else []

    def _cut(self, piece: str) -> None:
        """`piece` went out: the next is not the first, and may go on its sentence."""
        self._continuing = self._first and not ends_sentence(piece)
        self._first = False

    def _next_cut(self) -> int | None:
        match = _SENTENCE_END.search(self._buffer)
        # "3.5" or "e.g." mid-stream: a sentence end needs whitespace after it,
        # which the regex demands unless the buffer ends there (wait for more).
        ends = [match.end(2)] if match and match.end(2) > match.end(1) else []
        if (chinese := _CJK_SENTENCE_END.search(self._buffer)) is not None:
            ends.append(chinese.end())
        if ends:
            return min(ends)
        if self._first or self._continuing:
            fewest = self._first_clause_words if self._first else _CONTINUED_WORDS
            for clause in sorted([*_CLAUSE_END.finditer(self._buffer), *_CJK_CLAUSE_END.finditer(self._buffer)],
                                 key=lambda c: c.start()):
                if _words(self._buffer[:clause.start()]) >= fewest:
                    return clause.end()
            if self._first_piece_words is not None:
                cut = self._cut_by_words(self._first_piece_words if self._first else _CONTINUED_WORDS)
                if cut is not None:
                    return cut
        if len(self._buffer) > self._max_chars:
            cut = self._buffer.rfind(" ", 0, self._max_chars)
            return cut if cut > 0 else self._max_chars
        return None

    def _cut_by_words(self, fewest: int) -> int | None:
        found = list(_WHOLE_WORD.finditer(self._buffer))
        words = [(w.start(), w.group().strip().strip("\"'(")) for w in found]
        # The word being written counts too: the cut goes before it, so it need not be whole
        # ("is" may yet be "isn't"; the cut is at a word's start either way).
        tail_at = found[-1].end() if found else 0
        tail = self._buffer[tail_at:]
        if tail.strip():
            words.append((tail_at + len(tail) - len(tail.lstrip()), tail.strip().strip("\"'(")))
        if len(words) < max(fewest, _FEWEST_WORDS + _KEPT_FOR_NEXT):
            return None
        latest = len(words) - _KEPT_FOR_NEXT  # the first piece is words[:cut], the next one has the rest
        for index in range(_FEWEST_WORDS, latest + 1):
            word, before = words[index][1], words[index - 1][1]
            # "Romeo and Juliet": a name goes on; a cut there would split it.
            if word.lower() in _JOINERS and before.lower() not in _CLINGERS and not (word == "and" and before[:1].isupper()):
                return words[index][0]
        return None  # no phrase starts yet: the sentence's end (or a clause) will come first
