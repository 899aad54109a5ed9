"""One measurement in a fresh process: ``python -m benchmarks._worker TASK 'JSON ARGS'``.

Prints ``RESULT {json}`` as its last line. Tasks:

- ``cpu_ab``: CPU seconds per stream-minute of several variants (plugin, format, chunk) in one
  process, measured in alternating windows with an idle-baseline window each round.
- ``ramp``: the most concurrent streams one process (pinned to one CPU) keeps in real time.
- ``mem``: RSS growth (and optionally the tracemalloc peak) per stream over N streams.

Every driver feeds the same 48 kHz mono 10 ms frames of real speech on an absolute schedule,
the streams split into :data:`PHASES` groups spread over each 10 ms.
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
from typing import Any

from benchmarks import _common as C

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


def _cpu_busy(cpu: int | None) -> tuple[float, float] | None:
    """(busy seconds, total seconds) of one CPU so far, from the kernel's per-CPU times."""
    try:
        import psutil

        t = psutil.cpu_times(percpu=True)[cpu if cpu is not None else 0]
    except Exception:  # noqa: BLE001 - a diagnostic only
        return None
    idle = t.idle + getattr(t, "iowait", 0.0)
    total = sum(t)
    return total - idle, total


def _stuck(streams: list[Any], over_ms: float = 500.0) -> int:
    """Streams whose input backlog exceeds ``over_ms`` (not consuming at all, usually)."""
    n = 0
    for s in streams:
        with contextlib.suppress(Exception):
            n += s._input_ch.qsize() * C.FRAME_MS > over_ms
    return n


async def _open_streams(
    stt: Any, n: int, sinks: list[asyncio.Task[None]], preroll: list[Any] | None = None
) -> list[Any]:
    """Open ``n`` streams, each drained by a task. With ``preroll`` frames, stream ``i`` is
    first given ``i * 7 % 20`` of them at once, so that the streams' chunk boundaries do not
    fall in the same 10 ms (independent participants are not in lockstep)."""
    streams = []
    for i in range(n):
        st = stt.stream()
        sinks.append(asyncio.create_task(C.drain_events(st)))
        streams.append(st)
        PUSHED[id(st)] = 0
        STAGGER[id(st)] = len(STAGGER) * 37
        if preroll:
            for f in preroll[: i * 7 % 20]:
                st.push_frame(f)
                PUSHED[id(st)] += 1
    return streams


PUSHED: dict[int, int] = {}
"""Frames pushed to each stream (by id)."""
STAGGER: dict[int, int] = {}
"""Per-stream offset (frames) of its turn ends, so that streams do not all end a turn in the
same 10 ms; the oracle VAD staggers its streams the same way (``stagger=True``)."""


async def _close_all(streams: list[Any], sinks: list[asyncio.Task[None]], stt: Any) -> None:
    await asyncio.gather(*(s.aclose() for s in streams), return_exceptions=True)
    for t in sinks:
        t.cancel()
    await asyncio.gather(*sinks, return_exceptions=True)
    with contextlib.suppress(Exception):
        await stt.aclose()


PHASES = 5
"""Streams are split into this many groups fed at evenly spaced instants of each 10 ms period
(2 ms apart), as frames of independent participants arrive, rather than all at once."""


async def _push_for(
    streams: list[Any],
    frames: list[Any],
    seconds: float,
    start_k: int = 0,
    pacer: C.Pacer | None = None,
    flush_every: int = 0,
    sample: Any = None,
) -> int:
    """Push one frame per stream per 10 ms for ``seconds`` (in :data:`PHASES` groups);
    ``flush()`` each stream every ``flush_every`` frames of its own audio (staggered, see
    :data:`STAGGER`); returns the next frame index."""
    phases = PHASES
    pacer = pacer or C.Pacer(C.FRAME_MS / 1000 / phases)
    rounds = int(round(seconds * 1000 / C.FRAME_MS))
    nf = len(frames)
    groups = [streams[j::phases] for j in range(phases)]
    for r in range(rounds):
        k = start_k + r
        f = frames[k % nf]
        if sample is not None and r % 25 == 0:
            sample()
        for group in groups:
            await pacer.tick()
            for s in group:
                sid = id(s)
                try:
                    s.push_frame(f)
                    n = PUSHED[sid] = PUSHED.get(sid, 0) + 1
                    if flush_every and (n - STAGGER.get(sid, 0)) % flush_every == 0:
                        s.flush()
                except RuntimeError:  # the stream died (retries ran out): not keeping up
                    DEAD.add(sid)
    return start_k + rounds


