"""Pure tables for the server session: no event loop, no sockets, no clock."""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from livekit.plugins.openai_stt.protocol.events import TranscriptionCompleted, to_wire
from livekit.plugins.openai_stt.server import session as session_mod
from livekit.plugins.openai_stt.server.actions import Close, Pause
from livekit.plugins.openai_stt.server.faults import FaultCounters, Faults
from livekit.plugins.openai_stt.server.handshake import HandshakeReply, check_handshake
from livekit.plugins.openai_stt.server.jobs import Recognition, split_pieces, usage_for
from livekit.plugins.openai_stt.server.limits import sequential_ids
from livekit.plugins.openai_stt.server.session import ServerSession

PCM_24K_BYTES_PER_MS = 48


def ev(type_: str, **fields: Any) -> str:
    return json.dumps({"type": type_, **fields})


def append(ms: float, byte_per_ms: int = PCM_24K_BYTES_PER_MS) -> str:
    if byte_per_ms == PCM_24K_BYTES_PER_MS:
        audio = b"\x01\x00" * int(ms * byte_per_ms / 2)
    else:
        audio = b"\xff" * int(ms * byte_per_ms)
    return ev("input_audio_buffer.append", audio=base64.b64encode(audio).decode())


def ga_update(**input_fields: Any) -> str:
    return ev("session.update", session={"type": "transcription", "audio": {"input": input_fields}})


def opened(**kwargs: Any) -> ServerSession:
    s = ServerSession(new_id=sequential_ids(), **kwargs)
    s.opened(0.0)
    return s


def types(events: list[Any]) -> list[str]:
    return [e["type"] for e in events if isinstance(e, dict)]


# ---------------------------------------------------------------------------------- purity


