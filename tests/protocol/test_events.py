"""Tables for protocol/events.py: every server event of docs/protocol.md §4 (and §2, §7 variants)
parsed into its frozen dataclass; malformed messages naming the field; client event builders;
client commands parsed strictly; to_wire the inverse of parse and parse_client (properties)."""

from __future__ import annotations

import base64
import dataclasses
import json
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livekit.plugins.openai_stt.protocol import events as ev
from livekit.plugins.openai_stt.protocol.encode import (
    append_event,
    clear_event,
    commit_event,
    dumps_event,
)
from livekit.plugins.openai_stt.protocol.events import (
    AppendAudio,
    AudioBufferCleared,
    AudioBufferCommitted,
    ClearAudio,
    CommitAudio,
    ConversationItem,
    DurationUsage,
    ErrorEvent,
    ErrorInfo,
    EventParseError,
    LogProb,
    PartialTranscription,
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TokenUsage,
    TranscriptionCompleted,
    TranscriptionDelta,
    TranscriptionFailed,
    TranscriptionSegment,
    UnknownClientEvent,
    UnknownEvent,
    UpdateSession,
    parse,
    parse_client,
    to_wire,
)
from livekit.plugins.openai_stt.protocol.vllm_events import (
    VllmSessionCreated,
    VllmTranscriptionDelta,
    VllmTranscriptionDone,
)

DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"
FAILED = "conversation.item.input_audio_transcription.failed"
SEGMENT = "conversation.item.input_audio_transcription.segment"

GA_SESSION = {
    "type": "transcription",
    "id": "sess_1",
    "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None}},
}
BETA_SESSION = {
    "id": "sess_2",
    "object": "realtime.transcription_session",
    "input_audio_format": "pcm16",
    "input_audio_transcription": {"model": "whisper-1", "language": "en"},
}
ITEM = {
    "id": "item_1",
    "type": "message",
    "role": "user",
    "content": [{"type": "input_audio", "transcript": None}],
}
TOKEN_USAGE_JSON = {
    "type": "tokens",
    "input_tokens": 120,
    "output_tokens": 5,
    "total_tokens": 125,
    "input_token_details": {"audio_tokens": 100, "text_tokens": 20},
}

