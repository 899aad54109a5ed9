"""One measurement in a fresh process: ``python benchmarks/_worker.py TASK 'JSON ARGS'``.

Prints ``RESULT {json}`` as its last line. Tasks:

- ``cpu``: process CPU seconds of N concurrent streams fed 48 kHz 10 ms frames in real time
  for a fixed wall time, and of the same pacing loop with no stream (the idle baseline).
- ``ramp``: the most concurrent streams one process (pinned to one CPU) keeps in real time.
- ``mem``: RSS growth (and optionally the tracemalloc peak) per stream over N streams.

A fresh process per measurement keeps one plugin's allocations, caches and sockets out of the
other's figures; the runner alternates the plugins between processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402


DEAD: set[int] = set()
"""ids of streams whose push_frame raised: the stream ended on an error."""


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _backlog_ms(streams: list[Any]) -> float:
    """Largest input backlog among the streams, in ms of audio (frames still queued in the
    base stream's input channel, ~10 ms each after resampling)."""
    worst = 0
    for s in streams:
        with contextlib.suppress(Exception):
            worst = max(worst, s._input_ch.qsize())
    return worst * C.FRAME_MS


async def _open_streams(stt: Any, n: int, sinks: list[asyncio.Task[None]]) -> list[Any]:
    streams = []
    for _ in range(n):
        st = stt.stream()
        sinks.append(asyncio.create_task(C.drain_events(st)))
        streams.append(st)
    return streams


async def _close_all(streams: list[Any], sinks: list[asyncio.Task[None]], stt: Any) -> None:
    await asyncio.gather(*(s.aclose() for s in streams), return_exceptions=True)
    for t in sinks:
        t.cancel()
    await asyncio.gather(*sinks, return_exceptions=True)
    with contextlib.suppress(Exception):
        await stt.aclose()


async def _push_for(streams: list[Any], frames: list[Any], seconds: float, start_k: int = 0,
                    pacer: C.Pacer | None = None, flush_every: int = 0,
                    sample: Any = None) -> int:
    """Push one frame per stream per 10 ms tick for ``seconds``; returns the next frame index."""
    pacer = pacer or C.Pacer()
    n_ticks = int(round(seconds * 1000 / C.FRAME_MS))
    k = start_k
    nf = len(frames)
    for i in range(n_ticks):
        await pacer.tick()
        f = frames[k % nf]
        k += 1
        for s in streams:
            try:
                s.push_frame(f)
            except RuntimeError:  # the stream died (its retries ran out): it is not keeping up
                DEAD.add(id(s))
        if flush_every and k % flush_every == 0:
            for s in streams:
                s.flush()
        if sample is not None and i % 25 == 0:
            sample()
    return k


# --------------------------------------------------------------------------------------------


async def task_cpu(a: dict[str, Any]) -> dict[str, Any]:
    from livekit.agents import utils

    frames = C.speech_frames_48k(20)
    seconds, n = float(a["seconds"]), int(a["streams"])
    idle_s = float(a.get("idle_seconds", 3.0))
    async with utils.http_context.open():
        # idle baseline: the same pacing loop, no stream
        p0, w0 = time.process_time(), time.monotonic()
        await _push_for([], frames, idle_s)
        idle_cpu, idle_wall = time.process_time() - p0, time.monotonic() - w0

        stt = C.make_stt(a["plugin"], a["base_url"], audio_format=a.get("audio_format", "pcm16"),
                         chunk_ms=int(a.get("chunk_ms", 100)))
        sinks: list[asyncio.Task[None]] = []
        streams = await _open_streams(stt, n, sinks)
        k = await _push_for(streams, frames, float(a.get("warm_seconds", 1.5)))  # connect, warm
        gc.collect()
        pacer = C.Pacer()
        p0, w0 = time.process_time(), time.monotonic()
        await _push_for(streams, frames, seconds, start_k=k, pacer=pacer)
        cpu, wall = time.process_time() - p0, time.monotonic() - w0
        backlog = _backlog_ms(streams)
        await _close_all(streams, sinks, stt)
    idle_rate = idle_cpu / idle_wall
    net = cpu - idle_rate * wall
    stream_minutes = n * wall / 60.0
    return {
        "cpu_s": cpu,
        "wall_s": wall,
        "idle_cpu_per_s": idle_rate,
        "net_cpu_s": net,
        "cpu_s_per_stream_minute": net / stream_minutes,
        "core_fraction": cpu / wall,
        "lateness_p95_ms": C.percentile(pacer.lateness, 95) * 1000,
        "backlog_end_ms": backlog,
    }


async def task_ramp(a: dict[str, Any]) -> dict[str, Any]:
    """Geometric ramp (x ``factor``) until a level fails, then one midpoint refinement."""
    import psutil

    from livekit.agents import utils

    frames = C.speech_frames_48k(20)
    step_s = float(a.get("step_seconds", 3.0))
    warm_s = float(a.get("warm_seconds", 1.0))
    start, factor, max_n = int(a.get("start", 10)), float(a.get("factor", 1.5)), int(a["max"])
    lag_ms, backlog_limit = float(a.get("lag_p95_ms", 20.0)), float(a.get("backlog_ms", 100.0))
    deadline = time.monotonic() + float(a.get("budget_s", 90.0))
    server = psutil.Process(int(a["server_pid"])) if a.get("server_pid") else None
    levels: list[dict[str, Any]] = []
    async with utils.http_context.open():
        stt = C.make_stt(a["plugin"], a["base_url"])
        sinks: list[asyncio.Task[None]] = []
        streams: list[Any] = []
        k = 0

        async def run_level(n: int) -> dict[str, Any]:
            nonlocal k, streams
            if n > len(streams):
                streams += await _open_streams(stt, n - len(streams), sinks)
            elif n < len(streams):
                extra, streams = streams[n:], streams[:n]
                await asyncio.gather(*(s.aclose() for s in extra), return_exceptions=True)
            k = await _push_for(streams, frames, warm_s, start_k=k)
            lag = C.LoopLag()
            lag.start()
            pacer = C.Pacer()
            backlogs: list[float] = []
            s_cpu0 = server.cpu_times() if server else None
            p0, w0 = time.process_time(), time.monotonic()
            k = await _push_for(streams, frames, step_s, start_k=k, pacer=pacer,
                                sample=lambda: backlogs.append(_backlog_ms(streams)))
            wall = time.monotonic() - w0
            cpu = time.process_time() - p0
            await lag.stop()
            backlogs.append(_backlog_ms(streams))
            s_cpu1 = server.cpu_times() if server else None
            server_util = ((s_cpu1.user + s_cpu1.system - s_cpu0.user - s_cpu0.system) / wall
                           if server else math.nan)
            res = {
                "streams": n,
                "lateness_p95_ms": C.percentile(pacer.lateness, 95) * 1000,
                "loop_lag_p95_ms": C.percentile(lag.samples, 95) * 1000,
                "backlog_end_ms": backlogs[-1],
                "backlog_max_ms": max(backlogs),
                "client_core_fraction": cpu / wall,
                "server_core_fraction": server_util,
            }
            res["dead_streams"] = sum(1 for s in streams if id(s) in DEAD)
            res["ok"] = (res["lateness_p95_ms"] <= lag_ms and res["loop_lag_p95_ms"] <= lag_ms
                         and res["backlog_end_ms"] <= backlog_limit
                         and res["dead_streams"] == 0)
            return res

        n, last_ok, first_bad = start, 0, None
        while n <= max_n and time.monotonic() < deadline:
            r = await run_level(n)
            levels.append(r)
            if not r["ok"]:
                first_bad = n
                break
            last_ok = n
            n = max(n + 1, int(round(n * factor)))
        if first_bad is not None and last_ok and first_bad - last_ok > 1 \
                and time.monotonic() < deadline:
            mid = (last_ok + first_bad) // 2
            extra, streams = streams[mid:], streams[:mid]
            await asyncio.gather(*(s.aclose() for s in extra), return_exceptions=True)
            k = await _push_for(streams, frames, 2.0, start_k=k)  # let a backlog drain
            r = await run_level(mid)
            r["refinement"] = True
            levels.append(r)
            if r["ok"]:
                last_ok = mid
            else:
                first_bad = mid
        await _close_all(streams, sinks, stt)
    return {"max_ok": last_ok, "first_fail": first_bad, "levels": levels,
            "capped": first_bad is None}


async def task_mem(a: dict[str, Any]) -> dict[str, Any]:
    import tracemalloc

    from livekit.agents import utils

    frames = C.speech_frames_48k(20)
    n, seconds, turn_s = int(a["streams"]), float(a["seconds"]), float(a.get("turn_s", 2.0))
    plugin = a["plugin"]
    trace = bool(a.get("tracemalloc", False))
    turn_frames = int(round(turn_s * 1000 / C.FRAME_MS))

    def make() -> tuple[Any, int]:
        # ours is flushed at each end of turn (what AgentSession does: manual_flush=True);
        # the official plugin ignores flush() for commits and needs a VAD: the oracle one
        if plugin == "official":
            return C.make_stt(plugin, a["base_url"], vad=C.OracleVAD(turn_s=turn_s)), 0
        return C.make_stt(plugin, a["base_url"]), turn_frames

    async with utils.http_context.open():
        # warm-up: imports, the aiohttp session, resamplers, first-use caches
        stt, flush_every = make()
        sinks: list[asyncio.Task[None]] = []
        streams = await _open_streams(stt, 2, sinks)
        await _push_for(streams, frames, min(1.0, turn_s), flush_every=flush_every)
        await _close_all(streams, sinks, stt)
        await asyncio.sleep(0.3)
        gc.collect()
        rss0 = _rss()
        if trace:
            tracemalloc.start()
        stt, flush_every = make()
        sinks = []
        peak = [rss0]
        streams = await _open_streams(stt, n, sinks)
        pacer = C.Pacer()
        await _push_for(streams, frames, seconds, pacer=pacer, flush_every=flush_every,
                        sample=lambda: peak.append(_rss()))
        peak.append(_rss())
        traced_peak = tracemalloc.get_traced_memory()[1] if trace else math.nan
        if trace:
            tracemalloc.stop()
        backlog = _backlog_ms(streams)
        await _close_all(streams, sinks, stt)
    return {
        "rss0_mb": rss0 / 2**20,
        "rss_peak_mb": max(peak) / 2**20,
        "rss_per_stream_kb": (max(peak) - rss0) / n / 1024,
        "traced_peak_per_stream_kb": traced_peak / n / 1024 if trace else math.nan,
        "lateness_p95_ms": C.percentile(pacer.lateness, 95) * 1000,
        "backlog_end_ms": backlog,
    }


TASKS = {"cpu": task_cpu, "ramp": task_ramp, "mem": task_mem}


def main() -> None:
    task, args = sys.argv[1], json.loads(sys.argv[2])
    note = C.pin_to_cpu(args.get("cpu", C.CLIENT_CPU))
    import logging

    logging.basicConfig(level=logging.ERROR)
    result = asyncio.run(TASKS[task](args))
    result["pinning"] = note
    print("RESULT " + json.dumps(result), flush=True)
    os._exit(0)  # skip slow interpreter teardown (native threads of livekit-rtc)


if __name__ == "__main__":
    main()
