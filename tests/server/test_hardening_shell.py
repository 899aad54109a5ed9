"""The local server's shell under hostile clients (issue 14 "Local server"): a session handler
that raises, a client that stops reading, idle sockets holding slots, a public bind without a
key. In-memory channels and ``port=None`` servers; the few waits are bounded timeouts of a
fraction of a second, not sleeps."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from livekit.plugins.openai_stt.server import (
    HandshakeRejected,
    LocalRealtimeServer,
    memory_channel_pair,
)
from livekit.plugins.openai_stt.server.__main__ import build_parser, main, server_from_args
from livekit.plugins.openai_stt.server.channel import ChannelClosed
from livekit.plugins.openai_stt.server.memory import MemoryServerEnd
from livekit.plugins.openai_stt.server.session import ServerSession

AUTH = {"Authorization": "Bearer k"}
PATH = "/v1/realtime?intent=transcription"
TIMEOUT = 5.0


async def recv(client: Any) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(client.recv(), TIMEOUT))


async def until_closed(client: Any) -> list[dict[str, Any]]:
    events = []
    with pytest.raises(ChannelClosed):
        while True:
            events.append(await recv(client))
    return events


class StallingEnd:
    """A server end whose ``send`` never completes after ``ok`` messages (a client that
    stopped reading: its socket buffers are full)."""

    def __init__(self, inner: MemoryServerEnd, ok: int) -> None:
        self.inner, self.ok, self.aborted = inner, ok, False

    async def recv(self) -> str | bytes:
        return await self.inner.recv()

    async def send(self, text: str) -> None:
        if self.ok <= 0:
            await asyncio.Event().wait()  # blocked for ever
        self.ok -= 1
        await self.inner.send(text)

    async def close(self, code: int, reason: str) -> None:
        await self.inner.close(code, reason)

    def abort(self) -> None:
        self.aborted = True
        self.inner.abort()

    @property
    def close_code(self) -> int | None:
        return self.inner.close_code


# ------------------------------------------------------------ issue 14.1: a handler that raises


async def test_a_session_handler_that_raises_gives_server_error_and_the_session_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = ServerSession.receive

    def receive(self: ServerSession, text: str, now: float) -> Any:
        if text == "boom":
            raise RecursionError("maximum recursion depth exceeded")
        return real(self, text, now)

    monkeypatch.setattr(ServerSession, "receive", receive)
    async with LocalRealtimeServer(port=None, engine="scripted") as server:
        end, client = memory_channel_pair()
        task = asyncio.create_task(server.serve_channel(end, path=PATH, headers=AUTH))
        assert (await recv(client))["type"] == "session.created"
        await client.send("boom")
        error = await recv(client)
        assert error["error"]["type"] == "server_error"
        await client.send('{"type":"input_audio_buffer.clear"}')
        assert (await recv(client))["type"] == "input_audio_buffer.cleared"
        await client.close()
        await asyncio.wait_for(task, TIMEOUT)


# ------------------------------------------------------------ issue 14.2: a client not reading


async def test_a_send_that_never_completes_drops_the_connection() -> None:
    async with LocalRealtimeServer(port=None, engine="scripted", send_timeout_s=0.05) as server:
        inner, _client = memory_channel_pair()
        end = StallingEnd(inner, ok=0)  # not even session.created goes out
        await asyncio.wait_for(server.serve_channel(end, path=PATH, headers=AUTH), TIMEOUT)
        assert end.aborted and server.active_sessions == 0


async def test_the_session_cap_holds_for_a_client_that_stopped_reading() -> None:
    async with LocalRealtimeServer(
        port=None, engine="scripted", max_session_s=0.2, send_timeout_s=0.05
    ) as server:
        inner, client = memory_channel_pair()
        end = StallingEnd(inner, ok=1)  # session.created, then nothing gets through
        task = asyncio.create_task(server.serve_channel(end, path=PATH, headers=AUTH))
        await recv(client)
        for _ in range(20):  # answers pile up unread
            await client.send('{"type":"input_audio_buffer.clear"}')
        await asyncio.wait_for(task, TIMEOUT)  # ended by the cap and the send timeout
        assert end.aborted


# ------------------------------------------------------------ issue 14.4: idle slots reaped


async def test_an_idle_socket_is_reaped_and_its_slot_serves_the_next_client() -> None:
    async with LocalRealtimeServer(
        port=None, engine="scripted", max_sessions=1, idle_timeout_s=0.1
    ) as server:
        end, idle = memory_channel_pair()
        task = asyncio.create_task(server.serve_channel(end, path=PATH, headers=AUTH))
        assert (await recv(idle))["type"] == "session.created"
        end2, _ = memory_channel_pair()
        with pytest.raises(HandshakeRejected) as full:
            await server.serve_channel(end2, path=PATH, headers=AUTH)
        assert full.value.status == 503
        (error,) = await until_closed(idle)
        assert error["error"]["code"] == "idle_timeout" and idle.close_code == 1001
        await asyncio.wait_for(task, TIMEOUT)
        end3, client3 = memory_channel_pair()
        task3 = asyncio.create_task(server.serve_channel(end3, path=PATH, headers=AUTH))
        assert (await recv(client3))["type"] == "session.created"
        await client3.close()
        await asyncio.wait_for(task3, TIMEOUT)


# ------------------------------------------------------------ flags and constructor arguments


@pytest.mark.parametrize(
    ("argv", "attrs"),
    [
        ([], {"idle_timeout_s": 120.0, "max_pending_s": 120.0, "send_timeout_s": 10.0}),
        (["--idle-timeout-s", "0"], {"idle_timeout_s": None}),
        (["--idle-timeout-s", "30", "--max-pending-s", "45"], {"idle_timeout_s": 30.0}),
        (["--max-pending-s", "45", "--send-timeout-s", "2.5"], {"max_pending_s": 45.0}),
        (["--send-timeout-s", "2.5"], {"send_timeout_s": 2.5}),
    ],
)
def test_the_limits_have_flags(argv: list[str], attrs: dict[str, Any]) -> None:
    server = server_from_args(build_parser().parse_args(argv))
    for name, value in attrs.items():
        assert getattr(server, name) == value


@pytest.mark.parametrize(
    "argv",
    [["--idle-timeout-s", "-1"], ["--max-pending-s", "0"], ["--send-timeout-s", "nan"]],
)
def test_bad_limit_flags_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)


@pytest.mark.parametrize(
    "kwargs",
    [{"idle_timeout_s": 0.0}, {"max_pending_s": -1.0}, {"send_timeout_s": 0.0}],
)
def test_bad_limits_are_refused_by_the_constructor(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        LocalRealtimeServer(port=None, engine="scripted", **kwargs)


# ------------------------------------------------------------ issue 14.5: public bind needs a key


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.20", "example.com"])
def test_a_public_bind_without_a_key_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="api_key"):
        LocalRealtimeServer(host=host, engine="scripted")
    LocalRealtimeServer(host=host, engine="scripted", api_key="secret")
    LocalRealtimeServer(host=host, engine="scripted", insecure_public=True)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_a_loopback_bind_needs_no_key(host: str) -> None:
    LocalRealtimeServer(host=host, engine="scripted")


def test_the_cli_refuses_a_public_bind_without_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--host", "0.0.0.0", "--engine", "scripted"])
    assert exit_info.value.code == 2
    assert "--insecure-public" in capsys.readouterr().err
    args = build_parser().parse_args(["--host", "0.0.0.0", "--insecure-public"])
    assert server_from_args(args).host == "0.0.0.0"
    args = build_parser().parse_args(["--host", "0.0.0.0", "--api-key", "k"])
    assert server_from_args(args).host == "0.0.0.0"
