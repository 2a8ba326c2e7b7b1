"""Times and dates as a voice says them, for the first line of a built-in tool's result."""
from __future__ import annotations

from datetime import datetime


def spoken_clock(moment: datetime) -> str:
    """10:14 pm, 9 am, midnight, noon: as a person says it."""
    if moment.minute == 0 and moment.hour in (0, 12):
        return "midnight" if moment.hour == 0 else "noon"
    hour = moment.hour % 12 or 12
    minutes = f":{moment.minute:02d}" if moment.minute else ""
    return f"{hour}{minutes} {'am' if moment.hour < 12 else 'pm'}"


def spoken_day(moment: datetime) -> str:
    """Tuesday, 1 December."""
    return f"{moment:%A}, {moment.day} {moment:%B}"


def sentence(text: str) -> str:
    """One line ending in a full stop, so a voice pauses where the text ends."""
    text = " ".join(text.split())
    return text if text[-1:] in ".!?" else f"{text}."
