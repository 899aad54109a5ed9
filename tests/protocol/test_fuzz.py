"""Property tests: parse() and parse_client() only ever raise EventParseError (and a parsed client
command survives to_wire); the TranscriptAssembler survives any
sequence of valid events and keeps its bookkeeping bounded.

Numbers are kept finite and within float range here: non-finite and huge numbers are pinned
separately (test_events.py,
test_extreme_numbers_give_an_event_or_a_parse_error_naming_the_field)."""

from __future__ import annotations

import json
import math
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livekit.plugins.openai_stt.protocol import events as ev
from livekit.plugins.openai_stt.protocol.events import EventParseError, parse
from livekit.plugins.openai_stt.protocol.transcript import (
    CommittedOut,
    FailureOut,
    FinalOut,
    InterimOut,
    TranscriptAssembler,
    UsageOut,
)

# FUZZ_EXAMPLES=5000 for a longer local search; the default keeps the suite fast
SETTINGS = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# -- parse ------------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)

KNOWN_TYPES = [
    "session.created",
    "transcription_session.created",
    "session.updated",
    "transcription_session.updated",
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "input_audio_buffer.cleared",
    "conversation.item.added",
    "conversation.item.done",
    "conversation.item.created",
    "conversation.item.input_audio_transcription.delta",
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
    "conversation.item.input_audio_transcription.segment",
    "input_audio_buffer.partial_transcription",
    "error",
]


small_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=3), inner, max_size=2)
    ),
    max_leaves=3,
)


def _shaped(keys: list[str]) -> st.SearchStrategy:
    """A dict with some of ``keys``, each holding any JSON value (plausible shapes, bad types)."""
    return st.fixed_dictionaries({}, optional={k: scalars for k in keys})


FIELDS = {
    "item_id": st.text(max_size=4) | small_values,
    "event_id": small_values,
    "audio_start_ms": small_values,
    "audio_end_ms": small_values,
    "previous_item_id": small_values,
    "item": _shaped(["id", "type", "role", "content"]) | small_values,
    "delta": st.text(max_size=6) | small_values,
    "content_index": small_values,
    "logprobs": st.lists(_shaped(["token", "logprob", "bytes"]) | small_values, max_size=3)
    | small_values,
    "transcript": st.text(max_size=6) | small_values,
    "languages": st.lists(_shaped(["code"]) | small_values, max_size=3) | small_values,
    "usage": _shaped(
        ["type", "seconds", "input_tokens", "output_tokens", "total_tokens", "input_token_details"]
    )
    | small_values,
    "error": _shaped(["type", "code", "message", "param", "event_id"]) | small_values,
    "id": small_values,
    "speaker": small_values,
    "start": small_values,
    "end": small_values,
    "text": st.text(max_size=6) | small_values,
    "session": small_values,
}
known_shaped_events = st.fixed_dictionaries({"type": st.sampled_from(KNOWN_TYPES)}, optional=FIELDS)


def _parse_or_parse_error(text):
    try:
        event = parse(text)
    except EventParseError as e:
        assert e.field is None or isinstance(e.field, str)
        return None
    assert isinstance(event, ev.ServerEvent.__args__)  # type: ignore[attr-defined]
    return event


@SETTINGS
@given(st.text())
def test_parse_of_arbitrary_text_raises_only_event_parse_error(text):
    _parse_or_parse_error(text)


@SETTINGS
@given(st.binary())
def test_parse_of_arbitrary_bytes_raises_only_event_parse_error(data):
    _parse_or_parse_error(data)


@SETTINGS
@given(json_values)
def test_parse_of_arbitrary_json_values_raises_only_event_parse_error(value):
    _parse_or_parse_error(json.dumps(value))


@SETTINGS
@given(known_shaped_events)
def test_parse_of_known_types_with_arbitrary_fields_raises_only_event_parse_error(obj):
    event = _parse_or_parse_error(json.dumps(obj))
    if event is not None:
        assert event.type == obj["type"]
        assert not isinstance(event, ev.UnknownEvent)


# -- parse_client (the local server's reader) ----------------------------------------------------

CLIENT_TYPES = [
    "session.update",
    "transcription_session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "response.create",
]
client_shaped = st.fixed_dictionaries(
    {"type": st.sampled_from(CLIENT_TYPES) | small_values},
    optional={
        "event_id": small_values,
        "session": small_values | st.dictionaries(st.text(max_size=4), small_values),
        "audio": st.text(max_size=12) | small_values,
    },
)


def _parse_client_or_error(text):
    try:
        event = ev.parse_client(text)
    except EventParseError as e:
        assert e.problem in {
            "not_json",
            "not_object",
            "missing",
            "wrong_type",
            "invalid",
            "too_large",
        }
        assert e.field in (None, "type", "session", "audio")
        return None
    assert isinstance(event, ev.ClientEvent.__args__)  # type: ignore[attr-defined]
    assert ev.parse_client(ev.to_wire(event)) == event
    return event


