"""The stream against the local server (scripted engine): the whole client path.

Most tests run the server in memory (``port=None``, :func:`tests.helpers.memory_connect`): no
port, no socket, the same handshake check and session. Compatibility modes are parametrised
only where the URL or the handshake differs, and those tests, like a couple of end-to-end
rollover checks and the credential-in-logs check, run over real sockets on port 0. The rules
themselves (replay, duplicate suppression, out-of-order finals, deadlines, rollover) have table
tests on the pure ``ClientSession`` in ``tests/protocol/test_client.py``."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
from collections.abc import Mapping
from typing import Any

import pytest
from livekit import rtc
from livekit.agents import APIConnectOptions, APIError
from livekit.agents import stt as lk_stt
from livekit.plugins import openai_stt

from livekit.plugins.openai_stt.protocol.endpoint import redact_url
from livekit.plugins.openai_stt.protocol.errors import classify_close
from livekit.plugins.openai_stt.server import Faults, LocalRealtimeServer
from tests.helpers import (
    FAST_RETRY,
    Recorder,
    T,
    collect,
    finals,
    frames,
    memory_connect,
    run_turns,
    tone,
    until,
)

COMPAT_MODES = ["lenient", "openai", "gateway"]
MEMORY_BASE_URL = "http://127.0.0.1:9/v1"  # a loopback URL: ?model= on it, as for a gateway


def local_server(**kwargs: Any) -> LocalRealtimeServer:
    """A scripted local server; in memory (``port=None``) unless a ``port`` is given."""
    kwargs.setdefault("compat", "lenient")
    kwargs.setdefault("engine", "scripted")
    kwargs.setdefault("port", None)
    return LocalRealtimeServer(**kwargs)


def client(server: LocalRealtimeServer, **kwargs: Any) -> openai_stt.STT:
    """An STT for ``server``: over memory for an in-memory server (a ``Recorder`` given as
    ``connect`` then wraps the memory connection), else over its socket, with the URL rule its
    mode needs (docs/protocol.md §1): OpenAI mode refuses ``?model=``; gateway mode requires
    it (the loopback default)."""
    kwargs.setdefault("api_key", "t")
    if server.compat == "openai":
        kwargs.setdefault("include_model_in_url", False)
    if _listening(server):
        return openai_stt.STT(base_url=server.base_url, **kwargs)
    connect = kwargs.get("connect")
    recorder = getattr(connect, "__self__", None)
    if isinstance(recorder, Recorder):
        recorder.inner = memory_connect(server)
    else:
        kwargs.setdefault("connect", memory_connect(server))
    return openai_stt.STT(base_url=MEMORY_BASE_URL, **kwargs)


def _listening(server: LocalRealtimeServer) -> bool:
    try:
        server.port  # noqa: B018 - raises when the server does not listen
    except RuntimeError:
        return False
    return True


@pytest.fixture
async def server():
    async with local_server() as srv:
        yield srv


@pytest.mark.parametrize("compat", COMPAT_MODES)
async def test_each_compat_mode_transcribes_over_a_real_socket_with_its_url_rule(compat):
    recorder = Recorder()
    async with local_server(compat=compat, port=0) as server:
        stt = client(server, connect=recorder.connect)
        events = await run_turns(stt, [0.5, 0.8])
    assert finals(events) == ["0.50 seconds of audio", "0.80 seconds of audio"]
    assert recorder.connects == 1 and recorder.types()[0] == "session.update"


async def test_each_flush_becomes_one_item_with_interims_then_final_then_usage(server):
    stt = client(server, api_key="test")
    events = await run_turns(stt, [0.5, 0.8])

    kinds = [(e.type, e.request_id) for e in events]
    first, second = events[0].request_id, events[-1].request_id
    assert first != second
    for item in (first, second):
        mine = [k for k, rid in kinds if rid == item]
        assert mine[-2:] == [T.FINAL_TRANSCRIPT, T.RECOGNITION_USAGE]
        assert set(mine[:-2]) == {T.INTERIM_TRANSCRIPT}
    assert finals(events) == ["0.50 seconds of audio", "0.80 seconds of audio"]
    # interim text is the full text of its item so far, growing (a burst of deltas within
    # MIN_INTERIM_INTERVAL_S shows as one interim: the table tests of the assembler pin each)
    for item, final in ((first, "0.50 seconds of audio"), (second, "0.80 seconds of audio")):
        texts = [
            e.alternatives[0].text
            for e in events
            if e.request_id == item and e.type == T.INTERIM_TRANSCRIPT
        ]
        assert texts[0] == final.split()[0]
        assert all(final.startswith(text) for text in texts)
        assert [len(t) for t in texts] == sorted(len(t) for t in texts)


async def test_commits_follow_their_audio_on_flush_and_end_input():
    recorder = Recorder()
    async with local_server() as server:
        stt = client(server, api_key="t", connect=recorder.connect)
        events = await run_turns(stt, [0.3], tail_s=0.4)
    types = recorder.types()
    assert types[0] == "session.update"
    assert types.count("input_audio_buffer.commit") == 2  # flush, then end_input's tail
    # nothing is appended after the last commit and every commit has audio before it
    assert types[-1] == "input_audio_buffer.commit"
    assert types[1] == "input_audio_buffer.append"
    assert finals(events) == ["0.30 seconds of audio", "0.40 seconds of audio"]


async def test_a_commit_with_less_than_100ms_is_not_sent():
    recorder = Recorder()
    async with local_server() as server:
        stt = client(server, api_key="t", connect=recorder.connect)
        events = await run_turns(stt, [0.05, 0.5], tail_s=0.09)
    assert recorder.types().count("input_audio_buffer.commit") == 1
    # the 50 ms before the first flush joins the next turn instead of being lost
    assert finals(events) == ["0.55 seconds of audio"]
    assert not [e for e in events if e.type == T.FINAL_TRANSCRIPT and not e.alternatives[0].text]


async def test_usage_audio_duration_is_the_seconds_committed_in_each_item(server):
    stt = client(server, api_key="t")
    events = await run_turns(stt, [0.5, 1.2])
    usage = [e.recognition_usage for e in events if e.type == T.RECOGNITION_USAGE]
    assert [round(u.audio_duration, 3) for u in usage] == [0.5, 1.2]
    assert stt.usage.audio_seconds_committed == pytest.approx(1.7)
    assert stt.usage.cost_usd == pytest.approx(1.7 / 60 * 0.017)


async def test_final_times_are_item_offsets_plus_start_time_offset(server):
    stt = client(server, api_key="t")
    stream = stt.stream(conn_options=FAST_RETRY)
    stream.start_time_offset = 10.0
    for seconds in (0.5, 0.7):
        for frame in frames(seconds):
            stream.push_frame(frame)
        stream.flush()
    stream.end_input()
    events = await asyncio.wait_for(collect(stream), 20)
    await stream.aclose()
    spans = [
        (round(e.alternatives[0].start_time, 3), round(e.alternatives[0].end_time, 3))
        for e in events
        if e.type == T.FINAL_TRANSCRIPT
    ]
    assert spans == [(10.0, 10.5), (10.5, 11.2)]


async def test_stereo_16khz_frames_are_downmixed_and_resampled(server):
    stt = client(server, api_key="t")
    events = await run_turns(stt, [1.0], sample_rate=16000, channels=2)
    assert finals(events) == ["1.00 seconds of audio"]


@pytest.mark.parametrize("audio_format", ["g711_ulaw", "g711_alaw"])
async def test_g711_sends_one_byte_a_sample_at_8khz(audio_format):
    recorder = Recorder()
    async with local_server() as server:
        stt = client(server, api_key="t", audio_format=audio_format, connect=recorder.connect)
        events = await run_turns(stt, [1.0])

    appended = sum(
        len(base64.b64decode(m["audio"])) for m in recorder.sent if m["type"].endswith("append")
    )
    assert appended == 8000
    fmt = recorder.sent[0]["session"]["audio"]["input"]["format"]["type"]
    assert fmt == {"g711_ulaw": "audio/pcmu", "g711_alaw": "audio/pcma"}[audio_format]
    assert finals(events) == ["1.00 seconds of audio"]


async def test_a_drop_mid_turn_replays_the_audio_and_loses_no_words():
    faults = Faults(drop_after_audio_ms=800, drop_sessions=1)
    recorder = Recorder()
    async with local_server(faults=faults) as server:
        stt = client(server, api_key="t", connect=recorder.connect)
        events = await run_turns(stt, [0.5, 0.5, 0.5])
    assert recorder.connects == 2
    # each turn once: none lost, none duplicated by the replay
    assert finals(events) == ["0.50 seconds of audio"] * 3
    # every append, replayed ones included, holds at most chunk_ms (100 ms) of audio

    sizes = [len(base64.b64decode(m["audio"])) for m in recorder.sent if "audio" in m]
    assert max(sizes) <= 4800


async def test_a_tcp_reset_is_retried_and_the_stream_still_ends_by_itself():
    faults = Faults(drop_after_audio_ms=300, drop_mode="reset")
    async with local_server(faults=faults) as server:
        stt = client(server, api_key="t")
        events = await run_turns(stt, [0.6])
    assert finals(events) == ["0.60 seconds of audio"]


async def test_a_failed_item_ends_its_turn_with_a_recoverable_error():
    errors: list[lk_stt.STTError] = []
    async with local_server(faults=Faults(fail_items=frozenset({1}))) as server:
        stt = client(server, api_key="t")
        stt.on("error", errors.append)
        events = await run_turns(stt, [0.5, 0.6])
    assert finals(events) == ["0.60 seconds of audio"]
    assert len(errors) == 1 and errors[0].recoverable
    assert "failed" in str(errors[0].error)


async def test_invalid_model_on_an_openai_like_server_is_fatal_and_names_the_option():
    async with local_server(compat="openai") as server:
        stt = client(server, api_key="t", include_model_in_url=True)
        stream = stt.stream(conn_options=FAST_RETRY)
        for frame in frames(0.3):
            stream.push_frame(frame)
        stream.end_input()
        with pytest.raises(APIError) as info:
            await asyncio.wait_for(collect(stream), 20)
        await stream.aclose()
    assert not info.value.retryable
    assert "include_model_in_url" in str(info.value)


@pytest.mark.parametrize("status", [401, 403])
async def test_handshake_401_and_403_are_fatal_and_not_retried(status):
    recorder = Recorder()
    faults = Faults(reject_handshake_status=status)
    async with local_server(faults=faults) as server:
        stt = client(server, api_key="sk-secret-123", connect=recorder.connect)
        stream = stt.stream(conn_options=FAST_RETRY)
        stream.end_input()
        with pytest.raises(APIError) as info:
            await asyncio.wait_for(collect(stream), 20)
        await stream.aclose()
    assert not info.value.retryable and recorder.connects == 0
    assert str(status) in str(info.value) and "sk-secret-123" not in repr(info.value)


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_handshake_429_and_5xx_are_retried_then_succeed(status):
    faults = Faults(reject_handshake_status=status, reject_handshakes=2)
    async with local_server(faults=faults) as server:
        stt = client(server, api_key="t")
        events = await run_turns(stt, [0.4])
    assert finals(events) == ["0.40 seconds of audio"]


async def test_the_api_key_never_appears_in_logs_of_a_failing_session(caplog):
    secret = "sk-live-DO-NOT-LOG-0123456789"
    caplog.set_level(logging.DEBUG)
    faults = Faults(drop_after_audio_ms=200, drop_sessions=10)
    async with local_server(faults=faults, api_key=secret, port=0) as server:  # real headers
        stt = client(server, api_key=secret)
        stream = stt.stream(conn_options=APIConnectOptions(max_retry=1, retry_interval=0.01))
        for frame in frames(0.5):
            stream.push_frame(frame)
        stream.end_input()
        with pytest.raises(APIError):
            await asyncio.wait_for(collect(stream), 20)
        await stream.aclose()
    leaks = [r for r in caplog.records if secret in f"{r.getMessage()} {r.__dict__}"]
    assert caplog.records and not leaks, [(r.name, r.msg) for r in leaks]
    assert secret not in repr(stt) and secret not in stt.url


async def test_aclose_mid_stream_leaves_no_task_or_socket_behind(server):
    before = {t for t in asyncio.all_tasks()}
    recorder = Recorder()
    stt = client(server, api_key="t", connect=recorder.connect)
    stream = stt.stream()
    for frame in frames(0.3):
        stream.push_frame(frame)
    stream.flush()
    await asyncio.sleep(0.2)
    await stream.aclose()  # what an AgentSession does: cancel, not end_input
    await stream.aclose()  # idempotent
    await asyncio.sleep(0)
    leaked = {t for t in asyncio.all_tasks() if not t.done()} - before
    assert not leaked, leaked
    assert recorder.connects == 1 and recorder.closed == 1


def test_a_key_over_plaintext_ws_to_a_remote_host_is_refused():
    with pytest.raises(ValueError, match="allow_insecure"):
        openai_stt.STT(base_url="http://gateway.example.com/v1", api_key="k")
    openai_stt.STT(base_url="http://gateway.example.com/v1", api_key="k", allow_insecure=True)
    openai_stt.STT(base_url="http://127.0.0.1:8000/v1", api_key="k")


async def test_recognize_transcribes_a_whole_buffer(server):
    stt = client(server, api_key="t")
    event = await stt.recognize(frames(1.0, frame_ms=100))
    assert event.type == T.FINAL_TRANSCRIPT
    assert event.alternatives[0].text == "1.00 seconds of audio"


async def test_update_options_sends_a_session_update_behind_the_audio_already_pushed():
    recorder = Recorder()
    async with local_server() as server:
        stt = client(server, api_key="t", connect=recorder.connect)
        stream = stt.stream(conn_options=FAST_RETRY)
        for frame in frames(0.3, sample_rate=24000):  # the wire rate: no resampler delay
            stream.push_frame(frame)
        stream.update_options(language="fr", prompt="ignored by this model")
        for frame in frames(0.3, sample_rate=24000):
            stream.push_frame(frame)
        stream.end_input()
        events = await asyncio.wait_for(collect(stream), 20)
        await stream.aclose()
    updates = [i for i, m in enumerate(recorder.sent) if m["type"] == "session.update"]
    assert len(updates) == 2 and recorder.connects == 1
    second = recorder.sent[updates[1]]["session"]["audio"]["input"]["transcription"]
    assert second["language"] == "fr" and "prompt" not in second
    appends_before = [m for m in recorder.sent[: updates[1]] if m["type"].endswith("append")]
    assert len(appends_before) == 3  # the first 0.3 s went out before the update
    assert finals(events) == ["0.60 seconds of audio"]
    assert [e.alternatives[0].language for e in events if e.type == T.FINAL_TRANSCRIPT] == ["fr"]


async def test_a_model_change_reconnects_and_replays_the_open_turn():
    recorder = Recorder()
    async with local_server() as server:
        stt = client(server, api_key="t", connect=recorder.connect)
        stream = stt.stream(conn_options=FAST_RETRY)
        for frame in frames(0.4):
            stream.push_frame(frame)
        stt.update_options(model="gpt-4o-transcribe")
        for frame in frames(0.2):
            stream.push_frame(frame)
        stream.end_input()
        events = await asyncio.wait_for(collect(stream), 20)
        await stream.aclose()
    assert recorder.connects == 2
    assert finals(events) == ["0.60 seconds of audio"]
    usage = [e.recognition_usage for e in events if e.type == T.RECOGNITION_USAGE]
    assert usage[0].input_tokens > 0  # the new model is billed in tokens
    assert stt.usage.cost_usd and stt.usage.cost_usd > 0


async def test_a_final_that_never_comes_ends_its_turn_with_its_interim_text():
    errors: list[lk_stt.STTError] = []
    async with local_server(faults=Faults(completed_delay_ms=2000)) as server:
        stt = client(server, api_key="t", final_timeout_s=0.5)
        stt.on("error", errors.append)
        stream = stt.stream(conn_options=FAST_RETRY)
        for frame in frames(0.5):
            stream.push_frame(frame)
        stream.flush()
        events: list[lk_stt.SpeechEvent] = []

        async def consume() -> None:
            async for event in stream:
                events.append(event)

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(2.5)  # the late final arrives meanwhile and must be dropped
        stream.end_input()
        await asyncio.wait_for(consumer, 10)
        await stream.aclose()
    final_events = [e for e in events if e.type == T.FINAL_TRANSCRIPT]
    assert len(final_events) == 1
    data = final_events[0].alternatives[0]
    assert data.text == "0.50 seconds of audio"  # the interim text it had
    assert data.metadata == {"incomplete": True, "reason": "final_timeout"}
    assert [e.recoverable for e in errors] == [True]


async def test_session_expiry_reconnects_at_once_and_keeps_every_turn():
    errors: list[lk_stt.STTError] = []
    recorder = Recorder()
    async with local_server(max_session_s=0.4) as server:
        stt = client(server, api_key="t", connect=recorder.connect)
        stt.on("error", errors.append)
        stream = stt.stream(conn_options=FAST_RETRY)
        for _ in range(3):
            for frame in frames(0.3):
                stream.push_frame(frame)
            stream.flush()
            await asyncio.sleep(0.35)
        stream.end_input()
        events = await asyncio.wait_for(collect(stream), 20)
        await stream.aclose()
    assert recorder.connects >= 2
    assert finals(events) == ["0.30 seconds of audio"] * 3
    assert not errors  # a normal session end is not a failure and uses no retry


async def test_rollover_opens_the_next_session_at_a_turn_boundary_without_losing_a_final():
    recorder = Recorder()
    async with local_server() as server:
        stt = client(server, api_key="t", session_rollover_s=1.0, connect=recorder.connect)
        stream = stt.stream(conn_options=FAST_RETRY)
        for turn in range(3):
            for frame in frames(0.3):
                stream.push_frame(frame)
            stream.flush()
            if turn < 2:  # past the 1 s rollover: the next turn moves to a new session
                await asyncio.sleep(1.05)
        for frame in frames(0.2):
            stream.push_frame(frame)
        stream.end_input()
        events = await asyncio.wait_for(collect(stream), 20)
        await stream.aclose()
    assert recorder.connects >= 3
    assert finals(events) == ["0.30 seconds of audio"] * 3 + ["0.20 seconds of audio"]
    # at a quiet boundary only uncommitted audio moves over: nothing is billed twice
    assert stt.usage.audio_seconds_committed == pytest.approx(1.1)
    assert recorder.closed == recorder.connects  # every socket, used or opened ahead, closed


async def _one_turn_then_the_next_session_opened_ahead(
    server: LocalRealtimeServer, recorder: Recorder
) -> tuple[openai_stt.STT, lk_stt.RecognizeStream]:
    """A stream with a 1 s ``session_rollover_s``: one 0.3 s turn, then wait until the next
    session is open (ahead, at half of the 1 s)."""
    stt = client(server, api_key="t", session_rollover_s=1.0, connect=recorder.connect)
    stream = stt.stream(conn_options=FAST_RETRY)
    for frame in frames(0.3):
        stream.push_frame(frame)
    stream.flush()
    await until(lambda: recorder.connects >= 2)
    return stt, stream


async def _rollover_with_a_session_opened_ahead(
    recorder: Recorder, port: int | None = None
) -> tuple[list, list]:
    """One turn; wait until the next session is open (ahead, at half of a 1 s
    ``session_rollover_s``) and the rollover is due; two more turns; end."""
    errors: list[lk_stt.STTError] = []
    async with local_server(port=port) as server:
        stt, stream = await _one_turn_then_the_next_session_opened_ahead(server, recorder)
        stt.on("error", errors.append)
        await asyncio.sleep(0.6)  # session 1 is now past 1 s: the next chunk rolls over
        for seconds in (0.3, 0.2):
            for frame in frames(seconds):
                stream.push_frame(frame)
            stream.flush()
        stream.end_input()
        events = await asyncio.wait_for(collect(stream), 20)
        await stream.aclose()
    assert finals(events) == ["0.30 seconds of audio"] * 2 + ["0.20 seconds of audio"]
    return events, errors


def _audio_and_commits(sent: list[dict]) -> list[str]:
    kinds = [m["type"] for m in sent]
    return [k for k in kinds if k in ("input_audio_buffer.append", "input_audio_buffer.commit")]


async def test_rollover_moves_to_the_session_opened_ahead_over_real_sockets():
    recorder = Recorder()
    _, errors = await _rollover_with_a_session_opened_ahead(recorder, port=0)
    # make-before-break: socket 2 was open and configured before socket 1 closed ...
    assert recorder.timeline[:3] == [("connect", 1), ("connect", 2), ("close", 1)]
    assert recorder.sent_by[2][0]["type"] == "session.update"
    # ... and it is the one that carried the later turns
    assert recorder.connects == 2
    assert "input_audio_buffer.commit" in _audio_and_commits(recorder.sent_by[2])
    assert recorder.closed == 2
    assert not errors


async def test_rollover_opens_another_session_when_the_one_opened_ahead_died():
    recorder = Recorder(broken=frozenset({2}))
    _, errors = await _rollover_with_a_session_opened_ahead(recorder)
    assert recorder.timeline[:3] == [("connect", 1), ("connect", 2), ("close", 1)]
    assert _audio_and_commits(recorder.sent_by[2]) == []  # its first audio send failed
    assert recorder.connects == 3
    assert "input_audio_buffer.commit" in _audio_and_commits(recorder.sent_by[3])
    assert recorder.closed == 3
    assert not errors  # not a failure: no retry, no error event


async def test_a_session_opened_ahead_and_never_used_is_closed():
    recorder = Recorder()
    async with local_server() as server:
        _, stream = await _one_turn_then_the_next_session_opened_ahead(server, recorder)
        stream.end_input()  # before the rollover is due
        events = await asyncio.wait_for(collect(stream), 20)
        await stream.aclose()
    assert finals(events) == ["0.30 seconds of audio"]
    assert _audio_and_commits(recorder.sent_by[2]) == []
    assert recorder.closed == recorder.connects == 2


async def test_aclose_during_the_move_to_the_next_session_leaves_no_socket():
    recorder = Recorder()
    async with local_server() as server:
        _, stream = await _one_turn_then_the_next_session_opened_ahead(server, recorder)
        await asyncio.sleep(0.6)
        for frame in frames(0.3):
            stream.push_frame(frame)
        await until(lambda: ("close", 1) in recorder.timeline)
        await stream.aclose()
    assert recorder.closed == recorder.connects


async def test_audio_queued_while_disconnected_is_bounded_with_a_clear_error():
    faults = Faults(reject_handshake_status=503)
    async with local_server(faults=faults) as server:
        stt = client(server, api_key="t", max_queued_audio_s=0.5)
        stream = stt.stream(conn_options=APIConnectOptions(max_retry=5, retry_interval=0.2))
        for frame in frames(1.0):
            stream.push_frame(frame)
        with pytest.raises(APIError, match="max_queued_audio_s") as info:
            await asyncio.wait_for(collect(stream), 20)
        await stream.aclose()
    assert not info.value.retryable


async def test_a_sample_rate_change_mid_stream_is_handled(server):
    stt = client(server, api_key="t")
    stream = stt.stream(conn_options=FAST_RETRY)
    for frame in frames(0.5, sample_rate=48000) + frames(0.5, sample_rate=16000):
        stream.push_frame(frame)
    stream.push_frame(rtc.AudioFrame(b"", 48000, 1, 0))  # empty frames are ignored
    stream.end_input()
    events = await asyncio.wait_for(collect(stream), 20)
    await stream.aclose()
    assert finals(events) == ["1.00 seconds of audio"]
    with pytest.raises(RuntimeError, match="input ended"):
        stream.push_frame(tone(0.01))


class ScriptedPeer:
    """A fake server through the transport seam, for orders the local server never produces.

    Session 1 acknowledges two commits, completes the *second* first, then drops (1006).
    Later sessions acknowledge and complete every commit in order.
    """

    def __init__(self) -> None:
        self.sessions = 0
        self.commits_per_session: list[int] = []

    async def connect(self, url: str, headers: Mapping[str, str], timeout: float):
        from livekit.plugins.openai_stt.transport import TransportError

        self.sessions += 1
        session = self.sessions
        self.commits_per_session.append(0)
        outbox: asyncio.Queue = asyncio.Queue()
        peer = self

        def event(kind: str, item: str, **fields: object) -> str:
            return json.dumps({"type": kind, "item_id": item, **fields})

        class Conn:
            async def send(self, message):
                data = json.loads(message)
                if data["type"] != "input_audio_buffer.commit":
                    return
                peer.commits_per_session[-1] += 1
                n = peer.commits_per_session[-1]
                item = f"s{session}_item_{n}"
                outbox.put_nowait(event("input_audio_buffer.committed", item))
                if session > 1:
                    outbox.put_nowait(
                        event(
                            "conversation.item.input_audio_transcription.completed",
                            item,
                            transcript=f"turn text {item}",
                        )
                    )
                elif n == 2:
                    outbox.put_nowait(
                        event(
                            "conversation.item.input_audio_transcription.completed",
                            item,
                            transcript="second turn",
                        )
                    )
                    outbox.put_nowait(None)  # then the socket dies

            async def recv(self):
                message = await outbox.get()
                if message is None:
                    raise TransportError(classify_close(1006, "reset"))
                return message

            async def aclose(self):
                pass

        return Conn()


async def test_a_drop_after_out_of_order_completions_replays_only_the_unfinished_turn():
    peer = ScriptedPeer()
    stt = openai_stt.STT(base_url="http://127.0.0.1:9/v1", api_key="t", connect=peer.connect)
    events = await run_turns(stt, [0.5, 0.5])
    texts = finals(events)
    assert sorted(texts) == ["second turn", "turn text s2_item_1"]  # each turn exactly once
    assert peer.commits_per_session == [2, 1]  # only the unfinished first turn was replayed


async def test_an_error_event_without_a_close_is_reported_and_the_session_goes_on():
    errors: list[lk_stt.STTError] = []
    faults = Faults(error_code_after_audio_ms=("some_new_condition", 200))
    recorder = Recorder()
    async with local_server(faults=faults) as server:
        stt = client(server, api_key="t", connect=recorder.connect)
        stt.on("error", errors.append)
        events = await run_turns(stt, [0.5, 0.5])
    assert finals(events) == ["0.50 seconds of audio"] * 2
    assert recorder.connects == 1
    assert [e.recoverable for e in errors] == [True]
    assert "some_new_condition" in str(errors[0].error)


def test_chunk_ms_is_bounded_so_appends_stay_far_under_15_mib():
    with pytest.raises(ValueError, match="chunk_ms"):
        openai_stt.STT(api_key="k", chunk_ms=60_001)
    with pytest.raises(ValueError, match="chunk_ms"):
        openai_stt.STT(api_key="k", chunk_ms=5)


async def test_a_long_monologue_is_committed_at_a_pause_before_max_item_s(server):
    stt = client(server, api_key="t", max_item_s=3.0)
    stream = stt.stream(conn_options=FAST_RETRY)
    silence = rtc.AudioFrame(bytes(4800), 24000, 1, 2400)  # the wire rate: no resampler delay
    for frame in frames(2.5, sample_rate=24000):  # speech into the last second before the cap
        stream.push_frame(frame)
    stream.push_frame(silence)  # a 100 ms pause from 2.5 s: the item is cut inside it
    for frame in frames(4.0, sample_rate=24000):  # no pause: cut at the cap
        stream.push_frame(frame)
    stream.end_input()
    events = await asyncio.wait_for(collect(stream), 20)
    await stream.aclose()
    assert finals(events) == [
        "2.60 seconds of audio",
        "3.00 seconds of audio",
        "1.00 seconds of audio",
    ]


def test_credentials_in_extra_headers_and_query_stay_out_of_reprs_and_urls():
    secret = "cf-token-SECRET-42"
    stt = openai_stt.STT(
        base_url="https://gateway.ai.cloudflare.com/v1/acct/gw/openai",
        api_key=secret,
        extra_headers={"cf-aig-authorization": secret},
        extra_query={"api_key": secret},
    )
    stream_options = dataclasses.replace(stt._opts)  # what each stream holds
    assert secret not in repr(stt) and secret not in repr(stream_options)
    # the query goes on the URL as asked, and every logged form of that URL masks it
    assert secret in stream_options.url()
    assert secret not in redact_url(stream_options.url())


async def test_a_timed_drop_between_turns_loses_nothing():
    recorder = Recorder()
    faults = Faults(drop_after_s=0.5, drop_sessions=2)
    async with local_server(faults=faults) as server:
        stt = client(server, api_key="t", connect=recorder.connect)
        stream = stt.stream(conn_options=FAST_RETRY)
        for _ in range(4):
            for frame in frames(0.3):
                stream.push_frame(frame)
            stream.flush()
            await asyncio.sleep(0.3)
        stream.end_input()
        events = await asyncio.wait_for(collect(stream), 20)
        await stream.aclose()
        drops = server.counters.drops
    assert drops == 2 and recorder.connects == 3
    assert finals(events) == ["0.30 seconds of audio"] * 4


class SendSideDrop:
    """The transport seam: on the first socket, a send fails (1011) while receiving hangs, so
    the writer, not the reader, is first to see the drop; later sockets are ``inner``'s."""

    def __init__(self, inner: Any) -> None:
        self.connects = 0
        self.inner = inner

    async def connect(self, url: str, headers: Mapping[str, str], timeout: float):
        from livekit.plugins.openai_stt.transport import TransportError

        self.connects += 1
        if self.connects > 1:
            return await self.inner(url, headers, timeout)
        sends = [0]

        class Conn:
            async def send(self, message):
                sends[0] += 1
                if sends[0] > 3:
                    raise TransportError(classify_close(1011, "internal error"))

            async def recv(self):
                await asyncio.Event().wait()

            async def aclose(self):
                pass

        return Conn()


