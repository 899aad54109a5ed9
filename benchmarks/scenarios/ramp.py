"""1 (cont.). The most concurrent streams one process keeps in real time on one core."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks.clips import speech_frames_48k
from benchmarks.harness import worker
from benchmarks.harness.drive import FRAME_S, PHASES, Fleet, LoopLag, Pacer
from benchmarks.harness.machine import CLIENT_CPU, cpu_busy, process_cpu_s
from benchmarks.harness.plugins import LABELS, http_context
from benchmarks.harness.servers import local_server
from benchmarks.harness.stats import Row, fmt, percentile, ratio


@dataclass
class Config:
    start: int = 135
    factor: float = 1.5
    max_streams: int = 800
    levels: tuple[int, ...] = ()
    """Explicit stream counts instead of the geometric ramp."""
    step_s: float = 1.5
    """How long each level is measured, seconds of real time."""
    warm_s: float = 0.5
    settle_s: float = 6.0
    """At most this long for a level's streams to drain what queued before it is measured."""
    budget_s: float = 75.0
    """No new level starts after this many seconds."""
    connect_budget_s: float = 90.0
    """How long a level's new streams may take to connect."""
    turn_s: float = 2.0
    limit_ms: float = 20.0
    """A level passes when pacing lateness p95 and event-loop lag p95 are both at most this."""
    backlog_ms: float = 100.0
    """... and no stream's input backlog exceeds this at the end."""
    refine: bool = True
    shipped: bool = True
    """Also try the official plugin as shipped (its default http session) at 51 streams."""
    quick: bool = False

    @classmethod
    def small(cls) -> Config:
        return cls(levels=(2,), step_s=0.2, warm_s=0.1, refine=False, shipped=False, quick=True)