SERVER_EVENTS = [
    # (message as a JSON-able object, expected dataclass)
    pytest.param(
        {"type": "session.created", "event_id": "event_1", "session": GA_SESSION},
        SessionCreated(session=GA_SESSION, event_id="event_1"),
        id="session.created",
    ),
    pytest.param(
        {"type": "transcription_session.created", "event_id": "event_1", "session": BETA_SESSION},
        SessionCreated(
            session=BETA_SESSION, event_id="event_1", type="transcription_session.created"
        ),
        id="beta-transcription_session.created",
    ),
    pytest.param(
        {"type": "session.updated", "event_id": "event_2", "session": GA_SESSION},
        SessionUpdated(session=GA_SESSION, event_id="event_2"),
        id="session.updated",
    ),
    pytest.param(
        {"type": "transcription_session.updated", "event_id": "event_2", "session": BETA_SESSION},
        SessionUpdated(
            session=BETA_SESSION, event_id="event_2", type="transcription_session.updated"
        ),
        id="beta-transcription_session.updated",
    ),
    pytest.param(
        {"type": "session.updated"},
        SessionUpdated(session={}),
        id="session.updated-without-session-or-event_id",
    ),
    pytest.param(
        {
            "type": "input_audio_buffer.speech_started",
            "event_id": "e3",
            "item_id": "item_1",
            "audio_start_ms": 1012,
        },
        SpeechStarted(item_id="item_1", audio_start_ms=1012, event_id="e3"),
        id="speech_started",
    ),
    pytest.param(
        {
            "type": "input_audio_buffer.speech_started",
            "item_id": "item_1",
            "audio_start_ms": 1012.0,
        },
        SpeechStarted(item_id="item_1", audio_start_ms=1012),
        id="speech_started-float-ms",
    ),
    pytest.param(
        {"type": "input_audio_buffer.speech_stopped", "item_id": "item_1", "audio_end_ms": 2080},
        SpeechStopped(item_id="item_1", audio_end_ms=2080),
        id="speech_stopped",
    ),
    pytest.param(
        {
            "type": "input_audio_buffer.committed",
            "event_id": "e4",
            "item_id": "item_1",
            "previous_item_id": None,
        },
        AudioBufferCommitted(item_id="item_1", previous_item_id=None, event_id="e4"),
        id="committed-previous-null",
    ),
    pytest.param(
        {"type": "input_audio_buffer.committed", "item_id": "item_2", "previous_item_id": "item_1"},
        AudioBufferCommitted(item_id="item_2", previous_item_id="item_1"),
        id="committed-previous-id",
    ),
    pytest.param(
        {"type": "input_audio_buffer.cleared", "event_id": "e5"},
        AudioBufferCleared(event_id="e5"),
        id="cleared",
    ),
    pytest.param(
        {
            "type": "conversation.item.added",
            "event_id": "e6",
            "item": ITEM,
            "previous_item_id": None,
        },
        ConversationItem(
            type="conversation.item.added", item_id="item_1", item=ITEM, event_id="e6"
        ),
        id="conversation.item.added",
    ),
    pytest.param(
        {"type": "conversation.item.done", "item": ITEM, "previous_item_id": "item_0"},
        ConversationItem(
            type="conversation.item.done", item_id="item_1", item=ITEM, previous_item_id="item_0"
        ),
        id="conversation.item.done",
    ),
    pytest.param(
        {"type": "conversation.item.created", "item": ITEM},
        ConversationItem(type="conversation.item.created", item_id="item_1", item=ITEM),
        id="beta-conversation.item.created",
    ),
    pytest.param(
        {"type": "conversation.item.created", "item_id": "item_9"},
        ConversationItem(type="conversation.item.created", item_id="item_9", item={}),
        id="conversation.item-id-at-top-level",
    ),
    pytest.param(
        {
            "type": DELTA,
            "event_id": "e7",
            "item_id": "item_1",
            "content_index": 0,
            "delta": "Hel",
            "logprobs": [{"token": "Hel", "logprob": -0.01, "bytes": [72, 101, 108]}],
        },
        TranscriptionDelta(
            item_id="item_1",
            delta="Hel",
            content_index=0,
            logprobs=(LogProb("Hel", -0.01),),
            event_id="e7",
        ),
        id="delta-with-logprobs",
    ),
    pytest.param(
        {"type": DELTA, "item_id": "item_1", "delta": "lo"},
        TranscriptionDelta(item_id="item_1", delta="lo", logprobs=None),
        id="delta-without-logprobs",
    ),
    pytest.param(
        {"type": DELTA, "delta": "Hel"},
        TranscriptionDelta(item_id=None, delta="Hel"),
        id="delta-before-commit-without-item_id",
    ),
    pytest.param(
        {"type": DELTA, "item_id": None, "delta": "", "content_index": 2},
        TranscriptionDelta(item_id=None, delta="", content_index=2),
        id="delta-null-item_id-empty-text",
    ),
    pytest.param(
        {
            "type": DELTA,
            "item_id": "item_1",
            "delta": "a",
            "logprobs": [
                {"token": "a", "logprob": -1},
                {"token": "b"},
                "junk",
                {"token": "c", "logprob": True},
            ],
        },
        TranscriptionDelta(item_id="item_1", delta="a", logprobs=(LogProb("a", -1.0),)),
        id="delta-logprobs-skip-entries-without-a-number",
    ),
    pytest.param(
        {
            "type": COMPLETED,
            "event_id": "e8",
            "item_id": "item_1",
            "content_index": 0,
            "transcript": "Hello there.",
            "logprobs": [
                {"token": "Hello", "logprob": -0.1, "bytes": []},
                {"token": " there.", "logprob": -0.2, "bytes": []},
            ],
            "languages": [{"code": "en"}],
            "usage": TOKEN_USAGE_JSON,
        },
        TranscriptionCompleted(
            item_id="item_1",
            transcript="Hello there.",
            content_index=0,
            logprobs=(LogProb("Hello", -0.1), LogProb(" there.", -0.2)),
            languages=("en",),
            usage=TokenUsage(
                input_tokens=120,
                output_tokens=5,
                total_tokens=125,
                audio_tokens=100,
                text_tokens=20,
            ),
            event_id="e8",
        ),
        id="completed-tokens-usage-languages-logprobs",
    ),
    pytest.param(
        {
            "type": COMPLETED,
            "item_id": "item_1",
            "transcript": "Bonjour.",
            "languages": [{"code": "fr"}, "en", {"name": "no code"}],
            "usage": {"type": "duration", "seconds": 2.4},
        },
        TranscriptionCompleted(
            item_id="item_1",
            transcript="Bonjour.",
            languages=("fr", "en"),
            usage=DurationUsage(seconds=2.4),
        ),
        id="completed-duration-usage-several-languages",
    ),
    pytest.param(
        {"type": COMPLETED, "item_id": "item_1", "transcript": "x", "usage": {"seconds": 3}},
        TranscriptionCompleted(item_id="item_1", transcript="x", usage=DurationUsage(3.0)),
        id="completed-duration-usage-without-type",
    ),
    pytest.param(
        {
            "type": COMPLETED,
            "item_id": "item_1",
            "transcript": "x",
            "usage": {"type": "tokens", "input_tokens": 7, "output_tokens": 3},
        },
        TranscriptionCompleted(
            item_id="item_1",
            transcript="x",
            usage=TokenUsage(input_tokens=7, output_tokens=3, total_tokens=10),
        ),
        id="completed-tokens-usage-total-and-details-missing",
    ),
    pytest.param(
        {"type": COMPLETED, "item_id": "item_1", "transcript": ""},
        TranscriptionCompleted(
            item_id="item_1", transcript="", logprobs=None, languages=None, usage=None
        ),
        id="completed-minimal-empty-transcript",
    ),
    pytest.param(
        {
            "type": FAILED,
            "event_id": "e9",
            "item_id": "item_1",
            "content_index": 0,
            "error": {
                "type": "server_error",
                "code": None,
                "message": "Input transcription failed for item 'item_1'.",
                "param": None,
            },
        },
        TranscriptionFailed(
            item_id="item_1",
            error=ErrorInfo(
                type="server_error",
                code=None,
                message="Input transcription failed for item 'item_1'.",
                param=None,
            ),
            event_id="e9",
        ),
        id="failed",
    ),
    pytest.param(
        {"type": FAILED, "item_id": "item_1", "error": "decoder crashed"},
        TranscriptionFailed(
            item_id="item_1", error=ErrorInfo(type="error", message="decoder crashed")
        ),
        id="failed-error-as-plain-string",
    ),
    pytest.param(
        {
            "type": SEGMENT,
            "item_id": "item_1",
            "id": "seg_1",
            "speaker": "A",
            "start": 0.0,
            "end": 1.7,
            "text": "Hello",
        },
        TranscriptionSegment(
            item_id="item_1", id="seg_1", text="Hello", speaker="A", start=0.0, end=1.7
        ),
        id="segment-diarized",
    ),
    pytest.param(
        {"type": SEGMENT, "item_id": "item_1", "text": "Hi", "start": 1, "end": 2},
        TranscriptionSegment(item_id="item_1", id="", text="Hi", speaker=None, start=1.0, end=2.0),
        id="segment-minimal",
    ),
    pytest.param(
        {
            "type": "input_audio_buffer.partial_transcription",
            "item_id": "item_1",
            "transcript": "Hello the",
        },
        PartialTranscription(item_id="item_1", transcript="Hello the"),
        id="speaches-partial_transcription",
    ),
    pytest.param(
        {"type": "input_audio_buffer.partial_transcription", "transcript": "Hello"},
        PartialTranscription(item_id=None, transcript="Hello"),
        id="speaches-partial_transcription-without-item_id",
    ),
    pytest.param(
        {
            "type": "error",
            "event_id": "event_10",
            "error": {
                "type": "invalid_request_error",
                "code": "invalid_model",
                "message": 'Model "gpt-realtime-whisper" is not supported in transcription mode.',
                "param": "session.audio.input.transcription.model",
                "event_id": "client_7",
            },
        },
        ErrorEvent(
            error=ErrorInfo(
                type="invalid_request_error",
                code="invalid_model",
                message='Model "gpt-realtime-whisper" is not supported in transcription mode.',
                param="session.audio.input.transcription.model",
                event_id="client_7",
            ),
            event_id="event_10",
        ),
        id="error-all-fields",
    ),
    pytest.param(
        {"type": "error", "error": "Model not loaded"},
        ErrorEvent(error=ErrorInfo(type="error", code=None, message="Model not loaded")),
        id="vllm-error-as-plain-string",
    ),
    pytest.param(
        {"type": "error", "error": {"code": 429}},
        ErrorEvent(error=ErrorInfo(type="error", code="429", message="")),
        id="error-minimal-object-code-as-text",
    ),
]


