"""Cut a streamed reply into clauses and sentences, as it arrives.

The first piece is cut at the first clause break once it has a few words, so a
listener hears something while the model is still writing; later pieces are
whole sentences. Pieces keep the text exactly (markdown, the spaces after a
sentence), so joined they are what was pushed: the moderation gate checks them
before an API client sees them, and the voice cleans them for speech
(handlers/voice/sentences.py).
"""
from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"([.!?…]+[\"')\]]*)(\s+|$)")
_CLAUSE_END = re.compile(r"([,;:—–]+)(\s+)")


class SentenceSplitter:
    def __init__(self, first_clause_words: int = 4, max_chars: int = 220):
        self._buffer = ""
        self._first = True
        self._first_clause_words = first_clause_words
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

    def _next_cut(self) -> int | None:
        match = _SENTENCE_END.search(self._buffer)
        # "3.5" or "e.g." mid-stream: a sentence end needs whitespace after it,
        # which the regex demands unless the buffer ends there (wait for more).
        if match and match.end(2) > match.end(1):
            return match.end(2)
        if self._first:
            for clause in _CLAUSE_END.finditer(self._buffer):
                if len(self._buffer[:clause.end(1)].split()) >= self._first_clause_words:
                    return clause.end(2)
        if len(self._buffer) > self._max_chars:
            cut = self._buffer.rfind(" ", 0, self._max_chars)
            return cut if cut > 0 else self._max_chars
        return None
