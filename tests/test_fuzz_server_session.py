"""Fuzzing the local server's pure session with arbitrary client frames (hypothesis).

Whatever a client sends, the session answers with well-formed server events, never raises,
and keeps its buffered audio bounded (issue 5 §7, docs/protocol.md §3). The strategies include
the shapes that once crashed a session (issue 14: JSON nested 1,000 deep, ``1e999`` / ``NaN`` /
``Infinity`` in ``turn_detection``, ``eagerness: ["low"]``, ``input_audio_format: []`` or
``{}``, odd-length pcm16): each must be refused with an ``invalid_request_error``, never a
``server_error``. A ``turn_detection`` the session confirms is one it runs (issue 12).
"""

from __future__ import annotations

import base64
import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from livekit.plugins.openai_stt.server.jobs import Recognition, TranscriptionJob
from livekit.plugins.openai_stt.server.session import ServerSession
from livekit.plugins.openai_stt.server.vllm_session import VllmSession

MAX_BUFFER_S = 2.0
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
models = st.sampled_from(
    ["gpt-realtime-whisper", "gpt-4o-transcribe", "whisper-1", "no-such-model", "", None, 7]
)
formats = st.sampled_from(
    [
        {"type": "audio/pcm", "rate": 24000},
        {"type": "audio/pcmu"},
        {"type": "audio/pcma"},
        {"type": "audio/pcm", "rate": 16000},
        {"type": "opus"},
        None,
        "pcm16",
        [],
        {},
        {"type": ["audio/pcm"]},
        {"type": "audio/pcm", "rate": float("inf")},
    ]
)
INF, NAN = float("inf"), float("nan")
turn_detection = st.sampled_from(
    [
        None,
        {"type": "server_vad"},
        {"type": "semantic_vad", "eagerness": "auto"},
        {"type": 3},
        [],
        {"type": "server_vad", "silence_duration_ms": INF},
        {"type": "server_vad", "prefix_padding_ms": NAN},
        {"type": "server_vad", "threshold": -INF},
        {"type": "server_vad", "silence_duration_ms": 1e300},
        {"type": "semantic_vad", "eagerness": ["low"]},
        {"type": "semantic_vad", "eagerness": {}},
        {"type": ["server_vad"]},
        {"type": "server_vad", "extra": [[[]]]},
    ]
)
DEEP = "[" * 1000 + "]" * 1000
RAW_TD = (
    '{"type":"session.update","session":{"type":"transcription","audio":{"input":'
    '{"turn_detection":{"type":"server_vad","silence_duration_ms":%s}}}}}'
)


def ga_update(model, fmt, td, prompt, extra) -> str:
    session = {
        "type": "transcription",
        "audio": {
            "input": {
                "format": fmt,
                "transcription": {"model": model, "prompt": prompt},
                "turn_detection": td,
            }
        },
        **extra,
    }
    return json.dumps({"type": "session.update", "session": session})


def beta_update(model, fmt, td) -> str:
    return json.dumps(
        {
            "type": "transcription_session.update",
            "session": {
                "input_audio_format": fmt,
                "input_audio_transcription": {"model": model},
                "turn_detection": td,
            },
        }
    )


frames = st.one_of(
    st.builds(
        ga_update,
        models,
        formats,
        turn_detection,
        st.none() | st.text(max_size=10),
        st.dictionaries(st.sampled_from(["include", "type", "audio"]), json_values, max_size=2),
    ),
    st.builds(
        beta_update,
        models,
        st.sampled_from(["pcm16", "g711_ulaw", "x", None, [], {}]),
        turn_detection,
    ),
    st.sampled_from(
        [
            '{"type":"session.update","session":' + DEEP + "}",
            '{"type":"session.update","session":{"a":' + DEEP + "}}",
            DEEP,
            RAW_TD % "1e999",
            RAW_TD % "NaN",
            RAW_TD % "-Infinity",
            '{"type":"session.update","session":{"input_audio_format":[]}}',
            '{"type":"session.update","session":{"input_audio_format":{}}}',
            '{"type":"input_audio_buffer.append","audio":"AQ=="}',  # one byte
        ]
    ),
    st.builds(
        lambda data: json.dumps(
            {"type": "input_audio_buffer.append", "audio": base64.b64encode(data).decode()}
        ),
        st.binary(min_size=0, max_size=9600),
    ),
    st.builds(
        lambda audio: json.dumps({"type": "input_audio_buffer.append", "audio": audio}), json_values
    ),
    st.sampled_from(
        [
            '{"type":"input_audio_buffer.commit"}',
            '{"type":"input_audio_buffer.commit","event_id":"c1"}',
            '{"type":"input_audio_buffer.clear"}',
            '{"type":"response.create"}',
            "{}",
            "[]",
            "null",
            "not json",
            '{"type":',
        ]
    ),
    st.builds(lambda obj: json.dumps({"type": "session.update", "session": obj}), json_values),
    st.builds(json.dumps, json_values),
    st.text(max_size=40),
)