@pytest.mark.parametrize("message, expected", SERVER_EVENTS)
def test_each_server_event_parses_to_its_dataclass(message, expected):
    assert parse(json.dumps(message)) == expected


@pytest.mark.parametrize("message, expected", SERVER_EVENTS[:6])
def test_parse_accepts_utf8_bytes(message, expected):
    assert parse(json.dumps(message).encode()) == expected


def test_parsed_events_are_frozen():
    event = parse('{"type":"input_audio_buffer.committed","item_id":"item_1"}')
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.item_id = "item_2"  # type: ignore[misc]


def test_non_ascii_text_survives_parsing():
    event = parse(json.dumps({"type": DELTA, "item_id": "i", "delta": "Grüße, 世界 🎤"}))
    assert event == TranscriptionDelta(item_id="i", delta="Grüße, 世界 🎤")


# -- malformed messages ---------------------------------------------------------------------

MALFORMED = [
    # (raw text, expected .field, expected .event_type)
    pytest.param("not json", None, None, id="not-json"),
    pytest.param("", None, None, id="empty-text"),
    pytest.param(b"\xff\xfe{", None, None, id="invalid-utf8-bytes"),
    pytest.param("[1, 2]", None, None, id="array-not-object"),
    pytest.param('"error"', None, None, id="string-not-object"),
    pytest.param("null", None, None, id="null-not-object"),
    pytest.param('{"event_id": "e1"}', "type", None, id="type-missing"),
    pytest.param('{"type": 5}', "type", None, id="type-not-a-string"),
    pytest.param('{"type": null}', "type", None, id="type-null"),
]


def _m(etype: str, **fields) -> str:
    return json.dumps({"type": etype, **fields})