# --------------------------------------------------------------------------------------------


def _make_with_turns(plugin: str, base_url: str, turn_s: float, **kw: Any) -> tuple[Any, int]:
    """The STT, and how often (frames) to flush its streams, for turns of ``turn_s`` (0: no
    turn). Ours is flushed at each end of turn, as AgentSession does (``manual_flush``); the
    official plugin commits only on its VAD's END_OF_SPEECH, so it gets the oracle VAD
    (staggered like the flushes)."""
    if not turn_s:
        return C.make_stt(plugin, base_url, **kw), 0
    if plugin == "official":
        return C.make_stt(plugin, base_url, vad=C.OracleVAD(turn_s=turn_s, stagger=True), **kw), 0
    return C.make_stt(plugin, base_url, **kw), int(round(turn_s * 1000 / C.FRAME_MS))


async def task_ramp(a: dict[str, Any]) -> dict[str, Any]:
    """Ramp the number of streams (``levels``, or geometric from ``start`` by ``factor``) until
    a level fails to keep real time; returns every level measured."""
    import psutil

    frames = C.speech_frames_48k(20)
    step_s = float(a.get("step_seconds", 3.0))
    warm_s = float(a.get("warm_seconds", 0.7))
    lag_ms, backlog_limit = float(a.get("lag_p95_ms", 20.0)), float(a.get("backlog_ms", 100.0))
    deadline = time.monotonic() + float(a.get("budget_s", 90.0))
    server = psutil.Process(int(a["server_pid"])) if a.get("server_pid") else None
    if a.get("levels"):
        plan = [int(x) for x in a["levels"]]
    else:
        plan, n = [], int(a.get("start", 10))
        while n <= int(a["max"]):
            plan.append(n)
            n = max(n + 1, int(round(n * float(a.get("factor", 1.5)))))
    levels: list[dict[str, Any]] = []
    turn_s = float(a.get("turn_s", 0.0))
    flush_every = 0
    async with C.http_context(unlimited=bool(a.get("unlimited_http", False))):
        stt, flush_every = _make_with_turns(a["plugin"], a["base_url"], turn_s)
        sinks: list[asyncio.Task[None]] = []
        streams: list[Any] = []
        k = 0
        for n in plan:
            if time.monotonic() > deadline:
                break
            # connect the new streams with no audio flowing (the others idle meanwhile): the
            # level measures steady state, not connection setup (timed apart: connect_s)
            t_conn = time.monotonic()
            new = await _open_streams(stt, n - len(streams), sinks, frames)
            for st in new:  # more than one chunk_ms block, so that each queues something
                for f in frames[:12]:
                    st.push_frame(f)
            conn_deadline = t_conn + float(a.get("connect_budget_s", 90.0))
            while _backlog_ms(new) > 0 and time.monotonic() < conn_deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            connect_s = time.monotonic() - t_conn
            connected = _backlog_ms(new) == 0
            streams += new
            k = await _push_for(streams, frames, warm_s, start_k=k, flush_every=flush_every)
            # steady state: new streams connect (the official plugin one at a time) and
            # drain what queued meanwhile before the clock starts (at most settle_s more)
            settle_end = time.monotonic() + float(a.get("settle_s", 6.0))
            while _backlog_ms(streams) > 50 and time.monotonic() < settle_end:
                k = await _push_for(streams, frames, 0.5, start_k=k, flush_every=flush_every)
            settled = _backlog_ms(streams) <= 50
            lag = C.LoopLag()
            lag.start()
            pacer = C.Pacer(C.FRAME_MS / 1000 / PHASES)
            backlogs: list[float] = []
            s_cpu0 = server.cpu_times() if server else None
            c0 = _cpu_busy(a.get("cpu", C.CLIENT_CPU))
            p0, w0 = time.process_time(), time.monotonic()
            k = await _push_for(
                streams,
                frames,
                step_s,
                start_k=k,
                pacer=pacer,
                flush_every=flush_every,
                sample=lambda b=backlogs, ss=streams: b.append(_backlog_ms(ss)),
            )
            wall = time.monotonic() - w0
            cpu = time.process_time() - p0
            c1 = _cpu_busy(a.get("cpu", C.CLIENT_CPU))
            await lag.stop()
            backlogs.append(_backlog_ms(streams))
            s_cpu1 = server.cpu_times() if server else None
            res = {
                "streams": n,
                "lateness_p95_ms": C.percentile(pacer.lateness, 95) * 1000,
                "loop_lag_p95_ms": C.percentile(lag.samples, 95) * 1000,
                "backlog_end_ms": backlogs[-1],
                "backlog_max_ms": max(backlogs),
                "client_core_fraction": cpu / wall,
                "server_core_fraction": (
                    (s_cpu1.user + s_cpu1.system - s_cpu0.user - s_cpu0.system) / wall
                    if server
                    else math.nan
                ),
                # the client CPU's busy share not spent by this process: other processes
                "other_load": (
                    max(0.0, (c1[0] - c0[0]) / (c1[1] - c0[1]) - cpu / wall)
                    if c0 and c1 and c1[1] > c0[1]
                    else math.nan
                ),
                "dead_streams": sum(1 for s in streams if id(s) in DEAD),
                "stuck_streams": _stuck(streams),
                "settled": settled,
                "new_streams": len(new),
                "connect_s": connect_s,
                "connected": connected,
            }
            res["ok"] = (
                res["lateness_p95_ms"] <= lag_ms
                and res["loop_lag_p95_ms"] <= lag_ms
                and res["backlog_end_ms"] <= backlog_limit
                and res["dead_streams"] == 0
            )
            levels.append(res)
            if not res["ok"] or not connected:
                break
        await _close_all(streams, sinks, stt)
    ok = [lv["streams"] for lv in levels if lv["ok"]]
    bad = [lv["streams"] for lv in levels if not lv["ok"]]
    return {
        "max_ok": max(ok) if ok else 0,
        "first_fail": min(bad) if bad else None,
        "levels": levels,
    }


