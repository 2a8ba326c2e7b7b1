"""The languages the offline voices speak, and telling Chinese text from the rest."""
from __future__ import annotations

import re

# ISO 639-1 code -> the name OpenAI's verbose transcription reports.
SPOKEN_LANGUAGES = {"en": "english", "zh": "chinese"}
CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def iso_language(language: str | None) -> str | None:
    """BCP-47 ("zh-CN", "en-US") to the ISO 639-1 code speech recognizers take ("zh", "en");
    None or "auto": let the recognizer detect it."""
    if not language or language.lower() == "auto":
        return None
    return language.split("-")[0].lower()


def is_chinese(text: str) -> bool:
    return bool(CJK.search(text))
