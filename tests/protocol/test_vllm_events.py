"""vLLM's realtime events in the one vocabulary (docs/protocol.md §7): the messages vLLM's
``vllm/frontend/entrypoints/speech_to_text/realtime/protocol.py`` models serialise to
(``model_dump_json``) parse to their dataclasses, and ``to_wire`` writes exactly those shapes.
The round-trip properties for these classes live with the others in ``test_events.py``."""

from __future__ import annotations

import json

import pytest

from livekit.plugins.openai_stt.protocol.events import (
    CommitAudio,
    ErrorEvent,
    ErrorInfo,
    SessionCreated,
    parse,
    parse_client,
    to_wire,
)
from livekit.plugins.openai_stt.protocol.vllm_events import (
    VllmSessionCreated,
    VllmTranscriptionDelta,
    VllmTranscriptionDone,
)

USAGE = {
    "prompt_tokens": 41,
    "total_tokens": 48,
    "completion_tokens": 7,
    "prompt_tokens_details": None,
}

VLLM_MESSAGES = [
    pytest.param(
        {"type": "session.created", "id": "sess-0123abcd", "created": 1767225600},
        VllmSessionCreated("sess-0123abcd", 1767225600),
        id="session.created",
    ),
    pytest.param(
        {"type": "transcription.delta", "delta": " Hello"},
        VllmTranscriptionDelta(" Hello"),
        id="delta",
    ),
    pytest.param(
        {"type": "transcription.delta", "delta": ""}, VllmTranscriptionDelta(""), id="empty"
    ),
    pytest.param(
        {"type": "transcription.done", "text": " Hello world", "usage": USAGE},
        VllmTranscriptionDone(" Hello world", USAGE),
        id="done",
    ),
    pytest.param(
        {"type": "error", "error": "Missing required field: model", "code": "invalid_event"},
        ErrorEvent(ErrorInfo("error", "invalid_event", "Missing required field: model")),
        id="error-with-code",
    ),
    pytest.param(
        {"type": "error", "error": "Invalid JSON", "code": None},
        ErrorEvent(ErrorInfo("error", None, "Invalid JSON")),
        id="error-null-code",
    ),
]


@pytest.mark.parametrize(("message", "event"), VLLM_MESSAGES)
def test_vllm_messages_parse_and_are_written_back_exactly(message, event) -> None:
    assert parse(json.dumps(message)) == event
    assert json.loads(to_wire(event)) == message


def test_openai_session_created_is_still_openais() -> None:
    message = {"type": "session.created", "event_id": "e1", "session": {"id": "sess_1"}}
    assert parse(json.dumps(message)) == SessionCreated({"id": "sess_1"}, "e1")


def test_an_openai_error_object_keeps_its_object_shape() -> None:
    info = ErrorInfo("invalid_request_error", "invalid_value", "bad", "audio", None)
    wire = json.loads(to_wire(ErrorEvent(info)))
    assert wire["error"] == {
        "type": "invalid_request_error",
        "code": "invalid_value",
        "message": "bad",
        "param": "audio",
        "event_id": None,
    }
    assert "code" not in {k for k in wire if k != "error"}


@pytest.mark.parametrize(
    ("message", "final"),
    [
        ('{"type":"input_audio_buffer.commit"}', None),
        ('{"type":"input_audio_buffer.commit","final":true}', True),
        ('{"type":"input_audio_buffer.commit","final":false}', False),
        ('{"type":"input_audio_buffer.commit","final":"yes"}', None),  # not a bool: not sent
    ],
)
def test_commit_final_is_read_and_written_only_when_sent(message: str, final) -> None:
    event = parse_client(message)
    assert event == CommitAudio(final=final)
    if final is None:
        assert to_wire(event) == '{"type":"input_audio_buffer.commit"}'
    else:
        assert json.loads(to_wire(event)) == {"type": "input_audio_buffer.commit", "final": final}
