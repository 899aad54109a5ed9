"""5. Memory per stream: peak RSS growth over many streams, and the Python heap's peak."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import math
import tracemalloc
from dataclasses import dataclass, field
from typing import Any

from benchmarks.clips import speech_frames_48k
from benchmarks.harness import worker
from benchmarks.harness.drive import Fleet
from benchmarks.harness.machine import rss_bytes
from benchmarks.harness.plugins import LABELS, PLUGINS, http_context
from benchmarks.harness.servers import local_server
from benchmarks.harness.stats import Row, fmt, median, ratio


@dataclass
class Config:
    streams: int = 40
    seconds: float = 3.0
    """Real time each measured run lasts."""
    turn_s: float = 2.0
    reps: int = 2
    trace_streams: int = 10
    warm_s: float = 1.0
    quick: bool = False

    @classmethod
    def small(cls) -> Config:
        return cls(streams=3, seconds=0.2, reps=1, trace_streams=2, warm_s=0.05, quick=True)


@dataclass
class Result:
    cfg: Config
    runs: list[dict[str, Any]] = field(default_factory=list)

    def median(self, plugin: str, kind: str, key: str) -> float:
        return median(x[key] for x in self.runs if x["plugin"] == plugin and x["kind"] == kind)


async def task(a: dict[str, Any]) -> dict[str, Any]:
    """RSS before and at peak of ``a["streams"]`` streams of one plugin fed ``seconds`` in real
    time after a 2-stream warm-up; with ``a["tracemalloc"]``, the traced Python heap's peak."""
    cfg, n, trace = Config(**a["cfg"]), a["streams"], a["tracemalloc"]
    frames = speech_frames_48k(20)
    async with http_context():
        # warm-up: imports, the aiohttp session, resamplers, first-use caches
        fleet = Fleet(a["plugin"], a["base_url"], cfg.turn_s)
        await fleet.open(2)
        await fleet.feed(frames, min(cfg.warm_s, cfg.turn_s))
        await fleet.aclose()
        await asyncio.sleep(0.3)
        gc.collect()
        peak = [rss_bytes()]
        if trace:
            tracemalloc.start()
        fleet = Fleet(a["plugin"], a["base_url"], cfg.turn_s)
        await fleet.open(n, frames)
        await fleet.feed(frames, cfg.seconds, sample=lambda: peak.append(rss_bytes()))
        peak.append(rss_bytes())
        traced = tracemalloc.get_traced_memory()[1] if trace else math.nan
        tracemalloc.stop()
        await fleet.aclose()
    return {
        "rss0_mb": peak[0] / 2**20,
        "rss_peak_mb": max(peak) / 2**20,
        "rss_per_stream_kb": (max(peak) - peak[0]) / n / 1024,
        "traced_peak_per_stream_kb": traced / n / 1024,
    }


async def measure(cfg: Config) -> Result:
    result = Result(cfg)
    alternating = [PLUGINS[::-1] if rep % 2 else PLUGINS for rep in range(cfg.reps)]
    runs = [(p, "rss", cfg.streams) for pair in alternating for p in pair]
    runs += [(p, "trace", cfg.trace_streams) for p in PLUGINS]
    async with local_server(inline=cfg.quick) as server:
        for plugin, kind, n in runs:
            args = {"cfg": dataclasses.asdict(cfg), "plugin": plugin, "base_url": server.base_url}
            args.update(streams=n, tracemalloc=kind == "trace")
            r = await worker.call(task, args, fresh=not cfg.quick)
            result.runs.append({**r, "plugin": plugin, "kind": kind})
    return result


def summary(r: Result) -> list[Row]:
    rows = []
    for figure, kind, key, unit in (
        ("Peak RSS growth per stream", "rss", "rss_per_stream_kb", " KiB"),
        (
            "  tracemalloc peak per stream (Python heap)",
            "trace",
            "traced_peak_per_stream_kb",
            " KiB",
        ),
        ("  process RSS with the plugin imported and warmed up", "rss", "rss0_mb", " MiB"),
    ):
        o, f = r.median("ours", kind, key), r.median("official", kind, key)
        rows.append((figure, fmt(o, 0, unit), fmt(f, 0, unit), ratio(o, f), ""))
    return rows


def render(r: Result) -> str:
    c = r.cfg
    lines = [
        "## 5. Memory per stream",
        "",
        "Method: a fresh process per run; after a 2-stream warm-up (imports, http session, "
        f"first-use caches) and `gc.collect()`, RSS is read, then {c.streams} streams run in "
        f"real time for {c.seconds:g} s with a turn ended every {c.turn_s:g} s (ours: `flush()`; "
        "official: the oracle VAD), RSS sampled every 250 ms; per stream = (peak - before) / "
        f"streams. tracemalloc runs ({c.trace_streams} streams) trace the Python heap only "
        "(native buffers of livekit-rtc and sockets are not seen).",
        "",
        "| plugin | run | RSS before | RSS peak | per stream (RSS) | "
        "per stream (tracemalloc peak) |",
        "|---|---|---|---|---|---|",
    ]
    for x in r.runs:
        lines.append(
            f"| {LABELS[x['plugin']]} | {x['kind']} | {x['rss0_mb']:.1f} MiB | "
            f"{x['rss_peak_mb']:.1f} MiB | {x['rss_per_stream_kb']:.0f} KiB | "
            f"{fmt(x['traced_peak_per_stream_kb'], 0, ' KiB')} |"
        )
    lines += [
        "",
        "Ours keeps the wire audio of every turn not yet finalised (to replay it after a "
        "reconnect), trimmed at each final: with turns it stays small; a stream that is never "
        "flushed holds up to `max_retained_audio_s` (300 s = 14 MB at pcm16 24 kHz, 2.3 MB at "
        "G.711).",
    ]
    return "\n".join(lines)
