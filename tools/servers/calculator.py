"""Calculator: arithmetic on a typed or spoken expression, without eval (see safe_math.py)."""
from __future__ import annotations

from typing import Annotated

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from tools.servers.safe_math import MathError, RefusedExpression, evaluate, format_number
from tools.servers.trusted_context import refusal

server = MCPServer("calculator", instructions="Exact arithmetic.")


@server.tool(description="Evaluate an arithmetic expression such as (12.5 * 4) / 3 or sqrt(2) ^ 2. "
                         "Supports + - * / // % ^, parentheses, pi, e, and sqrt, abs, round, floor, ceil, "
                         "sin, cos, tan, log, log10, exp, min, max.",
             structured_output=False)
def calculate(expression: Annotated[str, Field(max_length=200, description="the arithmetic expression")]):
    try:
        return f"{expression.strip()} = {format_number(evaluate(expression))}"
    except RefusedExpression as exc:
        # Code smuggled into an expression, or a size bomb, is refused as such, so the gateway audits
        # it as a denial; other MathErrors (division by zero) are ordinary tool errors.
        return refusal(str(exc))
    except MathError as exc:
        raise ToolError(str(exc)) from exc


if __name__ == "__main__":
    server.run()