MALFORMED += [
    pytest.param(
        _m("input_audio_buffer.speech_started", audio_start_ms=1),
        "item_id",
        "input_audio_buffer.speech_started",
        id="speech_started-no-item_id",
    ),
    pytest.param(
        _m("input_audio_buffer.speech_started", item_id=None, audio_start_ms=1),
        "item_id",
        "input_audio_buffer.speech_started",
        id="speech_started-item_id-null",
    ),
    pytest.param(
        _m("input_audio_buffer.speech_started", item_id=3, audio_start_ms=1),
        "item_id",
        "input_audio_buffer.speech_started",
        id="speech_started-item_id-int",
    ),
    pytest.param(
        _m("input_audio_buffer.speech_started", item_id="i"),
        "audio_start_ms",
        "input_audio_buffer.speech_started",
        id="speech_started-no-audio_start_ms",
    ),
    pytest.param(
        _m("input_audio_buffer.speech_started", item_id="i", audio_start_ms="12"),
        "audio_start_ms",
        "input_audio_buffer.speech_started",
        id="speech_started-ms-as-text",
    ),
    pytest.param(
        _m("input_audio_buffer.speech_started", item_id="i", audio_start_ms=True),
        "audio_start_ms",
        "input_audio_buffer.speech_started",
        id="speech_started-ms-bool",
    ),
    pytest.param(
        _m("input_audio_buffer.speech_stopped", item_id="i"),
        "audio_end_ms",
        "input_audio_buffer.speech_stopped",
        id="speech_stopped-no-audio_end_ms",
    ),
    pytest.param(
        _m("input_audio_buffer.speech_stopped", audio_end_ms=5),
        "item_id",
        "input_audio_buffer.speech_stopped",
        id="speech_stopped-no-item_id",
    ),
    pytest.param(
        _m("input_audio_buffer.committed"),
        "item_id",
        "input_audio_buffer.committed",
        id="committed-no-item_id",
    ),
    pytest.param(
        _m("input_audio_buffer.committed", item_id="i", previous_item_id=5),
        "previous_item_id",
        "input_audio_buffer.committed",
        id="committed-previous_item_id-int",
    ),
    pytest.param(
        _m("conversation.item.added"), "item.id", "conversation.item.added", id="item.added-no-item"
    ),
    pytest.param(
        _m("conversation.item.done", item={"id": 7}),
        "item.id",
        "conversation.item.done",
        id="item.done-item-id-int",
    ),
    pytest.param(
        _m("conversation.item.created", item="item_1"),
        "item.id",
        "conversation.item.created",
        id="item.created-item-not-object",
    ),
    pytest.param(_m(DELTA, item_id="i"), "delta", DELTA, id="delta-no-delta"),
    pytest.param(_m(DELTA, item_id="i", delta=None), "delta", DELTA, id="delta-null"),
    pytest.param(_m(DELTA, item_id="i", delta=["Hel"]), "delta", DELTA, id="delta-list"),
    pytest.param(_m(DELTA, item_id=1, delta="x"), "item_id", DELTA, id="delta-item_id-int"),
    pytest.param(
        _m(DELTA, item_id="i", delta="x", content_index="0"),
        "content_index",
        DELTA,
        id="delta-content_index-text",
    ),
    pytest.param(_m(COMPLETED, item_id="i"), "transcript", COMPLETED, id="completed-no-transcript"),
    pytest.param(
        _m(COMPLETED, item_id="i", transcript=None),
        "transcript",
        COMPLETED,
        id="completed-transcript-null",
    ),
    pytest.param(_m(COMPLETED, transcript="x"), "item_id", COMPLETED, id="completed-no-item_id"),
    pytest.param(
        _m(COMPLETED, item_id="i", transcript=5),
        "transcript",
        COMPLETED,
        id="completed-transcript-int",
    ),
    pytest.param(
        _m(COMPLETED, item_id="i", transcript="x", content_index=0.5),
        "content_index",
        COMPLETED,
        id="completed-content_index-float",
    ),
    pytest.param(_m(FAILED, item_id="i"), "error", FAILED, id="failed-no-error"),
    pytest.param(_m(FAILED, item_id="i", error=5), "error", FAILED, id="failed-error-int"),
    pytest.param(
        _m(FAILED, error={"type": "server_error"}), "item_id", FAILED, id="failed-no-item_id"
    ),
    pytest.param(_m(SEGMENT, item_id="i"), "text", SEGMENT, id="segment-no-text"),
    pytest.param(_m(SEGMENT, text="x"), "item_id", SEGMENT, id="segment-no-item_id"),
    pytest.param(
        _m(SEGMENT, item_id="i", text="x", start="0"), "start", SEGMENT, id="segment-start-text"
    ),
    pytest.param(
        _m(SEGMENT, item_id="i", text="x", speaker=1), "speaker", SEGMENT, id="segment-speaker-int"
    ),
    pytest.param(
        _m("input_audio_buffer.partial_transcription", item_id="i"),
        "transcript",
        "input_audio_buffer.partial_transcription",
        id="partial-no-transcript",
    ),
    pytest.param(_m("error"), "error", "error", id="error-no-error"),
    pytest.param(_m("error", error=None), "error", "error", id="error-null"),
    pytest.param(_m("error", error=[1]), "error", "error", id="error-list"),
]


