"""Built-in tool results open with a sentence a voice can say; the exact details follow."""
import asyncio
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from mcp import Client, StdioServerParameters

from tools.config import PROJECT_ROOT
from tools.servers.calculator import spoken
from tools.servers.spoken import spoken_clock, spoken_day


@pytest.mark.parametrize("hour, minute, said", [(22, 14, "10:14 pm"), (9, 0, "9 am"), (0, 0, "midnight"),
                                                (12, 0, "noon"), (12, 30, "12:30 pm"), (0, 5, "12:05 am")])
def test_a_time_is_said_as_people_say_it(hour, minute, said):
    assert spoken_clock(datetime(2026, 12, 1, hour, minute)) == said


def test_sums_are_read_out_and_anything_longer_is_just_its_result():
    assert spoken("17 * 23", "391") == "17 times 23 is 391."
    assert spoken("2^10", "1024") == "2 to the power of 10 is 1024."
    assert spoken("sqrt(144) + 1", "13") == "That comes to 13."


def first_lines(server: str, tool: str, arguments: dict, tmp_path) -> list[str]:
    params = StdioServerParameters(command=sys.executable, args=["-m", f"tools.servers.{server}"], cwd=PROJECT_ROOT,
                                   env={"COZY_NOTES_DB": str(tmp_path / "notes.duckdb")})

    async def session():
        async with Client(params) as client:
            return (await client.call_tool(tool, arguments)).content[0].text

    return asyncio.run(session()).splitlines()


def test_any_mcp_client_gets_the_spoken_line_first_and_the_details_after(tmp_path):
    said, details = first_lines("clock", "current_time", {"timezone": "Asia/Tokyo"}, tmp_path)
    now = datetime.now(ZoneInfo("Asia/Tokyo"))
    assert said.startswith("It's ") and f"in Tokyo on {spoken_day(now)}." in said and ("am" in said or "pm" in said
                                                                                       or "noon" in said)
    assert "JST" in details and now.strftime("%Y") in details
    said, details = first_lines("clock", "convert_time", {"time_text": "2026-01-15T23:00", "from_timezone":
                                                          "America/New_York", "to_timezone": "Europe/Berlin"}, tmp_path)
    assert said == "11 pm in New York is 5 am on Friday in Berlin." and "05:00 (CET" in details
    assert first_lines("calculator", "calculate", {"expression": "17 * 23"}, tmp_path) == \
        ["17 times 23 is 391.", "17 * 23 = 391"]
