"""Shared pieces of the benchmarks: the two plugins built the same way, audio, pacing,
servers in their own processes, an oracle VAD, statistics, machine facts.

"ours" is ``livekit.plugins.openai_stt``; "official" is ``livekit.plugins.openai`` (its
realtime STT). Both are pointed at the same local server, with the same model
(:data:`MODEL`), the same API key and the same 48 kHz 10 ms frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import importlib.metadata
import math
import os
import platform
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent
PY = sys.executable

PLUGINS = ("ours", "official")
LABELS = {"ours": "openai_stt (ours)", "official": "livekit-plugins-openai"}

MODEL = "gpt-realtime-whisper"
"""The model both plugins ask for. The official plugin serves it only in realtime mode, with
no server turn detection (it commits on its VAD's end of speech); our local server never runs
VAD either, so this is the one model both can be measured with on the same server."""

CLIENT_CPU = 0
SERVER_CPU = 1

FRAME_MS = 10
RATE_48K = 48000


# --------------------------------------------------------------------------------------------
# machine


def pin_to_cpu(cpu: int | None) -> str:
    """Pin this process to one CPU if possible; returns a note for the report."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    try:
        if cpu not in os.sched_getaffinity(0):
            return "not pinned (cpu unavailable)"
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except OSError as e:
        return f"not pinned ({e})"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def version_of(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def project_revision() -> str:
    """The checkout measured: commit, subject, and whether ``plugin/`` differs from it
    (read-only git commands; "unknown" outside a git checkout)."""

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["git", *args], cwd=str(ROOT), capture_output=True, text=True, timeout=10, check=False
        )

    try:
        head = git("log", "-1", "--format=%h %s")
        if head.returncode != 0:
            return "unknown"
        dirty = git("diff", "--quiet", "HEAD", "--", "plugin").returncode != 0
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + (" (plugin/ has uncommitted changes)" if dirty else "")


def machine_info() -> dict[str, Any]:
    mem = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "revision": project_revision(),
        "packages": {
            d: version_of(d)
            for d in (
                "livekit-plugins-openai-stt",
                "livekit-plugins-openai",
                "livekit-agents",
                "livekit",
                "websockets",
                "aiohttp",
                "faster-whisper",
            )
        },
    }


# --------------------------------------------------------------------------------------------
# statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); NaN for no values."""
    if not values:
        return math.nan
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    k = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "median": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else math.nan,
    }


def mean(values: Iterable[float]) -> float:
    xs = list(values)
    return sum(xs) / len(xs) if xs else math.nan


# --------------------------------------------------------------------------------------------
# audio


def speech_frames_48k(seconds: float | None = None) -> list[Any]:
    """10 ms mono 48 kHz ``rtc.AudioFrame`` s of real speech (the demo clip, two_cities.wav,
    48 kHz), or deterministic noise when the ``demo`` extra is missing. Cycled by callers."""
    from livekit import rtc

    from benchmarks.clips import demo_clip
    from examples.evaluation import wav_frames

    try:
        path = demo_clip()
    except FileNotFoundError:
        path = None
    if path is not None:
        frames = [f for f in wav_frames(path, FRAME_MS) if f.samples_per_channel == 480]
        if frames and frames[0].sample_rate == RATE_48K:
            if seconds is not None:
                frames = frames[: int(seconds * 100)]
            return frames
    rng = np.random.default_rng(7)
    n = int((seconds or 10.0) * 100)
    return [
        rtc.AudioFrame(
            data=(rng.standard_normal(480) * 2000).astype(np.int16).tobytes(),
            sample_rate=RATE_48K,
            num_channels=1,
            samples_per_channel=480,
        )
        for _ in range(n)
    ]


# --------------------------------------------------------------------------------------------
# plugins


