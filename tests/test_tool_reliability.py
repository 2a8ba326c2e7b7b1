"""Tools run from the default offline model, and no tool markup is ever said.

Every other one of the companion's twenty requests in tests/tool_reliability_set.py
(time, time zones, sums, notes; the bench runs every persona's), through the real
orchestrator, gateway and MCP servers with Qwen2.5-1.5B. The floor sits below what
bench/tool_reliability.py measured (19 of 20, all ten of these), so an unlucky
sample at the persona's temperature does not fail it; before tool calls were
parsed and constrained, 5 of the twenty ran the right tool and 4 replies carried
markup. Ten turns of two model rounds: one to three minutes on 2 idle cores, about
eight when another job shares them.
"""
from __future__ import annotations

import pytest

from config import Settings
from providers import model_files
from providers.offline.llm import LlamaChatModel
from tests.tool_reliability_set import ToolRig

PERSONA = "companion"
RIGHT_TOOL_FLOOR = 0.8


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    model = LlamaChatModel(model_files.resolve("qwen2.5-1.5b", Settings.from_env().models_dir), "qwen2.5-1.5b")
    with ToolRig(model, tmp_path_factory.mktemp("tool-reliability")) as rig:
        yield [rig.ask(PERSONA, request) for request in rig.requests_for(PERSONA)[::2]]


def test_the_right_tool_runs_for_most_tool_worthy_requests(outcomes):
    missed = [(o.request.text, o.ran, o.reply) for o in outcomes if not o.right_tool_ran]
    share = 1 - len(missed) / len(outcomes)
    assert len(outcomes) == 10
    assert share >= RIGHT_TOOL_FLOOR, f"right tool in {share:.0%}; missed: {missed}"


def test_no_reply_carries_tool_markup(outcomes):
    assert [(o.request.text, o.reply) for o in outcomes if o.markup] == []
