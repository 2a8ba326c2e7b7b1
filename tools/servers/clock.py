"""Clock: the current time anywhere, and a time converted between IANA zones.

Each result's first line is a sentence to say aloud ("It's 10:14 pm in Tokyo on
Tuesday, 1 December."); the exact date, zone and ISO time follow on the next line
for whoever needs them (a model, a screen, another MCP client).
"""
from __future__ import annotations

import functools
import re
from datetime import datetime, time
from typing import Annotated
from zoneinfo import ZoneInfo, available_timezones

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from tools.servers.spoken import spoken_clock, spoken_day

server = MCPServer("clock", instructions="Current time and time-zone conversion.")

Zone = Annotated[str, Field(max_length=64, description="IANA time zone, e.g. Europe/Paris or America/New_York")]


@functools.cache
def _known_zones() -> frozenset[str]:
    return frozenset(available_timezones()) | {"UTC"}


def zone(name: str) -> ZoneInfo:
    # Only names from the tz database: ZoneInfo would also try to open arbitrary paths.
    if name not in _known_zones():
        raise ToolError(f"unknown time zone '{name[:64]}'; use an IANA name such as Europe/London")
    return ZoneInfo(name)


def describe(moment: datetime) -> str:
    return f"{moment.strftime('%A %d %B %Y, %H:%M')} ({moment.tzname()}, {moment.isoformat(timespec='seconds')})"


def place(zone_name: str) -> str:
    """Where a zone is, as said after a time: "in New York" for America/New_York, "UTC" for UTC."""
    if "/" not in zone_name:
        return zone_name
    return "in " + zone_name.rsplit("/", 1)[-1].replace("_", " ")


_CLOCK_TIME = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*([ap])?\.?\s*m?\.?$", re.I)


def clock_time(text: str) -> time | None:
    """09:00, 9:00, 9 am, 9:30pm: how a time of day is written or said."""
    match = _CLOCK_TIME.match(text.strip())
    if match is None:
        return None
    hour, minute, half = int(match.group(1)), int(match.group(2) or 0), (match.group(3) or "").lower()
    if half and 1 <= hour <= 12:
        hour = hour % 12 + (12 if half == "p" else 0)
    elif half or not match.group(2):  # "13 pm", or a bare number: not a time
        return None
    return time(hour, minute) if hour < 24 and minute < 60 else None


def parse_moment(text: str, source: ZoneInfo) -> datetime:
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        of_day = clock_time(text)
        if of_day is None:
            raise ToolError("give the time as HH:MM or an ISO date-time like 2026-05-01T14:30") from None
        moment = datetime.combine(datetime.now(source).date(), of_day)
    return moment if moment.tzinfo else moment.replace(tzinfo=source)


@server.tool(description="The current date and time in a time zone (UTC if none is given).",
             structured_output=False)
def current_time(timezone: Zone = "UTC") -> str:
    moment = datetime.now(zone(timezone))
    return f"It's {spoken_clock(moment)} {place(timezone)} on {spoken_day(moment)}.\n{describe(moment)}"


@server.tool(description="Convert a time (HH:MM for today, or an ISO date-time) from one time zone to another.",
             structured_output=False)
def convert_time(time_text: Annotated[str, Field(max_length=40, description="HH:MM or ISO date-time")],
                 from_timezone: Zone, to_timezone: Zone) -> str:
    moment = parse_moment(time_text, zone(from_timezone))
    there = moment.astimezone(zone(to_timezone))
    other_day = f" on {there:%A}" if there.date() != moment.date() else ""
    spoken = (f"{spoken_clock(moment)} {place(from_timezone)} is "
              f"{spoken_clock(there)}{other_day} {place(to_timezone)}.")
    return f"{spoken[0].upper()}{spoken[1:]}\n{describe(moment)} is {describe(there)}"


if __name__ == "__main__":
    server.run()
