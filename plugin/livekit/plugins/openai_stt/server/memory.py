"""An in-memory connection: a test seam for fast client tests with no socket and no port.

::

    server_end, client_end = memory_channel_pair()
    task = asyncio.create_task(server.serve_channel(server_end, path=..., headers=...))
    await client_end.send('{"type":"input_audio_buffer.commit"}')
    text = await client_end.recv()      # a server event, or ChannelClosed

Messages keep their order; a close or an abort reaches the other end after the messages sent
before it. Queues are unbounded (no back-pressure). Not for production use.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .channel import ChannelClosed

__all__ = ["MemoryClientEnd", "MemoryServerEnd", "memory_channel_pair"]

ABNORMAL_CLOSURE = 1006  # the close code reported when no close frame was exchanged


@dataclass(frozen=True)
class _End:
    """The end-of-stream marker: a close frame (``code``, ``reason``) or, code None, an abort."""

    code: int | None
    reason: str


class _Side:
    """One direction of the pair: messages, then at most one end marker."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[str | bytes | _End] = asyncio.Queue()
        self.end: _End | None = None

    def put(self, message: str | bytes) -> None:
        self.queue.put_nowait(message)

    def finish(self, code: int | None, reason: str) -> None:
        if self.end is None:
            self.end = _End(code, reason)
            self.queue.put_nowait(self.end)

    async def get(self) -> str | bytes:
        item = await self.queue.get()
        if isinstance(item, _End):
            self.queue.put_nowait(item)  # every later recv sees the end too
            raise ChannelClosed(item.code, item.reason)
        return item


class _Pair:
    def __init__(self) -> None:
        self.to_server = _Side()
        self.to_client = _Side()
        self.close_code: int | None = None
        self.closed = asyncio.Event()

    def end(self, code: int | None, reason: str) -> None:
        """Both directions end here (the first end wins)."""
        if self.close_code is None:
            self.close_code = ABNORMAL_CLOSURE if code is None else code
        self.to_server.finish(code, reason)
        self.to_client.finish(code, reason)
        self.closed.set()

    def sending_is_over(self) -> ChannelClosed | None:
        end = self.to_client.end or self.to_server.end
        return None if end is None else ChannelClosed(end.code, end.reason)


class MemoryServerEnd:
    """The server end: a :class:`~.channel.ServerChannel` for ``serve_channel``."""

    def __init__(self, pair: _Pair) -> None:
        self._pair = pair

    async def recv(self) -> str | bytes:
        return await self._pair.to_server.get()

    async def send(self, text: str) -> None:
        over = self._pair.sending_is_over()
        if over is not None:
            raise over
        self._pair.to_client.put(text)

    async def close(self, code: int, reason: str) -> None:
        self._pair.end(code, reason)

    def abort(self) -> None:
        self._pair.end(None, "")

    @property
    def close_code(self) -> int | None:
        return self._pair.close_code


class MemoryClientEnd:
    """The client end: ``send`` a message (``str`` a text frame, ``bytes`` a binary one),
    ``recv`` the next server message, ``close`` like a client closing its websocket, ``abort``
    like a lost connection.

    ``recv`` raises :class:`~.channel.ChannelClosed` once the server closed (``code`` and
    ``reason`` of its close frame) or aborted (``code`` None, :attr:`ChannelClosed.aborted`),
    after the messages sent before that; ``send`` raises it once the connection is over.
    """

    def __init__(self, pair: _Pair) -> None:
        self._pair = pair

    async def send(self, message: str | bytes) -> None:
        over = self._pair.sending_is_over()
        if over is not None:
            raise over
        self._pair.to_server.put(message)

    async def recv(self) -> str | bytes:
        return await self._pair.to_client.get()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self._pair.end(code, reason)

    def abort(self) -> None:
        self._pair.end(None, "")

    @property
    def close_code(self) -> int | None:
        """The close code once the connection is over (1006 after an abort), else None."""
        return self._pair.close_code

    async def wait_closed(self) -> None:
        """Wait until either end closed or aborted."""
        await self._pair.closed.wait()


def memory_channel_pair() -> tuple[MemoryServerEnd, MemoryClientEnd]:
    """A connected pair: the server end for ``LocalRealtimeServer.serve_channel`` and the client
    end for the test (call inside a running event loop)."""
    pair = _Pair()
    return MemoryServerEnd(pair), MemoryClientEnd(pair)
