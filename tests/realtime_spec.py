"""Check a Realtime API (GA) server event against OpenAI's published OpenAPI spec.

The schemas are vendored in tests/data/realtime_server_events.json (written by
tests/tools/extract_realtime_schemas.py) because CI has no copy of the spec.
`server_event_errors(event)` returns readable errors, [] when the event is valid.

What each event requires, per the vendored spec (OpenAI API 2.3.0). Every field named
is required unless marked optional; ids and `delta`s are strings, `*_index` and `*_ms`
integers. No schema sets `additionalProperties: false`: extra fields are allowed.
Where a field is optional but not nullable, leave it out rather than send null.

- session.created, session.updated: event_id, type, session. `session` is one of
  - realtime session: type="realtime", id, object="realtime.session". Optional: model,
    instructions, output_modalities ["text"|"audio"], expires_at (int), include (array,
    not null), tools [{type: "function", name, description, parameters} (nothing
    required) | {type: "mcp", server_label, ...}], tool_choice "none"|"auto"|"required"|
    {type: "function", name}|{type: "mcp", server_label}, max_output_tokens (int | "inf"),
    tracing ("auto" | object | null), prompt ({id} | null), truncation ("auto"|"disabled"|
    {type: "retention_ratio", retention_ratio}), reasoning {effort}, audio.input {format,
    transcription (object {model, language, languages, prompt}, not null), noise_reduction
    (object {type: "near_field"|"far_field"}, not null), turn_detection
    ({type: "server_vad", threshold, prefix_padding_ms, silence_duration_ms, idle_timeout_ms,
    create_response, interrupt_response} | {type: "semantic_vad", eagerness} | null; only
    `type` required)}, audio.output {format, voice (string), speed (0.25-1.5)}.
    An audio `format` is {type: "audio/pcm", rate: 24000} | {type: "audio/pcmu"} |
    {type: "audio/pcma"} (no sub-field required; rate can only be 24000).
  - transcription session: type="transcription", id, object (any string).
- input_audio_buffer.speech_started: event_id, type, audio_start_ms, item_id.
- input_audio_buffer.speech_stopped: event_id, type, audio_end_ms, item_id.
- input_audio_buffer.committed: event_id, type, item_id; previous_item_id optional (string|null).
- input_audio_buffer.cleared: event_id, type.
- conversation.item.added, conversation.item.done: event_id, type, item; previous_item_id
  optional (string|null).
- conversation.item.retrieved: event_id, type, item.
- conversation.item.deleted: event_id, type, item_id.
- conversation.item.truncated: event_id, type, item_id, content_index, audio_end_ms.
- conversation.item.input_audio_transcription.completed: event_id, type, item_id,
  content_index, transcript, usage. `usage` is {type: "tokens", input_tokens, output_tokens,
  total_tokens; input_token_details {text_tokens, audio_tokens} optional} or
  {type: "duration", seconds (number)}. Optional: logprobs ([{token, logprob, bytes}] |
  null), languages [{code}].
- response.created, response.done: event_id, type, response. `response` requires nothing;
  its fields: id, object="realtime.response", status "completed"|"cancelled"|"failed"|
  "incomplete"|"in_progress", status_details (object, not null: {type "completed"|
  "cancelled"|"failed"|"incomplete", reason "turn_detected"|"client_cancelled"|
  "max_output_tokens"|"content_filter", error {type, code}}), output [item],
  conversation_id, output_modalities ["text"|"audio"], max_output_tokens (int | "inf"),
  audio.output {format, voice}, metadata ({str: str} | null), usage (object, not null:
  total_tokens, input_tokens, output_tokens, input_token_details {cached_tokens,
  text_tokens, image_tokens, audio_tokens, cached_tokens_details {text_tokens, image_tokens,
  audio_tokens}}, output_token_details {text_tokens, audio_tokens}; all integers, none required).
- response.output_item.added, response.output_item.done: event_id, type, response_id,
  output_index, item.
- response.content_part.added, response.content_part.done: event_id, type, response_id,
  item_id, output_index, content_index, part. `part` requires nothing: {type "audio"|"text"
  (not "output_audio"/"output_text" as in item content), text, audio, transcript}.
- response.output_audio.delta: event_id, type, response_id, item_id, output_index,
  content_index, delta (base64 audio).
- response.output_audio.done: event_id, type, response_id, item_id, output_index, content_index.
- response.output_audio_transcript.delta: event_id, type, response_id, item_id, output_index,
  content_index, delta.
- response.output_audio_transcript.done: the same with transcript instead of delta.
- response.output_text.delta: event_id, type, response_id, item_id, output_index,
  content_index, delta.
- response.output_text.done: the same with text instead of delta.
- response.function_call_arguments.delta: event_id, type, response_id, item_id, output_index,
  call_id, delta.
- response.function_call_arguments.done: event_id, type, response_id, item_id, output_index,
  call_id, name, arguments.
- rate_limits.updated: event_id, type, rate_limits: [{name "requests"|"tokens", limit (int),
  remaining (int), reset_seconds (number)}] (no sub-field required).
- error: event_id, type, error {type, message; optional code, param, event_id (each string|null)}.

An `item` (RealtimeConversationItem) is one of, told apart by type (and role):
- message: type="message", role, content; optional id, object="realtime.item",
  status "completed"|"incomplete"|"in_progress". Content parts require nothing:
  role="system": [{type "input_text", text}];
  role="user": [{type "input_text"|"input_audio"|"input_image", text, audio, transcript,
  image_url, detail "auto"|"low"|"high"}];
  role="assistant": [{type "output_text"|"output_audio", text, audio, transcript}].
- function_call: type, name, arguments; optional id, call_id, object, status (as above).
- function_call_output: type, call_id, output; optional id, object, status.
- mcp_call: type, id, server_label, name, arguments. mcp_list_tools: type, server_label,
  tools [{name, input_schema}]. mcp_approval_request: type, id, server_label, name, arguments.
  mcp_approval_response: type, id, approval_request_id, approve (bool).

The spec's own examples break its schemas in places: they send null for session
include/audio.input.transcription/audio.input.noise_reduction and for response
status_details/usage, and content part type "text"/"audio" in assistant items.
This checker follows the schemas.
"""
from __future__ import annotations