@pytest.mark.parametrize("text, field, event_type", MALFORMED)
def test_malformed_message_raises_event_parse_error_naming_the_field(text, field, event_type):
    with pytest.raises(EventParseError) as info:
        parse(text)
    assert info.value.field == field
    assert info.value.event_type == event_type
    assert isinstance(info.value, ValueError)


def test_parse_error_message_never_holds_the_payload():
    secret = "SECRET-TRANSCRIPT-" + "x" * 1000
    with pytest.raises(EventParseError) as info:
        parse(json.dumps({"type": COMPLETED, "transcript": secret}))
    assert "SECRET" not in str(info.value)
    assert len(str(info.value)) < 200
    assert "item_id" in str(info.value)


# -- unknown and error events ------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "rate_limits.updated", "rate_limits": [{"name": "requests", "remaining": 9}]},
        {"type": "some.future.event", "event_id": "e1", "nested": {"a": [1, 2, None]}},
        {"type": ""},
    ],
    ids=lambda raw: raw["type"] or "empty-type",
)
def test_unknown_type_gives_unknown_event_keeping_raw(raw):
    event = parse(json.dumps(raw))
    assert isinstance(event, UnknownEvent)
    assert event.type == raw["type"]
    assert event.raw == raw


def test_error_event_keeps_type_code_message_param_and_event_ids():
    event = parse(
        json.dumps(
            {
                "type": "error",
                "event_id": "event_server_1",
                "error": {
                    "type": "invalid_request_error",
                    "code": "input_audio_buffer_commit_empty",
                    "message": "Error committing input audio buffer: buffer too small.",
                    "param": "audio",
                    "event_id": "client_commit_3",
                },
            }
        )
    )
    assert isinstance(event, ErrorEvent)
    assert event.type == "error"
    assert event.event_id == "event_server_1"
    assert event.error.type == "invalid_request_error"
    assert event.error.code == "input_audio_buffer_commit_empty"
    assert event.error.message == "Error committing input audio buffer: buffer too small."
    assert event.error.param == "audio"
    assert event.error.event_id == "client_commit_3"


def test_non_string_event_id_is_ignored_not_stringified():
    event = parse(json.dumps({"type": "input_audio_buffer.cleared", "event_id": 42}))
    assert event == AudioBufferCleared(event_id=None)


# -- client event builders ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "audio",
    [
        b"",
        b"\x00",
        b"\x00\x01\xff\xfe",
        bytes(range(256)) * 20,
        bytearray(b"\x10\x20\x30"),
        memoryview(b"abcdefgh")[2:6],
    ],
    ids=["empty", "one-byte", "pcm-bytes", "5kB", "bytearray", "memoryview-slice"],
)
def test_append_event_is_json_whose_base64_decodes_to_the_input(audio):
    out = append_event(audio)
    assert isinstance(out, bytes)
    obj = json.loads(out.decode("ascii"))
    assert obj == {"type": "input_audio_buffer.append", "audio": obj["audio"]}
    assert base64.b64decode(obj["audio"], validate=True) == bytes(audio)


def test_commit_event_without_event_id():
    assert json.loads(commit_event()) == {"type": "input_audio_buffer.commit"}


@pytest.mark.parametrize("event_id", ["commit_1", 'we"ird\\id', "ünï"])
def test_commit_event_with_event_id(event_id):
    assert json.loads(commit_event(event_id)) == {
        "type": "input_audio_buffer.commit",
        "event_id": event_id,
    }


def test_clear_event():
    assert json.loads(clear_event()) == {"type": "input_audio_buffer.clear"}


def test_dumps_event_is_compact_and_keeps_non_ascii():
    text = dumps_event({"type": "session.update", "session": {"prompt": "Grüße"}})
    assert text == '{"type":"session.update","session":{"prompt":"Grüße"}}'


def test_all_names_are_exported():
    for name in ev.__all__:
        assert hasattr(ev, name), name


# -- numbers JSON (or Python's json) allows but a float or an int cannot hold ----------------------

