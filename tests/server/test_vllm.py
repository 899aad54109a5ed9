"""``compat="vllm"``: the local server behaves as vLLM's realtime connection does (docs/protocol.md
§7; ``vllm/frontend/entrypoints/speech_to_text/realtime/connection.py``, lines as ``C:``).
Pure tables of :class:`VllmSession` with ``now`` as data, then the server over the in-memory
pair (scripted engine, no port, no sleep)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest

from livekit.plugins.openai_stt.protocol.events import to_wire
from livekit.plugins.openai_stt.server import (
    HandshakeRejected,
    LocalRealtimeServer,
    ScriptedEngine,
    memory_channel_pair,
)
from livekit.plugins.openai_stt.server.actions import Actions, Close
from livekit.plugins.openai_stt.server.faults import Faults
from livekit.plugins.openai_stt.server.handshake import check_handshake
from livekit.plugins.openai_stt.server.jobs import Recognition, TranscriptionJob
from livekit.plugins.openai_stt.server.vllm_session import VllmSession

UPDATE = json.dumps({"type": "session.update", "model": "mistralai/Voxtral-Mini-4B-Realtime-2602"})
COMMIT = '{"type":"input_audio_buffer.commit"}'
FINAL = '{"type":"input_audio_buffer.commit","final":true}'
BPS = 32000  # pcm16 at 16 kHz


def append(ms: int, fill: bytes = b"\x01\x00") -> str:
    audio = fill * (BPS * ms // 1000 // len(fill))
    return json.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()}
    )


def wire(actions: Actions) -> list[dict[str, Any]]:
    return [json.loads(to_wire(e)) for e in actions.server_events]


def opened(**kwargs: Any) -> VllmSession:
    s = VllmSession(session_id="sess-abc", created=1767225600, **kwargs)
    s.opened(0.0)
    return s


def ready() -> VllmSession:
    s = opened()
    assert wire(s.receive(UPDATE, 0.1)) == []  # accepted: no session.updated
    return s


NOT_VALIDATED = (
    "Model not validated. Make sure to validate the model by sending a session.update event."
)


def err(message: str, code: str) -> dict[str, Any]:
    return {"type": "error", "error": message, "code": code}


def finish(s: VllmSession, actions: Actions, text: str) -> list[dict[str, Any]]:
    (job,) = actions.jobs
    return wire(s.transcribed(job, Recognition(text)))


# ------------------------------------------------------------------------------ the session


def test_session_created_has_vllms_flat_shape() -> None:
    s = VllmSession(session_id="sess-abc", created=1767225600)
    assert wire(s.opened(0.0)) == [
        {"type": "session.created", "id": "sess-abc", "created": 1767225600}
    ]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('{"type":"session.update"}', err("Missing required field: model", "invalid_event")),
        (
            '{"type":"session.update","session":{"type":"transcription"}}',  # OpenAI's shape
            err("Missing required field: model", "invalid_event"),
        ),
        (
            '{"type":"session.update","model":7}',
            err("The model `7` does not exist.", "model_not_found"),
        ),
        (
            '{"type":"input_audio_buffer.clear"}',
            err("Unknown event type: input_audio_buffer.clear", "unknown_event"),
        ),
        (
            '{"type":"transcription_session.update","session":{}}',
            err("Unknown event type: transcription_session.update", "unknown_event"),
        ),
        ('{"event_id":"x"}', err("Unknown event type: None", "unknown_event")),
        ("not json", err("Invalid JSON", "invalid_json")),
        ("[1]", err("'list' object has no attribute 'get'", "processing_error")),
        (
            COMMIT,
            err(NOT_VALIDATED, "model_not_validated"),
        ),
        (
            FINAL,
            err(NOT_VALIDATED, "model_not_validated"),
        ),
    ],
)
def test_refusals_are_vllms_string_errors_and_the_session_goes_on(
    message: str, expected: dict
) -> None:
    s = opened()
    actions = s.receive(message, 1.0)
    assert wire(actions) == [expected] and actions.close is None and not s.closed


def test_json_nested_too_deep_is_a_processing_error() -> None:
    (error,) = wire(opened().receive("[" * 5000 + "]" * 5000, 1.0))
    assert error["code"] == "processing_error"


@pytest.mark.parametrize(
    ("audio", "code"),
    [
        (base64.b64encode(b"\x01").decode(), "invalid_audio"),  # odd: not whole int16 samples
        ("", "invalid_audio"),  # empty
        ("AB=", "invalid_audio"),  # bad padding
        (None, "processing_error"),  # pydantic: field required
        (5, "processing_error"),
    ],
)
def test_bad_appends_are_refused_as_vllm_does(audio: Any, code: str) -> None:
    s = ready()
    message = {"type": "input_audio_buffer.append"}
    if audio is not None:
        message["audio"] = audio
    (error,) = wire(s.receive(json.dumps(message), 1.0))
    assert error["code"] == code
    if code == "invalid_audio":
        assert error["error"] == "Invalid audio data"


def test_appends_need_no_session_update_but_commits_do() -> None:
    s = opened()
    assert wire(s.receive(append(200), 1.0)) == []


def test_a_commit_starts_a_generation_over_the_audio_queued_before_it_and_after() -> None:
    s = ready()
    s.receive(append(300), 1.0)  # queued before the commit: part of the generation
    assert wire(s.receive(COMMIT, 1.1)) == []
    s.receive(append(700), 1.2)
    actions = s.receive(FINAL, 1.3)
    (job,) = actions.jobs
    assert job.audio == b"\x01\x00" * 16000 and job.rate == 16000 and job.duration_s == 1.0
    events = wire(s.transcribed(job, Recognition("Hello there, world.")))
    assert [e["type"] for e in events] == ["transcription.delta"] * 3 + ["transcription.done"]
    done = events[-1]
    assert done["text"] == "".join(e["delta"] for e in events[:-1]) == "Hello there, world."
    assert done["usage"] == {
        "prompt_tokens": 13,
        "total_tokens": 18,
        "completion_tokens": 5,
        "prompt_tokens_details": None,
    }


def test_a_plain_commit_while_a_generation_runs_is_ignored_silently() -> None:
    s = ready()
    s.receive(COMMIT, 1.0)
    s.receive(append(200), 1.1)
    assert wire(again := s.receive(COMMIT, 1.2)) == [] and again.jobs == []
    s.receive(append(200), 1.3)
    (job,) = s.receive(FINAL, 1.4).jobs
    assert job.duration_s == pytest.approx(0.4)  # one generation took both appends


def test_audio_after_final_and_before_done_is_dropped_then_the_next_turn_starts_clean() -> None:
    s = ready()
    s.receive(COMMIT, 1.0)
    s.receive(append(500), 1.1)
    (job,) = s.receive(FINAL, 1.2).jobs
    s.receive(append(300, b"\x02\x00"), 1.3)  # streamed right behind the final: lost (C:263-265)
    assert wire(s.receive(COMMIT, 1.35)) == []  # still running: ignored
    s.transcribed(job, Recognition("one"))
    s.receive(append(200, b"\x03\x00"), 1.5)  # after done: kept for the next generation
    s.receive(COMMIT, 1.6)
    (second,) = s.receive(FINAL, 1.7).jobs
    assert second.audio == b"\x03\x00" * 3200 and second.item_id != job.item_id
    assert s.turns_committed == 2


def test_one_session_carries_many_turns() -> None:
    s = ready()
    texts = []
    for k in range(3):
        s.receive(COMMIT, k + 0.0)
        s.receive(append(200), k + 0.1)
        texts.append(finish(s, s.receive(FINAL, k + 0.2), f"turn {k}")[-1]["text"])
    assert texts == ["turn 0", "turn 1", "turn 2"]


def test_a_stray_final_ends_the_next_generation_at_once() -> None:
    s = ready()
    s.receive(append(200), 1.0)
    assert s.receive(FINAL, 1.1).jobs == []  # no generation: the end waits in the queue
    s.receive(append(300), 1.2)
    (job,) = s.receive(COMMIT, 1.3).jobs  # starts, and meets the end at once
    assert job.duration_s == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("final", "ends"),
    [("true", True), ('"yes"', True), ("1", True), ("false", False), ("0", False)],
)
def test_final_is_read_as_pydantic_reads_a_bool(final: str, ends: bool) -> None:
    s = ready()
    s.receive(COMMIT, 1.0)
    s.receive(append(200), 1.1)
    message = {"type": "input_audio_buffer.commit", "final": json.loads(final)}
    actions = s.receive(json.dumps(message), 1.2)
    assert bool(actions.jobs) == ends


def test_a_final_that_is_not_a_bool_is_a_processing_error() -> None:
    s = ready()
    (error,) = wire(s.receive('{"type":"input_audio_buffer.commit","final":[1]}', 1.0))
    assert error["code"] == "processing_error"


def test_deltas_stream_while_audio_arrives_then_done_joins_them() -> None:
    s = ready()
    s.receive(COMMIT, 0.0)
    s.receive(append(1000), 0.0)
    first = s.take_partial(1.0)
    assert first is not None and first.rate == 16000
    assert wire(s.partial_transcribed(first, Recognition("it was the"))) == [
        {"type": "transcription.delta", "delta": ""}  # nothing stable yet: an empty delta
    ]
    s.receive(append(1000), 1.5)
    second = s.take_partial(2.5)
    assert second is not None
    (delta,) = wire(s.partial_transcribed(second, Recognition("it was the best")))
    assert delta["delta"] == "it was the"
    (job,) = s.receive(FINAL, 3.0).jobs
    events = wire(s.transcribed(job, Recognition("it was the best of times")))
    assert [e["delta"] for e in events[:-1]] == [" best", " of", " times"]
    assert events[-1]["text"] == "it was the best of times"
    assert s.take_partial(9.0) is None  # no generation running


def test_a_failed_generation_sends_processing_error_no_done_and_keeps_the_queue() -> None:
    s = opened(faults=Faults(fail_items=frozenset({1})))
    s.receive(UPDATE, 0.0)
    s.receive(COMMIT, 0.1)
    (job,) = s.receive(FINAL, 0.2).jobs
    assert job.fail
    s.receive(append(200), 0.3)
    (error,) = wire(s.transcription_failed(job))
    assert error["code"] == "processing_error"
    (second,) = (s.receive(COMMIT, 0.4), s.receive(FINAL, 0.5))[1].jobs
    assert second.duration_s == pytest.approx(0.2)  # the queued audio survived


def test_a_binary_frame_ends_the_connection() -> None:
    actions = ready().binary_received()
    assert actions.close == Close(1000, "")


def test_audio_held_past_max_buffer_s_is_refused() -> None:
    s = opened(max_buffer_s=0.5)
    s.receive(append(400), 0.1)
    (error,) = wire(s.receive(append(200), 0.2))
    assert error["code"] == "processing_error" and "max_buffer_s" in error["error"]


def test_the_servers_idle_timeout_and_cap_still_apply() -> None:
    from livekit.plugins.openai_stt.server.limits import SessionLimits

    s = opened(limits=SessionLimits(max_session_s=100.0, idle_timeout_s=10.0))
    assert s.next_tick_at == 10.0
    actions = s.tick(10.0)
    assert wire(actions)[0]["code"] == "idle_timeout" and actions.close == Close(
        1001, "idle_timeout"
    )


# ------------------------------------------------------------------------------ handshake


@pytest.mark.parametrize(
    ("path", "headers", "api_key", "status"),
    [
        ("/v1/realtime", {}, None, None),  # no --api-key: no credential needed
        ("/v1/realtime?intent=transcription&model=x", {}, None, None),  # query ignored
        ("/realtime", {}, None, 403),
        ("/openai/v1/realtime", {}, None, 403),
        ("/health", {}, None, 200),
        ("/v1/realtime", {"Authorization": "Bearer k"}, "k", None),
        ("/v1/realtime", {"authorization": "bearer k"}, "k", None),
        ("/v1/realtime", {}, "k", 401),
        ("/v1/realtime", {"api-key": "k"}, "k", 401),  # vLLM reads Bearer only
        ("/v1/realtime", {"Authorization": "Bearer wrong"}, "k", 401),
    ],
)
def test_the_handshake_is_vllms(
    path: str, headers: dict, api_key: str | None, status: int | None
) -> None:
    reply = check_handshake(path=path, headers=headers, api_key=api_key, compat="vllm")
    assert (reply.status if reply else None) == status
    if status == 401:
        assert reply is not None and json.loads(reply.body) == {"error": "Unauthorized"}


# ------------------------------------------------------------------------------ the server


async def test_the_server_speaks_vllm_over_a_channel() -> None:
    engine = ScriptedEngine(["Hello from the local server."])
    async with LocalRealtimeServer(port=None, engine=engine, compat="vllm") as server:
        end, client = memory_channel_pair()
        task = asyncio.create_task(server.serve_channel(end, path="/v1/realtime", headers={}))
        created = json.loads(await client.recv())
        assert created["type"] == "session.created" and created["id"].startswith("sess-")
        assert isinstance(created["created"], int) and set(created) == {"type", "id", "created"}
        for message in (UPDATE, COMMIT, append(600), FINAL):
            await client.send(message)
        events = []
        while not events or events[-1]["type"] != "transcription.done":
            events.append(json.loads(await asyncio.wait_for(client.recv(), 5.0)))
        assert events[-1]["text"] == "Hello from the local server."
        assert "".join(e["delta"] for e in events[:-1]) == events[-1]["text"]
        await client.send('{"type":"input_audio_buffer.clear"}')
        assert json.loads(await client.recv())["code"] == "unknown_event"
        await client.close()
        await asyncio.wait_for(task, 5.0)


async def test_the_server_refuses_other_paths_and_wrong_keys_like_vllm() -> None:
    async with LocalRealtimeServer(port=None, engine="scripted", compat="vllm", api_key="k") as s:
        for path, headers, status in [
            ("/realtime", {"Authorization": "Bearer k"}, 403),
            ("/v1/realtime", {"api-key": "k"}, 401),
        ]:
            end, _ = memory_channel_pair()
            with pytest.raises(HandshakeRejected) as info:
                await s.serve_channel(end, path=path, headers=headers)
            assert info.value.status == status


def test_the_cli_has_compat_vllm() -> None:
    from livekit.plugins.openai_stt.server.__main__ import build_parser, server_from_args

    server = server_from_args(
        build_parser().parse_args(["--compat", "vllm", "--engine", "scripted"])
    )
    assert server.compat == "vllm"


def test_a_server_session_is_not_built_for_vllm() -> None:
    from livekit.plugins.openai_stt.server.session import ServerSession

    with pytest.raises(ValueError):
        ServerSession(compat="vllm")


def test_the_vllm_session_is_pure() -> None:
    from tests.test_purity import PACKAGE_DIR, check_tree

    found, checked = check_tree([PACKAGE_DIR / "server" / "vllm_session.py"])
    assert not found, found
    assert PACKAGE_DIR / "server" / "limits.py" in checked


def test_job_of_a_generation_is_16khz_pcm() -> None:
    s = ready()
    s.receive(COMMIT, 0.0)
    (job,) = s.receive(FINAL, 0.1).jobs
    assert isinstance(job, TranscriptionJob) and job.format_type == "audio/pcm" and job.audio == b""


async def test_a_real_socket_speaks_vllm_with_no_credentials() -> None:
    from websockets.asyncio.client import connect

    engine = ScriptedEngine(["over a socket"])
    async with LocalRealtimeServer(engine=engine, compat="vllm", port=0) as server:
        async with connect(server.ws_url) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            for message in (UPDATE, COMMIT, append(300), FINAL):
                await ws.send(message)
            events = []
            while not events or events[-1]["type"] != "transcription.done":
                events.append(json.loads(await asyncio.wait_for(ws.recv(), 5.0)))
    assert events[-1]["text"] == "over a socket"
