"""Which tools a request is offered (long schemas cost seconds of prefill on a CPU)."""
import pytest

from orchestrator.tool_selection import relevant_tools

SCHEMAS = [{"function": {"name": name, "description": description}} for name, description in [
    ("current_time", "The current date and time in a time zone"),
    ("convert_time", "Convert a time from one time zone to another"),
    ("calculate", "Evaluate an arithmetic expression"),
    ("add_reminder", "Set a reminder for the user"), ("delete_note", "Delete one of the user's notes")]]


def offered(text: str) -> set[str]:
    return {s["function"]["name"] for s in relevant_tools(text, SCHEMAS)}


@pytest.mark.parametrize("text, tools", [
    ("What time is it in Tokyo?", {"current_time", "convert_time"}),
    ("What is 12 times 7?", {"calculate"}),
    ("how much is 20 percent of 80", {"calculate"}),
    ("remind me to call mum", {"add_reminder"}),
    ("Delete note three.", {"delete_note"}),
    ("What's the date?", {"current_time", "convert_time"}),
    ("What day of the week is it?", {"current_time", "convert_time"}),
    ("what day is it today", {"current_time", "convert_time"}),
    ("Which year is it?", {"current_time", "convert_time"}),
    ("What's 2 to the power of 10?", {"calculate"}),
])
def test_a_request_gets_the_tools_it_needs_and_only_those(text, tools):
    assert offered(text) == tools


@pytest.mark.parametrize("text", ["What is the capital of France?", "Tell me a story about a dragon",
                                  "My name is Ada and I love astronomy.", "How are you?",
                                  "what colour is the sky on a clear day", "Have a nice day!",
                                  "How many days are in a week?"])
def test_plain_conversation_does_not_pay_for_tool_schemas(text):
    assert offered(text) == set()


def test_a_continuation_after_tool_results_keeps_every_tool():
    assert len(relevant_tools("", SCHEMAS)) == len(SCHEMAS)
