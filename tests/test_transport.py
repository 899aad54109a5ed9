"""``transport.py`` overrides a websockets internal (``ClientConnection.process_event``), which is
why ``websockets`` is bounded below its next major version. These tests fail if the override
stops being called or stops doing its job."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time

from websockets.asyncio.client import ClientConnection

from livekit.plugins.openai_stt import transport

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def test_the_overridden_method_still_exists_in_websockets() -> None:
    # the override only takes effect while websockets still dispatches frames through it
    base = next(cls for cls in ClientConnection.__mro__ if "process_event" in vars(cls))
    assert base is not transport._ClientConnection
    assert "process_event" in vars(transport._ClientConnection)


async def _server_that_closes_but_keeps_tcp_open(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """A raw websocket server: completes the handshake, sends a CLOSE frame (1000), then keeps
    the TCP connection open and reads nothing, as a misbehaving server or proxy would."""
    request = await reader.readuntil(b"\r\n\r\n")
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + _GUID.encode()).digest())
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
    )
    writer.write(b"\x88\x02\x03\xe8")  # FIN + CLOSE, 2-byte payload: code 1000
    await writer.drain()
    await asyncio.sleep(60)  # TCP stays open (cancelled when the test ends)


async def test_a_close_frame_without_a_tcp_close_ends_recv_within_the_close_timeout() -> None:
    server = await asyncio.start_server(_server_that_closes_but_keeps_tcp_open, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        conn = await transport.connect(f"ws://127.0.0.1:{port}/v1/realtime", {}, 5.0)
        started = time.monotonic()
        try:
            await asyncio.wait_for(conn.recv(), timeout=10)
        except transport.TransportError as e:
            assert e.classified.status == 1000
        else:  # pragma: no cover - recv cannot return a message here
            raise AssertionError("recv() returned a message")
        # close_timeout is 1 s; without the override recv() waits for the keepalive (40 s)
        assert time.monotonic() - started < 5.0
        await conn.aclose()
    finally:
        server.close()


async def test_an_oversized_server_event_is_reported_as_ours_1009_and_not_retried() -> None:
    from websockets.asyncio.server import serve

    async def handler(ws) -> None:  # type: ignore[no-untyped-def]
        await ws.send("x" * (transport._MAX_MESSAGE_BYTES + 1))
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        port = server.sockets[0].getsockname()[1]
        conn = await transport.connect(f"ws://127.0.0.1:{port}/v1/realtime", {}, 5.0)
        try:
            await asyncio.wait_for(conn.recv(), timeout=10)
        except transport.TransportError as e:
            assert e.classified.status == 1009 and not e.classified.retryable
            assert "1006" not in str(e) and "MiB" in str(e)
        else:  # pragma: no cover
            raise AssertionError("recv() returned the oversized message")
        finally:
            await conn.aclose()