def test_session_module_imports_no_asyncio_websockets_livekit_or_clock() -> None:
    tree = ast.parse(Path(session_mod.__file__).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & {"asyncio", "websockets", "livekit", "time", "datetime", "threading"}


# ---------------------------------------------------------------------------------- handshake


@pytest.mark.parametrize(
    ("path", "headers", "api_key", "expected"),
    [
        ("/health", {}, None, HandshakeReply(200, "ok\n")),
        ("/v1/realtime?intent=transcription", {"Authorization": "Bearer x"}, None, None),
        ("/realtime", {"authorization": "Bearer x"}, None, None),
        ("/openai/v1/realtime", {"api-key": "k"}, "k", None),
        ("/v1/realtime", {"Authorization": "Bearer k"}, "k", None),
        ("/v1/other", {"Authorization": "Bearer x"}, None, 404),
        ("/v1/realtime", {}, None, 401),
        ("/v1/realtime", {"Authorization": "Bearer "}, None, 401),
        ("/v1/realtime", {"Authorization": "Basic x"}, None, 401),
        ("/v1/realtime", {"Authorization": "Bearer wrong"}, "k", 401),
        ("/v1/realtime", {"api-key": "wrong"}, "k", 401),
    ],
)
def test_handshake_routes_health_path_and_bearer_or_api_key_auth(
    path: str, headers: dict[str, str], api_key: str | None, expected: Any
) -> None:
    reply = check_handshake(path=path, headers=headers, api_key=api_key)
    if isinstance(expected, int):
        assert reply is not None and reply.status == expected
    else:
        assert reply == expected


def test_handshake_reply_never_contains_the_api_key() -> None:
    reply = check_handshake(
        path="/v1/realtime", headers={"Authorization": "Bearer sk-wrong"}, api_key="sk-secret"
    )
    assert reply is not None and "sk-" not in reply.body


def test_reject_handshake_fault_rejects_only_the_first_n_attempts() -> None:
    faults = Faults(reject_handshake_status=429, reject_handshakes=2)
    counters = FaultCounters()
    statuses = [
        check_handshake(
            path="/v1/realtime",
            headers={"Authorization": "Bearer x"},
            api_key=None,
            faults=faults,
            counters=counters,
        )
        for _ in range(3)
    ]
    assert [r.status if r else None for r in statuses] == [429, 429, None]


def test_reject_handshake_fault_without_a_count_rejects_every_attempt() -> None:
    faults, counters = Faults(reject_handshake_status=500), FaultCounters()
    for _ in range(5):
        reply = check_handshake(
            path="/v1/realtime", headers={}, api_key=None, faults=faults, counters=counters
        )
        assert reply is not None and reply.status == 500


# ---------------------------------------------------------------------------------- opening


def test_opening_sends_session_created_with_the_effective_ga_config() -> None:
    s = ServerSession(session_id="sess_x")
    (created,) = s.opened(0.0).sent
    assert created["type"] == "session.created"
    assert created["session"]["type"] == "transcription"
    assert created["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert created["session"]["id"] == "sess_x"


@pytest.mark.parametrize(
    ("compat", "query_model", "beta", "close"),
    [
        ("lenient", None, False, None),
        ("lenient", "gpt-realtime-whisper", True, None),
        ("openai", None, True, Close(4000, "beta_api_shape_disabled")),
        ("openai", None, False, None),
        ("gateway", None, False, Close(1008, "model query parameter is required")),
        ("gateway", "gpt-realtime-whisper", False, None),
    ],
)
def test_opening_applies_compat_rules_for_beta_header_and_model_query(
    compat: str, query_model: str | None, beta: bool, close: Close | None
) -> None:
    actions = ServerSession(compat=compat, query_model=query_model, openai_beta=beta).opened(0.0)
    assert actions.close == close
    if close is None:
        assert len(actions.sent) == 1


def test_beta_header_in_lenient_mode_opens_a_beta_dialect_session() -> None:
    (created,) = ServerSession(openai_beta=True).opened(0.0).sent
    assert created["type"] == "transcription_session.created"
    assert created["session"]["input_audio_format"] == "pcm16"


# ---------------------------------------------------------------------------------- session.update


def test_session_update_keeps_left_out_fields_and_null_clears() -> None:
    s = opened()
    s.receive(
        ga_update(
            transcription={"model": "whisper-1", "language": "en", "prompt": "hi"},
            noise_reduction={"type": "near_field"},
        ),
        0.0,
    )
    (updated,) = s.receive(ga_update(transcription={"language": None}), 0.0).sent
    assert updated["type"] == "session.updated"
    inp = updated["session"]["audio"]["input"]
    assert inp["transcription"] == {"model": "whisper-1", "language": None, "prompt": "hi"}
    assert inp["noise_reduction"] == {"type": "near_field"}
    (updated,) = s.receive(ga_update(noise_reduction=None), 0.0).sent
    assert updated["session"]["audio"]["input"]["noise_reduction"] is None
    assert "event_id" in updated and updated["event_id"] != "client"


def test_session_update_sets_include_and_format() -> None:
    s = opened()
    body = {
        "type": "transcription",
        "include": ["item.input_audio_transcription.logprobs"],
        "audio": {"input": {"format": {"type": "audio/pcmu"}}},
    }
    (updated,) = s.receive(ev("session.update", session=body), 0.0).sent
    assert updated["session"]["include"] == ["item.input_audio_transcription.logprobs"]
    assert updated["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert s.config.sample_rate_hz == 8000 and s.config.logprobs


@pytest.mark.parametrize(
    ("session_body", "code", "param"),
    [
        ({"type": "realtime"}, "invalid_value", "session.type"),
        (
            {"audio": {"input": {"format": {"type": "audio/opus"}}}},
            "invalid_value",
            "session.audio.input.format.type",
        ),
        (
            {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 11025}}}},
            "invalid_value",
            "session.audio.input.format.rate",
        ),
        (
            {"audio": {"input": {"transcription": {"delay": "never"}}}},
            "invalid_value",
            "session.audio.input.transcription.delay",
        ),
        (
            {"audio": {"input": {"transcription": {"model": 3}}}},
            "invalid_type",
            "session.audio.input.transcription.model",
        ),
        ({"include": "logprobs"}, "invalid_type", "session.include"),
    ],
)
def test_invalid_session_update_is_a_nonfatal_error_and_changes_nothing(
    session_body: dict[str, Any], code: str, param: str
) -> None:
    s = opened()
    before = s.config
    actions = s.receive(
        json.dumps({"type": "session.update", "event_id": "u1", "session": session_body}), 0.0
    )
    (error,) = actions.sent
    assert error["type"] == "error"
    assert error["error"]["code"] == code and error["error"]["param"] == param
    assert error["error"]["event_id"] == "u1"
    assert set(error["error"]) == {"type", "code", "message", "param", "event_id"}
    assert actions.close is None and s.config == before


