"""Calculator: arithmetic on a typed or spoken expression, without eval (see safe_math.py).

A result's first line is said aloud ("17 times 23 is 391."); the expression as
written follows ("17 * 23 = 391").
"""
from __future__ import annotations

import re
from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from tools.servers.safe_math import MathError, RefusedExpression, evaluate, format_number
from tools.servers.trusted_context import refusal

server = MCPServer("calculator", instructions="Exact arithmetic.")

_SPOKEN_OPERATORS = {"**": "to the power of", "^": "to the power of", "//": "divided, rounded down, by",
                     "*": "times", "×": "times", "/": "divided by", "÷": "divided by", "+": "plus", "-": "minus"}
_SIMPLE = re.compile(r"^\s*-?[\d.,]+(\s*(\*\*|//|[-+*/^×÷])\s*[\d.,]+){1,3}\s*$")
_OPERATOR = re.compile(r"\*\*|//|[-+*/^×÷]")


def spoken(expression: str, result: str) -> str:
    """A few numbers and operators are read out; anything longer is just its result."""
    expression = expression.strip()
    if not _SIMPLE.match(expression):
        return f"That comes to {result}."
    first, rest = expression[0], expression[1:]  # a leading minus is the number's sign
    words = first + _OPERATOR.sub(lambda m: f" {_SPOKEN_OPERATORS[m.group(0)]} ", rest)
    return f"{' '.join(words.split())} is {result}."


@server.tool(description="Evaluate an arithmetic expression such as (12.5 * 4) / 3 or sqrt(2) ^ 2. "
                         "Supports + - * / // % ^, parentheses, pi, e, and sqrt, abs, round, floor, ceil, "
                         "sin, cos, tan, log, log10, exp, min, max.",
             structured_output=False)
def calculate(expression: Annotated[str, Field(max_length=200, description="the arithmetic expression")]):
    try:
        result = format_number(evaluate(expression))
        return f"{spoken(expression, result)}\n{expression.strip()} = {result}"
    except RefusedExpression as exc:
        # Code smuggled into an expression, or a size bomb, is refused as such, so the gateway audits
        # it as a denial; other MathErrors (division by zero) are ordinary tool errors.
        return refusal(str(exc))
    except MathError as exc:
        raise ToolError(str(exc)) from exc


if __name__ == "__main__":
    server.run()