import functools
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

VENDORED = Path(__file__).parent / "data" / "realtime_server_events.json"
BASE_URI = "urn:openai-openapi:realtime-server-events"


def _nullable_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema's null type.

    The current extract has none (3.1 writes `anyOf: [..., {type: null}]`), but the
    spec still uses it elsewhere, so a re-extract may bring one in.
    """
    if isinstance(node, list):
        return [_nullable_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable_to_json_schema(value) for key, value in node.items()}
    if node.get("nullable") is True:  # not a property that happens to be called nullable
        del node["nullable"]
        if "enum" in node and None not in node["enum"]:
            node["enum"] = [*node["enum"], None]
        if isinstance(node.get("type"), str):
            node["type"] = [node["type"], "null"]
        elif "type" not in node:  # e.g. a $ref with a nullable sibling
            node = {"anyOf": [node, {"type": "null"}]}
    return node


@functools.cache
def _vendored() -> tuple[Registry, dict[str, str]]:
    document = json.loads(VENDORED.read_text())
    # Laid out like the spec so its `#/components/schemas/X` refs resolve unchanged.
    # `x-*`, `example` and `discriminator` are unknown keywords to 2020-12: ignored.
    root = {"components": {"schemas": _nullable_to_json_schema(document["schemas"])}}
    registry = Registry().with_resource(BASE_URI, Resource.from_contents(root, DRAFT202012))
    return registry, document["event_types"]


@functools.cache
def _validator(schema_name: str) -> jsonschema.Draft202012Validator:
    registry, _ = _vendored()
    # No format checker: the spec's formats (unixtime, double, uri) are annotations only.
    return jsonschema.Draft202012Validator(
        {"$ref": f"{BASE_URI}#/components/schemas/{schema_name}"}, registry=registry)


def known_server_event_types() -> set[str]:
    return set(_vendored()[1])


# Unions here are told apart by these fields (item type, message role, session type, ...).
DISCRIMINATORS = ("type", "role")


def _is_discriminator_miss(error: ValidationError) -> bool:
    """The branch is another kind of thing: wrong JSON type, or wrong `type`/`role` value."""
    return (error.validator == "type" and not error.relative_path) or (
        len(error.relative_path) == 1 and error.relative_path[0] in DISCRIMINATORS
        and error.validator in ("enum", "const"))


def _explain(error: ValidationError) -> list[ValidationError]:
    """Replace "is not valid under any of the given schemas" by the errors of the branch meant.

    The branch whose discriminators matched is the one the sender meant; among several
    (branches without a `type` constant), the one with the fewest errors.
    """
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        return [error]
    branches: dict[Any, list[ValidationError]] = defaultdict(list)
    for sub in error.context:
        branches[sub.relative_schema_path[0]].append(sub)
    meant = [errs for errs in branches.values() if not any(map(_is_discriminator_miss, errs))]
    if not meant:
        return [error]
    return [found for sub in min(meant, key=len) for found in _explain(sub)]


def _describe(error: ValidationError) -> str:
    if error.validator in ("anyOf", "oneOf") and error.context and isinstance(error.instance, dict):
        # jsonschema's message repeats the whole object; what failed is its kind.
        kind = ", ".join(f"{key}={error.instance[key]!r}" for key in DISCRIMINATORS
                         if key in error.instance)
        return f"{error.json_path}: matches none of the allowed kinds ({kind or 'no type'})"
    return f"{error.json_path}: {error.message}"


def server_event_errors(event: dict) -> list[str]:
    """What is wrong with `event` per the spec, as "$.path: message" strings; [] if valid."""
    if not isinstance(event, dict):
        return [f"$: {event!r} is not an object"]
    schema_name = _vendored()[1].get(event.get("type"))
    if schema_name is None:
        return [f"$.type: unknown server event type {event.get('type')!r}"]
    errors = sorted(_validator(schema_name).iter_errors(event), key=lambda e: e.json_path)
    return [_describe(found) for error in errors for found in _explain(error)]
