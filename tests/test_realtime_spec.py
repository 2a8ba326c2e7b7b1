"""The Realtime server-event checker accepts what the spec allows and names what it doesn't."""
from __future__ import annotations

import copy

from tests.realtime_spec import known_server_event_types, server_event_errors

# Shaped after the spec's schemas (its examples send nulls the schemas forbid, so not copied).
SESSION_CREATED = {
    "type": "session.created",
    "event_id": "event_1",
    "session": {
        "type": "realtime",
        "object": "realtime.session",
        "id": "sess_1",
        "model": "gpt-realtime",
        "output_modalities": ["audio"],
        "instructions": "You are Cozy.",
        "tools": [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "prompt": None,
        "truncation": "auto",
        "expires_at": 1756324625,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "turn_detection": {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
                                   "silence_duration_ms": 200, "idle_timeout_ms": None,
                                   "create_response": True, "interrupt_response": True},
            },
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin", "speed": 1},
        },
    },
}
AUDIO_DELTA = {
    "type": "response.output_audio.delta",
    "event_id": "event_2",
    "response_id": "resp_1",
    "item_id": "item_1",
    "output_index": 0,
    "content_index": 0,
    "delta": "AAAA",
}
ERROR = {
    "type": "error",
    "event_id": "event_3",
    "error": {"type": "invalid_request_error", "code": "invalid_event",
              "message": "The 'type' field is missing.", "param": None, "event_id": None},
}
RESPONSE_DONE = {
    "type": "response.done",
    "event_id": "event_4",
    "response": {
        "object": "realtime.response",
        "id": "resp_1",
        "status": "completed",
        "output": [{"id": "item_1", "object": "realtime.item", "type": "message", "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_audio", "transcript": "Hello there."}]}],
        "conversation_id": "conv_1",
        "output_modalities": ["audio"],
        "max_output_tokens": "inf",
        "audio": {"output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"}},
        "usage": {"total_tokens": 30, "input_tokens": 10, "output_tokens": 20,
                  "input_token_details": {"text_tokens": 4, "audio_tokens": 6, "cached_tokens": 0},
                  "output_token_details": {"text_tokens": 5, "audio_tokens": 15}},
        "metadata": None,
    },
}


def test_well_formed_events_pass():
    for event in (SESSION_CREATED, AUDIO_DELTA, ERROR, RESPONSE_DONE):
        assert server_event_errors(event) == [], event["type"]


def test_a_missing_field_is_named():
    event = {key: value for key, value in AUDIO_DELTA.items() if key != "response_id"}
    errors = server_event_errors(event)
    assert len(errors) == 1 and "'response_id' is a required property" in errors[0], errors


def test_a_wrongly_typed_field_is_named():
    errors = server_event_errors({**AUDIO_DELTA, "output_index": "0"})
    assert errors == ["$.output_index: '0' is not of type 'integer'"]


def test_an_unknown_type_fails():
    errors = server_event_errors({**AUDIO_DELTA, "type": "response.audio.delta"})
    assert len(errors) == 1 and "'response.audio.delta'" in errors[0], errors


def test_an_error_inside_a_union_names_the_field_not_the_union():
    # The beta name of the part type: the item is still an assistant message, so say where.
    event = copy.deepcopy(RESPONSE_DONE)
    event["response"]["output"][0]["content"][0]["type"] = "audio"
    errors = server_event_errors(event)
    assert len(errors) == 1 and errors[0].startswith("$.response.output[0].content[0].type: "), errors


def test_an_unknown_item_kind_is_named_without_the_whole_item():
    event = copy.deepcopy(RESPONSE_DONE)
    event["response"]["output"][0]["role"] = "developer"
    assert server_event_errors(event) == [
        "$.response.output[0]: matches none of the allowed kinds (type='message', role='developer')"]


def test_a_session_must_say_which_kind_it_is():
    event = copy.deepcopy(SESSION_CREATED)
    del event["session"]["type"]
    assert server_event_errors(event)


def test_the_events_a_voice_server_sends_are_known():
    assert {
        "session.created", "session.updated", "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped", "input_audio_buffer.committed",
        "input_audio_buffer.cleared", "conversation.item.added", "conversation.item.done",
        "conversation.item.deleted", "conversation.item.retrieved", "conversation.item.truncated",
        "conversation.item.input_audio_transcription.completed", "response.created",
        "response.output_item.added", "response.output_item.done", "response.content_part.added",
        "response.content_part.done", "response.output_audio.delta", "response.output_audio.done",
        "response.output_audio_transcript.delta", "response.output_audio_transcript.done",
        "response.output_text.delta", "response.output_text.done",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.done", "rate_limits.updated", "error",
    } <= known_server_event_types()