def make_stt(
    plugin: str,
    base_url: str,
    *,
    audio_format: str = "pcm16",
    chunk_ms: int = 100,
    vad: Any = None,
) -> Any:
    """The STT of ``plugin`` pointed at ``base_url``, with the benchmark's common settings.

    The official STT needs ``livekit.agents.utils.http_context.open()`` around its use (it
    takes its aiohttp session from there). ``vad=None`` opts the official plugin out of its
    default Silero VAD (it then never commits); pass an :class:`OracleVAD` to have it commit.
    """
    if plugin == "ours":
        from livekit.plugins import openai_stt

        return openai_stt.STT(
            model=MODEL,
            base_url=base_url,
            api_key="bench",
            audio_format=audio_format,  # type: ignore[arg-type]
            chunk_ms=chunk_ms,
            vad=vad,
        )
    if plugin == "official":
        if audio_format != "pcm16":
            raise ValueError("the official plugin only sends pcm16 at 24 kHz")
        from livekit.plugins import openai as lk_openai

        return lk_openai.STT(
            model=MODEL,
            base_url=base_url,
            api_key="bench",
            use_realtime=True,
            language="en",
            vad=vad,
        )
    if plugin == "null":
        return make_null_stt()
    raise ValueError(plugin)


def make_null_stt(sample_rate: int = 24000) -> Any:
    """The framework floor: a LiveKit STT whose stream resamples (in the base class, as both
    plugins do) and then drops every frame. What any streaming STT plugin pays at least."""
    from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, stt

    class _NullStream(stt.RecognizeStream):
        async def _run(self) -> None:
            async for _ in self._input_ch:
                pass

    class _NullSTT(stt.STT):
        def __init__(self) -> None:
            super().__init__(
                capabilities=stt.STTCapabilities(streaming=True, interim_results=False)
            )

        async def _recognize_impl(self, *args: Any, **kwargs: Any) -> Any:
            raise NotImplementedError

        def stream(
            self, *, language: Any = None, conn_options: Any = DEFAULT_API_CONNECT_OPTIONS
        ) -> Any:
            return _NullStream(stt=self, conn_options=conn_options, sample_rate=sample_rate)

    return _NullSTT()


@contextlib.asynccontextmanager
async def http_context(*, unlimited: bool = False) -> Any:
    """``livekit.agents.utils.http_context.open()``, the aiohttp session the official plugin
    takes its websockets from (ours does not use it).

    As shipped that session's connector allows 50 connections per host, and a realtime
    websocket holds its connection for the stream's life: a 51st concurrent stream of the
    official plugin waits for a free slot. ``unlimited=True`` binds a session without that
    limit instead, to measure what the plugin's own code can do.
    """
    from livekit.agents.utils import http_context as hc

    if not unlimited:
        async with hc.open() as session:
            yield session
        return
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, limit_per_host=0))
    token = hc._ContextVar.set(lambda: session)
    try:
        yield session
    finally:
        hc._ContextVar.reset(token)
        await session.close()


# --------------------------------------------------------------------------------------------
# the oracle VAD: end of speech at known audio positions, identical for both plugins


class OracleVAD:
    """A LiveKit VAD that knows where the turns end (no model, near-zero cost).

    It emits START_OF_SPEECH at a turn's first frame and END_OF_SPEECH as soon as the audio it
    has been pushed reaches the end of a turn (``turn_s`` seconds each, or the explicit
    ``boundaries_s``; with ``stagger``, the j-th stream's are shifted by ``37 j`` frames modulo a
    turn), and at end of input if a turn is open. ``eos_times`` holds the
    ``time.monotonic()`` of each END_OF_SPEECH it emitted, for latency measurements.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # built lazily: livekit import
        from livekit.agents import vad as vad_mod

        class _Stream(vad_mod.VADStream):
            def __init__(self, owner: Any) -> None:
                self._owner = owner
                super().__init__(owner)

            async def _main_task(self) -> None:
                owner = self._owner
                seen_s = 0.0
                speaking = False
                k = 0

                def emit(kind: Any) -> None:
                    self._event_ch.send_nowait(
                        vad_mod.VADEvent(
                            type=kind,
                            samples_index=0,
                            timestamp=time.time(),
                            speech_duration=0.0,
                            silence_duration=0.0,
                        )
                    )

                offset = owner.next_offset()
                async for item in self._input_ch:
                    if not hasattr(item, "samples_per_channel"):
                        continue  # a flush sentinel
                    if not speaking:
                        speaking = True
                        emit(vad_mod.VADEventType.START_OF_SPEECH)
                    seen_s += item.samples_per_channel / item.sample_rate
                    boundary = owner.boundary(k)
                    if boundary is not None:
                        boundary += offset
                    if boundary is not None and seen_s >= boundary - 1e-9:
                        speaking = False
                        k += 1
                        owner.eos_times.append(time.monotonic())
                        emit(vad_mod.VADEventType.END_OF_SPEECH)
                if speaking and owner.eos_at_end:
                    owner.eos_times.append(time.monotonic())
                    emit(vad_mod.VADEventType.END_OF_SPEECH)

        class _VAD(vad_mod.VAD):
            def __init__(
                self,
                turn_s: float | None = None,
                boundaries_s: Sequence[float] | None = None,
                eos_at_end: bool = True,
                stagger: bool = False,
            ) -> None:
                super().__init__(capabilities=vad_mod.VADCapabilities(update_interval=0.1))
                self.turn_s = turn_s
                self.boundaries_s = list(boundaries_s) if boundaries_s else None
                self.eos_at_end = eos_at_end
                self.stagger = stagger
                self.eos_times: list[float] = []
                self._streams = 0

            def next_offset(self) -> float:
                """Stream j's turn ends are shifted by (37 j mod turn) frames if staggered."""
                j, self._streams = self._streams, self._streams + 1
                if not self.stagger or not self.turn_s:
                    return 0.0
                turn_frames = max(1, int(round(self.turn_s * 100)))
                return (j * 37 % turn_frames) / 100

            def boundary(self, k: int) -> float | None:
                if self.boundaries_s is not None:
                    return self.boundaries_s[k] if k < len(self.boundaries_s) else None
                return None if self.turn_s is None else self.turn_s * (k + 1)

            def stream(self) -> Any:
                return _Stream(self)

        return _VAD(*args, **kwargs)


