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
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from ..log import websockets_logger
from .engines import (
    Engine,
    ScriptedEngine,
    SileroVad,
    SpeechDetector,
    WhisperEngine,
    wire_to_float32,
)
from .scheduler import DecodeScheduler
from .session import (
    COMPAT_MODES,
    DEFAULT_DELTA_INTERVAL_S,
    DEFAULT_MAX_BUFFER_S,
    Actions,
    FaultCounters,
    Faults,
    PartialJob,
    Pause,
    Recognition,
    ServerSession,
    TranscriptionJob,
    check_handshake,
    parse_query,
)

logger = logging.getLogger("livekit.plugins.openai_stt.server")

__all__ = ["LocalRealtimeServer"]

#: Largest websocket message read at all (a bigger one closes the connection with 1009). A
#: 15 MiB append (docs/protocol.md §3) is ~20 MiB of base64; anything between that and this cap
#: gets an ``error`` event and the session goes on.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
#: Default limit on concurrent sessions (``max_sessions``).
DEFAULT_MAX_SESSIONS = 64

VadFactory = Callable[[str, int], SpeechDetector]


def _make_engine(engine: str | Engine) -> Engine:
    if engine == "whisper":
        return WhisperEngine()
    if engine == "scripted":
        return ScriptedEngine()
    if isinstance(engine, str):
        raise ValueError(f"engine must be 'whisper', 'scripted' or an Engine, not {engine!r}")
    return engine


class _Connection:
    """The shell's state for one websocket: its session, the ordered sender, the session's
    final queue, the wake-up of its partial loop and its speech detector."""

    def __init__(self, conn: ServerConnection, session: ServerSession) -> None:
        self.conn = conn
        self.session = session
        self.send_lock = asyncio.Lock()
        self.finals: asyncio.Queue[TranscriptionJob] = asyncio.Queue()
        self.audio_arrived = asyncio.Event()
        self.detector: SpeechDetector | None = None
        self.detector_epoch = -1
        self.detector_failed = False
        self.recv_task: asyncio.Task[Any] | None = None


