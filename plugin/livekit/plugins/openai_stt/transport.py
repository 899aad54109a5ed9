"""The one module that opens client websockets.

A thin shell over ``websockets.asyncio.client``: it opens the socket, sends text frames and
receives messages, and turns every socket failure into a :class:`TransportError` carrying its
classification from :mod:`.protocol.errors`. No LiveKit imports: the adapter maps
``TransportError`` to LiveKit's ``APIError`` family.

Tests swap the transport by passing another ``connect`` callable to the STT (one seam for
fakes), or run the local server on port 0.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.frames import CloseCode, Frame, Opcode

from .log import websockets_logger
from .protocol.errors import (
    Classified,
    ErrorAction,
    classify_close,
    classify_handshake_status,
)

__all__ = ["TransportError", "Connection", "ConnectFn", "connect"]

_MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # server events are small; 16 MiB bounds memory


class TransportError(Exception):
    """A socket-level failure, already classified. ``str()`` never contains a secret."""

    def __init__(self, classified: Classified) -> None:
        super().__init__(classified.message)
        self.classified = classified


class Connection(Protocol):
    """What the stream needs of a socket."""

    async def send(self, message: str | bytes) -> None:
        """Send one text frame (``bytes`` must be UTF-8 JSON)."""

    async def recv(self) -> str:
        """Receive one message; raises :class:`TransportError` when the socket ends."""

    async def aclose(self) -> None:
        """Close normally (1000); idempotent."""


ConnectFn = Callable[[str, Mapping[str, str], float], Awaitable[Connection]]
"""``connect(url, headers, open_timeout_s) -> Connection``."""


class _ClientConnection(ClientConnection):
    """Drops TCP ``close_timeout`` seconds after the server's close frame.

    websockets waits for the server to close TCP and only enforces its close deadline when
    something sends; a server that sends CLOSE but keeps TCP open would stall ``recv()`` until
    the next keepalive ping. RFC 6455 §7.1.1 lets the client close after the close exchange.
    """

    def process_event(self, event: object) -> None:
        super().process_event(event)  # type: ignore[arg-type]
        if isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
            self.loop.call_later(self.close_timeout or 2.0, self._abort_if_still_open)

    def _abort_if_still_open(self) -> None:
        if not self.connection_lost_waiter.done():
            self.transport.abort()


def _closed_error(exc: ConnectionClosed) -> TransportError:
    sent, rcvd = exc.sent, exc.rcvd
    if sent is not None and sent.code == CloseCode.MESSAGE_TOO_BIG and not exc.rcvd_then_sent:
        # we closed (1009): a server event over _MAX_MESSAGE_BYTES. Not transient: the same
        # server would send it again, so it is not retried
        return TransportError(
            Classified(
                ErrorAction.FATAL,
                f"a server event exceeded {_MAX_MESSAGE_BYTES // (1024 * 1024)} MiB; "
                "closed the websocket (code 1009)",
                "message_too_big",
                1009,
            )
        )
    if rcvd is None:  # no close frame: reset, 1006
        return TransportError(classify_close(1006, "connection lost without a close frame"))
    return TransportError(classify_close(rcvd.code, rcvd.reason))


class _WebsocketConnection:
    __slots__ = ("_ws",)

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    async def send(self, message: str | bytes) -> None:
        try:
            await self._ws.send(message, text=True)
        except ConnectionClosed as e:
            raise _closed_error(e) from None
        except OSError as e:
            raise TransportError(
                Classified(ErrorAction.RETRY, f"websocket send failed: {type(e).__name__}")
            ) from e

    async def recv(self) -> str:
        try:
            message = await self._ws.recv()
        except ConnectionClosed as e:
            raise _closed_error(e) from None
        except OSError as e:
            raise TransportError(
                Classified(ErrorAction.RETRY, f"websocket receive failed: {type(e).__name__}")
            ) from e
        if isinstance(message, bytes):
            return message.decode("utf-8", errors="replace")
        return message

    async def aclose(self) -> None:
        try:
            await self._ws.close()
        except Exception:  # closing a broken socket must not raise
            pass


async def connect(url: str, headers: Mapping[str, str], open_timeout_s: float) -> Connection:
    """Open a websocket to ``url`` with ``headers``.

    Compression is off (base64 audio barely compresses; deflate costs CPU per frame) and no
    ``OpenAI-Beta`` header is added (docs/protocol.md §1).

    Raises:
        TransportError: the handshake was refused (classified by HTTP status), timed out, or
            the host could not be reached (retryable).
    """
    try:
        ws = await ws_connect(
            url,
            additional_headers=dict(headers),
            open_timeout=open_timeout_s,
            compression=None,
            max_size=_MAX_MESSAGE_BYTES,
            ping_interval=20,
            ping_timeout=20,
            close_timeout=1,
            user_agent_header="livekit-plugins-openai-stt",
            create_connection=_ClientConnection,
            logger=websockets_logger("websockets.client"),
        )
    except InvalidStatus as e:
        status = e.response.status_code
        body = bytes(e.response.body or b"")[:2048].decode("utf-8", errors="replace")
        raise TransportError(
            classify_handshake_status(status, insufficient_quota="insufficient_quota" in body)
        ) from None
    except (InvalidURI, ValueError):  # their text may hold the URL, and so a credential
        raise TransportError(
            Classified(
                ErrorAction.FATAL,
                "the websocket URL is not valid (not shown: it may carry a credential)",
            )
        ) from None
    except InvalidHandshake as e:
        raise TransportError(
            Classified(ErrorAction.RETRY, f"websocket handshake failed: {type(e).__name__}")
        ) from None
    except (asyncio.TimeoutError, TimeoutError):
        raise TransportError(
            Classified(ErrorAction.RETRY, f"websocket handshake timed out after {open_timeout_s}s")
        ) from None
    except OSError as e:
        raise TransportError(
            Classified(ErrorAction.RETRY, f"could not connect: {type(e).__name__}: {e.strerror}")
        ) from None
    return _WebsocketConnection(ws)
