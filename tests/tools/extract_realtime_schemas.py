"""Vendor the Realtime API server-event schemas from OpenAI's OpenAPI spec.

CI has no copy of the 87k-line spec, so tests/realtime_spec.py validates against the
part of it that RealtimeServerEvent needs, written to tests/data/realtime_server_events.json.

    python tests/tools/extract_realtime_schemas.py [path/to/openai-openapi.yaml]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPEC = ROOT.parent / "shared" / "specs" / "openai-openapi.yaml"
OUTPUT = ROOT / "tests" / "data" / "realtime_server_events.json"
ROOT_SCHEMA = "RealtimeServerEvent"
REF_PREFIX = "#/components/schemas/"


def refs_in(node: Any) -> set[str]:
    """Names of the component schemas a node $refs, at any depth."""
    if isinstance(node, list):
        return set().union(*map(refs_in, node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = set().union(*map(refs_in, node.values())) if node else set()
    ref = node.get("$ref")
    if isinstance(ref, str):
        if not ref.startswith(REF_PREFIX):
            # Only component schemas are vendored; anything else would dangle in CI.
            raise ValueError(f"unexpected $ref {ref!r}")
        found.add(ref[len(REF_PREFIX):])
    return found


def reachable(schemas: dict[str, Any], start: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    todo = [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen[name] = schemas[name]
            todo.extend(refs_in(schemas[name]) - seen.keys())
    return seen


def type_constant(schema: dict[str, Any]) -> str | None:
    """The event's `type` value: the spec writes it as a one-value enum, a const or a default."""
    prop = schema.get("properties", {}).get("type", {})
    if len(prop.get("enum", ())) == 1:
        return prop["enum"][0]
    return prop.get("const", prop.get("default"))


def event_types(schemas: dict[str, Any]) -> dict[str, str]:
    types: dict[str, str] = {}
    for member in schemas[ROOT_SCHEMA].get("anyOf") or schemas[ROOT_SCHEMA]["oneOf"]:
        name = member["$ref"][len(REF_PREFIX):]
        value = type_constant(schemas[name])
        if value is None:
            raise ValueError(f"{name} has no constant `type`")
        if value in types:
            raise ValueError(f"{value!r} is the type of both {types[value]} and {name}")
        types[value] = name
    return types


def main(argv: list[str]) -> None:
    import yaml

    spec_path = Path(argv[1]) if len(argv) > 1 else DEFAULT_SPEC
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader is ~10x faster here
    with spec_path.open() as f:
        spec = yaml.load(f, Loader=loader)
    schemas = reachable(spec["components"]["schemas"], ROOT_SCHEMA)
    document = {
        "_source": (f"{spec_path.name} (OpenAI API {spec['info'].get('version', '?')}), "
                    f"components.schemas reachable from {ROOT_SCHEMA}; extracted by "
                    "tests/tools/extract_realtime_schemas.py, do not edit by hand"),
        "event_types": event_types(schemas),
        "schemas": schemas,
    }
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    print(f"{OUTPUT}: {len(schemas)} schemas, {len(document['event_types'])} event types")


if __name__ == "__main__":
    main(sys.argv)
