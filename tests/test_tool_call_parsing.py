"""Tool calls in a local model's text: every form the shipped models write, split anywhere."""
import json

import pytest

from providers.offline.tool_calls import ToolCallParser

OFFERED = {"current_time", "calculate", "add_note"}


def parse(text: str, chunk: int, offered: set[str] = OFFERED) -> tuple[str, list[tuple[str, dict]]]:
    parser = ToolCallParser(offered)
    shown = "".join(parser.feed(text[i:i + chunk]) for i in range(0, len(text), chunk))
    rest, calls = parser.finish()
    return shown + rest, [(c.name, json.loads(c.arguments)) for c in calls]


TOKYO = ("current_time", {"timezone": "Asia/Tokyo"})
SUM = ("calculate", {"expression": "17 * 23"})


@pytest.mark.parametrize("reply, said, calls", [
    ('<tool_call>\n{"name": "current_time", "arguments": {"timezone": "Asia/Tokyo"}}\n</tool_call>', "", [TOKYO]),
    ('<tools>\n{"name": "current_time", "arguments": {"timezone": "Asia/Tokyo"}}\n</tools>', "", [TOKYO]),
    ('```json\n{"name": "calculate", "parameters": {"expression": "17 * 23"}}\n```', "", [SUM]),
    ('{"name": "calculate", "arguments": {"expression": "17 * 23"}}', "", [SUM]),
    ('[{"name": "calculate", "arguments": {"expression": "17 * 23"}}, '
     '{"name": "current_time", "arguments": {"timezone": "Asia/Tokyo"}}]', "", [SUM, TOKYO]),
    ('Let me check.\n```json\n{"name": "current_time", "arguments": {"timezone": "Asia/Tokyo"}}\n```',
     "Let me check.", [TOKYO]),
    ('<tool_call>{"name": "calculate", "arguments": "{\\"expression\\": \\"17 * 23\\"}"}</tool_call>\n'
     '<tool_call>{"function": {"name": "current_time", "arguments": {"timezone": "Asia/Tokyo"}}}</tool_call>',
     "", [SUM, TOKYO]),
    # What a model imagines after its call is not said: the tool's real result will be.
    ('<tool_call>{"name": "calculate", "arguments": {"expression": "17 * 23"}}</tool_call>\n'
     '<tool_response>391</tool_response> It is 391.', "", [SUM]),
    # The tool's definition echoed back from the prompt still says which tool it wants.
    ('<tools>{"type": "function", "function": {"name": "current_time", "description": "Time.", '
     '"parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}}}}</tools>',
     "", [("current_time", {})]),
])
@pytest.mark.parametrize("chunk", [1, 4, 1000])
def test_every_form_of_call_becomes_a_call_and_none_of_its_markup_is_said(reply, said, calls, chunk):
    assert parse(reply, chunk) == (said, calls)


@pytest.mark.parametrize("reply", [
    '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>',
    '```json\n{"name": "get_weather", "arguments": {}}\n```',
    '{"name": "get_weather", "parameters": {"city": "Paris"}}',
    '<tool_call>\n{"name": "calculate", "arguments": {"expression": "1',  # cut off by the token limit
    '<tool_response>{"time": "10:00"}</tool_response>',
])
@pytest.mark.parametrize("chunk", [1, 1000])
def test_a_call_to_no_offered_tool_is_neither_run_nor_said(reply, chunk):
    parser = ToolCallParser(OFFERED)
    shown = "".join(parser.feed(reply[i:i + chunk]) for i in range(0, len(reply), chunk))
    rest, calls = parser.finish()
    assert (shown + rest, calls) == ("", [])
    assert parser.dropped


@pytest.mark.parametrize("reply", [
    "It's 10:14 pm, and 3 < 5 [laughs] <3",
    'The answer is {"result": 4}, as JSON.',
    '{"name": "Ada", "age": 36}',
    "```python\nprint({1: 2})\n```",
    "Use the `current_time` app.",
])
@pytest.mark.parametrize("chunk", [1, 3, 1000])
def test_prose_and_code_that_are_no_call_pass_unchanged(reply, chunk):
    assert parse(reply, chunk) == (reply, [])


def test_prose_streams_while_a_possible_call_is_held_back():
    parser = ToolCallParser(OFFERED)
    assert parser.feed("It's ten ") == "It's ten"  # the space waits: a call may follow it
    assert parser.feed("o'clock.") == " o'clock."
    assert parser.feed(" <tool") == ""
    assert parser.feed('_call>{"name": "calculate", "arguments": {"expression": "1+1"}}</tool_call>') == ""
    assert [c.name for c in parser.finish()[1]] == ["calculate"]


def test_markup_is_dropped_even_when_no_tool_is_offered():
    assert parse('<tool_call>{"name": "calculate", "arguments": {}}</tool_call>', 1, set()) == ("", [])
