"""A measuring server for the benchmarks: the Realtime transcription protocol, plus clocks.

Run as its own process (``python -m benchmarks.harness.probe --port 0``; it prints
``PROBE <port>`` once listening), or inline with :func:`serve`. It speaks just enough of the
protocol for both plugins (``session.created``/``session.updated``, appends, commits ->
``committed`` and ``completed``) and records per connection, on ``CLOCK_MONOTONIC`` (shared by
every process on Linux, so a client can subtract its own ``time.monotonic()`` readings):

- every client message: bytes of payload and of websocket framing (client frames are masked);
- the receive time of every ``input_audio_buffer.commit``;
- the send time of every delta, written into the delta text itself as ``t=<monotonic>``.

Deltas are streamed *while audio arrives*, like ``gpt-realtime-whisper``: every ``delta_ms``,
if an append arrived since the previous tick, one delta `` t=<seconds>`` for the item being
spoken; a commit gets ``committed`` and at once a ``completed`` whose transcript is the item's
deltas joined (recognizer time zero). ``GET /stats``: the records as JSON; ``GET /reset``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"


def ws_frame_bytes(payload_len: int) -> int:
    """Bytes of one masked (client) websocket frame carrying ``payload_len`` bytes (RFC 6455)."""
    return 2 + (8 if payload_len >= 65536 else 2 if payload_len >= 126 else 0) + 4 + payload_len


class Probe:
    def __init__(self, delta_ms: float) -> None:
        self.delta_s = delta_ms / 1000.0
        self.records: list[dict[str, Any]] = []

    async def handle(self, conn: ServerConnection) -> None:
        rec: dict[str, Any] = {"messages": 0, "frame_bytes": 0, "appends": 0, "audio_bytes": 0}
        rec.update(commits=[], deltas_sent=0)
        self.records.append(rec)
        item, parts, audio_since_tick = [1], [], [False]
        lock = asyncio.Lock()

        async def send(event: dict[str, Any]) -> None:
            async with lock:
                await conn.send(json.dumps({"event_id": "ev", **event}))

        async def deltas() -> None:
            next_tick = time.monotonic() + self.delta_s
            while True:
                await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
                next_tick += self.delta_s
                if audio_since_tick[0]:
                    audio_since_tick[0] = False
                    async with lock:
                        piece = f" t={time.monotonic():.6f}"  # stamped just before the send
                        parts.append(piece)
                        delta = {"item_id": f"item_{item[0]:03d}", "content_index": 0}
                        delta.update(type=DELTA, event_id="ev", delta=piece)
                        await conn.send(json.dumps(delta))
                    rec["deltas_sent"] += 1

        session = {"type": "transcription", "id": f"sess_{len(self.records)}"}
        await send({"type": "session.created", "session": session})
        ticker = asyncio.create_task(deltas())
        try:
            async for message in conn:
                now = time.monotonic()
                data = message.encode() if isinstance(message, str) else message
                rec["messages"] += 1
                rec["frame_bytes"] += ws_frame_bytes(len(data))
                event = json.loads(data)
                kind = event.get("type")
                if kind == "input_audio_buffer.append":
                    rec["appends"] += 1
                    rec["audio_bytes"] += len(base64.b64decode(event.get("audio", "")))
                    audio_since_tick[0] = True
                elif kind == "input_audio_buffer.commit":
                    rec["commits"].append(now)
                    item_id, text = f"item_{item[0]:03d}", "".join(parts)
                    item[0] += 1
                    parts.clear()
                    committed = {"item_id": item_id, "previous_item_id": None}
                    await send({"type": "input_audio_buffer.committed", **committed})
                    usage = {"type": "duration", "seconds": 0.0}
                    done = {"item_id": item_id, "content_index": 0, "transcript": text}
                    await send({"type": COMPLETED, **done, "usage": usage})
                elif kind in ("session.update", "transcription_session.update"):
                    reply = kind.replace("update", "updated")
                    await send({"type": reply, "session": event.get("session") or {}})
        except ConnectionClosed:
            pass
        finally:
            ticker.cancel()

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        route = urlsplit(request.path).path.rstrip("/")
        if route == "/stats":
            return connection.respond(HTTPStatus.OK, json.dumps({"records": self.records}))
        if route == "/reset":
            self.records = []
            return connection.respond(HTTPStatus.OK, "ok\n")
        if not route.endswith("/realtime"):
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        return None


async def serve(delta_ms: float, port: int = 0) -> Server:
    """Start a probe server in this event loop (``.close()`` it)."""
    probe = Probe(delta_ms)
    return await ws_serve(
        probe.handle,
        "127.0.0.1",
        port,
        process_request=probe.process_request,
        compression=None,
        max_size=None,
    )


async def _main(args: argparse.Namespace) -> None:
    server = await serve(args.delta_ms, args.port)
    print(f"PROBE {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--delta-ms", type=float, default=100.0)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(p.parse_args()))
