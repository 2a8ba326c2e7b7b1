"""Layer 3: are these arguments what the tool takes, and safe to hand it?

The model writes the arguments, and the model can be steered by anything it has
read, so they are checked like input from a stranger: valid JSON within size
caps, valid against the (hardened) schema, no invisible or control characters,
and, where an argument is a path, a command or a URL, no traversal, no shell
syntax, no private network address.
"""
from __future__ import annotations

import functools
import json
import re
from typing import Any
from urllib.parse import unquote

from jsonschema import exceptions as schema_errors
from jsonschema import validators

from tools.config import ArgumentLimits
from tools.ssrf import BlockedUrl, UrlGuard
from tools.text_safety import INVISIBLE


class ArgumentError(ValueError):
    """Arguments a tool must not receive; the message says which and why."""


_KIND_BY_NAME = {
    "path": {"path", "file", "filename", "filepath", "file_path", "dir", "directory", "folder", "dirname"},
    "command": {"command", "cmd", "shell", "exec", "program", "script", "commandline"},
    "url": {"url", "uri", "href", "link", "endpoint"},
}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SHELL_META = re.compile(r"[;&|`$<>(){}\[\]!*?~'\"\\\n\r]")
_DRIVE = re.compile(r"^[A-Za-z]:")


def argument_kind(name: str, schema: dict[str, Any], declared: dict[str, str]) -> str | None:
    """path | command | url | None; servers.yaml wins, then the name, then the schema format."""
    if name in declared:
        return declared[name]
    lowered = name.lower()
    for kind, names in _KIND_BY_NAME.items():
        if lowered in names or any(lowered.endswith(f"_{n}") for n in names):
            return kind
    if isinstance(schema, dict) and schema.get("format") in ("uri", "url", "iri"):
        return "url"
    return None


def check_path(value: str) -> None:
    decoded = value
    for _ in range(3):  # %252e%252e decodes twice to ".."
        decoded = unquote(decoded)
    if "\x00" in decoded:
        raise ArgumentError("path contains a NUL byte")
    if decoded.startswith(("/", "\\", "~")) or _DRIVE.match(decoded):
        raise ArgumentError("absolute or home-relative paths are not allowed")
    if any(part == ".." for part in re.split(r"[/\\]+", decoded)):
        raise ArgumentError("path traversal ('..') is not allowed")


def check_command(value: str) -> None:
    if _SHELL_META.search(value):
        raise ArgumentError("shell metacharacters are not allowed in a command")


def _walk_strings(value: Any, limits: ArgumentLimits, depth: int = 0) -> list[str]:
    if depth > limits.max_depth:
        raise ArgumentError(f"arguments nest deeper than {limits.max_depth} levels")
    if isinstance(value, str):
        if len(value) > limits.max_string_chars:
            raise ArgumentError(f"a text argument is longer than {limits.max_string_chars} characters")
        if _CONTROL.search(value):
            raise ArgumentError("arguments contain control characters")
        if INVISIBLE.search(value):
            raise ArgumentError("arguments contain invisible Unicode characters")
        return [value]
    items: list[Any] = []
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    if len(items) > 2 * limits.max_items:
        raise ArgumentError(f"an argument has more than {limits.max_items} items")
    return [s for item in items for s in _walk_strings(item, limits, depth + 1)]


def parse_arguments(arguments_json: str | dict[str, Any] | None, limits: ArgumentLimits) -> dict[str, Any]:
    if isinstance(arguments_json, dict):
        arguments_json = json.dumps(arguments_json)
    raw = (arguments_json or "").strip() or "{}"
    if len(raw.encode("utf-8")) > limits.max_json_bytes:
        raise ArgumentError(f"arguments are larger than {limits.max_json_bytes} bytes")
    try:
        arguments = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ArgumentError("arguments are not valid JSON") from exc
    if not isinstance(arguments, dict):
        raise ArgumentError("arguments must be a JSON object")
    return arguments