_BIG = "1" + "0" * 400  # a valid JSON integer too large for a float
EXTREMES = {
    "1e999": "1e999",
    "-1e999": "-1e999",
    "NaN": "NaN",
    "Infinity": "Infinity",
    "huge-int": _BIG,
    "-huge-int": "-" + _BIG,
}
T = "conversation.item.input_audio_transcription."
NUMERIC_FIELDS = {
    # location -> (template with %s for the number, dotted field path)
    "speech_started.audio_start_ms": (
        '{"type":"input_audio_buffer.speech_started","item_id":"i","audio_start_ms":%s}',
        "audio_start_ms",
    ),
    "speech_stopped.audio_end_ms": (
        '{"type":"input_audio_buffer.speech_stopped","item_id":"i","audio_end_ms":%s}',
        "audio_end_ms",
    ),
    "delta.content_index": (
        '{"type":"' + T + 'delta","item_id":"i","delta":"x","content_index":%s}',
        "content_index",
    ),
    "delta.logprobs.logprob": (
        '{"type":"' + T + 'delta","item_id":"i","delta":"x",'
        '"logprobs":[{"token":"a","logprob":%s}]}',
        "logprobs",
    ),
    "completed.logprobs.logprob": (
        '{"type":"' + T + 'completed","item_id":"i","transcript":"x",'
        '"logprobs":[{"token":"a","logprob":%s}]}',
        "logprobs",
    ),
    "completed.usage.seconds": (
        '{"type":"' + T + 'completed","item_id":"i","transcript":"x",'
        '"usage":{"type":"duration","seconds":%s}}',
        "usage.seconds",
    ),
    "completed.usage.input_tokens": (
        '{"type":"' + T + 'completed","item_id":"i","transcript":"x",'
        '"usage":{"type":"tokens","input_tokens":%s}}',
        "usage.input_tokens",
    ),
    "completed.usage.output_tokens": (
        '{"type":"' + T + 'completed","item_id":"i","transcript":"x",'
        '"usage":{"type":"tokens","output_tokens":%s}}',
        "usage.output_tokens",
    ),
    "completed.usage.total_tokens": (
        '{"type":"' + T + 'completed","item_id":"i","transcript":"x",'
        '"usage":{"type":"tokens","total_tokens":%s}}',
        "usage.total_tokens",
    ),
    "completed.usage.input_token_details.audio_tokens": (
        '{"type":"' + T + 'completed","item_id":"i","transcript":"x",'
        '"usage":{"type":"tokens","input_token_details":{"audio_tokens":%s}}}',
        "usage.input_token_details.audio_tokens",
    ),
    "failed.content_index": (
        '{"type":"' + T + 'failed","item_id":"i","error":{"type":"x"},"content_index":%s}',
        "content_index",
    ),
    "segment.start": ('{"type":"' + T + 'segment","item_id":"i","text":"x","start":%s}', "start"),
    "segment.end": ('{"type":"' + T + 'segment","item_id":"i","text":"x","end":%s}', "end"),
}


def _extreme_cases():
    for location, (template, path) in NUMERIC_FIELDS.items():
        for name, number in EXTREMES.items():
            yield pytest.param(template % number, path, id=f"{location}={name}")


@pytest.mark.parametrize("text, path", list(_extreme_cases()))
def test_extreme_numbers_give_an_event_or_a_parse_error_naming_the_field(text, path):
    try:
        event = parse(text)
    except EventParseError as e:
        assert e.field == path
    else:
        # accepted: every number kept in the event is finite
        for value in dataclasses.astuple(event):
            if isinstance(value, float):
                assert value == value and abs(value) != float("inf")


def test_deeply_nested_json_raises_event_parse_error():
    with pytest.raises(EventParseError):
        parse("[" * 100_000)
    with pytest.raises(EventParseError):
        parse('{"type":"error","error":' + "[" * 100_000 + "]" * 100_000 + "}")


# -- to_wire: the inverse of parse and parse_client (round-trip properties) ----------------------

ROUND_TRIPS = settings(max_examples=60, deadline=None)

texts = st.text(max_size=10)
ids = st.none() | texts
counts = st.integers(min_value=0, max_value=2**53)
finite = st.floats(min_value=-(2.0**53), max_value=2.0**53, allow_nan=False, allow_infinity=False)
json_leaves = (
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | finite | st.text(max_size=6)
)
json_objects = st.dictionaries(
    st.text(max_size=6),
    st.recursive(
        json_leaves,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
        max_leaves=6,
    ),
    max_size=4,
)
logprobs = st.none() | st.lists(st.builds(LogProb, texts, finite), max_size=3).map(tuple)
error_infos = st.builds(ErrorInfo, st.text(min_size=1, max_size=8), ids, texts, ids, ids)
usages = (
    st.none()
    | st.builds(DurationUsage, finite)
    | st.builds(
        lambda a, b, extra, audio, text: TokenUsage(a, b, a + b + extra, audio, text),
        counts.filter(lambda n: n < 2**50),
        counts.filter(lambda n: n < 2**50),
        st.integers(0, 2**50).filter(lambda n: n > 0) | st.just(0),
        counts,
        counts,
    ).filter(lambda u: u.total_tokens or not (u.input_tokens or u.output_tokens))
)


@st.composite
def conversation_items(draw):
    item_id = draw(texts)
    item = draw(st.just({}) | json_objects.map(lambda d: {**d, "id": item_id}))
    etype = draw(st.sampled_from(["added", "done", "created"]))
    return ConversationItem(f"conversation.item.{etype}", item_id, item, draw(ids), draw(ids))