# --------------------------------------------------------------------------------------------
# pacing


class Pacer:
    """Absolute 10 ms schedule: ``await pacer.tick()`` returns how late the tick was (s)."""

    def __init__(self, period_s: float = FRAME_MS / 1000, speed: float = 1.0) -> None:
        self.period = period_s / speed
        self.t0 = time.monotonic()
        self.k = 0
        self.lateness: list[float] = []

    async def tick(self) -> float:
        self.k += 1
        target = self.t0 + self.k * self.period
        delay = target - time.monotonic()
        # always yield: a late driver catching up must not starve the tasks it feeds
        await asyncio.sleep(max(0.0, delay))
        late = max(0.0, time.monotonic() - target)
        self.lateness.append(late)
        return late


class LoopLag:
    """Event-loop lag probe: sleeps ``interval`` and records the oversleep."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval = interval_s
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(self.interval)
            self.samples.append(time.monotonic() - t - self.interval)

    def start(self) -> None:
        self.samples = []
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def drain_events(stream: Any, sink: list[Any] | None = None) -> None:
    """Consume a stream's events (keeping ``(monotonic, event)`` in ``sink`` if given)."""
    with contextlib.suppress(Exception):
        async for ev in stream:
            if sink is not None:
                sink.append((time.monotonic(), ev))


# --------------------------------------------------------------------------------------------
# servers in their own processes


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    base_url: str
    port: int
    stderr_lines: list[str] = field(default_factory=list)

    def cpu_times(self) -> float:
        """User+system CPU seconds of the server process so far."""
        try:
            import psutil

            t = psutil.Process(self.proc.pid).cpu_times()
            return t.user + t.system
        except Exception:
            return math.nan

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


INITIAL_CPUS: frozenset[int] = frozenset(
    os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
)
"""The CPUs this process could use when it started, before :func:`pin_to_cpu`."""


def server_cpus(cpu: int | None | str = "auto") -> frozenset[int]:
    """The CPUs a server process gets: ``"auto"`` -> :data:`SERVER_CPU` alone when the machine
    has another CPU for the client, else all; ``None`` -> all (not pinned); an int -> it."""
    if cpu == "auto":
        if SERVER_CPU in INITIAL_CPUS and len(INITIAL_CPUS) > 1:
            return frozenset({SERVER_CPU})
        return INITIAL_CPUS
    if cpu is None:
        return INITIAL_CPUS
    return frozenset({int(cpu)})


def _preexec(cpus: frozenset[int]) -> Any:
    """Set the child's CPUs explicitly: it must not inherit the client's pinning."""
    if not hasattr(os, "sched_setaffinity"):
        return None

    def pin() -> None:
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, cpus)

    return pin


def unpin() -> None:
    """Give this process back every CPU it started with."""
    if hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, INITIAL_CPUS)