def test_beta_transcription_session_update_is_answered_in_the_beta_shape() -> None:
    s = opened()
    body = {
        "input_audio_format": "g711_alaw",
        "input_audio_transcription": {"model": "gpt-4o-transcribe", "language": "en"},
    }
    (updated,) = s.receive(ev("transcription_session.update", session=body), 0.0).sent
    assert updated["type"] == "transcription_session.updated"
    assert updated["session"]["input_audio_format"] == "g711_alaw"
    assert updated["session"]["input_audio_transcription"]["model"] == "gpt-4o-transcribe"
    assert s.config.format_type == "audio/pcma"


def test_flat_speaches_shape_inside_session_update_is_accepted_in_lenient_mode() -> None:
    s = opened()
    body = {"input_audio_transcription": {"model": "whisper-1"}}
    (updated,) = s.receive(ev("session.update", session=body), 0.0).sent
    assert updated["type"] == "session.updated"
    assert updated["session"]["input_audio_transcription"]["model"] == "whisper-1"


# ---------------------------------------------------------------------------------- compat openai


def test_openai_compat_model_query_fails_first_update_with_invalid_model_then_closes_4000() -> None:
    s = opened(compat="openai", query_model="gpt-realtime-whisper")
    actions = s.receive(
        json.dumps(
            {"type": "session.update", "event_id": "e1", "session": {"type": "transcription"}}
        ),
        0.0,
    )
    (error,) = actions.sent
    assert error["error"]["code"] == "invalid_model"
    assert error["error"]["message"] == (
        'Model "gpt-realtime-whisper" is not supported in transcription mode.'
    )
    assert error["error"]["event_id"] == "e1"
    assert actions.close == Close(4000, "invalid_model")
    assert s.receive(append(200), 0.0).sent == []


@pytest.mark.parametrize(
    ("input_fields", "code"),
    [
        (
            {
                "transcription": {"model": "gpt-realtime-whisper"},
                "turn_detection": {"type": "server_vad"},
            },
            "unsupported_turn_detection",
        ),
        (
            {"transcription": {"model": "gpt-realtime-whisper", "prompt": "names"}},
            "unsupported_prompt",
        ),
        ({"transcription": {"model": "my-model"}}, "invalid_value"),
    ],
)
def test_openai_compat_rejects_what_the_model_does_not_accept_without_closing(
    input_fields: dict[str, Any], code: str
) -> None:
    s = opened(compat="openai")
    actions = s.receive(ga_update(**input_fields), 0.0)
    (error,) = actions.sent
    assert error["error"]["code"] == code
    assert error["error"]["type"] == "invalid_request_error"
    assert actions.close is None and not s.closed


def test_turn_detection_message_for_gpt_realtime_whisper_is_the_documented_one() -> None:
    s = opened(compat="openai")
    (error,) = s.receive(ga_update(turn_detection={"type": "semantic_vad"}), 0.0).sent
    message = error["error"]["message"]
    assert message == "Turn detection is not supported for this transcription model"


@pytest.mark.parametrize("compat", ["lenient", "gateway"])
def test_lenient_and_gateway_accept_any_model_prompt_and_turn_detection(compat: str) -> None:
    s = opened(compat=compat, query_model="x")
    actions = s.receive(
        ga_update(
            transcription={"model": "my-model", "prompt": "p"},
            turn_detection={"type": "server_vad"},
        ),
        0.0,
    )
    assert types(actions.sent) == ["session.updated"]


def test_openai_compat_treats_the_beta_update_as_an_unknown_event() -> None:
    s = opened(compat="openai")
    (error,) = s.receive(ev("transcription_session.update", session={}), 0.0).sent
    assert error["error"]["code"] == "invalid_value" and error["error"]["param"] == "type"


# ---------------------------------------------------------------------------------- audio + commit


