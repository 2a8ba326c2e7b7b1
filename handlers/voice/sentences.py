"""Cut a streamed reply into pieces worth speaking.

The cutting is orchestrator/sentences.py's (the moderation gate cuts the same
way, so a checked sentence arrives here whole); this adds what a voice needs:
no markdown read aloud as symbols, no empty pieces.
"""
from __future__ import annotations

import re

from orchestrator.sentences import SentenceSplitter

FIRST_PIECE_WORDS = 4  # a first sentence with no early break is cut once this many words are in

_MARKDOWN = re.compile(r"[*_`#>]+|\[(.*?)\]\((.*?)\)")


def clean_for_speech(text: str) -> str:
    """Drop markdown marks a voice would read aloud as symbols."""
    text = _MARKDOWN.sub(lambda m: m.group(1) or "", text)
    return re.sub(r"\s+", " ", text).strip()


class SentenceChunker:
    def __init__(self, first_clause_words: int = 4, max_chars: int = 220,
                 first_piece_words: int | None = FIRST_PIECE_WORDS):
        self._splitter = SentenceSplitter(first_clause_words, max_chars, first_piece_words)

    def push(self, text: str) -> list[str]:
        return _spoken(self._splitter.push(text))

    def flush(self) -> list[str]:
        return _spoken(self._splitter.flush())

    def push_whole(self, piece: str) -> list[str]:
        """A piece already cut the same way (the moderation gate's): spoken as it is."""
        return _spoken(self._splitter.push_whole(piece))


def _spoken(pieces: list[str]) -> list[str]:
    return [spoken for piece in pieces if (spoken := clean_for_speech(piece))]
