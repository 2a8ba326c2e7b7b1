"""What the tool gateway adds per call, and what the deep argument walk costs.

1. A real stdio server (the calculator): `gateway.call` against calling the same
   server through the gateway's own connection manager, alternating, medians.
2. The argument check alone: today's walk of every nested value against the old
   top-level-only check (kept here as the baseline), on three argument shapes.

    .venv/bin/python bench/tool_gateway_overhead.py [calls=200]
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.hostile_servers.harness import builtin, config_at, context, write_config  # noqa: E402
from tools.arguments import argument_kind, check_arguments, check_command, check_path  # noqa: E402
from tools.arguments import _check_values, _walk_strings  # noqa: E402
from tools.config import ArgumentLimits  # noqa: E402
from tools.gateway import ToolGateway  # noqa: E402
from tools.ssrf import UrlGuard  # noqa: E402


def top_level_check(arguments: dict[str, Any], schema: dict[str, Any], limits: ArgumentLimits,
                    guard: UrlGuard) -> None:
    """The check before the deep walk (schema validation left out on both sides)."""
    _walk_strings(arguments, limits)
    properties = schema.get("properties") or {}
    for name, value in arguments.items():
        kind = argument_kind(name, properties.get(name, {}), {})
        for item in (v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)):
            if kind == "path":
                check_path(item)
            elif kind == "command":
                check_command(item)
            elif kind == "url":
                guard.check(item)


SHAPES = {
    "calculator": ({"expression": "17 * 23"}, {"type": "object", "properties": {"expression": {"type": "string"}}}),
    "nested request": ({"request": {"target": "https://example.org/a", "headers": {"accept": "json"},
                                    "mirrors": ["https://example.net/b", "https://example.com/c"]}},
                       {"type": "object", "properties": {"request": {"type": "object"}}}),
    "note with list": ({"text": "buy milk", "tags": ["home", "shop", "weekly"], "when": "tomorrow 9:00"},
                       {"type": "object", "properties": {"text": {"type": "string"}}}),
}


def median_us(work, rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        samples.append((time.perf_counter() - started) * 1e6)
    return statistics.median(samples)


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    guard = UrlGuard(lambda host, port: ["93.184.216.34"])  # a public answer, no network
    limits = ArgumentLimits()
    print("argument check, median µs per call (schema validation excluded on both sides):")
    for name, (arguments, schema) in SHAPES.items():
        def deep() -> None:
            _walk_strings(arguments, limits)
            _check_values(arguments, None, "", schema, {}, False, guard)

        old = median_us(lambda: top_level_check(arguments, schema, limits, guard), 3000)
        new = median_us(deep, 3000)
        whole = median_us(lambda: check_arguments(arguments, schema, {}, limits, guard), 1000)
        print(f"  {name:15} top-level only {old:6.1f}   whole value {new:6.1f} ({new / old:.2f}x)   "
              f"whole check with schema validation {whole:6.1f}")

    with tempfile.TemporaryDirectory() as folder:
        config = config_at(write_config(Path(folder), [builtin("calculator")]))
        with ToolGateway(config, audit=None) as gateway:
            ctx = context(allowed=("calculator",))
            direct, through = [], []
            for index in range(calls):
                expression = json.dumps({"expression": f"{index} * 23"})
                started = time.perf_counter()
                gateway.manager.call("calculator", "calculate", json.loads(expression), {}, 5)
                direct.append(time.perf_counter() - started)
                started = time.perf_counter()
                result = gateway.call(ctx, "calculate", expression)
                through.append(time.perf_counter() - started)
                assert result.ok, result.error
            d, t = statistics.median(direct) * 1000, statistics.median(through) * 1000
            print(f"calculator over stdio, {calls} calls each, median: direct {d:.2f} ms, "
                  f"through the gateway {t:.2f} ms (+{t - d:.2f} ms, {t / d:.2f}x)")


if __name__ == "__main__":
    main()
