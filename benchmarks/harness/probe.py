"""A measuring server for the benchmarks: the Realtime transcription protocol, plus clocks.

Run as its own process (``python -m benchmarks.harness.probe --port 0``; it prints
``PROBE <port>`` on stdout once listening), or inline with :func:`serve`. It speaks just
enough of the protocol for both plugins (``session.created``/``session.updated``, appends,
commits -> ``committed`` and ``completed``) and records, per connection and on
``CLOCK_MONOTONIC`` (shared by every process on Linux, so the benchmark can subtract its own
``time.monotonic()`` readings):

- every client message: bytes of payload and of websocket framing (client frames are masked);
- the receive time of every ``input_audio_buffer.commit``;
- the send time of every delta, written into the delta text itself as ``t=<monotonic>``.

Deltas are streamed *while audio arrives*, like ``gpt-realtime-whisper`` (docs/protocol.md §2
Models): every ``--delta-ms`` milliseconds, if an append arrived since the previous tick, one
delta `` t=<seconds>`` for the item being spoken; the commit then gets ``committed`` and at once
a ``completed`` whose transcript is the item's deltas joined (recogniser time zero).

``GET /stats`` answers the records as JSON, ``GET /reset`` clears them, ``GET /health`` -> ok.
Nothing here is part of the plugin; it only serves the benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as websockets_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response


def ws_frame_bytes(payload_len: int, *, masked: bool = True) -> int:
    """Bytes of one websocket frame carrying ``payload_len`` bytes (RFC 6455 §5.2)."""
    header = 2
    if payload_len >= 65536:
        header += 8
    elif payload_len >= 126:
        header += 2
    return header + (4 if masked else 0) + payload_len


class Probe:
    def __init__(self, delta_ms: float) -> None:
        self.delta_s = delta_ms / 1000.0
        self.records: list[dict[str, Any]] = []
        self._ids = itertools.count(1)

    def new_record(self, path: str) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "conn": next(self._ids),
            "path": path,
            "query": {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()},
            "opened_at": time.monotonic(),
            "closed_at": None,
            "messages": 0,
            "payload_bytes": 0,
            "frame_bytes": 0,
            "appends": 0,
            "append_frame_bytes": 0,
            "audio_bytes": 0,
            "format": "audio/pcm",
            "rate": 24000,
            "commits": [],
            "deltas_sent": 0,
            "session_updates": 0,
        }
        self.records.append(rec)
        return rec

    async def handle(self, conn: ServerConnection) -> None:
        assert conn.request is not None
        rec = self.new_record(conn.request.path)
        state = {"item": 1, "parts": [], "audio_since_tick": False}
        lock = asyncio.Lock()

        async def send(event: dict[str, Any]) -> None:
            async with lock:
                await conn.send(json.dumps(event))

        async def deltas() -> None:
            next_tick = time.monotonic() + self.delta_s
            while True:
                await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
                next_tick += self.delta_s
                if not state["audio_since_tick"]:
                    continue
                state["audio_since_tick"] = False
                async with lock:
                    piece = f" t={time.monotonic():.6f}"  # stamped just before the send
                    state["parts"].append(piece)
                    await conn.send(
                        json.dumps(
                            {
                                "type": "conversation.item.input_audio_transcription.delta",
                                "event_id": f"ev_d{rec['deltas_sent']}",
                                "item_id": f"item_{state['item']:03d}",
                                "content_index": 0,
                                "delta": piece,
                            }
                        )
                    )
                rec["deltas_sent"] += 1

        await send(
            {
                "type": "session.created",
                "event_id": "ev_created",
                "session": {"type": "transcription", "id": f"sess_{rec['conn']}"},
            }
        )
        ticker = asyncio.create_task(deltas())
        try:
            async for message in conn:
                now = time.monotonic()
                data = message.encode() if isinstance(message, str) else message
                rec["messages"] += 1
                rec["payload_bytes"] += len(data)
                rec["frame_bytes"] += ws_frame_bytes(len(data))
                try:
                    event = json.loads(data)
                except ValueError:
                    continue
                etype = event.get("type")
                if etype == "input_audio_buffer.append":
                    rec["appends"] += 1
                    rec["append_frame_bytes"] += ws_frame_bytes(len(data))
                    rec["audio_bytes"] += len(base64.b64decode(event.get("audio", "")))
                    state["audio_since_tick"] = True
                elif etype == "input_audio_buffer.commit":
                    rec["commits"].append(now)
                    item_id = f"item_{state['item']:03d}"
                    text = "".join(state["parts"])
                    state["item"] += 1
                    state["parts"] = []
                    await send(
                        {
                            "type": "input_audio_buffer.committed",
                            "event_id": "ev_c",
                            "item_id": item_id,
                            "previous_item_id": None,
                        }
                    )
                    await send(
                        {
                            "type": "conversation.item.input_audio_transcription.completed",
                            "event_id": "ev_f",
                            "item_id": item_id,
                            "content_index": 0,
                            "transcript": text,
                            "usage": {"type": "duration", "seconds": 0.0},
                        }
                    )
                elif etype in ("session.update", "transcription_session.update"):
                    rec["session_updates"] += 1
                    session = event.get("session") or {}
                    fmt = ((session.get("audio") or {}).get("input") or {}).get(
                        "format"
                    ) or session.get("input_audio_format")
                    if isinstance(fmt, dict):
                        rec["format"] = fmt.get("type", "audio/pcm")
                        rec["rate"] = (
                            fmt.get("rate", 24000) if rec["format"] == "audio/pcm" else 8000
                        )
                    elif fmt in ("g711_ulaw", "g711_alaw"):
                        rec["format"], rec["rate"] = "audio/pcmu", 8000
                    reply = (
                        "session.updated"
                        if etype == "session.update"
                        else "transcription_session.updated"
                    )
                    await send({"type": reply, "event_id": "ev_u", "session": session})
        except ConnectionClosed:
            pass
        finally:
            rec["closed_at"] = time.monotonic()
            ticker.cancel()

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        route = urlsplit(request.path).path.rstrip("/")
        if route == "/stats":
            body = json.dumps({"records": self.records, "now": time.monotonic()})
            resp = connection.respond(HTTPStatus.OK, body)
            resp.headers["Content-Type"] = "application/json"
            return resp
        if route == "/reset":
            self.records = []
            return connection.respond(HTTPStatus.OK, "ok\n")
        if route == "/health":
            return connection.respond(HTTPStatus.OK, "ok\n")
        if not route.endswith("/realtime"):
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        return None


async def serve(delta_ms: float, port: int = 0) -> Any:
    """Start a probe server in this event loop; returns the websockets server (``.close()``)."""
    probe = Probe(delta_ms)
    return await websockets_serve(
        probe.handle,
        "127.0.0.1",
        port,
        process_request=probe.process_request,
        compression=None,
        max_size=None,
    )


async def main_async(args: argparse.Namespace) -> None:
    server = await serve(args.delta_ms, args.port)
    print(f"PROBE {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--delta-ms", type=float, default=100.0)
    args = p.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
