"""``dialect="vllm"`` against the local server's ``compat="vllm"`` (docs/protocol.md §7): the
stream's behaviours that apply to vLLM's turn protocol: a final per flushed turn, the 100 ms
rule, no audio sent between a ``final`` and its ``done`` (vLLM drops it), replay after a drop
with no word lost, a failed generation retried, a final that never comes, the session's end,
rollover, and configuration errors fatal. In memory, except one run over a real socket."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from livekit.agents import APIError
from livekit.plugins import openai_stt

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
)
from tests.test_bounds import Silent

MODEL = "mistralai/Voxtral-Mini-4B-Realtime-2602"
BASE = "http://127.0.0.1:9/v1"


def vllm_server(**kwargs: Any) -> LocalRealtimeServer:
    kwargs.setdefault("port", None)
    return LocalRealtimeServer(engine="scripted", compat="vllm", **kwargs)


def vllm_stt(server: LocalRealtimeServer, recorder: Recorder, **kwargs: Any) -> openai_stt.STT:
    recorder.inner = memory_connect(server)
    kwargs.setdefault("model", MODEL)
    return openai_stt.STT(
        base_url=BASE, api_key="t", dialect="vllm", connect=recorder.connect, **kwargs
    )


def turn_order(recorder: Recorder) -> list[str]:
    """The client events, with runs of appends collapsed: the shape of the turns."""
    out: list[str] = []
    for m in recorder.sent:
        kind = {"input_audio_buffer.append": "audio", "session.update": "update"}.get(m["type"])
        if kind is None:
            kind = "final" if m.get("final") else "start"
        if not out or out[-1] != kind or kind != "audio":
            out.append(kind)
    return out


async def test_each_flushed_turn_is_one_generation_and_one_final() -> None:
    recorder = Recorder()
    async with vllm_server() as server:
        stt = vllm_stt(server, recorder)
        events = await run_turns(stt, [0.5, 0.8, 0.3])
    assert finals(events) == [
        "0.50 seconds of audio",
        "0.80 seconds of audio",
        "0.30 seconds of audio",
    ]
    # one update with the model only; then start, audio, final per turn, and nothing between a
    # final and its done (vLLM would drop it): the next turn starts only after
    assert turn_order(recorder) == ["update"] + ["start", "audio", "final"] * 3
    assert recorder.sent[0] == {
        "type": "session.update",
        "model": MODEL,
        "event_id": "session_update_1",
    }
    usage = [e.recognition_usage for e in events if e.type == T.RECOGNITION_USAGE]
    assert [round(u.audio_duration, 2) for u in usage] == [0.5, 0.8, 0.3]
    assert all(u.input_tokens > 0 and u.output_tokens > 0 for u in usage)


async def test_appends_are_16khz_pcm16() -> None:
    import base64

    recorder = Recorder()
    async with vllm_server() as server:
        stt = vllm_stt(server, recorder)
        await run_turns(stt, [1.0])
    audio = sum(len(base64.b64decode(m["audio"])) for m in recorder.sent if "audio" in m)
    assert audio == 16000 * 2


async def test_a_commit_with_less_than_100ms_is_not_sent() -> None:
    recorder = Recorder()
    async with vllm_server() as server:
        stt = vllm_stt(server, recorder)
        events = await run_turns(stt, [0.05, 0.5])
    assert finals(events) == ["0.55 seconds of audio"]
    assert turn_order(recorder).count("final") == 1


async def test_a_drop_mid_turn_replays_it_and_loses_no_words() -> None:
    recorder = Recorder()
    async with vllm_server(faults=Faults(drop_after_audio_ms=800, drop_sessions=1)) as server:
        stt = vllm_stt(server, recorder)
        events = await run_turns(stt, [0.5, 0.5, 0.5])
    assert recorder.connects == 2
    assert finals(events) == ["0.50 seconds of audio"] * 3


async def test_a_failed_generation_ends_its_turn_with_a_recoverable_error() -> None:
    """vLLM's ``processing_error``: no ``done`` will come and its queue keeps the audio, so the
    turn ends as OpenAI's ``failed`` does, and the stream goes on on a clean socket."""
    errors: list[Any] = []
    recorder = Recorder()
    async with vllm_server(faults=Faults(fail_items=frozenset({2}))) as server:
        stt = vllm_stt(server, recorder)
        stt.on("error", errors.append)
        events = await run_turns(stt, [0.5, 0.6, 0.4])
    # the second generation failed; the third turn went on a clean socket
    assert finals(events) == ["0.50 seconds of audio", "0.40 seconds of audio"]
    assert errors and all(e.recoverable for e in errors)  # the turn's, and LiveKit's retry
    assert any("failed" in str(e.error) for e in errors)
    assert recorder.connects == 2


