"""The websockets I/O shell of the local server, and :class:`LocalRealtimeServer`.

All protocol decisions live in :mod:`.session` (pure); this module only moves bytes, keeps
time (``loop.time()``), runs the recognizer in a worker thread and performs closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ..log import websockets_logger
from .engines import Engine, ScriptedEngine, WhisperEngine, wire_to_float32
from .session import (
    COMPAT_MODES,
    Actions,
    Faults,
    FaultCounters,
    Pause,
    Recognition,
    ServerSession,
    TranscriptionJob,
    check_handshake,
    parse_query,
)

logger = logging.getLogger("livekit.plugins.openai_stt.server")

__all__ = ["LocalRealtimeServer"]

#: Largest websocket message accepted: a 15 MiB append (PROTOCOL.md §3) is ~20 MiB of base64.
MAX_MESSAGE_BYTES = 24 * 1024 * 1024


def _make_engine(engine: str | Engine) -> Engine:
    if engine == "whisper":
        return WhisperEngine()
    if engine == "scripted":
        return ScriptedEngine()
    if isinstance(engine, str):
        raise ValueError(f"engine must be 'whisper', 'scripted' or an Engine, not {engine!r}")
    return engine


class LocalRealtimeServer:
    """A local server speaking the OpenAI Realtime transcription protocol (PROTOCOL.md).

    ``engine``: ``"whisper"`` (faster-whisper on the bundled tiny.en, loaded once per server in
    a thread at :meth:`start`), ``"scripted"`` (:class:`ScriptedEngine`, instant) or any object
    with the engine interface (see :mod:`.engines`). ``api_key``: if set, the only accepted
    bearer token / ``api-key`` header (otherwise any non-empty token is accepted); a wrong or
    missing one gets HTTP 401. ``compat``: ``"lenient"`` (default), ``"openai"`` or ``"gateway"``
    (see :class:`ServerSession`). ``faults``: :class:`Faults` to inject. ``max_session_s``: the
    session cap in seconds (PROTOCOL.md §6); past it, ``error`` ``session_expired`` and close 1001.

    Use as ``async with LocalRealtimeServer(engine="scripted") as server:`` and point a client at
    ``server.base_url`` (``http://127.0.0.1:<port>/v1``; websocket path ``/v1/realtime``, also
    ``/realtime``). ``GET /health`` answers 200 ``ok``. One decode thread serves all sessions;
    items of one session complete in commit order.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        engine: str | Engine = "whisper",
        api_key: str | None = None,
        compat: str = "lenient",
        faults: Faults | None = None,
        max_session_s: float = 3600.0,
    ) -> None:
        if compat not in COMPAT_MODES:
            raise ValueError(f"compat must be one of {COMPAT_MODES}, not {compat!r}")
        if isinstance(engine, str) and engine not in ("whisper", "scripted"):
            raise ValueError(f"engine must be 'whisper', 'scripted' or an Engine, not {engine!r}")
        self.host = host
        self._requested_port = port
        self._engine_spec = engine
        self._engine: Engine | None = None if isinstance(engine, str) else engine
        self._api_key = api_key
        self.compat = compat
        self.faults = faults or Faults()
        self.max_session_s = max_session_s
        self.counters = FaultCounters()
        self._session_ids = itertools.count(1)
        self._server: Server | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._port: int | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def engine(self) -> Engine | None:
        """The recognizer (None before :meth:`start` for ``"whisper"``/``"scripted"``)."""
        return self._engine

    @property
    def port(self) -> int:
        """The bound TCP port (RuntimeError before :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://<host>:<port>/v1``: the plugin maps it to ``ws://.../v1/realtime``."""
        return f"http://{self._url_host}:{self.port}/v1"

    @property
    def ws_url(self) -> str:
        """``ws://<host>:<port>/v1/realtime`` (no query)."""
        return f"ws://{self._url_host}:{self.port}/v1/realtime"

    @property
    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    async def start(self) -> None:
        """Load the engine (in a thread), start the decode worker and listen. Idempotent."""
        if self._server is not None:
            return
        if self._engine is None:
            self._engine = await asyncio.to_thread(_make_engine, self._engine_spec)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="openai-stt-decode")
        self._server = await serve(
            self._handle,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            max_size=MAX_MESSAGE_BYTES,
            # websockets logs every handshake header at DEBUG: mask credentials.
            logger=websockets_logger("server.websockets"),
        )
        self._port = self._server.sockets[0].getsockname()[1]
        logger.info("local realtime server listening",
                    extra={"host": self.host, "port": self._port, "compat": self.compat,
                           "engine": type(self._engine).__name__})

    async def aclose(self) -> None:
        """Close every connection (1001), stop listening and stop the decode thread."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
        if server is not None:
            logger.info("local realtime server stopped", extra={"port": self._port})

    async def serve_forever(self) -> None:
        """Start (if needed) and serve until cancelled."""
        await self.start()
        assert self._server is not None
        try:
            await self._server.serve_forever()
        finally:
            await self.aclose()

    async def __aenter__(self) -> LocalRealtimeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- HTTP -------------------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        reply = check_handshake(
            path=request.path,
            headers=dict(request.headers.raw_items()),
            api_key=self._api_key,
            faults=self.faults,
            counters=self.counters,
        )
        if reply is None:
            return None
        if reply.status != 200:
            logger.info("handshake rejected",
                        extra={"status": reply.status, "path": urlsplit(request.path).path})
        return connection.respond(reply.status, reply.body)

    # -- websocket ----------------------------------------------------------------------------

    async def _handle(self, conn: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        request = conn.request
        assert request is not None
        query = parse_query(request.path)
        session = ServerSession(
            session_id=f"sess_{next(self._session_ids):03d}",
            compat=self.compat,
            query_model=query.get("model"),
            openai_beta=request.headers.get("OpenAI-Beta") is not None,
            faults=self.faults,
            counters=self.counters,
            max_session_s=self.max_session_s,
        )
        jobs: asyncio.Queue[TranscriptionJob] = asyncio.Queue()
        worker = asyncio.create_task(self._run_jobs(conn, session, jobs))
        opened = time.monotonic()
        logger.info("session opened", extra={"session_id": session.session_id,
                                             "compat": self.compat,
                                             "query_model": query.get("model")})
        try:
            if await self._perform(conn, session.opened(loop.time()), jobs):
                while True:
                    assert session.expires_at is not None
                    timeout = max(0.0, session.expires_at - loop.time())
                    try:
                        message = await asyncio.wait_for(conn.recv(), timeout)
                    except (asyncio.TimeoutError, TimeoutError):
                        actions = session.tick(loop.time())
                    except ConnectionClosed:
                        break
                    else:
                        if isinstance(message, str):
                            actions = session.receive(message, loop.time())
                        else:
                            actions = session.binary_received()
                    if not await self._perform(conn, actions, jobs):
                        break
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            logger.info("session closed", extra={
                "session_id": session.session_id,
                "duration_s": round(time.monotonic() - opened, 3),
                "audio_s": round(session.audio_received_s, 3),
                "close_code": conn.close_code,
            })

    async def _perform(self, conn: ServerConnection, actions: Actions,
                       jobs: asyncio.Queue[TranscriptionJob] | None = None) -> bool:
        """Send, queue and close as ``actions`` says; False once the connection is over."""
        try:
            for event in actions.events:
                if isinstance(event, Pause):
                    await asyncio.sleep(event.seconds)
                else:
                    await conn.send(json.dumps(event))
        except ConnectionClosed:
            return False
        if jobs is not None:
            for job in actions.jobs:
                jobs.put_nowait(job)
        if actions.close is not None:
            if actions.close.abort:
                conn.transport.abort()
            else:
                # Keep reading while closing: unread client messages would otherwise fill the
                # receive queue, pause reading and hide the client's close frame until timeout.
                drain = asyncio.create_task(self._drain(conn))
                try:
                    await conn.close(actions.close.code, actions.close.reason)
                finally:
                    drain.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await drain
            return False
        return True

    @staticmethod
    async def _drain(conn: ServerConnection) -> None:
        """Discard incoming messages until the connection is closed."""
        with contextlib.suppress(ConnectionClosed):
            while True:
                await conn.recv()

    async def _run_jobs(self, conn: ServerConnection, session: ServerSession,
                        jobs: asyncio.Queue[TranscriptionJob]) -> None:
        """One session's items, in commit order, through the shared decode thread."""
        loop = asyncio.get_running_loop()
        while True:
            job = await jobs.get()
            if job.fail:
                actions = session.transcription_failed(job)
            else:
                prompt = session.engine_prompt(job)
                started = time.monotonic()
                try:
                    assert self._executor is not None
                    result = await loop.run_in_executor(self._executor, self._recognize, job,
                                                        prompt)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("transcription failed",
                                     extra={"session_id": session.session_id,
                                            "item_id": job.item_id})
                    actions = session.transcription_failed(job)
                else:
                    logger.info("turn transcribed", extra={
                        "session_id": session.session_id, "item_id": job.item_id,
                        "audio_s": round(job.duration_s, 3),
                        "decode_s": round(time.monotonic() - started, 3),
                        "chars": len(result.text),
                    })
                    actions = session.transcribed(job, result)
            if not await self._perform(conn, actions):
                return

    def _recognize(self, job: TranscriptionJob, prompt: str | None) -> Recognition:
        """Worker thread: wire bytes -> engine samples -> :class:`Recognition`."""
        engine = self._engine
        assert engine is not None
        rate = getattr(engine, "sample_rate_hz", 16000)
        samples = wire_to_float32(job.audio, job.format_type, job.rate, rate)
        recognize: Any = getattr(engine, "recognize", None)
        if recognize is not None:
            return recognize(samples, language=job.language, prompt=prompt)
        return Recognition(engine.transcribe(samples, language=job.language, prompt=prompt))
