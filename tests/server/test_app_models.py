"""The local server over a real socket: model classes, server VAD on real speech, limits, and
the shared decode queue. Scripted engine (instant); Silero VAD is real (cheap)."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from examples.evaluation import read_wav
from livekit.plugins.openai_stt.server import DecodeScheduler, LocalRealtimeServer, ScriptedEngine
from livekit.plugins.openai_stt.server.engines import resample_int16

AUTH = {"Authorization": "Bearer test-key"}
TIMEOUT = 5.0
DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"


def ws_url(srv: LocalRealtimeServer) -> str:
    return srv.ws_url + "?intent=transcription"


def tone(ms: float, rate: int = 24000) -> bytes:
    t = np.arange(int(rate * ms / 1000)) / rate
    return (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2").tobytes()


def append(audio: bytes) -> str:
    return json.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()}
    )


def update(**input_fields: Any) -> str:
    return json.dumps(
        {
            "type": "session.update",
            "session": {"type": "transcription", "audio": {"input": input_fields}},
        }
    )


async def recv(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def recv_until(ws: ClientConnection, type_: str, count: int = 1) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while sum(e["type"] == type_ for e in events) < count:
        events.append(await recv(ws))
    return events


async def open_session(srv: LocalRealtimeServer, **input_fields: Any) -> ClientConnection:
    ws = await connect(ws_url(srv), additional_headers=AUTH)
    assert (await recv(ws))["type"] == "session.created"
    if input_fields:
        await ws.send(update(**input_fields))
        assert (await recv(ws))["type"] == "session.updated"
    return ws


# ----------------------------------------------------------------------------- pre-commit deltas


async def test_pre_commit_deltas_arrive_before_committed_and_concatenate_to_a_final_prefix() -> (
    None
):
    final = "And so my fellow Americans ask not what your country can do for you"
    engine = ScriptedEngine([final])  # partials: the first 2.5 words a second of it
    async with LocalRealtimeServer(engine=engine, delta_interval_s=0.05) as srv:
        ws = await open_session(srv)
        async with ws:
            for _ in range(30):  # 3 s of audio over ~0.6 s of wall time
                await ws.send(append(tone(100)))
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.15)
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            events = await recv_until(ws, COMPLETED)
    kinds = [e["type"] for e in events]
    at_commit = kinds.index("input_audio_buffer.committed")
    before = events[:at_commit]
    assert before and all(e["type"] == DELTA for e in before)
    item_id = events[at_commit]["item_id"]
    assert {e["item_id"] for e in events} == {item_id}  # the id the commit then gave
    streamed = "".join(e["delta"] for e in before)
    assert final.startswith(streamed) and len(streamed.split()) >= 3
    assert "".join(e["delta"] for e in events if e["type"] == DELTA) == final
    assert events[-1]["transcript"] == final


async def test_delta_interval_zero_turns_pre_commit_deltas_off() -> None:
    async with LocalRealtimeServer(
        engine=ScriptedEngine(["a b c d e f"]), delta_interval_s=0
    ) as srv:
        ws = await open_session(srv)
        async with ws:
            for _ in range(30):  # as in the test above, which gets deltas before the commit
                await ws.send(append(tone(100)))
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.15)
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            events = await recv_until(ws, COMPLETED)
    assert events[0]["type"] == "input_audio_buffer.committed"


# ----------------------------------------------------------------------------- server VAD


def two_utterances(audio_dir: Path, rate: int = 24000) -> tuple[bytes, list[float]]:
    """goforward.wav, 1 s of silence, librivox-0880.wav, 1 s of silence (pcm16 at ``rate``);
    and where each clip starts, in seconds."""
    parts, starts, t = [], [], 0.0
    for name in ("goforward.wav", "librivox-0880.wav"):
        samples, clip_rate = read_wav(audio_dir / name)
        pcm = resample_int16(samples[:, 0], clip_rate, rate)
        starts.append(t)
        parts += [pcm, np.zeros(rate, dtype=np.int16)]
        t += (len(pcm) + rate) / rate
    return np.concatenate(parts).astype("<i2").tobytes(), starts


async def test_server_vad_on_real_speech_starts_stops_and_commits_each_utterance(
    audio_dir: Path,
) -> None:
    audio, starts = two_utterances(audio_dir)
    async with LocalRealtimeServer(engine=ScriptedEngine(["go forward", "not ill"])) as srv:
        ws = await open_session(
            srv,
            transcription={"model": "gpt-4o-transcribe"},
            turn_detection={
                "type": "server_vad",
                "threshold": 0.5,
                "prefix_padding_ms": 300,
                "silence_duration_ms": 500,
            },
        )
        async with ws:
            for k in range(0, len(audio), 4800):  # 100 ms appends, faster than real time
                await ws.send(append(audio[k : k + 4800]))
            events = await recv_until(ws, COMPLETED, 2)
    kinds = [e["type"] for e in events if not e["type"].startswith("conversation.item")]
    assert (
        kinds
        == [
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "input_audio_buffer.committed",
        ]
        * 2
    )
    started = [e for e in events if e["type"].endswith("speech_started")]
    stopped = [e for e in events if e["type"].endswith("speech_stopped")]
    committed = [e for e in events if e["type"].endswith("committed")]
    ids = [e["item_id"] for e in committed]
    assert [e["item_id"] for e in started] == ids and len(set(ids)) == 2
    # speech in goforward.wav starts at ~0.51 s, in librivox-0880.wav ~0.26 s after its start;
    # audio_start_ms includes the 300 ms of padding
    assert started[0]["audio_start_ms"] == pytest.approx(510 - 300, abs=100)
    assert started[1]["audio_start_ms"] == pytest.approx(starts[1] * 1000 + 260 - 300, abs=100)
    # speech ends ~2.18 s into goforward.wav; the stop comes 500 ms of silence later
    assert stopped[0]["audio_end_ms"] == pytest.approx(2180 + 500, abs=150)
    assert stopped[0]["audio_end_ms"] < started[1]["audio_start_ms"]
    completed = [e for e in events if e["type"] == COMPLETED]
    assert [c["transcript"] for c in completed] == ["go forward", "not ill"]
    assert all(c["usage"]["type"] == "tokens" for c in completed)


async def test_without_turn_detection_a_vad_model_waits_for_client_commits(
    audio_dir: Path,
) -> None:
    audio, _ = two_utterances(audio_dir)
    async with LocalRealtimeServer(engine="scripted") as srv:
        ws = await open_session(
            srv, transcription={"model": "gpt-4o-transcribe"}, turn_detection=None
        )
        async with ws:
            await ws.send(append(audio[: 24000 * 2 * 3]))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            events = await recv_until(ws, COMPLETED)
    assert events[0]["type"] == "input_audio_buffer.committed"
    assert not [e for e in events if "speech_" in e["type"]]


async def test_a_detector_that_cannot_load_gives_an_error_and_the_session_goes_on() -> None:
    def broken(format_type: str, rate: int) -> Any:
        raise RuntimeError("no onnxruntime here")

    async with LocalRealtimeServer(engine="scripted", vad=broken) as srv:
        ws = await open_session(
            srv, transcription={"model": "whisper-1"}, turn_detection={"type": "server_vad"}
        )
        async with ws:
            await ws.send(append(tone(300)))
            error = await recv(ws)
            assert error["type"] == "error" and error["error"]["code"] == "vad_unavailable"
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            events = await recv_until(ws, COMPLETED)
    assert [e["type"] for e in events] == ["input_audio_buffer.committed", COMPLETED]  # whisper-1


# ----------------------------------------------------------------------------- limits


async def test_more_sessions_than_max_sessions_get_http_503_with_a_clear_body() -> None:
    async with LocalRealtimeServer(engine="scripted", max_sessions=2) as srv:
        first, second = await open_session(srv), await open_session(srv)
        with pytest.raises(InvalidStatus) as info:
            await connect(ws_url(srv), additional_headers=AUTH)
        assert info.value.response.status_code == 503
        assert b"max_sessions=2" in info.value.response.body
        await first.close()
        await second.close()
        for _ in range(50):  # the server sees the close a moment later
            if srv.active_sessions < 2:
                break
            await asyncio.sleep(0.01)
        third = await open_session(srv)
        await third.close()


async def test_audio_past_max_buffer_s_gets_an_error_and_the_session_goes_on() -> None:
    async with LocalRealtimeServer(engine="scripted", max_buffer_s=1.0) as srv:
        ws = await open_session(srv)
        async with ws:
            for _ in range(3):
                await ws.send(append(tone(400)))
            error = await recv(ws)
            assert error["error"]["code"] == "input_audio_buffer_full"
            assert "max_buffer_s=1" in error["error"]["message"]
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            events = await recv_until(ws, COMPLETED)
    assert events[-1]["usage"] == {"type": "duration", "seconds": 0.8}


async def test_unknown_events_and_oversized_appends_get_errors_and_the_session_goes_on() -> None:
    async with LocalRealtimeServer(engine="scripted") as srv:
        ws = await open_session(srv)
        async with ws:
            await ws.send(json.dumps({"type": "response.create", "event_id": "e1"}))
            unknown = await recv(ws)
            assert unknown["error"]["param"] == "type" and unknown["error"]["event_id"] == "e1"
            big = "A" * (21 * 1024 * 1024)  # > 15 MiB of audio once decoded
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": big}))
            too_big = await recv(ws)
            assert too_big["error"]["code"] == "input_audio_buffer_append_too_large"
            await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
            assert (await recv(ws))["type"] == "input_audio_buffer.cleared"


# ----------------------------------------------------------------------------- decode queue


async def test_the_decode_queue_runs_finals_before_partials_and_keeps_one_partial_per_session() -> (
    None
):
    scheduler = DecodeScheduler()
    await scheduler.start()
    gate, ran = threading.Event(), []

    def job(name: str) -> str:
        if name == "blocker":
            gate.wait(5)
        ran.append(name)
        return name

    try:
        blocker = scheduler.submit_final(job, "blocker")
        await asyncio.sleep(0.05)  # the worker is now busy
        p_a_old = scheduler.submit_partial("a", job, "partial a (old)")
        p_b = scheduler.submit_partial("b", job, "partial b")
        p_a = scheduler.submit_partial("a", job, "partial a")  # replaces a's waiting one
        f_1 = scheduler.submit_final(job, "final 1")
        p_c = scheduler.submit_partial("c", job, "partial c")
        scheduler.drop_partial("c")  # c committed: its final wins
        assert scheduler.backlog == 3
        gate.set()
        results = await asyncio.gather(blocker, p_a_old, p_b, p_a, f_1, p_c)
    finally:
        await scheduler.aclose()
    assert ran == ["blocker", "final 1", "partial b", "partial a"]
    assert results == ["blocker", None, "partial b", "partial a", "final 1", None]
    assert (scheduler.finals_run, scheduler.partials_run, scheduler.partials_dropped) == (2, 2, 2)


class _SlowEngine(ScriptedEngine):
    """Each decode takes ``seconds`` of (sleeping) worker time; counts partials."""

    def __init__(self, seconds: float) -> None:
        super().__init__(["one two three four five six seven eight nine ten"])
        self.seconds = seconds
        self.partials = 0

    def recognize(self, samples: np.ndarray, **kw: Any) -> Any:
        time.sleep(self.seconds)
        return super().recognize(samples, **kw)

    def recognize_partial(self, samples: np.ndarray, **kw: Any) -> Any:
        time.sleep(self.seconds)
        self.partials += 1
        return super().recognize_partial(samples, **kw)


async def test_under_load_partials_thin_out_and_finals_do_not_wait_behind_them() -> None:
    engine = _SlowEngine(0.05)
    async with LocalRealtimeServer(engine=engine, delta_interval_s=0.05) as srv:
        sockets = [await open_session(srv) for _ in range(4)]

        async def talk(ws: ClientConnection) -> float:
            for _ in range(20):  # 2 s of audio over ~0.6 s
                await ws.send(append(tone(100)))
                await asyncio.sleep(0.03)
            sent = time.monotonic()
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            await recv_until(ws, COMPLETED)
            return time.monotonic() - sent

        latencies = await asyncio.gather(*(talk(ws) for ws in sockets))
        for ws in sockets:
            await ws.close()
    # 4 sessions x 20 appends at a 0.05 s interval would ask ~4 x 12 partials unthrottled;
    # with the backlog stretch far fewer run
    assert engine.partials < 4 * 12
    # a final waits at most for the decode already running plus the finals queued before it
    assert max(latencies) < 0.05 * (1 + 4) + 0.3


# ----------------------------------------------------------------------------- hygiene


async def test_one_info_log_line_per_session_and_per_turn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="livekit.plugins.openai_stt.server")
    async with LocalRealtimeServer(engine="scripted") as srv:
        ws = await open_session(srv)
        async with ws:
            for _ in range(2):
                await ws.send(append(tone(300)))
                await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
                await recv_until(ws, COMPLETED)
        for _ in range(100):  # the server logs the close a moment after the client's
            if any(r.getMessage() == "session closed" for r in caplog.records):
                break
            await asyncio.sleep(0.01)
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "livekit.plugins.openai_stt.server" and r.levelno >= logging.INFO
    ]
    assert lines == [
        "local realtime server listening",
        "turn transcribed",
        "turn transcribed",
        "session closed",
        "local realtime server stopped",
    ]
    closed = next(r for r in caplog.records if r.getMessage() == "session closed")
    assert closed.turns == 2 and closed.model == "gpt-realtime-whisper"  # type: ignore[attr-defined]


def test_server_binds_loopback_by_default_and_the_cli_builds_the_limits() -> None:
    from livekit.plugins.openai_stt.server.__main__ import build_parser, server_from_args

    assert LocalRealtimeServer(engine="scripted").host == "127.0.0.1"
    args = build_parser().parse_args(["--engine", "scripted"])
    assert args.host == "127.0.0.1"
    server = server_from_args(args)
    assert (server.delta_interval_s, server.max_sessions, server.max_buffer_s) == (1.0, 64, 600)
    args = build_parser().parse_args(
        [
            "--engine",
            "scripted",
            "--delta-interval-s",
            "0",
            "--max-sessions",
            "0",
            "--max-buffer-s",
            "30",
        ]
    )
    server = server_from_args(args)
    assert (server.delta_interval_s, server.max_sessions, server.max_buffer_s) == (None, None, 30)
    args = build_parser().parse_args(
        ["--engine", "scripted", "--delta-interval-s", "0.5", "--max-sessions", "8"]
    )
    server = server_from_args(args)
    assert (server.delta_interval_s, server.max_sessions) == (0.5, 8)
