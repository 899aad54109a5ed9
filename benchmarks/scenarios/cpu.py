"""1. CPU seconds per stream-minute: ours, the official plugin and the null STT, alternating.

Every variant runs in ONE process pinned to the client CPU, ``streams`` streams each, all
connected to the scripted local server (its own process, the other CPU: its CPU is not
counted). In each round every variant's streams are fed in turn for ``window_s`` (the others
idle), plus one window with no stream fed (the idle baseline), the order rotating each round,
so drift on the machine hits every variant alike. CPU = ``time.process_time()`` over the window
(all threads) minus the idle rate, per stream-minute of audio.
"""

from __future__ import annotations

import asyncio
import gc
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks.clips import speech_frames_48k
from benchmarks.harness import worker
from benchmarks.harness.drive import FRAME_S, PHASES, Fleet, Pacer, push_paced
from benchmarks.harness.plugins import http_context
from benchmarks.harness.servers import local_server
from benchmarks.harness.stats import Row, fmt, mean, pass_fail, percentile, ratio

LABELS = {
    "ours": "openai_stt (ours), pcm16, chunk_ms=100 (default)",
    "official": "livekit-plugins-openai (pcm16, 50 ms appends)",
    "null": "null STT (base-class per-frame path, nothing sent)",
    "ours, turns": "ours, a turn ended every 2 s by flush()",
    "official, turns": "official, a turn ended every 2 s by the oracle VAD",
}


@dataclass
class Config:
    streams: int = 40
    rounds: int = 3
    window_s: float = 1.0
    idle_window_s: float = 0.5
    warm_s: float = 1.0
    reps: int = 2
    """Processes; the second one runs the variants in reverse order."""
    chunk_sizes: tuple[int, ...] = (20, 50, 100, 200)
    turn_s: float = 2.0
    quick: bool = False
    """Smoke-sized: in this process, inline server; the numbers mean nothing."""

    @classmethod
    def small(cls) -> Config:
        return cls(3, 1, 0.1, 0.05, 0.1, 1, (100,), 2.0, True)

    def variants(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"label": "ours", "plugin": "ours"},
            {"label": "official", "plugin": "official"},
            {"label": "null", "plugin": "null"},
            {"label": "ours, turns", "plugin": "ours", "turn_s": self.turn_s},
            {"label": "official, turns", "plugin": "official", "turn_s": self.turn_s},
        ]
        out += [
            {"label": f"ours pcm16 {c} ms", "plugin": "ours", "chunk_ms": c}
            for c in self.chunk_sizes
            if c != 100
        ]
        return [
            *out,
            {"label": "ours g711_ulaw 100 ms", "plugin": "ours", "audio_format": "g711_ulaw"},
        ]


@dataclass
class Result:
    cfg: Config
    runs: list[dict[str, Any]] = field(default_factory=list)
    """One per process: idle rate, dead streams, and per variant its CPU figures."""
    server_cpu_s: float = 0.0

    def value(self, label: str) -> float:
        """CPU s per stream-minute of a variant: the mean over processes (equal windows)."""
        return mean(r["variants"][label]["cpu_s_per_stream_minute"] for r in self.runs)

    def windows(self, label: str) -> list[float]:
        return [x for r in self.runs for x in r["variants"][label]["per_window"]]


async def task(a: dict[str, Any]) -> dict[str, Any]:
    """All variants in this process, in alternating windows (see the module's docstring)."""
    frames = speech_frames_48k(20)
    n, rounds, window_s = a["streams"], a["rounds"], a["window_s"]
    cpu: dict[str, list[float]] = {v["label"]: [] for v in a["variants"]}
    wall: dict[str, list[float]] = {v["label"]: [] for v in a["variants"]}
    late: dict[str, list[float]] = {v["label"]: [] for v in a["variants"]}
    idle_cpu = idle_wall = 0.0
    # two official groups of 40 exceed the 50 connections of the default http session
    async with http_context(unlimited=True):
        fleets = []
        for v in a["variants"]:
            kw = {k: v[k] for k in ("audio_format", "chunk_ms") if k in v}
            fleet = Fleet(v["plugin"], a["base_url"], v.get("turn_s", 0.0), **kw)
            await fleet.open(n, frames)
            fleets.append(fleet)
        k = 0
        for fleet in fleets:  # connect and warm each group
            k = await fleet.feed(frames, a["warm_s"], start=k)
        gc.collect()
        order = [*range(len(fleets)), -1]
        for r in range(rounds):
            for gi in order[r % len(order) :] + order[: r % len(order)]:
                p0, w0 = time.process_time(), time.monotonic()
                if gi < 0:  # the idle baseline: the pacing loop alone
                    rounds_idle = round(a["idle_window_s"] / FRAME_S)
                    await push_paced([], frames, rounds_idle, phases=PHASES)
                    idle_cpu += time.process_time() - p0
                    idle_wall += time.monotonic() - w0
                    continue
                label, pacer = a["variants"][gi]["label"], Pacer(FRAME_S / PHASES)
                k = await fleets[gi].feed(frames, window_s, start=k, pacer=pacer)
                cpu[label].append(time.process_time() - p0)
                wall[label].append(time.monotonic() - w0)
                late[label].append(pacer.p95_ms())
        backlog = {v["label"]: f.backlog_ms() for v, f in zip(a["variants"], fleets, strict=True)}
        dead = sum(len(f.dead) for f in fleets)
        await asyncio.gather(*(f.aclose() for f in fleets))
    idle = idle_cpu / idle_wall if idle_wall else 0.0
    per_min = n / 60.0
    return {
        "idle_cpu_per_s": idle,
        "dead_streams": dead,
        "variants": {
            label: {
                "cpu_s_per_stream_minute": (sum(cpu[label]) - idle * sum(wall[label]))
                / (per_min * sum(wall[label])),
                "per_window": [
                    (c - idle * w) / (per_min * w)
                    for c, w in zip(cpu[label], wall[label], strict=True)
                ],
                "lateness_p95_ms": max(late[label]),
                "backlog_end_ms": backlog[label],
            }
            for label in cpu
        },
    }


