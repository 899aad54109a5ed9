"""The servers a measurement talks to: the local server and the probe server, one class.

In its own process (the default) a server is pinned to the server CPU (:func:`.machine.
server_cpus`), so that its CPU is never counted as the client's, and :meth:`Server.cpu_s` reads
that process's CPU. Inline (``inline=True``: smoke runs, and the fault-injection runs, which need
a :class:`~livekit.plugins.openai_stt.server.Faults` per server) it runs in this event loop and
``cpu_s`` is NaN.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import re
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.harness.machine import ROOT, process_cpu_s, server_cpus

_ENGINES: dict[str, Any] = {}
"""Recognizers loaded by inline local servers, reused by the next one (a model loads once)."""


@dataclass
class Server:
    """A running server: where to connect, and its process (``pid`` None when inline)."""

    port: int
    pid: int | None = None
    log: list[str] = field(default_factory=list)
    """Its output lines (process mode)."""
    local: Any = None
    """The ``LocalRealtimeServer`` itself, for an inline local server (its ``counters``)."""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    def cpu_s(self) -> float:
        """User + system CPU seconds of the server process so far (NaN inline)."""
        return math.nan if self.pid is None else process_cpu_s(self.pid)

    async def _get(self, route: str) -> Any:
        import aiohttp

        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.port}{route}") as reply,
        ):
            return await reply.json(content_type=None) if route == "/stats" else None

    async def probe_records(self) -> list[dict[str, Any]]:
        """The probe server's per-connection records (see :mod:`.probe`)."""
        return (await self._get("/stats"))["records"]

    async def probe_reset(self) -> None:
        """Forget the probe server's records."""
        await self._get("/reset")


@contextlib.asynccontextmanager
async def local_server(
    engine: str = "scripted",
    *,
    inline: bool = False,
    partials_s: float = 0.0,
    faults: Any = None,
    port: int = 0,
    cpu: int | None | str = "auto",
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    **server_kw: Any,
) -> AsyncIterator[Server]:
    """The local server (``python -m livekit.plugins.openai_stt.server``), ``engine``
    ``"scripted"`` or ``"whisper"``, without a session cap, its pre-commit partial decodes every
    ``partials_s`` seconds (0: off; the benchmarks measure clients, so the server does as little
    as the protocol allows). ``faults`` (a ``Faults``), ``port`` and ``server_kw`` (further
    ``LocalRealtimeServer`` arguments) are for inline servers; ``args`` (further command-line
    flags) and ``env`` (the environment) for a server in its own process."""
    if not inline:
        flags = ["--engine", engine, "--port", "0", "--max-sessions", "0"]
        flags += ["--delta-interval-s", str(partials_s), *args]
        cmd = ["-m", "livekit.plugins.openai_stt.server", *flags, "--log-level", "WARNING"]
        async with _spawn(cmd, r"base URL http://[^\s:]+:(\d+)", cpu, env=env) as server:
            yield server
        return
    from livekit.plugins.openai_stt.server import LocalRealtimeServer

    srv = LocalRealtimeServer(
        engine=_ENGINES.get(engine, engine),
        port=port,
        faults=faults,
        max_sessions=None,
        delta_interval_s=partials_s or None,
        **server_kw,
    )
    await srv.start()
    _ENGINES[engine] = srv.engine
    try:
        yield Server(srv.port, local=srv)
    finally:
        await srv.aclose()


@contextlib.asynccontextmanager
async def probe_server(
    delta_ms: float = 100.0, *, inline: bool = False, cpu: int | None | str = "auto"
) -> AsyncIterator[Server]:
    """The probe server (:mod:`.probe`): a delta stamped with its send time every ``delta_ms``
    while audio arrives, byte counts and commit times per connection."""
    if not inline:
        cmd = ["-m", "benchmarks.harness.probe", "--port", "0", "--delta-ms", str(delta_ms)]
        async with _spawn(cmd, r"PROBE (\d+)", cpu) as server:
            yield server
        return
    from benchmarks.harness import probe

    srv = await probe.serve(delta_ms)
    try:
        yield Server(srv.sockets[0].getsockname()[1])
    finally:
        srv.close()
        await srv.wait_closed()


@contextlib.asynccontextmanager
async def _spawn(
    args: Sequence[str],
    ready: str,
    cpu: int | None | str,
    timeout_s: float = 120.0,
    env: dict[str, str] | None = None,
) -> AsyncIterator[Server]:
    """``python ARGS`` from the project root, its CPUs set (it must not inherit the client's
    pinning), yielded once a line of its output matches ``ready`` (group 1: the port)."""
    cpus = server_cpus(cpu)

    def pin() -> None:
        with contextlib.suppress(OSError, AttributeError):
            os.sched_setaffinity(0, cpus)

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        preexec_fn=pin,
        env=env,
    )
    assert proc.stdout is not None
    log: list[str] = []
    drain: asyncio.Task[None] | None = None

    async def port() -> int:
        assert proc.stdout is not None
        while not (m := re.search(ready, log[-1] if log else "")):
            line = await proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{args[1]} did not start:\n" + "\n".join(log[-20:]))
            log.append(line.decode(errors="replace").rstrip())
        return int(m.group(1))

    try:
        server = Server(await asyncio.wait_for(port(), timeout_s), proc.pid, log)

        async def keep_reading(stream: asyncio.StreamReader) -> None:
            while line := await stream.readline():
                if len(log) < 5000:
                    log.append(line.decode(errors="replace").rstrip())

        drain = asyncio.create_task(keep_reading(proc.stdout))
        yield server
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        if drain is not None:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
