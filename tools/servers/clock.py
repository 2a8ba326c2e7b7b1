"""Clock: the current time anywhere, and a time converted between IANA zones."""
from __future__ import annotations

import functools
from datetime import datetime, time
from typing import Annotated
from zoneinfo import ZoneInfo, available_timezones

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

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


def parse_moment(text: str, source: ZoneInfo) -> datetime:
    text = text.strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = datetime.combine(datetime.now(source).date(), time.fromisoformat(text))
        except ValueError as exc:
            raise ToolError("give the time as HH:MM or an ISO date-time like 2026-05-01T14:30") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=source)


@server.tool(description="The current date and time in a time zone (UTC if none is given).",
             structured_output=False)
def current_time(timezone: Zone = "UTC") -> str:
    return describe(datetime.now(zone(timezone)))


@server.tool(description="Convert a time (HH:MM for today, or an ISO date-time) from one time zone to another.",
             structured_output=False)
def convert_time(time_text: Annotated[str, Field(max_length=40, description="HH:MM or ISO date-time")],
                 from_timezone: Zone, to_timezone: Zone) -> str:
    moment = parse_moment(time_text, zone(from_timezone))
    return f"{describe(moment)} is {describe(moment.astimezone(zone(to_timezone)))}"


if __name__ == "__main__":
    server.run()