def _schema_error(error: schema_errors.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        known = set(error.schema.get("properties") or {})
        extra = sorted(k for k in error.instance if k not in known) if isinstance(error.instance, dict) else []
        return f"unknown argument(s): {', '.join(extra)[:120]}" + (f" in '{where}'" if where else "")
    if error.validator == "required":
        return error.message[:160]
    # jsonschema quotes the offending value; keep the message short and value-free.
    return f"argument '{where or '(root)'}' fails '{error.validator}' in the tool's schema"


@functools.lru_cache(maxsize=256)
def _schema_facts(schema_json: str) -> tuple[Any, bool]:
    """(a checked validator or None when the schema is invalid, whether the tool takes paths),
    once per schema: checking the schema itself costs far more than the arguments, and a
    tool's schema only changes when its server lists it again."""
    schema = json.loads(schema_json)
    validator_class = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        validator_class.check_schema(schema)
    except schema_errors.SchemaError:
        return None, False
    return validator_class(schema), _names_a_path(schema)


def check_arguments(arguments: dict[str, Any], schema: dict[str, Any], declared_kinds: dict[str, str],
                    limits: ArgumentLimits, url_guard: UrlGuard) -> None:
    """Raise ArgumentError for the first problem; return quietly when the arguments may go."""
    _walk_strings(arguments, limits)
    validator, takes_paths = _schema_facts(json.dumps(schema, sort_keys=True))
    if validator is None:
        raise ArgumentError("the tool's input schema is invalid")
    errors = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
    if errors:
        raise ArgumentError(_schema_error(errors[0]))
    restricts_paths = takes_paths or "path" in declared_kinds.values()
    _check_values(arguments, None, "", schema, declared_kinds, restricts_paths, url_guard)


_URL_SHAPED = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://|^//")
_PATH_SHAPED = re.compile(r"[/\\]|^~|^\.\.?$|^[A-Za-z]:")


def _names_a_path(schema: Any, depth: int = 0) -> bool:
    """Does any property of this schema, at any depth, name a path (file, dir, ...)?"""
    if not isinstance(schema, dict) or depth > 32:
        return False
    for name, child in (schema.get("properties") or {}).items():
        if argument_kind(name, child, {}) == "path" or _names_a_path(child, depth + 1):
            return True
    items = schema.get("items")
    return _names_a_path(items, depth + 1) if isinstance(items, dict) else False


def _check_values(value: Any, key: str | None, where: str, schema: Any, declared: dict[str, str],
                  restricts_paths: bool, url_guard: UrlGuard) -> None:
    """Walk the whole value: a URL, path or command nested in objects and arrays, or under
    a name nobody marked, gets the same check as a top-level one."""
    schema = schema if isinstance(schema, dict) else {}
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for name, item in value.items():
            _check_values(item, str(name), f"{where}.{name}".lstrip("."), properties.get(name, {}),
                          declared, restricts_paths, url_guard)
    elif isinstance(value, list):
        for item in value:  # items keep the key of their array: "urls": [...] holds URLs
            _check_values(item, key, where, schema.get("items", {}), declared, restricts_paths, url_guard)
    elif isinstance(value, str):
        url_shaped = bool(_URL_SHAPED.match(value.strip()))
        declared_here = {key: declared[where]} if key is not None and where in declared else declared
        kind = argument_kind(key, schema, declared_here) if key is not None else \
            ("url" if schema.get("format") in ("uri", "url", "iri") else None)
        if kind == "path" or (restricts_paths and _PATH_SHAPED.search(value) and not url_shaped):
            check_path(value)
        if kind == "command":
            check_command(value)
        if kind == "url" or url_shaped:
            try:
                url_guard.check(value)
            except BlockedUrl as exc:
                nested = f" (at '{where}')" if "." in where else ""
                raise ArgumentError(f"URL not allowed: {exc}{nested}") from exc
