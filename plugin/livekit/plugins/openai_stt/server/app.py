""":class:`LocalRealtimeServer`: the websockets server, and the same sessions over any channel.

All protocol decisions live in the pure modules (``session.py`` and the rules it uses); one
session's I/O lives in ``connection.py``. This module owns the server: the recognizer, the
shared decode queue, the handshake check, the session count, and the two ways in: a websocket
upgrade, or :meth:`LocalRealtimeServer.serve_channel` (any :class:`~.channel.ServerChannel`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.protocol import State

from ..log import websockets_logger
from ..protocol.endpoint import is_loopback_host
from .channel import HandshakeRejected, ServerChannel, WebsocketChannel
from .config import COMPAT_MODES
from .connection import DEFAULT_SEND_TIMEOUT_S, PureSession, SessionRunner, VadFactory
from .engines import Engine, SileroVad, WhisperEngine, as_engine, make_engine
from .faults import FaultCounters, Faults
from .handshake import HandshakeReply, check_handshake, header, parse_query
from .limits import DEFAULT_IDLE_TIMEOUT_S, DEFAULT_MAX_PENDING_S, SessionLimits, random_id
from .metrics import CONTENT_TYPE_LATEST, ServerMetrics, log_session_closed
from .partials import DEFAULT_DELTA_INTERVAL_S
from .recognizer import RecognizerOptions
from .scheduler import DecodeScheduler
from .session import DEFAULT_MAX_BUFFER_S, ServerSession
from .speculation import Speculator
from .turns import DEFAULT_VAD_WINDOW_S
from .vllm_session import VllmSession

logger = logging.getLogger("livekit.plugins.openai_stt.server")

__all__ = ["DEFAULT_MAX_SESSIONS", "LocalRealtimeServer"]

#: Largest websocket message read at all (a bigger one closes the connection with 1009). A
#: 15 MiB append (docs/protocol.md §3) is ~20 MiB of base64; anything between that and this cap
#: gets an ``error`` event and the session goes on.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
#: Default limit on concurrent sessions (``max_sessions``).
DEFAULT_MAX_SESSIONS = 64
#: Past capacity, in order: no final is decoded ahead when the workers were busier than
#: SPECULATE_BELOW_UTILIZATION of the last seconds (a decode ahead costs a whole final's decode,
#: wasted if speech resumes); partials are shed above ``scheduler.SHED_PARTIALS_ABOVE``; a final
#: is decoded fast (``fast_finals_under_load``) when another final waits, when it waited
#: UNDER_LOAD_WAIT_S for a worker, or above UNDER_LOAD_UTILIZATION.
SPECULATE_BELOW_UTILIZATION = 0.4
UNDER_LOAD_WAIT_S = 0.1
UNDER_LOAD_UTILIZATION = 0.9


class LocalRealtimeServer:
    """A local server speaking the OpenAI Realtime transcription protocol (docs/protocol.md).

    ``engine``: ``"whisper"`` (faster-whisper on the bundled tiny.en, loaded once per server in
    a thread at :meth:`start`), ``"scripted"`` (:class:`ScriptedEngine`, instant) or any
    :class:`~.engines.Engine` (an object with only the older ``transcribe`` is adapted).
    ``api_key``: if set, the only accepted bearer token / ``api-key`` header (otherwise any
    non-empty token is accepted); a wrong or missing one gets HTTP 401. A ``host`` that is not
    loopback (e.g. ``0.0.0.0``) needs an ``api_key``, unless ``insecure_public`` says that an
    open server is meant. ``compat``:
    ``"lenient"`` (default), ``"openai"`` or ``"gateway"`` (see :class:`ServerSession`), or
    ``"vllm"``: vLLM's own realtime dialect (:class:`~.vllm_session.VllmSession`,
    docs/protocol.md §7; handshake as vLLM's: exactly ``/v1/realtime``, Bearer only).
    ``faults``: :class:`Faults` to inject. ``max_session_s``: the session cap in seconds
    (docs/protocol.md §6); past it, ``error`` ``session_expired`` and close 1001.

    Models behave as their class does (see :class:`ServerSession`): ``delta_interval_s``
    (default 1.0; None or 0: off) is how often the open buffer of a pre-commit-delta model
    (gpt-realtime-whisper, gpt-live-transcribe) is re-decoded; ``vad`` is the speech detector
    of server VAD sessions: ``"silero"`` (:class:`SileroVad`) or a callable
    ``(format_type, rate) -> detector``.

    Many sessions share one recognizer through one decode worker (:class:`DecodeScheduler`:
    finals before partials, partial intervals stretched by the backlog). ``max_sessions``
    (default 64; None: no limit) concurrent sessions are served; past it the upgrade gets HTTP
    503. ``max_buffer_s`` (default 600) caps each session's uncommitted audio,
    ``max_pending_s`` (default 120) its committed audio awaiting the decoder (a commit past it
    gets ``rate_limit_exceeded``), and ``idle_timeout_s`` (default 120; None: never) closes a
    session that sent nothing for that long, so idle sockets cannot hold every slot. A message
    that cannot be sent within ``send_timeout_s`` (default 10: the client stopped reading)
    drops the connection, so the cap and the keepalive hold.

    Use as ``async with LocalRealtimeServer(engine="scripted") as server:`` and point a client at
    ``server.base_url`` (``http://127.0.0.1:<port>/v1``; websocket path ``/v1/realtime``, also
    ``/realtime``). ``GET /health`` answers 200 ``ok``. ``port=None`` does not listen at all:
    sessions then come only through :meth:`serve_channel` (tests with no socket). Items of one
    session complete in commit order. Logs: one line per session (when it closes) and one per
    turn.

    The recognizer (``engine="whisper"``; :class:`~.recognizer.RecognizerOptions`):
    ``model`` (None: the bundled tiny.en; a faster-whisper name, fetched only with
    ``download=True``; or a CTranslate2 folder), ``device`` (``auto``/``cpu``/``cuda``),
    ``compute_type``, ``beam_size``, ``cpu_threads`` (per worker), ``language`` (for sessions
    that set none; None: detect on a multilingual model), ``temperature_fallback``.
    ``workers``: decode workers (None: from the core count for whisper, 1 for other engines).
    ``speculate``: decode a final ahead when a session pauses; ``fast_finals_under_load``: past
    capacity, decode finals as partials are (both None: on for whisper; ``speculation.py``).
    ``GET /metrics``: Prometheus metrics (:mod:`.metrics`).

    Raises:
        ValueError: a public ``host`` with neither ``api_key`` nor ``insecure_public``, an
            unknown ``compat``, ``engine`` or ``vad`` name, ``max_sessions`` < 1, a
            negative ``delta_interval_s``, or a ``max_buffer_s``, ``max_session_s``,
            ``idle_timeout_s``, ``max_pending_s`` or ``send_timeout_s`` that is not positive.
        RecognizerRefused: (a ``ValueError``) recognizer options the model cannot serve; the
            rest is checked when the model loads, at :meth:`start`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = 0,
        engine: str | Engine = "whisper",
        api_key: str | None = None,
        compat: str = "lenient",
        faults: Faults | None = None,
        max_session_s: float = 3600.0,
        delta_interval_s: float | None = DEFAULT_DELTA_INTERVAL_S,
        max_sessions: int | None = DEFAULT_MAX_SESSIONS,
        max_buffer_s: float = DEFAULT_MAX_BUFFER_S,
        vad: str | VadFactory = "silero",
        idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S,
        max_pending_s: float = DEFAULT_MAX_PENDING_S,
        send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S,
        insecure_public: bool = False,
        model: str | None = None,
        device: str = "auto",
        compute_type: str | None = None,
        beam_size: int = 5,
        cpu_threads: int | None = None,
        workers: int | None = None,
        language: str | None = None,
        speculate: bool | None = None,
        download: bool = False,
        temperature_fallback: bool = False,
        fast_finals_under_load: bool | None = None,
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
        SessionLimits(max_session_s, idle_timeout_s, max_pending_s)  # validates them
        if not 0 < send_timeout_s < float("inf"):
            raise ValueError("send_timeout_s must be a positive number of seconds")
        if port is not None and not is_loopback_host(host) and not api_key and not insecure_public:
            raise ValueError(
                f"refusing to listen on {host!r} (not a loopback address) without an API key: "
                "anyone who can reach it could use it. Pass api_key (--api-key), or "
                "insecure_public=True (--insecure-public) to accept any token on purpose."
            )
        self.host = host
        self._requested_port = port
        self._engine_spec = engine
        self._engine: Any = None if isinstance(engine, str) else engine
        self._api_key = api_key
        self.compat = compat
        self.faults = faults or Faults()
        self.max_session_s = max_session_s
        self.delta_interval_s = delta_interval_s or None
        self.max_sessions = max_sessions
        self.max_buffer_s = max_buffer_s
        self.idle_timeout_s = idle_timeout_s
        self.max_pending_s = max_pending_s
        self.send_timeout_s = send_timeout_s
        self._vad_factory: VadFactory = SileroVad if isinstance(vad, str) else vad
        self.counters = FaultCounters()
        # -- the recognizer, its workers and the metrics (issue 13)
        self.recognizer = RecognizerOptions(
            model=model,
            device=device,
            compute_type=compute_type,
            beam_size=beam_size,
            cpu_threads=cpu_threads,
            workers=workers,
            language=language,
            download=download,
            temperature_fallback=temperature_fallback,
        )
        whisper = engine == "whisper" or isinstance(engine, WhisperEngine)
        if engine == "whisper":
            self.recognizer = self.recognizer.resolved()
        elif isinstance(engine, WhisperEngine) and workers is None:
            workers = engine.workers
        self.workers = self.recognizer.workers if engine == "whisper" else (workers or 1)
        self.speculate = whisper if speculate is None else speculate
        self.fast_finals_under_load = (
            whisper if fast_finals_under_load is None else fast_finals_under_load
        )
        self._speculator: Speculator | None = None
        self._live: set[PureSession] = set()
        self.metrics = ServerMetrics(self._live_figures)
        self._started = False
        self._server: Server | None = None
        self._scheduler: DecodeScheduler | None = None
        self._admitted: set[ServerConnection] = set()
        self._channels: set[ServerChannel] = set()
        self._port: int | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    @property
    def engine(self) -> Any:
        """The recognizer as given (None before :meth:`start` for ``"whisper"``/``"scripted"``)."""
        return self._engine

    @property
    def scheduler(self) -> DecodeScheduler | None:
        """The shared decode queue (None when not started)."""
        return self._scheduler

    @property
    def active_sessions(self) -> int:
        """Sessions admitted and not yet over: websockets and :meth:`serve_channel` ones."""
        self._admitted = {c for c in self._admitted if c.state is not State.CLOSED}
        return len(self._admitted) + len(self._channels)

    @property
    def port(self) -> int:
        """The bound TCP port (RuntimeError before :meth:`start`, or with ``port=None``)."""
        if self._port is None:
            raise RuntimeError("the server is not listening")
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
        """Load the engine (in a thread), start the decode worker and, unless ``port`` is
        None, listen. Idempotent."""
        if self._started:
            return
        self._started = True
        if self._engine is None:
            self._engine = await asyncio.to_thread(make_engine, self._engine_spec, self.recognizer)
        assert self.workers is not None
        self._scheduler = scheduler = DecodeScheduler(
            workers=self.workers, on_final_wait=self.metrics.final_wait.observe
        )
        await scheduler.start()
        if self.speculate or self.fast_finals_under_load:
            self._speculator = Speculator(
                as_engine(self._engine),
                self._room_to_speculate if self.speculate else None,
                self._under_load if self.fast_finals_under_load else None,
            )
        if self._requested_port is None:
            return
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
                "workers": self.workers,
                "recognizer": self.recognizer,
            },
        )

    async def aclose(self) -> None:
        """Close every connection (1001), stop listening and stop the decode thread."""
        self._started = False
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for channel in list(self._channels):
            await channel.close(1001, "")
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None:
            await scheduler.aclose()
        if server is not None:
            logger.info("local realtime server stopped", extra={"port": self._port})

    async def serve_forever(self) -> None:
        """Start (if needed) and serve until cancelled."""
        await self.start()
        try:
            if self._server is not None:
                await self._server.serve_forever()
            else:
                await asyncio.Event().wait()
        finally:
            await self.aclose()

    async def __aenter__(self) -> LocalRealtimeServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- the two ways in ---------------------------------------------------------------------

    def _check(self, path: str, headers: Mapping[str, str]) -> HandshakeReply | None:
        reply = check_handshake(
            path=path,
            headers=headers,
            api_key=self._api_key,
            faults=self.faults,
            counters=self.counters,
            active_sessions=self.active_sessions,
            max_sessions=self.max_sessions,
            compat=self.compat,
        )
        if reply is not None and reply.status != 200:
            self.metrics.refused_upgrade(reply.status)
            logger.info(
                "handshake rejected", extra={"status": reply.status, "path": urlsplit(path).path}
            )
        return reply

    def _under_load(self) -> bool:
        """On a worker, about to decode a final: another final waits, this one waited, or the
        workers were busy most of the last seconds."""
        scheduler = self._scheduler
        if scheduler is None:
            return False
        return (
            scheduler.finals_waiting > 0
            or scheduler.current_wait_s() > UNDER_LOAD_WAIT_S
            or scheduler.utilization() > UNDER_LOAD_UTILIZATION
        )

    def _room_to_speculate(self) -> bool:
        """On a worker, about to decode ahead: nothing waits and the workers have room."""
        scheduler = self._scheduler
        if scheduler is None:
            return False
        return scheduler.backlog == 0 and scheduler.utilization() < SPECULATE_BELOW_UTILIZATION

    def _live_figures(self) -> dict[str, float]:
        """What ``/metrics`` reads from the server when scraped (:class:`ServerMetrics`)."""
        scheduler, spec = self._scheduler, self._speculator
        figures: dict[str, float] = {
            "sessions_open": self.active_sessions,
            "audio_s": sum(s.audio_received_s for s in self._live),
            "workers": self.workers or 0,
        }
        if scheduler is not None:
            figures["queue_depth"] = scheduler.backlog
            figures["running"] = scheduler.finals_running + scheduler.partials_running
            figures["partials_shed"] = scheduler.partials_shed
        if spec is not None:
            figures["speculation_hits"] = spec.hits
            figures["speculation_misses"] = spec.misses
            figures["fast_finals"] = spec.fast_finals
        return figures

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path.rstrip("/") == "/metrics":
            response = connection.respond(200, self.metrics.exposition().decode())
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = CONTENT_TYPE_LATEST
            return response
        reply = self._check(request.path, dict(request.headers.raw_items()))
        if reply is None:
            self._admitted.add(connection)
            return None
        return connection.respond(reply.status, reply.body)

    async def _handle(self, conn: ServerConnection) -> None:
        request = conn.request
        assert request is not None
        try:
            headers = dict(request.headers.raw_items())
            await self._run(WebsocketChannel(conn), request.path, headers)
        finally:
            self._admitted.discard(conn)

    async def serve_channel(
        self, channel: ServerChannel, *, path: str, headers: Mapping[str, str]
    ) -> None:
        """Serve one session over ``channel``, as if it had arrived as a websocket upgrade of
        ``path`` (with its query, e.g. ``/v1/realtime?intent=transcription&model=…``) with
        ``headers``; returns when the connection is over (docs/protocol.md §1).

        The handshake is checked first, as for a socket (credentials, path, ``max_sessions``,
        the ``reject_handshake_status`` fault, counted in :attr:`counters`). Starts the server
        if needed (with ``port=None`` nothing listens).

        Raises:
            HandshakeRejected: the upgrade is refused; ``status``/``body`` are the HTTP answer
                a socket would have got (200 ``ok`` for ``/health``).
        """
        await self.start()
        reply = self._check(path, headers)
        if reply is not None:
            raise HandshakeRejected(reply.status, reply.body)
        self._channels.add(channel)
        try:
            await self._run(channel, path, headers)
        finally:
            self._channels.discard(channel)

    async def _run(self, channel: ServerChannel, path: str, headers: Mapping[str, str]) -> None:
        """One admitted session, from ``session.created`` to its close."""
        query = parse_query(path)
        limits = SessionLimits(self.max_session_s, self.idle_timeout_s, self.max_pending_s)
        session: PureSession
        if self.compat == "vllm":
            session = VllmSession(
                session_id=f"sess-{uuid.uuid4().hex}",  # vLLM's: "sess-" + random_uuid()
                created=int(time.time()),
                limits=limits,
                faults=self.faults,
                counters=self.counters,
                delta_interval_s=self.delta_interval_s,
                max_buffer_s=self.max_buffer_s,
            )
        else:
            session = self._openai_session(query, headers, limits)
        assert self._scheduler is not None and self._engine is not None
        spec = self._speculator
        metered = self.metrics.observe(channel)
        runner = SessionRunner(
            metered,
            session,
            scheduler=self._scheduler,
            engine=spec.session(session.session_id) if spec else as_engine(self._engine),
            vad_factory=self._vad_factory,
            send_timeout_s=self.send_timeout_s,
        )
        self._live.add(session)
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
            await runner.run()
        finally:
            self._live.discard(session)
            self.metrics.session_over(session.audio_received_s)
            if spec is not None:
                spec.forget(session.session_id)
            cfg, stats = session.config, metered.stats
            log_session_closed(
                logger,
                {
                    "session_id": session.session_id,
                    "model": cfg.model,
                    "format": cfg.format_type,
                    "server_vad": session.vad_active,
                    "duration_s": round(time.monotonic() - opened, 3),
                    "audio_s": round(session.audio_received_s, 3),
                    "items": session.turns_committed,
                    "turns": session.turns_committed,
                    "finals": stats.finals,
                    "errors": stats.errors,
                    "partials": session.partials_run,
                    "close_code": channel.close_code,
                },
            )

    def _openai_session(
        self, query: Mapping[str, str], headers: Mapping[str, str], limits: SessionLimits
    ) -> ServerSession:
        return ServerSession(
            session_id=random_id("sess"),
            compat=self.compat,
            query_model=query.get("model"),
            openai_beta=header(headers, "OpenAI-Beta") is not None,
            faults=self.faults,
            counters=self.counters,
            limits=limits,
            delta_interval_s=self.delta_interval_s,
            max_buffer_s=self.max_buffer_s,
            vad_window_s=float(getattr(self._vad_factory, "window_s", DEFAULT_VAD_WINDOW_S)),
        )