@pytest.mark.parametrize(
    ("appended_ms", "committed"),
    [(0, False), (50, False), (99, False), (100, True), (1500, True)],
)
def test_a_commit_needs_at_least_100ms_buffered(appended_ms: int, committed: bool) -> None:
    s = opened()
    if appended_ms:
        assert s.receive(append(appended_ms), 0.0).sent == []
    actions = s.receive(json.dumps({"type": "input_audio_buffer.commit", "event_id": "c9"}), 0.0)
    if committed:
        assert types(actions.sent) == ["input_audio_buffer.committed"]
        assert len(actions.jobs) == 1
        assert actions.jobs[0].duration_s == pytest.approx(appended_ms / 1000)
    else:
        (error,) = actions.sent
        assert error["error"]["code"] == "input_audio_buffer_commit_empty"
        assert error["error"]["type"] == "invalid_request_error"
        assert error["error"]["event_id"] == "c9"
        assert actions.jobs == [] and actions.close is None


def test_commits_get_unique_item_ids_chained_by_previous_item_id() -> None:
    s = opened()
    committed = []
    for _ in range(3):
        s.receive(append(200), 0.0)
        committed += s.receive(ev("input_audio_buffer.commit"), 0.0).sent
    assert [c["item_id"] for c in committed] == ["item_001", "item_002", "item_003"]
    assert [c["previous_item_id"] for c in committed] == [None, "item_001", "item_002"]


def test_clear_empties_the_buffer_and_answers_cleared() -> None:
    s = opened()
    s.receive(append(500), 0.0)
    assert types(s.receive(ev("input_audio_buffer.clear"), 0.0).sent) == [
        "input_audio_buffer.cleared"
    ]
    (error,) = s.receive(ev("input_audio_buffer.commit"), 0.0).sent
    assert error["error"]["code"] == "input_audio_buffer_commit_empty"


@pytest.mark.parametrize(("fmt", "bytes_per_ms"), [("audio/pcmu", 8), ("audio/pcma", 8)])
def test_g711_item_duration_is_one_byte_per_sample_at_8khz(fmt: str, bytes_per_ms: int) -> None:
    s = opened()
    s.receive(ga_update(format={"type": fmt}), 0.0)
    s.receive(append(250, bytes_per_ms), 0.0)
    (job,) = s.receive(ev("input_audio_buffer.commit"), 0.0).jobs
    assert job.format_type == fmt and job.rate == 8000
    assert job.duration_s == pytest.approx(0.25)


def test_append_over_15_mib_is_rejected_with_an_error() -> None:
    s = opened()
    big = base64.b64encode(b"\0" * (15 * 1024 * 1024 + 2)).decode()
    actions = s.receive(ev("input_audio_buffer.append", audio=big, event_id="a1"), 0.0)
    (error,) = actions.sent
    assert error["error"]["code"] == "input_audio_buffer_append_too_large"
    assert error["error"]["event_id"] == "a1" and s.buffered_s == 0


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ('{"event_id": "x"}', "missing_required_parameter"),
        ('{"type": "response.create"}', "invalid_value"),
        ('{"type": "input_audio_buffer.append"}', "missing_required_parameter"),
        ('{"type": "input_audio_buffer.append", "audio": "***"}', "invalid_value"),
        ('{"type": "session.update"}', "missing_required_parameter"),
    ],
)
def test_bad_client_messages_get_an_error_event_and_the_session_goes_on(
    text: str, code: str
) -> None:
    s = opened()
    actions = s.receive(text, 0.0)
    (error,) = actions.sent
    assert error["type"] == "error" and error["error"]["code"] == code
    assert error["error"]["type"] == "invalid_request_error"
    assert actions.close is None and not s.closed


# ---------------------------------------------------------------------------------- results


def test_split_pieces_concatenate_back_to_the_transcript() -> None:
    for text in ["Hello there.", "", "one", " lead", "a  b ", "trailing "]:
        assert "".join(split_pieces(text)) == text
    assert split_pieces("Ask not what") == ["Ask", " not", " what"]