@dataclass
class Result:
    cfg: Config
    plugins: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per plugin: ``max_ok``, ``first_fail`` and every level measured."""
    shipped_51: dict[str, Any] | None = None


async def task(a: dict[str, Any]) -> dict[str, Any]:
    """Ramp the stream count of ``a["plugin"]`` until a level fails to keep real time."""
    cfg = Config(**a["cfg"])
    frames = speech_frames_48k(20)
    deadline = time.monotonic() + cfg.budget_s
    plan, n = list(cfg.levels), cfg.start
    while not cfg.levels and n <= cfg.max_streams:
        plan.append(n)
        n = max(n + 1, round(n * cfg.factor))
    levels: list[dict[str, Any]] = []
    pid, cpu = a["server_pid"], a.get("cpu", CLIENT_CPU)
    async with http_context(unlimited=a["unlimited_http"]):
        fleet, k = Fleet(a["plugin"], a["base_url"], cfg.turn_s), 0
        for n in plan:
            if time.monotonic() > deadline:
                break
            # connect the new streams with no audio flowing (the others idle meanwhile): the
            # level measures steady state, not connection setup (timed apart: connect_s)
            t_conn = time.monotonic()
            new = await fleet.open(n - len(fleet.streams), frames)
            for s in new:  # more than one chunk_ms block, so that each queues something
                for f in frames[:12]:
                    s.push_frame(f)
            while fleet.backlog_ms(new) > 0 and time.monotonic() < t_conn + cfg.connect_budget_s:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            connect_s, connected = time.monotonic() - t_conn, fleet.backlog_ms(new) == 0
            k = await fleet.feed(frames, cfg.warm_s, start=k)
            # new streams connect (the official plugin one at a time) and drain what queued
            # meanwhile before the clock starts (at most settle_s more)
            settle_end = time.monotonic() + cfg.settle_s
            while fleet.backlog_ms() > 50 and time.monotonic() < settle_end:
                k = await fleet.feed(frames, 0.5, start=k)
            lag, pacer, backlogs = LoopLag(), Pacer(FRAME_S / PHASES), []
            lag.start()
            s0 = process_cpu_s(pid) if pid else math.nan
            c0, p0, w0 = cpu_busy(cpu), time.process_time(), time.monotonic()

            def sample(b: list[float] = backlogs) -> None:
                b.append(fleet.backlog_ms())

            k = await fleet.feed(frames, cfg.step_s, start=k, pacer=pacer, sample=sample)
            wall, used, c1 = time.monotonic() - w0, time.process_time() - p0, cpu_busy(cpu)
            await lag.stop()
            backlogs.append(fleet.backlog_ms())
            busy = (c1[0] - c0[0]) / (c1[1] - c0[1]) if c1[1] > c0[1] else math.nan
            level = {
                "streams": n,
                "lateness_p95_ms": pacer.p95_ms(),
                "loop_lag_p95_ms": percentile(lag.samples, 95) * 1000,
                "backlog_end_ms": backlogs[-1],
                "client_core_fraction": used / wall,
                "server_core_fraction": ((process_cpu_s(pid) if pid else math.nan) - s0) / wall,
                # the client CPU's busy share not spent by this process: other processes
                "other_load": max(0.0, busy - used / wall),
                "dead_streams": len(fleet.dead),
                "stuck_streams": fleet.stuck(),
                "new_streams": len(new),
                "connect_s": connect_s,
                "connected": connected,
            }
            level["ok"] = (
                max(level["lateness_p95_ms"], level["loop_lag_p95_ms"]) <= cfg.limit_ms
                and level["backlog_end_ms"] <= cfg.backlog_ms
                and not level["dead_streams"]
            )
            levels.append(level)
            if not level["ok"] or not connected:
                break
        await fleet.aclose()
    ok = [lv["streams"] for lv in levels if lv["ok"]]
    bad = [lv["streams"] for lv in levels if not lv["ok"]]
    return {"max_ok": max(ok, default=0), "first_fail": min(bad, default=None), "levels": levels}


async def measure(cfg: Config) -> Result:
    result, fresh = Result(cfg), not cfg.quick
    async with local_server(inline=cfg.quick) as server:

        async def ramp(plugin: str, c: Config, unlimited_http: bool) -> dict[str, Any]:
            args = {"cfg": dataclasses.asdict(c), "plugin": plugin, "base_url": server.base_url}
            args.update(server_pid=server.pid, unlimited_http=unlimited_http)
            return await worker.call(task, args, fresh=fresh)

        for plugin in ("ours", "official"):
            # the official plugin's default aiohttp session allows 50 connections per host
            # (checked separately below); lift that here to measure the plugin's own code
            r = await ramp(plugin, cfg, plugin == "official")
            if cfg.refine and r["first_fail"] and r["first_fail"] - r["max_ok"] > 1:
                mid = (r["max_ok"] + r["first_fail"]) // 2
                again = await ramp(
                    plugin, dataclasses.replace(cfg, levels=(mid,)), plugin == "official"
                )
                if again["levels"]:
                    r["levels"].append({**again["levels"][-1], "refinement": True})
                    r["max_ok" if again["levels"][-1]["ok"] else "first_fail"] = mid
            result.plugins[plugin] = r
        if cfg.shipped:
            # the official plugin as shipped: 51 streams on the default job http session
            c = dataclasses.replace(cfg, levels=(51,), step_s=2.0, warm_s=1.0, settle_s=0.0)
            r = await ramp("official", dataclasses.replace(c, connect_budget_s=12.0), False)
            result.shipped_51 = r["levels"][-1] if r["levels"] else None
    return result


def _cap(r: dict[str, Any]) -> str:
    if r["first_fail"]:
        return f"≥ {r['max_ok']}, < {r['first_fail']}"
    return f"≥ {r['max_ok']} (the ramp's cap)"


def summary(r: Result) -> list[Row]:
    o, f = r.plugins["ours"], r.plugins["official"]
    return [
        (
            f"Real-time streams on one core (a turn every {r.cfg.turn_s:g} s)",
            _cap(o),
            _cap(f),
            ratio(float(o["max_ok"]), float(f["max_ok"])),
            "",
        )
    ]


def render(r: Result) -> str:
    c = r.cfg
    lines = [
        "**Most concurrent streams one process keeps in real time on one core.** Method: one "
        "process pinned to one CPU; the stream count grows geometrically "
        f"(×{c.factor:g} from {c.start}) and each level is held {c.step_s:g} s after a "
        f"{c.warm_s:g} s warm-up, every stream ending a turn every {c.turn_s:g} s of its audio "
        "(staggered; ours: `flush()`, official: the oracle VAD; the server answers each with "
        "deltas and a final); a level passes when the 10 ms pacing loop's lateness p95 and the "
        f"event-loop lag p95 (a 5 ms sleeper) are both ≤ {c.limit_ms:g} ms, no stream's input "
        f"backlog exceeds {c.backlog_ms:g} ms at the end and no stream died; then one refinement "
        "at the midpoint in a fresh process. The server runs on the other CPU (its load is "
        "shown: a server near 100% would cap the figure, not the client). A level's new streams "
        "are opened and connected first with no audio flowing (so the level measures steady "
        'state; the time they took is the "connect" column: the official plugin connects one '
        "stream at a time, under its pool's lock), then every stream is fed, given up to "
        f'{c.settle_s:g} s to drain what queued, and measured. "Other load" is the share of the '
        "client's CPU that other processes on the machine took during the level (kernel "
        "per-CPU times minus this process): where it is high, the level failed for want of "
        "CPU, not because of the plugin. The official plugin ran on an aiohttp session without "
        "a connection limit here; as shipped it cannot pass 50 (below).",
        "",
        "| plugin | streams | connect (new streams) | pacing p95 | loop lag p95 | backlog end | "
        "client CPU | other load on that CPU | server CPU | result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for plugin, res in r.plugins.items():
        for lv in res["levels"]:
            lines.append(
                f"| {LABELS[plugin]} | {lv['streams']}{' (refine)' if lv.get('refinement') else ''}"
                f" | {fmt(lv['connect_s'], 1, ' s')} ({lv['new_streams']})"
                f"{'' if lv['connected'] else ' NOT ALL CONNECTED'} | "
                f"{lv['lateness_p95_ms']:.1f} ms | {fmt(lv['loop_lag_p95_ms'], 1, ' ms')} | "
                f"{lv['backlog_end_ms']:.0f} ms | {lv['client_core_fraction']:.0%} | "
                f"{fmt(lv['other_load'] * 100, 0, '%')} | "
                f"{fmt(max(0.0, lv['server_core_fraction']) * 100, 0, '%')} | "
                f"{'ok' if lv['ok'] else 'FAIL'} |"
            )
    s = r.shipped_51
    if s:
        connect = (
            "all connected; "
            if s["connected"]
            else f"not all connected after {s['connect_s']:.0f} s; "
        )
        lines += [
            "",
            "Official plugin **as shipped** (the job's default http session), 51 streams: "
            f"{connect}{s['dead_streams']} stream(s) ended on an error, {s['stuck_streams']} "
            f"never sending (input backlog over 0.5 s); result {'ok' if s['ok'] else 'FAIL'}. "
            "`livekit.agents.utils.http_context` builds its `aiohttp.TCPConnector("
            "limit_per_host=50)`; each realtime websocket holds a connection for the stream's "
            "life, and the plugin's `ConnectionPool` connects under one lock, so the 51st stream "
            "waits for a slot that never frees (10 s connect timeout, retries, then the stream "
            "fails) and holds up every later stream's connect meanwhile. Ours opens its own "
            "sockets (`websockets`) and has no such cap.",
        ]
    return "\n".join(lines)