@SETTINGS
@given(st.text() | st.binary() | json_values.map(json.dumps) | client_shaped.map(json.dumps))
def test_parse_client_of_anything_raises_only_event_parse_error_and_round_trips(text):
    _parse_client_or_error(text)


# -- assembler ----------------------------------------------------------------------------------

IDS = ["item_1", "item_2", "item_3"]
ids = st.sampled_from(IDS)
maybe_ids = st.none() | ids
small_text = st.text(alphabet="ab ", max_size=3)
logprobs = st.none() | st.lists(
    st.builds(ev.LogProb, st.just("t"), st.floats(min_value=-30, max_value=0.5)), max_size=3
).map(tuple)
usages = (
    st.none()
    | st.builds(ev.DurationUsage, st.floats(0, 100))
    | st.builds(
        ev.TokenUsage,
        st.integers(0, 500),
        st.integers(0, 50),
        st.integers(0, 550),
        st.integers(0, 500),
        st.integers(0, 50),
    )
)
ms = st.integers(0, 60_000)

server_events = st.one_of(
    st.builds(ev.TranscriptionDelta, maybe_ids, small_text, logprobs=logprobs),
    st.builds(ev.PartialTranscription, maybe_ids, small_text),
    st.builds(ev.AudioBufferCommitted, ids, st.none() | ids),
    st.builds(
        ev.TranscriptionCompleted,
        ids,
        small_text,
        logprobs=logprobs,
        languages=st.none() | st.lists(st.sampled_from(["en", "fr"]), max_size=2).map(tuple),
        usage=usages,
    ),
    st.builds(ev.TranscriptionFailed, ids, st.just(ev.ErrorInfo("server_error", message="x"))),
    st.builds(ev.SpeechStarted, ids, ms),
    st.builds(ev.SpeechStopped, ids, ms),
    st.builds(ev.AudioBufferCleared),
    st.builds(ev.UnknownEvent, st.just("x"), st.just({"type": "x"})),
)
steps = st.one_of(
    server_events.map(lambda e: ("receive", e)),
    st.floats(0.0, 2.0).map(lambda dt: ("commit_sent", dt)),
    st.floats(0.0, 2.0).map(lambda dt: ("begin_session", dt)),
    st.just(("abandon", None)),
    ids.map(lambda i: ("expire", i)),
)


@SETTINGS
@given(st.lists(steps, max_size=40), st.sampled_from([None, "en"]))
def test_assembler_survives_any_event_sequence_and_stays_bounded(sequence, language):
    asm = TranscriptAssembler(language)
    clock = 0.0  # the stream's audio clock only moves forward
    seen_ids: set[str] = set()
    finals_this_session: set[str] = set()
    for op, arg in sequence:
        if op == "receive":
            item_id = getattr(arg, "item_id", None)
            if isinstance(item_id, str) and not isinstance(arg, ev.UnknownEvent):
                seen_ids.add(item_id)
            outs = asm.receive(arg)
        elif op == "commit_sent":
            # the client commits audio it has sent, which includes all a server VAD committed
            clock = max(clock + arg, asm.committed_until_s)
            asm.commit_sent(clock)
            outs = []
        elif op == "begin_session":
            clock += arg
            asm.begin_session(clock)
            finals_this_session.clear()
            outs = []
        elif op == "abandon":
            lost = asm.abandon_unfinished()
            assert set(lost) <= seen_ids
            assert asm.unfinished_item_ids() == []
            outs = []
        else:
            outs = asm.expire(arg, ev.ErrorInfo("timeout"))

        for out in outs:
            if isinstance(out, InterimOut):
                assert out.item_id == "" or out.item_id in IDS
            if isinstance(out, (FinalOut, FailureOut)):
                # at most one ending per item id within a server session
                assert out.item_id not in finals_this_session
                finals_this_session.add(out.item_id)
                assert out.audio_start_s <= out.audio_end_s
            if isinstance(out, FinalOut):
                assert isinstance(out.text, str)  # may be empty: the turn still ends
                assert out.confidence is None or 0.0 <= out.confidence <= 1.0
            if isinstance(out, UsageOut):
                assert out.audio_seconds >= 0.0
            if isinstance(out, CommittedOut):
                assert out.audio_start_s <= out.audio_end_s

        assert len(asm._items) <= len(seen_ids) + 1
        assert asm.pending_items >= 0
        assert set(asm.unfinished_item_ids()) <= seen_ids
        assert math.isfinite(asm.retain_from_s)
        assert asm.retain_from_s <= asm.committed_until_s + 1e-9 or asm.pending_items > 0