async def measure(cfg: Config) -> Result:
    result = Result(cfg)
    variants = cfg.variants()
    async with local_server(inline=cfg.quick) as server:
        s0 = server.cpu_s()
        for rep in range(cfg.reps):
            args = {
                "base_url": server.base_url,
                "streams": cfg.streams,
                "variants": variants if rep % 2 == 0 else variants[::-1],
                "rounds": cfg.rounds,
                "window_s": cfg.window_s,
                "idle_window_s": cfg.idle_window_s,
                "warm_s": cfg.warm_s,
            }
            result.runs.append(await worker.call(task, args, fresh=not cfg.quick))
        result.server_cpu_s = server.cpu_s() - s0
    return result


def summary(r: Result) -> list[Row]:
    o, f, n = r.value("ours"), r.value("official"), r.value("null")
    ot, ft = r.value("ours, turns"), r.value("official, turns")
    return [
        (
            "CPU s per stream-minute (48 kHz 10 ms frames, real time)",
            fmt(o, 3),
            fmt(f, 3),
            ratio(o, f),
            f"≤ 0.5× official: {pass_fail(o <= 0.5 * f)}",
        ),
        (
            f"  with a turn ended every {r.cfg.turn_s:g} s (ours: flush(); official: oracle VAD)",
            fmt(ot, 3),
            fmt(ft, 3),
            ratio(ot, ft),
            "",
        ),
        (
            "  reference: LiveKit's per-frame base-class path alone (null STT)",
            fmt(n, 3),
            fmt(n, 3),
            "",
            "",
        ),
    ]


def render(r: Result) -> str:
    c = r.cfg
    lines = [
        "## 1. CPU per stream-minute and streams per core",
        "",
        f"Method: every variant in ONE process pinned to one CPU, {c.streams} streams each, all "
        f"connected; in each of {c.rounds} rounds every variant's streams are fed in turn for "
        f"{c.window_s:g} s (the others get nothing and idle), plus one window with no stream fed "
        f"({c.idle_window_s:g} s, the idle baseline of the pacing loop), the order rotating each "
        "round: A, B, C, idle, B, C, idle, A, ... so drift on the machine hits every variant "
        "alike. Feeding = the same 48 kHz mono 10 ms frames of real speech, one per stream per "
        f"10 ms on an absolute schedule, the streams split in {PHASES} groups 2 ms apart, their "
        "chunk boundaries staggered. CPU = `time.process_time()` over the window (all threads: "
        "livekit-rtc's native resampler is counted) minus the idle rate, per stream-minute. The "
        "local server (`python -m livekit.plugins.openai_stt.server --engine scripted`) runs in "
        "its own process on the other CPU: its CPU is not counted. No turn is committed (the "
        'audio path), except in the two "turns" variants: a turn ends every '
        f"{c.turn_s:g} s of each stream's audio (staggered across streams), committed and "
        'answered by the scripted engine\'s deltas and final, which the app receives. "null" is '
        "a LiveKit STT that keeps the base class's per-frame path (`RecognizeStream.push_frame` "
        "resamples each 10 ms frame to 24 kHz and queues it) and drops the frames: what a plugin "
        "that keeps that path pays before sending anything. The official plugin keeps it; ours "
        "overrides `push_frame` to gather `chunk_ms` of frames before one resampler call and one "
        f"queue wake-up. {c.reps} processes (variant order reversed in the second); the figure "
        "is their mean, with each process's value and the spread of single windows.",
        "",
        "| variant | CPU s / stream-minute | per process | single windows p10-p90 | "
        "worst pacing lateness p95 |",
        "|---|---|---|---|---|",
    ]
    for v in c.variants():
        label = v["label"]
        procs = ", ".join(f"{x['variants'][label]['cpu_s_per_stream_minute']:.3f}" for x in r.runs)
        w = r.windows(label)
        worst_late = max(x["variants"][label]["lateness_p95_ms"] for x in r.runs)
        lines.append(
            f"| {LABELS.get(label, label)} | **{r.value(label):.3f}** | {procs} | "
            f"{percentile(w, 10):.3f}-{percentile(w, 90):.3f} | {worst_late:.1f} ms |"
        )
    idle = ", ".join(f"{x['idle_cpu_per_s']:.3f}" for x in r.runs)
    dead = sum(x["dead_streams"] for x in r.runs)
    lines += [
        "",
        f"Idle baseline: {idle} CPU s per s. Server process CPU over the CPU runs: "
        f"{fmt(r.server_cpu_s, 1, ' s')}. Streams that died: {dead}.",
    ]
    return "\n".join(lines)