KNOWN_SERVER_TYPES = {
    "session.created",
    "transcription_session.created",
    "session.updated",
    "transcription_session.updated",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared",
    "input_audio_buffer.partial_transcription",
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.created",
    DELTA,
    COMPLETED,
    FAILED,
    SEGMENT,
    "error",
    "transcription.delta",  # vLLM's (docs/protocol.md §7)
    "transcription.done",
}
unknown_types = texts.filter(lambda t: t not in KNOWN_SERVER_TYPES)

SERVER_STRATEGIES = {
    SessionCreated: st.builds(
        SessionCreated,
        json_objects,
        ids,
        st.sampled_from(["session.created", "transcription_session.created"]),
    ),
    SessionUpdated: st.builds(
        SessionUpdated,
        json_objects,
        ids,
        st.sampled_from(["session.updated", "transcription_session.updated"]),
    ),
    SpeechStarted: st.builds(SpeechStarted, texts, st.integers(-(2**53), 2**53), ids),
    SpeechStopped: st.builds(SpeechStopped, texts, st.integers(-(2**53), 2**53), ids),
    AudioBufferCommitted: st.builds(AudioBufferCommitted, texts, ids, ids),
    AudioBufferCleared: st.builds(AudioBufferCleared, ids),
    ConversationItem: conversation_items(),
    TranscriptionDelta: st.builds(TranscriptionDelta, ids, texts, st.integers(0, 9), logprobs, ids),
    TranscriptionCompleted: st.builds(
        TranscriptionCompleted,
        texts,
        texts,
        st.integers(0, 9),
        logprobs,
        st.none() | st.lists(texts, max_size=3).map(tuple),
        usages,
        ids,
    ),
    TranscriptionFailed: st.builds(TranscriptionFailed, texts, error_infos, st.integers(0, 9), ids),
    TranscriptionSegment: st.builds(
        TranscriptionSegment, texts, texts, texts, ids, finite, finite, ids
    ),
    PartialTranscription: st.builds(PartialTranscription, ids, texts, ids),
    ErrorEvent: st.builds(ErrorEvent, error_infos, ids),
    VllmSessionCreated: st.builds(VllmSessionCreated, texts, counts, ids),
    VllmTranscriptionDelta: st.builds(VllmTranscriptionDelta, texts, ids),
    VllmTranscriptionDone: st.builds(VllmTranscriptionDone, texts, st.none() | json_objects, ids),
    UnknownEvent: unknown_types.flatmap(
        lambda t: json_objects.map(lambda d: UnknownEvent(t, {**d, "type": t}))
    ),
}


def test_every_server_event_type_has_a_round_trip_strategy():
    assert set(SERVER_STRATEGIES) == set(typing.get_args(ev.ServerEvent))


@pytest.mark.parametrize("cls", list(SERVER_STRATEGIES), ids=lambda c: c.__name__)
@ROUND_TRIPS
@given(data=st.data())
def test_parse_inverts_to_wire_for_every_server_event(cls, data):
    event = data.draw(SERVER_STRATEGIES[cls])
    assert type(event) is cls
    text = to_wire(event)
    assert parse(text) == event
    assert parse(text.encode()) == event


CLIENT_STRATEGIES = {
    UpdateSession: st.builds(
        UpdateSession,
        json_objects,
        st.sampled_from(["session.update", "transcription_session.update"]),
        ids,
    ),
    AppendAudio: st.builds(AppendAudio, st.binary(max_size=300), ids),
    CommitAudio: st.builds(
        CommitAudio, ids, st.just("input_audio_buffer.commit"), st.none() | st.booleans()
    ),
    ClearAudio: st.builds(ClearAudio, ids),
    UnknownClientEvent: texts.filter(
        lambda t: (
            t
            not in {
                "session.update",
                "transcription_session.update",
                "input_audio_buffer.append",
                "input_audio_buffer.commit",
                "input_audio_buffer.clear",
            }
        )
    ).flatmap(lambda t: json_objects.map(lambda d: UnknownClientEvent(t, {**d, "type": t}))),
}


def test_every_client_event_type_has_a_round_trip_strategy():
    assert set(CLIENT_STRATEGIES) == set(typing.get_args(ev.ClientEvent))


@pytest.mark.parametrize("cls", list(CLIENT_STRATEGIES), ids=lambda c: c.__name__)
@ROUND_TRIPS
@given(data=st.data())
def test_parse_client_inverts_to_wire_for_every_client_event(cls, data):
    event = data.draw(CLIENT_STRATEGIES[cls])
    assert type(event) is cls
    assert parse_client(to_wire(event)) == event


@given(st.binary(max_size=2000))
@ROUND_TRIPS
def test_the_fast_append_builder_is_to_wire_of_append_audio(audio):
    assert parse_client(append_event(audio)) == parse_client(to_wire(AppendAudio(audio)))
    assert parse_client(append_event(audio)) == AppendAudio(audio)
    assert append_event(audio).decode() == to_wire(AppendAudio(audio))