async def test_a_drop_seen_first_by_the_writer_is_retried_like_any_drop(server):
    peer = SendSideDrop(memory_connect(server))
    stt = client(server, connect=peer.connect)
    events = await run_turns(stt, [0.5, 0.5])
    assert peer.connects == 2
    assert finals(events) == ["0.50 seconds of audio"] * 2


async def test_a_session_opened_ahead_ages_from_its_connect_and_never_hits_the_cap(caplog):
    """The server counts a session's age from its handshake (docs/protocol.md §6), so the stream
    must too: a session opened ahead and kept waiting by a stretch without audio is not
    treated as new when it is finally used."""
    caplog.set_level(logging.INFO, logger="livekit.plugins.openai_stt")
    recorder = Recorder()
    async with local_server(max_session_s=3.0) as server:
        stt = client(server, api_key="t", session_rollover_s=2.0, connect=recorder.connect)
        stream = stt.stream(conn_options=FAST_RETRY)
        for frame in frames(0.2):
            stream.push_frame(frame)
        stream.flush()
        # no audio for 2.2 s: the next session is opened ahead at about 1 s and waits; used
        # at 2.2 s, it must roll over again by 3.0 s from its connect, not from its use
        await asyncio.sleep(2.2)
        for index in range(36):  # then 0.2 s turns in real time
            for frame in frames(0.1):
                stream.push_frame(frame)
            await asyncio.sleep(0.1)
            if index % 2:
                stream.flush()
        stream.end_input()
        events = await asyncio.wait_for(collect(stream), 20)
        await stream.aclose()
    assert len(finals(events)) == 19
    ended = [r for r in caplog.records if r.getMessage().startswith("session ended by the server")]
    assert not ended  # every move was a rollover, none a session_expired
    assert recorder.closed == recorder.connects