_FLAGS: set[str] | None = None


def server_flags() -> set[str]:
    """The command-line flags the local server accepts (it gains options over time)."""
    global _FLAGS
    if _FLAGS is None:
        out = subprocess.run(
            [PY, "-m", "livekit.plugins.openai_stt.server", "--help"],
            capture_output=True,
            text=True,
            cwd=str(ROOT),
            timeout=60,
        )
        _FLAGS = set(re.findall(r"(--[a-z][a-z0-9-]*)", out.stdout))
    return _FLAGS


def start_local_server(
    engine: str = "scripted",
    extra_args: Sequence[str] = (),
    *,
    cpu: int | None | str = "auto",
    partials: bool = False,
    timeout_s: float = 90.0,
) -> ServerProcess:
    """``python -m livekit.plugins.openai_stt.server --engine ENGINE --port 0`` in its own
    process (pinned to :data:`SERVER_CPU` by default), once it is listening.

    The server's session cap is lifted (``--max-sessions 0``) and, unless ``partials``, its
    pre-commit partial decodes are off (``--delta-interval-s 0``): the benchmarks measure the
    clients, so the server does as little as the protocol allows."""
    cpus = server_cpus(cpu)
    flags = server_flags()
    opts: list[str] = []
    if "--max-sessions" in flags:
        opts += ["--max-sessions", "0"]
    if "--delta-interval-s" in flags and not partials:
        opts += ["--delta-interval-s", "0"]
    cmd = [
        PY,
        "-m",
        "livekit.plugins.openai_stt.server",
        "--engine",
        engine,
        "--port",
        "0",
        "--log-level",
        "WARNING",
        *opts,
        *extra_args,
    ]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
        preexec_fn=_preexec(cpus),
    )
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        lines.append(line.rstrip())
        m = re.search(r"base URL (http://\S+?)[,)\s]", line)
        if m:
            base_url = m.group(1)
            port = int(base_url.rsplit(":", 1)[1].split("/")[0])
            sp = ServerProcess(proc, base_url, port, lines)
            _drain_in_background(proc, lines)
            return sp
    proc.kill()
    raise RuntimeError("local server did not start:\n" + "\n".join(lines[-20:]))


def start_probe_server(delta_ms: float = 100.0, *, cpu: int | None | str = "auto") -> ServerProcess:
    """``benchmarks/probe_server.py`` in its own process, once it is listening."""
    cmd = [PY, "-m", "benchmarks.probe_server", "--port", "0", "--delta-ms", str(delta_ms)]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
        preexec_fn=_preexec(server_cpus(cpu)),
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    m = re.match(r"PROBE (\d+)", line or "")
    if not m:
        proc.kill()
        err = proc.stderr.read() if proc.stderr else ""
        raise RuntimeError(f"probe server did not start: {line!r} {err[-2000:]}")
    port = int(m.group(1))
    return ServerProcess(proc, f"http://127.0.0.1:{port}/v1", port)


def _drain_in_background(proc: subprocess.Popen[str], lines: list[str]) -> None:
    import threading

    def run() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if len(lines) < 5000:
                lines.append(line.rstrip())

    threading.Thread(target=run, daemon=True).start()


def probe_stats(server: ServerProcess) -> list[dict[str, Any]]:
    import json

    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/stats", timeout=10) as r:
        return json.loads(r.read())["records"]


def probe_reset(server: ServerProcess) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/reset", timeout=10) as r:
        r.read()


# --------------------------------------------------------------------------------------------
# workers (one measurement per fresh process)


def run_worker(
    task: str, args: dict[str, Any], *, timeout_s: float = 300.0, inprocess: bool = False
) -> dict[str, Any]:
    """Run ``benchmarks/_worker.py TASK JSON`` and return its JSON result.

    ``inprocess``: run the task in this process instead (no fresh interpreter, no pinning of
    its own; for smoke runs, where the numbers do not matter)."""
    import json

    if inprocess:
        from benchmarks import _worker

        return json.loads(json.dumps(asyncio.run(_worker.TASKS[task](args))))

    cmd = [PY, "-m", "benchmarks._worker", task, json.dumps(args)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=str(ROOT))
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(
        f"worker {task} failed (rc={out.returncode}):\n{out.stderr[-3000:]}\n{out.stdout[-1000:]}"
    )