@pytest.mark.parametrize(
    ("model", "usage"),
    [
        ("gpt-realtime-whisper", {"type": "duration", "seconds": 2.5}),
        ("gpt-live-transcribe", {"type": "duration", "seconds": 2.5}),
        ("gpt-transcribe", {"type": "duration", "seconds": 2.5}),
        ("some-local-model", {"type": "duration", "seconds": 2.5}),
        (
            "gpt-4o-transcribe",
            {
                "type": "tokens",
                "input_tokens": 25,
                "output_tokens": 3,
                "total_tokens": 28,
                "input_token_details": {"audio_tokens": 25, "text_tokens": 0},
            },
        ),
        (
            "gpt-4o-mini-transcribe",
            {
                "type": "tokens",
                "input_tokens": 25,
                "output_tokens": 3,
                "total_tokens": 28,
                "input_token_details": {"audio_tokens": 25, "text_tokens": 0},
            },
        ),
        (
            "whisper-1",
            {
                "type": "tokens",
                "input_tokens": 25,
                "output_tokens": 3,
                "total_tokens": 28,
                "input_token_details": {"audio_tokens": 25, "text_tokens": 0},
            },
        ),
    ],
)
def test_usage_is_duration_or_tokens_by_model(model: str, usage: dict[str, Any]) -> None:
    completed = TranscriptionCompleted("i", "x", usage=usage_for(model, 2.5, "Hello there"))
    assert json.loads(to_wire(completed))["usage"] == usage


def commit_one(s: ServerSession, ms: int = 1000) -> Any:
    s.receive(append(ms), 0.0)
    (job,) = s.receive(ev("input_audio_buffer.commit"), 0.0).jobs
    return job


def test_transcribed_item_sends_word_deltas_then_completed_with_usage() -> None:
    s = opened()
    job = commit_one(s, 1500)
    events = s.transcribed(job, Recognition("Ask not what")).sent
    assert types(events) == ["conversation.item.input_audio_transcription.delta"] * 3 + [
        "conversation.item.input_audio_transcription.completed"
    ]
    assert "".join(e["delta"] for e in events[:-1]) == "Ask not what"
    done = events[-1]
    assert done["item_id"] == job.item_id and done["content_index"] == 0
    assert done["transcript"] == "Ask not what"
    assert done["usage"] == {"type": "duration", "seconds": 1.5}
    assert all("logprobs" not in e for e in events)


def test_logprobs_appear_on_deltas_and_completed_only_when_included() -> None:
    s = opened()
    body = {"type": "transcription", "include": ["item.input_audio_transcription.logprobs"]}
    s.receive(ev("session.update", session=body), 0.0)
    job = commit_one(s)
    events = s.transcribed(job, Recognition("Hi there", -0.25)).sent
    assert events[0]["logprobs"] == [{"token": "Hi", "logprob": -0.25, "bytes": [72, 105]}]
    assert [lp["token"] for lp in events[-1]["logprobs"]] == ["Hi", " there"]


def test_engine_prompt_carries_client_prompt_and_previous_transcript() -> None:
    s = opened()
    s.receive(ga_update(transcription={"prompt": "Dickens."}), 0.0)
    first = commit_one(s)
    assert s.engine_prompt(first) == "Dickens."
    s.transcribed(first, Recognition("It was the best of times."))
    second = commit_one(s)
    assert s.engine_prompt(second) == "Dickens. It was the best of times."


def test_transcription_failed_event_has_a_server_error_naming_the_item() -> None:
    s = opened()
    job = commit_one(s)
    (failed,) = s.transcription_failed(job).sent
    assert failed["type"] == "conversation.item.input_audio_transcription.failed"
    assert failed["error"] == {
        "type": "server_error",
        "code": None,
        "param": None,
        "message": f"Input transcription failed for item '{job.item_id}'.",
    }


def test_transcription_disabled_by_null_commits_without_a_job() -> None:
    s = opened()
    s.receive(ga_update(transcription=None), 0.0)
    s.receive(append(300), 0.0)
    actions = s.receive(ev("input_audio_buffer.commit"), 0.0)
    assert types(actions.sent) == ["input_audio_buffer.committed"] and actions.jobs == []


# ---------------------------------------------------------------------------------- faults + cap


def test_fail_items_marks_the_chosen_1_based_items() -> None:
    s = opened(faults=Faults(fail_items=frozenset({2})))
    assert [commit_one(s).fail for _ in range(3)] == [False, True, False]


@pytest.mark.parametrize(
    ("mode", "close"),
    [
        ("close_1011", Close(1011, "internal error (fault injection)")),
        ("reset", Close(1006, "reset", abort=True)),
    ],
)
def test_drop_fault_closes_once_enough_audio_arrived(mode: str, close: Close) -> None:
    s = opened(faults=Faults(drop_after_audio_ms=500, drop_mode=mode))  # type: ignore[arg-type]
    assert s.receive(append(400), 0.0).close is None
    assert s.receive(append(200), 0.0).close == close
    assert s.closed