async def task_mem(a: dict[str, Any]) -> dict[str, Any]:
    import tracemalloc

    frames = C.speech_frames_48k(20)
    n, seconds, turn_s = int(a["streams"]), float(a["seconds"]), float(a.get("turn_s", 2.0))
    plugin = a["plugin"]
    trace = bool(a.get("tracemalloc", False))

    def make() -> tuple[Any, int]:
        return _make_with_turns(plugin, a["base_url"], turn_s)

    async with C.http_context(unlimited=bool(a.get("unlimited_http", False))):
        # warm-up: imports, the aiohttp session, resamplers, first-use caches
        stt, flush_every = make()
        sinks: list[asyncio.Task[None]] = []
        streams = await _open_streams(stt, 2, sinks)
        await _push_for(
            streams, frames, float(a.get("warm_seconds", min(1.0, turn_s))), flush_every=flush_every
        )
        await _close_all(streams, sinks, stt)
        await asyncio.sleep(0.3)
        gc.collect()
        rss0 = _rss()
        if trace:
            tracemalloc.start()
        stt, flush_every = make()
        sinks = []
        peak = [rss0]
        streams = await _open_streams(stt, n, sinks, frames)
        pacer = C.Pacer(C.FRAME_MS / 1000 / PHASES)
        await _push_for(
            streams,
            frames,
            seconds,
            pacer=pacer,
            flush_every=flush_every,
            sample=lambda: peak.append(_rss()),
        )
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