async def test_a_done_that_never_comes_ends_the_stream_after_max_retry_attempts() -> None:
    silent = Silent()  # accepts, reads, never answers: no done
    stt = openai_stt.STT(
        base_url=BASE,
        api_key="t",
        dialect="vllm",
        model=MODEL,
        final_timeout_s=0.3,
        connect=silent.connect,
    )
    stream = stt.stream(conn_options=FAST_RETRY)
    for frame in frames(0.4):
        stream.push_frame(frame)
    stream.end_input()
    with pytest.raises(APIError, match="no progress"):
        await asyncio.wait_for(collect(stream), 15)
    await stream.aclose()
    assert silent.connects == FAST_RETRY.max_retry + 1  # bounded, not for ever


async def test_a_session_the_server_ends_reconnects_and_keeps_every_turn() -> None:
    recorder = Recorder()
    async with vllm_server(max_session_s=0.4) as server:
        stt = vllm_stt(server, recorder)
        stream = stt.stream(conn_options=FAST_RETRY)
        for _ in range(3):
            for frame in frames(0.3):
                stream.push_frame(frame)
            stream.flush()
            await asyncio.sleep(0.35)
        stream.end_input()
        events = await asyncio.wait_for(collect(stream), 15)
        await stream.aclose()
    assert recorder.connects >= 2
    assert finals(events) == ["0.30 seconds of audio"] * 3


async def test_rollover_moves_to_the_next_session_at_a_turn_boundary() -> None:
    recorder = Recorder()
    async with vllm_server() as server:
        stt = vllm_stt(server, recorder, session_rollover_s=1.0)
        stream = stt.stream(conn_options=FAST_RETRY)
        for turn in range(3):
            for frame in frames(0.3):
                stream.push_frame(frame)
            stream.flush()
            if turn < 2:
                await asyncio.sleep(1.05)
        stream.end_input()
        events = await asyncio.wait_for(collect(stream), 15)
        await stream.aclose()
    assert recorder.connects >= 3
    assert finals(events) == ["0.30 seconds of audio"] * 3


@pytest.mark.parametrize("model", [" ", ""])
async def test_a_model_the_server_does_not_serve_is_fatal_at_once(model: str) -> None:
    recorder = Recorder()
    async with vllm_server() as server:
        stt = vllm_stt(server, recorder, model=model or " ")
        stream = stt.stream(conn_options=FAST_RETRY)
        for frame in frames(0.3):
            stream.push_frame(frame)
        stream.end_input()
        with pytest.raises(APIError, match="model_not_found") as info:
            await asyncio.wait_for(collect(stream), 10)
        await stream.aclose()
    assert not info.value.retryable and recorder.connects == 1


async def test_over_a_real_socket() -> None:
    async with LocalRealtimeServer(engine="scripted", compat="vllm", port=0) as server:
        stt = openai_stt.STT(base_url=server.base_url, api_key="t", dialect="vllm", model=MODEL)
        events = await run_turns(stt, [0.4, 0.4])
    assert finals(events) == ["0.40 seconds of audio"] * 2


def test_vllm_takes_pcm16_only() -> None:
    with pytest.raises(ValueError, match="pcm16"):
        openai_stt.STT(api_key="k", dialect="vllm", audio_format="g711_ulaw")