def test_drop_fault_drops_only_drop_sessions_sessions_per_server() -> None:
    faults, counters = Faults(drop_after_audio_ms=100, drop_sessions=2), FaultCounters()
    closes = []
    for _ in range(3):
        s = opened(faults=faults, counters=counters)
        closes.append(s.receive(append(200), 0.0).close is not None)
    assert closes == [True, True, False]


def test_error_code_fault_sends_one_error_event_per_server() -> None:
    faults = Faults(error_code_after_audio_ms=("rate_limit_exceeded", 300))
    counters = FaultCounters()
    s = opened(faults=faults, counters=counters)
    assert s.receive(append(200), 0.0).sent == []
    (error,) = s.receive(append(200), 0.0).sent
    assert error["error"]["code"] == "rate_limit_exceeded"
    assert s.receive(append(200), 0.0).sent == []
    s2 = opened(faults=faults, counters=counters)
    assert s2.receive(append(1000), 0.0).sent == []


def test_completed_delay_fault_puts_a_pause_before_completed() -> None:
    s = opened(faults=Faults(completed_delay_ms=250))
    events = s.transcribed(commit_one(s), Recognition("a b")).events
    assert events[-2] == Pause(0.25)
    assert events[-1].type == "conversation.item.input_audio_transcription.completed"


def test_session_cap_sends_session_expired_then_closes_1001() -> None:
    s = ServerSession(max_session_s=60.0)
    s.opened(100.0)
    assert s.expires_at == 160.0
    assert s.tick(159.9).sent == []
    actions = s.tick(160.0)
    (error,) = actions.sent
    assert error["error"]["code"] == "session_expired"
    assert actions.close == Close(1001, "maximum duration reached")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("close_1011", Close(1011, "internal error (fault injection)")),
        ("reset", Close(1006, "reset", True)),
    ],
)
def test_a_timed_drop_closes_each_session_at_its_time_within_the_budget(mode, expected) -> None:
    counters = FaultCounters()
    faults = Faults(drop_after_s=2.0, drop_mode=mode, drop_sessions=1)
    first = ServerSession(faults=faults, counters=counters)
    first.opened(10.0)
    assert first.next_tick_at == 12.0
    assert first.tick(11.9).close is None
    assert first.tick(12.0).close == expected
    second = ServerSession(faults=faults, counters=counters)  # the budget is spent
    second.opened(20.0)
    assert second.next_tick_at == second.limits.due_at == 20.0 + 120.0  # the idle timeout
    assert second.tick(22.0).close is None


def test_a_message_after_the_cap_expires_the_session_instead_of_being_handled() -> None:
    s = ServerSession(max_session_s=10.0)
    s.opened(0.0)
    actions = s.receive(append(200), 11.0)
    assert types(actions.sent) == ["error"] and actions.close is not None


# ---------------------------------------------------------------------------------- properties


@given(st.text(alphabet=st.sampled_from(list("ab .,'\n\té")), max_size=40))
def test_deltas_always_concatenate_to_the_transcript(text: str) -> None:
    pieces = split_pieces(text)
    assert "".join(pieces) == text
    assert all(p.strip() for p in pieces[:-1])


@given(st.lists(st.integers(min_value=1, max_value=4000), max_size=8))
def test_committed_durations_add_up_to_the_appended_audio(chunks_ms: list[int]) -> None:
    s = opened()
    for ms in chunks_ms:
        s.receive(append(ms), 0.0)
    actions = s.receive(ev("input_audio_buffer.commit"), 0.0)
    total = sum(chunks_ms) / 1000
    if total >= 0.1:
        assert actions.jobs[0].duration_s == pytest.approx(total)
    else:
        assert actions.jobs == []


def test_event_ids_are_random_and_unique_across_sessions() -> None:
    """OpenAI's event ids are random (issue 12); a counter restarting per session is not."""
    ids = []
    for _ in range(2):
        s = ServerSession()
        actions = s.receive(json.dumps({"type": "session.update", "session": {}}), 0.0)
        ids += [e.event_id for e in actions.events if getattr(e, "event_id", None)]
    assert len(ids) >= 2 and len(set(ids)) == len(ids)
    assert all(i.startswith("event_") and len(i) == len("event_") + 21 for i in ids)