@FUZZ
@given(
    st.lists(frames, max_size=30),
    st.sampled_from(["lenient", "openai", "gateway"]),
    st.sampled_from([None, "gpt-realtime-whisper"]),
)
def test_any_client_frames_give_well_formed_events_and_bounded_buffers(
    sequence, compat, query_model
):
    session = ServerSession(compat=compat, query_model=query_model, max_buffer_s=MAX_BUFFER_S)
    now = 0.0
    outputs = [session.opened(now)]
    for text in sequence:
        now += 0.05
        actions = session.receive(text, now)
        outputs.append(actions)
        for job in actions.jobs:
            if isinstance(job, TranscriptionJob):
                if job.fail:
                    outputs.append(session.transcription_failed(job))
                else:
                    outputs.append(session.transcribed(job, Recognition("fuzzed words", -0.1)))
        outputs.append(session.tick(now))
        assert session.buffered_s <= MAX_BUFFER_S + 9600 / 8000  # at most one append over
        if any(a.close is not None for a in outputs):
            break
    for actions in outputs:
        for event in actions.sent:  # the typed events as to_wire writes them
            assert isinstance(event.get("type"), str)
            json.dumps(event, allow_nan=False)  # serialisable, finite
            if event["type"] == "error":
                error = event["error"]
                assert {"type", "code", "message", "param"} <= set(error)
                assert error["type"] != "server_error", error
    confirmed = [
        e["session"]
        for a in outputs
        for e in a.sent
        if e["type"] in ("session.updated", "transcription_session.updated")
    ]
    if confirmed and not session.closed:  # the last confirmed turn detection is the one run
        last = confirmed[-1]
        ga_input = last.get("audio", {}).get("input", {})
        td = last.get("turn_detection", ga_input.get("turn_detection"))
        if td is None:
            assert not session.vad_active, last
        elif session.config.transcription_enabled:
            assert session.vad_active, last


vllm_frames = st.one_of(
    frames,
    st.sampled_from(
        [
            '{"type":"session.update","model":"voxtral"}',
            '{"type":"session.update","model":null}',
            '{"type":"input_audio_buffer.commit","final":true}',
            '{"type":"input_audio_buffer.commit","final":"maybe"}',
            '{"type":"input_audio_buffer.commit","final":1}',
        ]
    ),
    st.builds(lambda m: json.dumps({"type": "session.update", "model": m}), json_values),
    st.builds(lambda f: json.dumps({"type": "input_audio_buffer.commit", "final": f}), json_values),
)


@FUZZ
@given(st.lists(vllm_frames, max_size=30))
def test_any_client_frames_give_vllm_shaped_events_and_bounded_audio(sequence):
    session = VllmSession(max_buffer_s=MAX_BUFFER_S)
    now = 0.0
    outputs = [session.opened(now)]
    for text in sequence:
        now += 0.05
        actions = session.receive(text, now)
        outputs.append(actions)
        for job in actions.jobs:
            outputs.append(session.transcribed(job, Recognition("fuzzed words", -0.1)))
        partial = session.take_partial(now)
        if partial is not None:
            outputs.append(session.partial_transcribed(partial, Recognition("fuzzed")))
        assert session.held_s <= MAX_BUFFER_S
    for actions in outputs:
        for event in actions.sent:
            json.dumps(event, allow_nan=False)
            if event["type"] == "error":  # vLLM's: a string, the code beside it
                assert isinstance(event["error"], str) and isinstance(event["code"], str)
            if event["type"] == "transcription.done":
                assert set(event["usage"]) >= {"prompt_tokens", "completion_tokens", "total_tokens"}
