"""Text to the phonemes Kokoro reads, and Chinese to the pinyin espeak-ng reads.

English: espeak-ng's IPA, mapped to Kokoro's symbols the way misaki's espeak fallback does
(misaki's own English G2P needs spaCy models from a hub). Chinese: misaki's pinyin-based G2P
(pypinyin and jieba, both from PyPI, no download).
"""
from __future__ import annotations

import logging
import re
import threading

from providers.languages import is_chinese


_PUNCTUATION_RUN = re.compile(r"([,.;:!?—…]+)")

# espeak's IPA -> Kokoro's symbols (misaki.espeak.EspeakFallback, American English), longest first.
_E2M = sorted({
    "ʔˌn\u0329": "ʔn", "ʔn\u0329": "ʔn", "a^ɪ": "I", "a^ʊ": "W", "d^ʒ": "ʤ", "e^ɪ": "A", "e": "A",
    "t^ʃ": "ʧ", "ɔ^ɪ": "Y", "ə^l": "ᵊl", "ʲo": "jo", "ʲə": "jə", "ʲ": "", "ɚ": "əɹ", "r": "ɹ",
    "x": "k", "ç": "k", "ɐ": "ə", "ɬ": "l", "\u0303": "",
}.items(), key=lambda kv: -len(kv[0]))


def english_phonemes(text: str, espeak) -> str:
    """Kokoro's phonemes for English text, punctuation kept (it shapes the prosody)."""
    out = []
    for run in _PUNCTUATION_RUN.split(text):
        if not run.strip():
            continue
        if _PUNCTUATION_RUN.fullmatch(run):
            out.append(run)
            continue
        ps = espeak.ipa(run.strip(), "en-us")
        for old, new in _E2M:
            ps = ps.replace(old, new)
        ps = re.sub(r"(\S)\u0329", r"ᵊ\1", ps).replace(chr(809), "")
        ps = ps.replace("o^ʊ", "O").replace("ɜːɹ", "ɜɹ").replace("ɜː", "ɜɹ").replace("ɪə", "iə")
        ps = ps.replace("ː", "").replace("o", "ɔ").replace("ɾ", "T").replace("ʔ", "t").replace("^", "")
        out.append(" " + ps if out else ps)
    return "".join(out).strip()


class ChinesePhonemes:
    """misaki's Chinese G2P, loaded once (jieba's dictionary takes ~0.6 s)."""

    def __init__(self):
        self._g2p = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._g2p is None:
                import jieba
                from misaki.zh import ZHG2P

                jieba.setLogLevel(logging.WARNING)  # it prints its dictionary build otherwise
                jieba.initialize()
                self._g2p = ZHG2P()
        return self._g2p

    def __call__(self, text: str) -> str:
        phonemes, _ = self._load()(text)
        return phonemes


def pinyin(text: str) -> str:
    """Chinese as tone-numbered pinyin, one run of syllables per word ("fa3guo2 de shou3du1"), what
    espeak-ng's cmn-latn-pinyin voice reads best; its plain `cmn` voice reads tone digits in English."""
    import jieba
    from pypinyin import Style, lazy_pinyin

    jieba.setLogLevel(logging.WARNING)
    words = []
    for word in jieba.lcut(text):
        syllables = lazy_pinyin(word, style=Style.TONE3, neutral_tone_with_five=True)
        words.append("".join(syllables) if is_chinese(word) else word)
    return " ".join(w for w in words if w.strip())
