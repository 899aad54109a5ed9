"""The local server with no socket: ``LocalRealtimeServer(port=None).serve_channel`` over the
in-memory pair, scripted engine. The same session code as the websocket path, no port, no sleep."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from livekit.plugins.openai_stt.protocol.events import (
    AppendAudio,
    CommitAudio,
    UpdateSession,
    parse,
    to_wire,
)
from livekit.plugins.openai_stt.server import (
    ChannelClosed,
    Faults,
    HandshakeRejected,
    LocalRealtimeServer,
    Recognition,
    ScriptedEngine,
    ServerChannel,
    memory_channel_pair,
)
from livekit.plugins.openai_stt.server.engines import Engine, WhisperEngine, as_engine
from livekit.plugins.openai_stt.server.memory import MemoryClientEnd

AUTH = {"Authorization": "Bearer test-key"}
PATH = "/v1/realtime?intent=transcription"
COMPLETED = "conversation.item.input_audio_transcription.completed"
TIMEOUT = 5.0


def pcm(ms: float) -> bytes:
    return (np.ones(int(24 * ms), dtype="<i2") * 1000).tobytes()


def append(audio: bytes) -> str:
    return to_wire(AppendAudio(audio))


async def recv(end: MemoryClientEnd) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(end.recv(), TIMEOUT))


async def recv_until(end: MemoryClientEnd, type_: str) -> list[dict[str, Any]]:
    events = [await recv(end)]
    while events[-1]["type"] != type_:
        events.append(await recv(end))
    return events


async def closed(end: MemoryClientEnd) -> ChannelClosed:
    with pytest.raises(ChannelClosed) as info:
        while True:
            await asyncio.wait_for(end.recv(), TIMEOUT)
    return info.value


class Session:
    """One served channel: the client end and the task running ``serve_channel``."""

    def __init__(self, server: LocalRealtimeServer, path: str = PATH, headers=None) -> None:
        server_end, self.client = memory_channel_pair()
        self.task = asyncio.create_task(
            server.serve_channel(
                server_end, path=path, headers=AUTH if headers is None else headers
            )
        )

    async def done(self) -> None:
        await asyncio.wait_for(self.task, TIMEOUT)


@pytest.fixture
async def server() -> AsyncIterator[LocalRealtimeServer]:
    async with LocalRealtimeServer(engine=ScriptedEngine(["Ask not what"]), port=None) as srv:
        yield srv


async def test_a_turn_over_the_memory_channel_needs_no_port(server: LocalRealtimeServer) -> None:
    with pytest.raises(RuntimeError):
        server.port  # noqa: B018 - nothing listens
    s = Session(server)
    assert (await recv(s.client))["type"] == "session.created"
    await s.client.send(append(pcm(500)))
    await s.client.send(to_wire(CommitAudio("c1")))
    events = await recv_until(s.client, COMPLETED)
    assert [e["type"] for e in events] == [
        "input_audio_buffer.committed",
        *["conversation.item.input_audio_transcription.delta"] * 3,
        COMPLETED,
    ]
    assert events[-1]["transcript"] == "Ask not what"
    assert events[-1]["usage"] == {"type": "duration", "seconds": 0.5}
    assert server.active_sessions == 1
    await s.client.close()
    await s.done()
    assert server.active_sessions == 0
    assert s.client.close_code == 1000


async def test_every_server_message_parses_as_a_typed_event(server: LocalRealtimeServer) -> None:
    s = Session(server)
    update = {"type": "transcription", "include": ["item.input_audio_transcription.logprobs"]}
    await s.client.send(to_wire(UpdateSession(update, event_id="u1")))
    await s.client.send(append(pcm(300)))
    await s.client.send(to_wire(CommitAudio()))
    texts = []
    while not texts or json.loads(texts[-1])["type"] != COMPLETED:
        texts.append(await asyncio.wait_for(s.client.recv(), TIMEOUT))
    for text in texts:
        event = parse(text)
        assert to_wire(event) == text  # the server writes exactly what to_wire writes
    await s.client.close()
    await s.done()


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/health", {}, 200),
        ("/v1/other", AUTH, 404),
        (PATH, {}, 401),
        (PATH, {"Authorization": "Bearer "}, 401),
    ],
)
async def test_the_handshake_is_checked_as_for_a_socket(
    server: LocalRealtimeServer, path: str, headers: dict[str, str], status: int
) -> None:
    server_end, _ = memory_channel_pair()
    with pytest.raises(HandshakeRejected) as info:
        await server.serve_channel(server_end, path=path, headers=headers)
    assert info.value.status == status
    assert server.active_sessions == 0


async def test_rejections_count_like_the_socket_path_and_the_session_limit_holds() -> None:
    faults = Faults(reject_handshake_status=429, reject_handshakes=1)
    async with LocalRealtimeServer(
        engine="scripted", port=None, faults=faults, max_sessions=1
    ) as srv:
        with pytest.raises(HandshakeRejected) as info:
            await srv.serve_channel(memory_channel_pair()[0], path=PATH, headers=AUTH)
        assert (info.value.status, srv.counters.handshakes_rejected) == (429, 1)
        first = Session(srv)
        await recv(first.client)
        with pytest.raises(HandshakeRejected) as info:
            await srv.serve_channel(memory_channel_pair()[0], path=PATH, headers=AUTH)
        assert info.value.status == 503 and "max_sessions=1" in info.value.body
        await first.client.close()
        await first.done()


@pytest.mark.parametrize(
    ("compat", "path", "headers", "code", "reason"),
    [
        ("openai", PATH, {**AUTH, "OpenAI-Beta": "realtime=v1"}, 4000, "beta_api_shape_disabled"),
        ("gateway", PATH, AUTH, 1008, "model query parameter is required"),
    ],
)
async def test_compat_closes_reach_the_client_with_code_and_reason(
    compat: str, path: str, headers: dict[str, str], code: int, reason: str
) -> None:
    async with LocalRealtimeServer(engine="scripted", port=None, compat=compat) as srv:
        s = Session(srv, path, headers)
        exc = await closed(s.client)
        await s.done()
    assert (exc.code, exc.reason, exc.aborted) == (code, reason, False)


@pytest.mark.parametrize(("mode", "code"), [("close_1011", 1011), ("reset", None)])
async def test_a_drop_is_a_close_frame_or_an_abort(mode: str, code: int | None) -> None:
    faults = Faults(drop_after_audio_ms=100, drop_mode=mode)  # type: ignore[arg-type]
    async with LocalRealtimeServer(engine="scripted", port=None, faults=faults) as srv:
        s = Session(srv)
        await recv(s.client)
        await s.client.send(append(pcm(200)))
        exc = await closed(s.client)
        await s.done()
        assert exc.code == code and exc.aborted == (code is None)
        assert s.client.close_code == (code or 1006)
        with pytest.raises(ChannelClosed):
            await s.client.send(append(pcm(100)))


async def test_binary_messages_get_an_error_and_the_session_goes_on(
    server: LocalRealtimeServer,
) -> None:
    s = Session(server)
    await recv(s.client)
    await s.client.send(b"\x00\x01")
    assert (await recv(s.client))["error"]["code"] == "invalid_value"
    await s.client.send('{"type":"input_audio_buffer.clear"}')
    assert (await recv(s.client))["type"] == "input_audio_buffer.cleared"
    await s.client.close()
    await s.done()


async def test_closing_the_server_closes_channel_sessions_with_1001() -> None:
    srv = LocalRealtimeServer(engine="scripted", port=None)
    await srv.start()
    s = Session(srv)
    await recv(s.client)
    await srv.aclose()
    exc = await closed(s.client)
    await s.done()
    assert exc.code == 1001


async def test_serve_channel_starts_the_server_when_needed() -> None:
    srv = LocalRealtimeServer(engine="scripted", port=None)
    s = Session(srv)
    assert (await recv(s.client))["type"] == "session.created"
    assert srv.scheduler is not None and srv.engine is not None
    await s.client.close()
    await s.done()
    await srv.aclose()


async def test_an_engine_with_only_transcribe_is_adapted() -> None:
    class Old:
        sample_rate_hz = 8000

        def transcribe(self, samples, *, language, prompt):
            return f"{len(samples)} samples"

    async with LocalRealtimeServer(engine=Old(), port=None) as srv:
        s = Session(srv)
        await recv(s.client)
        await s.client.send(append(pcm(250)))
        await s.client.send(to_wire(CommitAudio()))
        events = await recv_until(s.client, COMPLETED)
        await s.client.close()
        await s.done()
    assert events[-1]["transcript"] == "2000 samples"  # 250 ms at the engine's 8 kHz


def test_the_engines_implement_the_engine_protocol() -> None:
    assert isinstance(ScriptedEngine(), Engine)
    for name in ("recognize", "recognize_partial"):
        assert callable(getattr(WhisperEngine, name))
    assert WhisperEngine.sample_rate_hz == 16000
    engine = ScriptedEngine(["a b"])
    assert as_engine(engine) is engine
    samples = np.zeros(16000, dtype=np.float32)
    assert engine.recognize(samples, language=None, prompt=None) == Recognition("a b", -0.1)
    with pytest.raises(TypeError):
        as_engine(object())


# -- the in-memory pair itself -------------------------------------------------------------------


async def test_the_memory_pair_keeps_order_and_ends_after_the_messages_sent_before() -> None:
    server_end, client_end = memory_channel_pair()
    assert isinstance(server_end, ServerChannel)
    await client_end.send("a")
    await client_end.send(b"b")
    await server_end.send("x")
    await server_end.close(4000, "bye")
    assert [await server_end.recv(), await server_end.recv()] == ["a", b"b"]
    assert await client_end.recv() == "x"
    for end in (client_end, server_end):  # every later recv sees the end too
        for _ in range(2):
            with pytest.raises(ChannelClosed) as info:
                await end.recv()
            assert (info.value.code, info.value.reason) == (4000, "bye")
    assert server_end.close_code == client_end.close_code == 4000
    with pytest.raises(ChannelClosed):
        await server_end.send("late")
    await client_end.wait_closed()


async def test_an_abort_has_no_close_frame() -> None:
    server_end, client_end = memory_channel_pair()
    server_end.abort()
    with pytest.raises(ChannelClosed) as info:
        await client_end.recv()
    assert info.value.aborted and info.value.code is None
    assert server_end.close_code == 1006
    server_end, client_end = memory_channel_pair()
    client_end.abort()
    with pytest.raises(ChannelClosed) as info:
        await server_end.recv()
    assert info.value.aborted