class LocalRealtimeServer:
    """A local server speaking the OpenAI Realtime transcription protocol (docs/protocol.md).

    ``engine``: ``"whisper"`` (faster-whisper on the bundled tiny.en, loaded once per server in
    a thread at :meth:`start`), ``"scripted"`` (:class:`ScriptedEngine`, instant) or any object
    with the engine interface (see :mod:`.engines`). ``api_key``: if set, the only accepted
    bearer token / ``api-key`` header (otherwise any non-empty token is accepted); a wrong or
    missing one gets HTTP 401. ``compat``: ``"lenient"`` (default), ``"openai"`` or ``"gateway"``
    (see :class:`ServerSession`). ``faults``: :class:`Faults` to inject. ``max_session_s``: the
    session cap in seconds (docs/protocol.md §6); past it, ``error`` ``session_expired`` and
    close 1001.

    Models behave as their class does (see :class:`ServerSession`):
    ``delta_interval_s`` (default 1.0; None or 0: off) is how often the open buffer of a
    pre-commit-delta model (gpt-realtime-whisper, gpt-live-transcribe) is re-decoded; ``vad``
    is the speech detector of server VAD sessions: ``"silero"`` (faster-whisper's Silero,
    :class:`SileroVad`) or a callable ``(format_type, rate) -> detector``.

    Many sessions share one recognizer through one decode worker (:class:`DecodeScheduler`:
    finals before partials, partial intervals stretched by the backlog). ``max_sessions``
    (default 64; None: no limit) concurrent sessions are served; past it the upgrade gets HTTP
    503. ``max_buffer_s`` (default 600) caps each session's uncommitted audio.

    Use as ``async with LocalRealtimeServer(engine="scripted") as server:`` and point a client at
    ``server.base_url`` (``http://127.0.0.1:<port>/v1``; websocket path ``/v1/realtime``, also
    ``/realtime``). ``GET /health`` answers 200 ``ok``. Items of one session complete in commit
    order. Logs: one line per session (when it closes) and one per turn.
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
        delta_interval_s: float | None = DEFAULT_DELTA_INTERVAL_S,
        max_sessions: int | None = DEFAULT_MAX_SESSIONS,
        max_buffer_s: float = DEFAULT_MAX_BUFFER_S,
        vad: str | VadFactory = "silero",
    ) -> None:
        if compat not in COMPAT_MODES:
            raise ValueError(f"compat must be one of {COMPAT_MODES}, not {compat!r}")
        if isinstance(engine, str) and engine not in ("whisper", "scripted"):
            raise ValueError(f"engine must be 'whisper', 'scripted' or an Engine, not {engine!r}")
        if isinstance(vad, str) and vad != "silero":
            raise ValueError(f"vad must be 'silero' or a detector factory, not {vad!r}")
        if max_sessions is not None and max_sessions < 1:
            raise ValueError("max_sessions must be at least 1 (or None for no limit)")
        if delta_interval_s is not None and delta_interval_s < 0:
            raise ValueError("delta_interval_s must not be negative")
        if max_buffer_s <= 0:
            raise ValueError("max_buffer_s must be positive")
        self.host = host
        self._requested_port = port
        self._engine_spec = engine
        self._engine: Engine | None = None if isinstance(engine, str) else engine
        self._api_key = api_key
        self.compat = compat
        self.faults = faults or Faults()
        self.max_session_s = max_session_s
        self.delta_interval_s = delta_interval_s or None
        self.max_sessions = max_sessions
        self.max_buffer_s = max_buffer_s
        self._vad_factory: VadFactory = SileroVad if isinstance(vad, str) else vad
        self.counters = FaultCounters()
        self._session_ids = itertools.count(1)
        self._server: Server | None = None
        self._scheduler: DecodeScheduler | None = None
        self._admitted: set[ServerConnection] = set()
        self._port: int | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def engine(self) -> Engine | None:
        """The recognizer (None before :meth:`start` for ``"whisper"``/``"scripted"``)."""
        return self._engine

    @property
    def scheduler(self) -> DecodeScheduler | None:
        """The shared decode queue (None when not started)."""
        return self._scheduler

    @property
    def active_sessions(self) -> int:
        """Websockets admitted and not yet closed."""
        self._admitted = {c for c in self._admitted if c.state is not State.CLOSED}
        return len(self._admitted)

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
        self._scheduler = DecodeScheduler()
        await self._scheduler.start()
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
        logger.info(
            "local realtime server listening",
            extra={
                "host": self.host,
                "port": self._port,
                "compat": self.compat,
                "engine": type(self._engine).__name__,
                "max_sessions": self.max_sessions,
                "delta_interval_s": self.delta_interval_s,
            },
        )

    async def aclose(self) -> None:
        """Close every connection (1001), stop listening and stop the decode thread."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            await scheduler.aclose()
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
            active_sessions=self.active_sessions,
            max_sessions=self.max_sessions,
        )
        if reply is None:
            self._admitted.add(connection)
            return None
        if reply.status != 200:
            logger.info(
                "handshake rejected",
                extra={"status": reply.status, "path": urlsplit(request.path).path},
            )
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
            delta_interval_s=self.delta_interval_s,
            max_buffer_s=self.max_buffer_s,
            vad_window_s=float(getattr(self._vad_factory, "window_s", 0.032)),
        )
        c = _Connection(conn, session)
        tasks = [
            asyncio.create_task(self._run_finals(c)),
            asyncio.create_task(self._run_partials(c)),
        ]
        opened = time.monotonic()
        logger.debug(
            "session opened",
            extra={
                "session_id": session.session_id,
                "compat": self.compat,
                "query_model": query.get("model"),
            },
        )
        try:
            if await self._perform(c, session.opened(loop.time())):
                while True:
                    tick_at = session.next_tick_at
                    assert tick_at is not None
                    if c.recv_task is None:
                        c.recv_task = asyncio.ensure_future(conn.recv())
                    timeout = max(0.0, tick_at - loop.time())
                    done, _ = await asyncio.wait({c.recv_task}, timeout=timeout)
                    if not done:  # the session cap or a timed drop: the read goes on meanwhile
                        actions = session.tick(loop.time())
                    else:
                        task, c.recv_task = c.recv_task, None
                        try:
                            message = task.result()
                        except ConnectionClosed:
                            break
                        if isinstance(message, str):
                            actions = session.receive(message, loop.time())
                        else:
                            actions = session.binary_received()
                    if not await self._perform(c, actions):
                        break
                    c.audio_arrived.set()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if c.recv_task is not None and not c.recv_task.done():
                c.recv_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await c.recv_task
            if self._scheduler is not None:
                self._scheduler.drop_partial(session.session_id)
            self._admitted.discard(conn)
            cfg = session.config
            logger.info(
                "session closed",
                extra={
                    "session_id": session.session_id,
                    "model": cfg.model,
                    "format": cfg.format_type,
                    "server_vad": session.vad_active,
                    "duration_s": round(time.monotonic() - opened, 3),
                    "audio_s": round(session.audio_received_s, 3),
                    "turns": session.turns_committed,
                    "partials": session.partials_run,
                    "close_code": conn.close_code,
                },
            )

    async def _perform(self, c: _Connection, actions: Actions) -> bool:
        """Send, queue, detect and close as ``actions`` says; False once the connection is
        over. Batches are sent whole and in the order they were made (one lock per socket)."""
        conn, session = c.conn, c.session
        try:
            async with c.send_lock:
                for event in actions.events:
                    if isinstance(event, Pause):
                        await asyncio.sleep(event.seconds)
                    else:
                        await conn.send(json.dumps(event))
        except ConnectionClosed:
            return False
        if actions.jobs:
            if self._scheduler is not None:
                self._scheduler.drop_partial(session.session_id)  # the final wins
            for job in actions.jobs:
                c.finals.put_nowait(job)
        if actions.vad is not None:
            more = self._detect(c, actions.vad)
            if more is not None and not await self._perform(c, more):
                return False
        if actions.close is not None:
            if actions.close.abort:
                conn.transport.abort()
            else:
                # Keep reading while closing: unread client messages would otherwise fill the
                # receive queue, pause reading and hide the client's close frame until timeout.
                drain = asyncio.create_task(self._drain(c))
                try:
                    await conn.close(actions.close.code, actions.close.reason)
                finally:
                    drain.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await drain
            return False
        return True

    def _detect(self, c: _Connection, vad: Any) -> Actions | None:
        """Run the session's speech detector (on the loop: ~0.1 ms a 32 ms window)."""
        if c.detector_failed:
            return None
        if c.detector is None or c.detector_epoch != vad.epoch:
            try:
                c.detector = self._vad_factory(vad.format_type, vad.rate)
            except Exception:
                logger.exception(
                    "speech detector unavailable", extra={"session_id": c.session.session_id}
                )
                c.detector_failed = True
                return c.session.server_error(
                    "vad_unavailable",
                    "Server VAD is unavailable on this server (the speech "
                    "detector could not be loaded); commit turns yourself.",
                )
            c.detector_epoch = vad.epoch
        probabilities = c.detector.push(vad.audio)
        if not probabilities:
            return None
        return c.session.speech_probabilities(probabilities, vad.epoch)

    @staticmethod
    async def _drain(c: _Connection) -> None:
        """Discard incoming messages until the connection is closed."""
        with contextlib.suppress(ConnectionClosed):
            if c.recv_task is not None:
                await c.recv_task
            while True:
                await c.conn.recv()

    async def _run_finals(self, c: _Connection) -> None:
        """One session's items, in commit order, through the shared decode queue."""
        session = c.session
        while True:
            job = await c.finals.get()
            if job.fail:
                actions = session.transcription_failed(job)
            else:
                prompt = session.engine_prompt(job)
                started = time.monotonic()
                assert self._scheduler is not None
                try:
                    result = await self._scheduler.submit_final(self._recognize, job, prompt)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception(
                        "transcription failed",
                        extra={"session_id": session.session_id, "item_id": job.item_id},
                    )
                    actions = session.transcription_failed(job)
                else:
                    logger.info(
                        "turn transcribed",
                        extra={
                            "session_id": session.session_id,
                            "item_id": job.item_id,
                            "audio_s": round(job.duration_s, 3),
                            "latency_s": round(time.monotonic() - started, 3),
                            "chars": len(result.text),
                        },
                    )
                    actions = session.transcribed(job, result)
            if not await self._perform(c, actions):
                return

    async def _run_partials(self, c: _Connection) -> None:
        """Partial decodes of the open buffer when the session says one is due."""
        loop = asyncio.get_running_loop()
        session = c.session
        while True:
            scheduler = self._scheduler
            assert scheduler is not None
            job = session.take_partial(loop.time(), scheduler.backlog)
            if job is not None:
                try:
                    result = await scheduler.submit_partial(
                        session.session_id, self._recognize_partial, job, session.engine_prompt(job)
                    )
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.debug(
                        "partial decode failed",
                        exc_info=True,
                        extra={"session_id": session.session_id},
                    )
                    result = None
                if result is None:  # dropped (a commit came first) or failed
                    session.partial_failed(job)
                    continue
                if not await self._perform(c, session.partial_transcribed(job, result)):
                    return
                continue
            c.audio_arrived.clear()
            due = session.partial_due_at(scheduler.backlog)
            timeout = None if due is None else max(0.0, due - loop.time())
            with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                await asyncio.wait_for(c.audio_arrived.wait(), timeout)

    def _samples(self, audio: bytes, format_type: str, rate: int) -> tuple[Any, Any]:
        engine = self._engine
        assert engine is not None
        target = getattr(engine, "sample_rate_hz", 16000)
        return engine, wire_to_float32(audio, format_type, rate, target)

    def _recognize(self, job: TranscriptionJob, prompt: str | None) -> Recognition:
        """Worker thread: wire bytes -> engine samples -> :class:`Recognition`."""
        engine, samples = self._samples(job.audio, job.format_type, job.rate)
        recognize: Any = getattr(engine, "recognize", None)
        if recognize is not None:
            return recognize(samples, language=job.language, prompt=prompt)
        return Recognition(engine.transcribe(samples, language=job.language, prompt=prompt))

    def _recognize_partial(self, job: PartialJob, prompt: str | None) -> Recognition:
        """Worker thread: a partial decode (the engine's cheaper ``recognize_partial``)."""
        engine, samples = self._samples(job.audio, job.format_type, job.rate)
        for name in ("recognize_partial", "recognize"):
            method: Any = getattr(engine, name, None)
            if method is not None:
                return method(samples, language=job.language, prompt=prompt)
        return Recognition(engine.transcribe(samples, language=job.language, prompt=prompt))
