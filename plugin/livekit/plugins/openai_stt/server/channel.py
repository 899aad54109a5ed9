"""The connection seam of the local server: one session runs over any :class:`ServerChannel`.

The websockets path adapts a ``ServerConnection`` (:class:`WebsocketChannel`); tests use the
in-memory pair of :mod:`.memory` through ``LocalRealtimeServer.serve_channel``, with no socket.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

__all__ = ["ChannelClosed", "HandshakeRejected", "ServerChannel", "WebsocketChannel"]


class ChannelClosed(Exception):
    """The connection is over (the other end left, or this end closed it).

    ``code`` / ``reason``: the close frame received, if any; ``code`` None means no close
    frame (an abort or a lost connection: :attr:`aborted`).
    """

    def __init__(self, code: int | None = None, reason: str = "") -> None:
        super().__init__(f"channel closed ({code if code is not None else 'no close frame'})")
        self.code = code
        self.reason = reason

    @property
    def aborted(self) -> bool:
        """True when the connection ended without a close frame."""
        return self.code is None


class HandshakeRejected(Exception):
    """``LocalRealtimeServer.serve_channel`` refused the upgrade: the HTTP ``status`` and
    plain-text ``body`` the socket path would have answered (docs/protocol.md §1; 200 for
    ``/health``)."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"handshake rejected with HTTP {status}")
        self.status = status
        self.body = body


@runtime_checkable
class ServerChannel(Protocol):
    """The server end of one client connection (docs/protocol.md §1: one session each).

    - ``recv()`` -> the next client message (``str`` text, ``bytes`` binary); raises
      :class:`ChannelClosed` once the client is gone (after the messages it sent first).
    - ``send(text)`` sends one text message; raises :class:`ChannelClosed` when gone.
    - ``close(code, reason)`` sends a close frame and waits until the connection is closed.
    - ``abort()`` drops the connection without a close frame (a TCP reset).
    - ``close_code``: the close code once closed (1006 after an abort), else None.
    """

    async def recv(self) -> str | bytes: ...

    async def send(self, text: str) -> None: ...

    async def close(self, code: int, reason: str) -> None: ...

    def abort(self) -> None: ...

    @property
    def close_code(self) -> int | None: ...


class WebsocketChannel:
    """:class:`ServerChannel` over a websockets ``ServerConnection``."""

    def __init__(self, conn: ServerConnection) -> None:
        self.conn = conn

    async def recv(self) -> str | bytes:
        try:
            return await self.conn.recv()
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def send(self, text: str) -> None:
        try:
            await self.conn.send(text)
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def close(self, code: int, reason: str) -> None:
        await self.conn.close(code, reason)

    def abort(self) -> None:
        self.conn.transport.abort()

    @property
    def close_code(self) -> int | None:
        return self.conn.close_code


def _closed(exc: ConnectionClosed) -> ChannelClosed:
    if exc.rcvd is None:
        return ChannelClosed(None)
    return ChannelClosed(exc.rcvd.code, exc.rcvd.reason)