@pytest.mark.parametrize(
    ("text", "event"),
    [
        (commit_event(), CommitAudio()),
        (commit_event("c1"), CommitAudio("c1")),
        (clear_event(), ClearAudio()),
        (
            dumps_event({"type": "session.update", "session": {"type": "transcription"}}),
            UpdateSession({"type": "transcription"}),
        ),
    ],
)
def test_the_other_client_builders_parse_to_their_commands(text, event):
    assert parse_client(text) == event


def test_server_events_go_out_as_the_local_server_always_wrote_them():
    assert json.loads(to_wire(AudioBufferCommitted("item_002", None, "event_0003"))) == {
        "type": "input_audio_buffer.committed",
        "event_id": "event_0003",
        "item_id": "item_002",
        "previous_item_id": None,
    }
    error = json.loads(to_wire(ErrorEvent(ErrorInfo("invalid_request_error"), "event_1")))
    assert set(error["error"]) == {"type", "code", "message", "param", "event_id"}
    failed = json.loads(to_wire(TranscriptionFailed("i", ErrorInfo("server_error"), 0, "e")))
    assert set(failed["error"]) == {"type", "code", "message", "param"}
    delta = json.loads(
        to_wire(TranscriptionDelta("i", " hé", logprobs=(LogProb(" hé", -0.25),), event_id="e"))
    )
    assert delta["logprobs"] == [{"token": " hé", "logprob": -0.25, "bytes": [32, 104, 195, 169]}]
    done = json.loads(
        to_wire(
            TranscriptionCompleted(
                "i", "x", languages=("en",), usage=TokenUsage(3, 1, 4, 3, 0), event_id="e"
            )
        )
    )
    assert done["languages"] == [{"code": "en"}]
    assert done["usage"] == {
        "type": "tokens",
        "input_tokens": 3,
        "output_tokens": 1,
        "total_tokens": 4,
        "input_token_details": {"audio_tokens": 3, "text_tokens": 0},
    }


# -- parse_client: strict, naming the field --------------------------------------------------------

APPEND = "input_audio_buffer.append"


@pytest.mark.parametrize(
    ("text", "problem", "field", "event_id"),
    [
        ("{oops", "not_json", None, None),
        (b"\xff\xfe", "not_json", None, None),
        ("[1]", "not_object", None, None),
        ('{"event_id": "e1"}', "missing", "type", "e1"),
        ('{"type": null}', "missing", "type", None),
        ('{"type": 5, "event_id": "e2"}', "wrong_type", "type", "e2"),
        ('{"type": "session.update", "event_id": "u"}', "missing", "session", "u"),
        ('{"type": "session.update", "session": []}', "wrong_type", "session", None),
        ('{"type": "transcription_session.update"}', "missing", "session", None),
        (json.dumps({"type": APPEND, "event_id": "a"}), "missing", "audio", "a"),
        (json.dumps({"type": APPEND, "audio": 3}), "wrong_type", "audio", None),
        (json.dumps({"type": APPEND, "audio": "***"}), "invalid", "audio", None),
        (json.dumps({"type": APPEND, "audio": "AAA"}), "invalid", "audio", None),  # padding
        (
            json.dumps({"type": APPEND, "audio": "A" * (21 * 1024 * 1024)}),
            "too_large",
            "audio",
            None,
        ),
    ],
    ids=lambda v: str(v)[:40],
)
def test_a_malformed_client_message_names_the_problem_and_the_field(text, problem, field, event_id):
    with pytest.raises(EventParseError) as info:
        parse_client(text)
    assert (info.value.problem, info.value.field, info.value.event_id) == (
        problem,
        field,
        event_id,
    )
    assert len(str(info.value)) < 200


def test_a_mistyped_type_is_kept_as_the_errors_value():
    with pytest.raises(EventParseError) as info:
        parse_client('{"type": 5}')
    assert info.value.value == 5


def test_decoded_audio_over_the_limit_is_too_large():
    audio = base64.b64encode(b"\0" * (ev.MAX_APPEND_BYTES + 3)).decode()
    with pytest.raises(EventParseError) as info:
        parse_client(json.dumps({"type": APPEND, "audio": audio, "event_id": "big"}))
    assert (info.value.problem, info.value.event_id) == ("too_large", "big")
    ok = base64.b64encode(b"\1" * ev.MAX_APPEND_BYTES).decode()
    assert len(parse_client(json.dumps({"type": APPEND, "audio": ok})).audio) == ev.MAX_APPEND_BYTES


@pytest.mark.parametrize(
    ("raw", "event"),
    [
        ({"type": "input_audio_buffer.commit", "event_id": 7}, CommitAudio()),  # id ignored
        (
            {"type": "response.create"},
            UnknownClientEvent("response.create", {"type": "response.create"}),
        ),
        ({"type": ""}, UnknownClientEvent("", {"type": ""})),
        ({"type": APPEND, "audio": ""}, AppendAudio(b"")),
    ],
)
def test_parse_client_commands_and_unknown_events(raw, event):
    assert parse_client(json.dumps(raw)) == event