async def task_cpu_ab(a: dict[str, Any]) -> dict[str, Any]:
    """Several variants (plugin, format, chunk) in ONE process, measured in alternating
    windows: each round feeds every variant's streams in turn for ``window_s`` (the others
    get nothing and idle), plus one window with no stream fed (the idle baseline), the order
    rotating every round. Drift (other load on the machine, frequency) hits every variant
    alike; per-window CPU is ``time.process_time()`` (all threads)."""
    frames = C.speech_frames_48k(20)
    n = int(a["streams"])
    window_s, rounds = float(a.get("window_s", 1.0)), int(a.get("rounds", 4))
    idle_s = float(a.get("idle_window_s", 0.5))
    variants: list[dict[str, Any]] = a["variants"]
    out: dict[str, Any] = {v["label"]: {"cpu": [], "wall": [], "lateness": []} for v in variants}
    idle_cpu = idle_wall = 0.0
    async with C.http_context(unlimited=bool(a.get("unlimited_http", False))):
        groups = []
        for v in variants:
            kw: dict[str, Any] = {"audio_format": v.get("audio_format", "pcm16")}
            if v["plugin"] == "ours":
                kw["chunk_ms"] = int(v.get("chunk_ms", 100))
            stt, fe = _make_with_turns(v["plugin"], a["base_url"], float(v.get("turn_s", 0)), **kw)
            sinks: list[asyncio.Task[None]] = []
            streams = await _open_streams(stt, n, sinks, frames)
            groups.append((v, stt, sinks, streams, fe))
        k = 0
        for _v, _, _, streams, fe in groups:  # connect and warm each group
            k = await _push_for(
                streams, frames, float(a.get("warm_seconds", 1.0)), start_k=k, flush_every=fe
            )
        gc.collect()
        order = list(range(len(groups))) + [-1]
        for r in range(rounds):
            rot = order[r % len(order) :] + order[: r % len(order)]
            for gi in rot:
                if gi < 0:
                    p0, w0 = time.process_time(), time.monotonic()
                    await _push_for([], frames, idle_s)
                    idle_cpu += time.process_time() - p0
                    idle_wall += time.monotonic() - w0
                    continue
                v, _, _, streams, fe = groups[gi]
                pacer = C.Pacer(C.FRAME_MS / 1000 / PHASES)
                p0, w0 = time.process_time(), time.monotonic()
                k = await _push_for(
                    streams, frames, window_s, start_k=k, pacer=pacer, flush_every=fe
                )
                rec = out[v["label"]]
                rec["cpu"].append(time.process_time() - p0)
                rec["wall"].append(time.monotonic() - w0)
                rec["lateness"].append(C.percentile(pacer.lateness, 95) * 1000)
        backlog = {v["label"]: _backlog_ms(streams) for v, _, _, streams, _ in groups}
        dead = sum(1 for _, _, _, ss, _ in groups for s in ss if id(s) in DEAD)
        for _, stt, sinks, streams, _ in groups:
            await _close_all(streams, sinks, stt)
    idle_rate = idle_cpu / idle_wall if idle_wall else 0.0
    result: dict[str, Any] = {"idle_cpu_per_s": idle_rate, "dead_streams": dead, "variants": {}}
    for label, rec in out.items():
        pairs = zip(rec["cpu"], rec["wall"], strict=True)
        per_window = [(c - idle_rate * w) / (n * w / 60.0) for c, w in pairs]
        total = (sum(rec["cpu"]) - idle_rate * sum(rec["wall"])) / (n * sum(rec["wall"]) / 60)
        result["variants"][label] = {
            "cpu_s_per_stream_minute": total,
            "per_window": per_window,
            "lateness_p95_ms": max(rec["lateness"]) if rec["lateness"] else math.nan,
            "backlog_end_ms": backlog[label],
        }
    return result


TASKS = {"cpu_ab": task_cpu_ab, "ramp": task_ramp, "mem": task_mem}


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
