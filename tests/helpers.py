"""Shared test helpers: audio frames, event collection, a recording transport seam, and an
in-memory connection to the local server (no port, no socket).

``memory_connect(server)`` is a ``connect(url, headers, open_timeout_s)`` for
``openai_stt.STT(connect=...)``: each call runs one session of ``server`` (built with
``port=None``) over :func:`~livekit.plugins.openai_stt.server.memory.memory_channel_pair`, with
the same handshake check as a socket upgrade, and returns the client end wrapped in the
client's ``transport.Connection`` protocol (closes and aborts become the ``TransportError`` a
socket would raise).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from livekit import rtc
from livekit.agents import APIConnectOptions
from livekit.agents import stt as lk_stt
from livekit.plugins import openai_stt

from livekit.plugins.openai_stt import transport
from livekit.plugins.openai_stt.protocol.errors import (
    Classified,
    ErrorAction,
    classify_close,
    classify_handshake_status,
)
from livekit.plugins.openai_stt.server import LocalRealtimeServer
from livekit.plugins.openai_stt.server.channel import ChannelClosed, HandshakeRejected
from livekit.plugins.openai_stt.server.memory import MemoryClientEnd, memory_channel_pair

T = lk_stt.SpeechEventType
FAST_RETRY = APIConnectOptions(max_retry=3, retry_interval=0.05, timeout=5.0)

ConnectFn = Callable[[str, Mapping[str, str], float], Awaitable[transport.Connection]]


def tone(duration_s: float, *, sample_rate: int = 48000, channels: int = 1) -> rtc.AudioFrame:
    """A 220 Hz tone (speech to the scripted engine: it counts seconds)."""
    n = int(duration_s * sample_rate)
    t = np.arange(n) / sample_rate
    mono = (3000 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    data = np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono
    return rtc.AudioFrame(data.tobytes(), sample_rate, channels, n)


def frames(duration_s: float, frame_ms: int = 10, **kw: Any) -> list[rtc.AudioFrame]:
    count = int(round(duration_s * 1000 / frame_ms))
    return [tone(frame_ms / 1000, **kw) for _ in range(count)]


async def collect(stream: lk_stt.RecognizeStream) -> list[lk_stt.SpeechEvent]:
    return [event async for event in stream]


def finals(events: list[lk_stt.SpeechEvent]) -> list[str]:
    return [e.alternatives[0].text for e in events if e.type == T.FINAL_TRANSCRIPT]


async def run_turns(
    stt: openai_stt.STT, turns_s: list[float], *, tail_s: float = 0.0, **frame_kw: Any
) -> list[lk_stt.SpeechEvent]:
    """Push each turn's tone and flush it, then ``tail_s`` more and ``end_input()``; returns
    every event once the stream ends by itself."""
    stream = stt.stream(conn_options=FAST_RETRY)
    try:
        for seconds in turns_s:
            for frame in frames(seconds, **frame_kw):
                stream.push_frame(frame)
            stream.flush()
        for frame in frames(tail_s, **frame_kw):
            stream.push_frame(frame)
        stream.end_input()
        return await asyncio.wait_for(collect(stream), 20)
    finally:
        await stream.aclose()


async def until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait (polling each 10 ms) until ``condition()`` holds; fail after ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


# -- the in-memory connection --------------------------------------------------------------------


class _MemoryConnection:
    """The client end of an in-memory session, as a ``transport.Connection``."""

    def __init__(self, end: MemoryClientEnd, first: str, task: asyncio.Task[None]) -> None:
        self._end = end
        self._pending: list[str] = [first]
        self._task = task  # the server side's session, kept alive while the connection is

    async def send(self, message: str | bytes) -> None:
        text = message.decode() if isinstance(message, bytes) else message  # a text frame
        try:
            await self._end.send(text)
        except ChannelClosed as e:
            raise _closed(e) from None

    async def recv(self) -> str:
        if self._pending:
            return self._pending.pop()
        try:
            message = await self._end.recv()
        except ChannelClosed as e:
            raise _closed(e) from None
        return message.decode() if isinstance(message, bytes) else message

    async def aclose(self) -> None:
        await self._end.close(1000, "")
        await asyncio.wait({self._task}, timeout=5)


def _closed(e: ChannelClosed) -> transport.TransportError:
    if e.code is None:
        return transport.TransportError(classify_close(1006, "connection lost without a close"))
    return transport.TransportError(classify_close(e.code, e.reason))


def memory_connect(server: LocalRealtimeServer) -> ConnectFn:
    """A ``connect`` for ``STT(connect=...)`` that runs each session of ``server`` in memory.

    The URL's path and query and the headers go through the server's handshake check; a
    refusal raises the ``TransportError`` a socket upgrade would (classified by status).
    """

    async def connect(
        url: str, headers: Mapping[str, str], open_timeout_s: float
    ) -> transport.Connection:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        server_end, client_end = memory_channel_pair()
        task = asyncio.create_task(
            server.serve_channel(server_end, path=path, headers=dict(headers))
        )
        first = asyncio.ensure_future(client_end.recv())
        done, _ = await asyncio.wait(
            {task, first}, timeout=open_timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if first in done:
            error = first.exception()
            if error is None:
                return _MemoryConnection(client_end, str(first.result()), task)
            if isinstance(error, ChannelClosed):  # the server closed before session.created
                raise _closed(error)
        first.cancel()
        if task in done and isinstance(task.exception(), HandshakeRejected):
            rejected = task.exception()
            assert isinstance(rejected, HandshakeRejected)
            quota = "insufficient_quota" in rejected.body
            raise transport.TransportError(
                classify_handshake_status(rejected.status, insufficient_quota=quota)
            )
        task.cancel()
        raise transport.TransportError(
            Classified(ErrorAction.RETRY, "in-memory handshake failed or timed out")
        )

    return connect


def recording_connect(server: LocalRealtimeServer, received: list[dict[str, Any]]) -> Any:
    """``memory_connect(server)`` that also keeps every server event the client received."""
    inner = memory_connect(server)

    async def connect(url: str, headers: Mapping[str, str], timeout: float) -> Any:
        conn = await inner(url, headers, timeout)

        class Conn:
            async def send(self, message: str | bytes) -> None:
                await conn.send(message)

            async def recv(self) -> str:
                text = await conn.recv()
                received.append(json.loads(text))
                return text

            async def aclose(self) -> None:
                await conn.aclose()

        return Conn()

    return connect


def push_with_flushes(
    stream: Any, frames_in: Iterable[rtc.AudioFrame], flush_after_s: Sequence[float]
) -> None:
    """Push ``frames_in`` as fast as they come, calling ``stream.flush()`` once the audio pushed
    reaches each time of ``flush_after_s`` (seconds), then ``end_input()``."""
    pending = sorted(flush_after_s)
    pushed_s = 0.0
    for frame in frames_in:
        stream.push_frame(frame)
        pushed_s += frame.duration
        if pending and pushed_s >= pending[0]:
            pending.pop(0)
            stream.flush()
    stream.end_input()


# -- a recording seam -------------------------------------------------------------------------


class Recorder:
    """Wraps a ``connect`` (the real transport by default) and records what the client sends
    in ``sent``, the order of connects and closes in ``timeline`` (``("connect", n)``,
    ``("close", n)``, sockets numbered from 1), and what each socket was sent in
    ``sent_by[n]``. Sockets numbered in ``broken`` fail their first audio send, as a socket
    the server dropped would."""

    def __init__(
        self, broken: frozenset[int] = frozenset(), connect: ConnectFn | None = None
    ) -> None:
        self.sent: list[dict[str, Any]] = []
        self.connects = 0
        self.closed = 0
        self.timeline: list[tuple[str, int]] = []
        self.sent_by: dict[int, list[dict[str, Any]]] = {}
        self.broken = broken
        self.inner: ConnectFn = connect or transport.connect

    async def connect(
        self, url: str, headers: Mapping[str, str], timeout: float
    ) -> transport.Connection:
        conn = await self.inner(url, headers, timeout)
        self.connects += 1
        number = self.connects
        self.timeline.append(("connect", number))
        self.sent_by[number] = []
        recorder = self

        class Conn:
            async def send(self, message: str | bytes) -> None:
                text = message.decode() if isinstance(message, bytes) else message
                event = json.loads(text)
                if number in recorder.broken and event["type"] == "input_audio_buffer.append":
                    raise transport.TransportError(classify_close(1011, "dropped"))
                recorder.sent.append(event)
                recorder.sent_by[number].append(event)
                await conn.send(message)

            async def recv(self) -> str:
                return await conn.recv()

            async def aclose(self) -> None:
                if ("close", number) not in recorder.timeline:
                    recorder.closed += 1
                    recorder.timeline.append(("close", number))
                await conn.aclose()

        return Conn()

    def types(self) -> list[str]:
        return [m["type"] for m in self.sent]
