"""1. CPU seconds per stream-minute: ours, the official plugin and the null STT, alternating."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import time
from dataclasses import dataclass, field
from typing import Any

from benchmarks.clips import speech_frames_48k
from benchmarks.harness import worker
from benchmarks.harness.drive import FRAME_S, PHASES, Fleet, Pacer, push_paced
from benchmarks.harness.plugins import http_context
from benchmarks.harness.servers import local_server
from benchmarks.harness.stats import Row, fixed, fmt, mean, pass_fail, percentile, row

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
    cfg, variants = Config(**a["cfg"]), a["variants"]
    frames = speech_frames_48k(20)
    windows: dict[str, list[tuple[float, float, float]]] = {v["label"]: [] for v in variants}
    idle_cpu = idle_wall = 0.0
    # two official groups of 40 exceed the 50 connections of the default http session
    async with http_context(unlimited=True):
        fleets = []
        for v in variants:
            kw = {k: v[k] for k in ("audio_format", "chunk_ms") if k in v}
            fleets.append(Fleet(v["plugin"], a["base_url"], v.get("turn_s", 0.0), **kw))
            await fleets[-1].open(cfg.streams, frames)
        k = 0
        for fleet in fleets:  # connect and warm each group
            k = await fleet.feed(frames, cfg.warm_s, start=k)
        gc.collect()
        order = [*range(len(fleets)), -1]
        for r in range(cfg.rounds):
            for i in order[r % len(order) :] + order[: r % len(order)]:
                p0, w0 = time.process_time(), time.monotonic()
                if i < 0:  # the idle baseline: the pacing loop alone
                    await push_paced([], frames, round(cfg.idle_window_s / FRAME_S), phases=PHASES)
                    idle_cpu += time.process_time() - p0
                    idle_wall += time.monotonic() - w0
                else:
                    pacer = Pacer(FRAME_S / PHASES)
                    k = await fleets[i].feed(frames, cfg.window_s, start=k, pacer=pacer)
                    w = (time.process_time() - p0, time.monotonic() - w0, pacer.p95_ms())
                    windows[variants[i]["label"]].append(w)
        dead = sum(len(f.dead) for f in fleets)
        await asyncio.gather(*(f.aclose() for f in fleets))
    idle = idle_cpu / idle_wall if idle_wall else 0.0
    per_min = cfg.streams / 60.0

    def figure(cpu: float, wall: float) -> float:
        return (cpu - idle * wall) / (per_min * wall)

    return {
        "idle_cpu_per_s": idle,
        "dead_streams": dead,
        "variants": {
            label: {
                "cpu_s_per_stream_minute": figure(sum(x[0] for x in ws), sum(x[1] for x in ws)),
                "per_window": [figure(c, w) for c, w, _ in ws],
                "lateness_p95_ms": max(x[2] for x in ws),
            }
            for label, ws in windows.items()
        },
    }


async def measure(cfg: Config) -> Result:
    result, variants = Result(cfg), cfg.variants()
    async with local_server(inline=cfg.quick) as server:
        s0 = server.cpu_s()
        for rep in range(cfg.reps):
            order = variants if rep % 2 == 0 else variants[::-1]
            args = {"cfg": dataclasses.asdict(cfg), "variants": order, "base_url": server.base_url}
            result.runs.append(await worker.call(task, args, fresh=not cfg.quick))
        result.server_cpu_s = server.cpu_s() - s0
    return result


def summary(r: Result) -> list[Row]:
    o, f, n = r.value("ours"), r.value("official"), r.value("null")
    turns = f"  with a turn ended every {r.cfg.turn_s:g} s (ours: flush(); official: oracle VAD)"
    floor = "  reference: LiveKit's per-frame base-class path alone (null STT)"
    return [
        row(
            "CPU s per stream-minute (48 kHz 10 ms frames, real time)",
            o,
            f,
            fixed(3),
            f"≤ 0.5× official: {pass_fail(o <= 0.5 * f)}",
        ),
        row(turns, r.value("ours, turns"), r.value("official, turns"), fixed(3)),
        row(floor, n, n, fixed(3), div=False),
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
