"""Side-by-side benchmarks: livekit-plugins-openai-stt (ours) vs livekit-plugins-openai (official).

``make bench`` runs this module; ``python -m benchmarks.run --quick`` is the smoke-sized run.
Both plugins are driven by the same code against the same local servers, in the same run, on
the same machine, alternating A, B, A, B... so that drift hits both. Writes ``BENCHMARKS.md``
(``--out``) and prints the summary table.

Figures (method in BENCHMARKS.md and in the docstrings of ``compare.py`` / ``_worker.py``):

1. CPU seconds per stream-minute, and the most concurrent real-time streams on one core;
2. server delta -> INTERIM_TRANSCRIPT latency;
3. end of turn -> commit on the wire; end_input() -> last final, -> end of the stream;
4. websocket bytes per second of audio (pcm16, G.711), and the ``chunk_ms`` trade-off;
5. memory per stream;
6. end to end through faster-whisper: end of turn -> final, WER;
7. audio lost across injected connection drops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import io
import json
import logging
import math
import os
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmarks import _common as C
from benchmarks import compare as K

# --------------------------------------------------------------------------------------------
# configuration


@dataclass
class Config:
    quick: bool = False
    lat_end_timeout_s: float = 2.0
    drop_settle_s: float = 2.5
    server_quick: bool = True
    warm_seconds: float = 1.0
    lat_warm_s: float = 0.5
    ramp_levels: tuple[int, ...] = ()
    cpu_streams: int = 40
    cpu_rounds: int = 3
    cpu_window_s: float = 1.0
    cpu_idle_window_s: float = 0.5
    cpu_reps: int = 2
    chunk_sizes: tuple[int, ...] = (20, 50, 100, 200)
    ramp_start: int = 135
    ramp_factor: float = 1.5
    ramp_max: int = 800
    ramp_step_seconds: float = 1.5
    ramp_budget_s: float = 75.0
    ramp_refine: bool = True
    ramp_turn_s: float = 2.0
    lat_turns: int = 3
    lat_turn_s: float = 1.2
    lat_reps: int = 2
    lat_background: int = 19
    delta_ms: float = 100.0
    bytes_seconds: float = 10.0
    mem_streams: int = 40
    mem_seconds: float = 3.0
    mem_reps: int = 2
    mem_trace_streams: int = 10
    e2e_clips: tuple[str, ...] = ()
    e2e_speed: float = 2.5
    drop_modes: tuple[str, ...] = ("close_1011", "reset")
    drop_seconds: float = 4.5
    drop_turn_s: float = 1.0
    drop_after_ms: float = 1500.0
    drops: int = 3
    control_turns: int = 4
    skip: tuple[str, ...] = ()
    only: tuple[str, ...] = ()


def quick_config() -> Config:
    return Config(
        quick=True,
        cpu_streams=3,
        cpu_rounds=1,
        cpu_window_s=0.3,
        cpu_idle_window_s=0.2,
        cpu_reps=1,
        lat_end_timeout_s=1.0,
        drop_settle_s=1.5,
        warm_seconds=0.3,
        lat_warm_s=0.2,
        ramp_levels=(3,),
        chunk_sizes=(100,),
        ramp_start=4,
        ramp_factor=2.0,
        ramp_max=8,
        ramp_step_seconds=0.5,
        ramp_budget_s=15,
        ramp_refine=False,
        lat_turns=2,
        lat_turn_s=0.4,
        lat_reps=1,
        lat_background=0,
        bytes_seconds=1.0,
        mem_streams=3,
        mem_seconds=0.6,
        mem_reps=1,
        mem_trace_streams=2,
        e2e_clips=("goforward.wav",),
        e2e_speed=2.0,
        drop_modes=("close_1011",),
        drop_seconds=2.0,
        drop_turn_s=0.5,
        drop_after_ms=800.0,
        drops=1,
        control_turns=2,
    )


SECTIONS = ("cpu", "ramp", "latency", "bytes", "memory", "e2e", "drops", "server", "resilience")


# --------------------------------------------------------------------------------------------
# helpers


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def med(xs: list[float]) -> float:
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return C.percentile(xs, 50) if xs else math.nan


def ratio(a: float, b: float) -> float:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return math.nan
    return a / b


# --------------------------------------------------------------------------------------------
# 1. CPU and concurrency


_SERVERS: dict[str, C.ServerProcess] = {}


@contextlib.contextmanager
def _shared(kind: str, delta_ms: float = 100.0) -> Any:
    """One scripted local server (CPU, ramp, memory) and one probe server (latency, bytes)
    for the whole run: started on first use, stopped by :func:`_stop_shared`. Each client
    connection is its own session, so sections do not see each other."""
    server = _SERVERS.get(kind)
    if server is None or server.proc.poll() is not None:
        server = (
            C.start_local_server("scripted")
            if kind == "scripted"
            else C.start_probe_server(delta_ms)
        )
        _SERVERS[kind] = server
    yield server


def _stop_shared() -> None:
    for server in _SERVERS.values():
        server.stop()
    _SERVERS.clear()


def _worker(
    cfg: Config, task: str, args: dict[str, Any], timeout_s: float = 300.0
) -> dict[str, Any]:
    # a fresh process per measurement; in --quick runs, this process (faster, numbers moot)
    return C.run_worker(task, args, timeout_s=timeout_s, inprocess=cfg.quick)


CPU_VARIANTS = [
    {"label": "ours", "plugin": "ours"},
    {"label": "official", "plugin": "official"},
    {"label": "null", "plugin": "null"},
    {"label": "ours, turns", "plugin": "ours", "turn_s": 2.0},
    {"label": "official, turns", "plugin": "official", "turn_s": 2.0},
]


def bench_cpu(cfg: Config) -> dict[str, Any]:
    variants = list(CPU_VARIANTS)
    for chunk in cfg.chunk_sizes:
        if chunk != 100:
            variants.append(
                {"label": f"ours pcm16 {chunk} ms", "plugin": "ours", "chunk_ms": chunk}
            )
    variants.append(
        {"label": "ours g711_ulaw 100 ms", "plugin": "ours", "audio_format": "g711_ulaw"}
    )
    out: dict[str, Any] = {"runs": [], "variants": variants}
    with _shared("scripted") as server:
        s0 = server.cpu_times()
        for rep in range(cfg.cpu_reps):
            log(
                f"cpu: {len(variants)} variants x {cfg.cpu_rounds} rounds, process "
                f"{rep + 1}/{cfg.cpu_reps}"
            )
            r = _worker(
                cfg,
                "cpu_ab",
                {
                    "base_url": server.base_url,
                    "streams": cfg.cpu_streams,
                    "variants": variants if rep % 2 == 0 else variants[::-1],
                    "rounds": cfg.cpu_rounds,
                    "window_s": cfg.cpu_window_s,
                    "idle_window_s": cfg.cpu_idle_window_s,
                    "warm_seconds": cfg.warm_seconds,
                    # two official groups of 40 exceed the 50 connections of the default session
                    "unlimited_http": True,
                },
                timeout_s=400,
            )
            out["runs"].append(r)
        out["server_cpu_s"] = server.cpu_times() - s0
    for v in variants:
        label = v["label"]
        per_proc = [r["variants"][label]["cpu_s_per_stream_minute"] for r in out["runs"]]
        windows = [x for r in out["runs"] for x in r["variants"][label]["per_window"]]
        out[label] = {
            "value": sum(per_proc) / len(per_proc),  # equal windows: the mean of processes
            "proc_min": min(per_proc),
            "proc_max": max(per_proc),
            "window_median": C.percentile(windows, 50),
            "window_p10": C.percentile(windows, 10),
            "window_p90": C.percentile(windows, 90),
            "lateness_p95_ms": max(r["variants"][label]["lateness_p95_ms"] for r in out["runs"]),
        }
    out["idle_cpu_per_s"] = [r["idle_cpu_per_s"] for r in out["runs"]]
    out["dead_streams"] = sum(r["dead_streams"] for r in out["runs"])
    return out


def bench_ramp(cfg: Config) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with _shared("scripted") as server:
        common: dict[str, Any] = {
            "base_url": server.base_url,
            "start": cfg.ramp_start,
            "factor": cfg.ramp_factor,
            "max": cfg.ramp_max,
            "step_seconds": cfg.ramp_step_seconds,
            "server_pid": server.proc.pid,
            "budget_s": cfg.ramp_budget_s,
            "turn_s": cfg.ramp_turn_s,
        }
        common["warm_seconds"] = 0.5
        if cfg.ramp_levels:
            common["levels"] = list(cfg.ramp_levels)
            common["warm_seconds"] = cfg.warm_seconds
        for plugin in ("ours", "official"):
            log(f"ramp: {plugin}")
            # the official plugin's default aiohttp session allows 50 connections per host
            # (checked separately below); lift that here to measure the plugin's own code
            args = {**common, "plugin": plugin, "unlimited_http": plugin == "official"}
            r = _worker(cfg, "ramp", args, timeout_s=400)
            if cfg.ramp_refine and r["first_fail"] and r["first_fail"] - r["max_ok"] > 1:
                mid = (r["max_ok"] + r["first_fail"]) // 2  # max_ok 0: the first level failed
                log(f"ramp: {plugin} refine at {mid}")
                r2 = _worker(cfg, "ramp", {**args, "levels": [mid]}, timeout_s=200)
                lv = r2["levels"][-1] if r2["levels"] else None
                if lv is not None:
                    lv["refinement"] = True
                    r["levels"].append(lv)
                    if lv["ok"]:
                        r["max_ok"] = mid
                    else:
                        r["first_fail"] = mid
            out[plugin] = r
        if not cfg.quick:
            # the official plugin as shipped: 51 streams on the default job http session
            log("ramp: official as shipped, 51 streams")
            r = _worker(
                cfg,
                "ramp",
                {
                    **common,
                    "plugin": "official",
                    "levels": [51],
                    "step_seconds": 2.0,
                    "warm_seconds": 1.0,
                    "settle_s": 0.0,
                    "connect_budget_s": 12.0,
                },
                timeout_s=200,
            )
            out["official_shipped_51"] = r["levels"][-1] if r["levels"] else None
    return out


# --------------------------------------------------------------------------------------------
# 2, 3, 4: probe server


async def bench_latency(cfg: Config) -> dict[str, Any]:
    frames = C.speech_frames_48k(20)
    configs = [("ours", "flush"), ("official", "vad"), ("ours", "vad")]
    runs: list[dict[str, Any]] = []
    with _shared("probe", cfg.delta_ms) as server:
        for rep in range(cfg.lat_reps):
            for plugin, mode in configs if rep % 2 == 0 else configs[::-1]:
                log(f"latency: {plugin}/{mode} rep {rep + 1}/{cfg.lat_reps}")
                r = await K.latency_run(
                    plugin,
                    mode,
                    server,
                    frames,
                    turns=cfg.lat_turns,
                    turn_s=cfg.lat_turn_s,
                    warm_s=cfg.lat_warm_s,
                    end_timeout_s=cfg.lat_end_timeout_s,
                )
                runs.append(r)
        # the official plugin's flush() (what AgentSession would call): does it commit?
        log("latency: official/flush (does flush() commit?)")
        r = await K.latency_run(
            "official",
            "flush",
            server,
            frames,
            turns=cfg.lat_turns,
            turn_s=cfg.lat_turn_s,
            warm_s=cfg.lat_warm_s,
            end_timeout_s=cfg.lat_end_timeout_s,
        )
        runs.append(r)
        if cfg.lat_background:
            for plugin, mode in (("ours", "flush"), ("official", "vad")):
                log(f"latency: {plugin}/{mode} with {cfg.lat_background} background streams")
                r = await K.latency_run(
                    plugin,
                    mode,
                    server,
                    frames,
                    turns=cfg.lat_turns,
                    turn_s=cfg.lat_turn_s,
                    background=cfg.lat_background,
                    end_timeout_s=cfg.lat_end_timeout_s,
                )
                runs.append(r)
    return {"runs": runs}


def _lat_summary(
    runs: list[dict[str, Any]], plugin: str, mode: str, background: int = 0
) -> dict[str, Any]:
    sel = [
        r
        for r in runs
        if r["plugin"] == plugin and r["mode"] == mode and r["background"] == background
    ]
    if not sel:
        return {}
    interim = [x for r in sel for x in r["interim_latencies"]]
    commit = [x for r in sel for x in r["commit_latencies"]]
    shown = sum(r["tokens_shown"] for r in sel)
    total = sum(r["tokens_total"] for r in sel)
    ends = [r["end_input_to_stream_end"] for r in sel]
    return {
        "interim": C.summary(interim),
        "shown_fraction": shown / total if total else math.nan,
        "commit": C.summary(commit),
        "commits_missing": sum(r["commits_missing"] for r in sel),
        "turn_signals": sum(r["turn_signals"] for r in sel) + len(sel),
        "end_commit": [r["end_input_to_commit"] for r in sel],
        "end_final": [r["end_input_to_last_final"] for r in sel],
        "end_stream": ends,
        "never_ended": sum(1 for e in ends if e is None),
        "runs": len(sel),
    }


async def bench_bytes(cfg: Config) -> dict[str, Any]:
    frames = C.speech_frames_48k(20)
    runs = []
    with _shared("probe", cfg.delta_ms) as server:
        log("bytes: official pcm16")
        r = await K.bytes_run("official", server, frames, seconds=cfg.bytes_seconds)
        r["chunk_ms"] = 50  # fixed in the official plugin (AudioByteStream of 50 ms)
        runs.append(r)
        for fmt in ("pcm16", "g711_ulaw"):
            for chunk in cfg.chunk_sizes:
                log(f"bytes: ours {fmt} chunk_ms={chunk}")
                runs.append(
                    await K.bytes_run(
                        "ours",
                        server,
                        frames,
                        audio_format=fmt,
                        chunk_ms=chunk,
                        seconds=cfg.bytes_seconds,
                    )
                )
    return {"runs": runs}


# --------------------------------------------------------------------------------------------
# 5. memory


def bench_memory(cfg: Config) -> dict[str, Any]:
    runs = []
    with _shared("scripted") as server:
        common = {"base_url": server.base_url, "seconds": cfg.mem_seconds}
        if cfg.quick:
            common["warm_seconds"] = cfg.warm_seconds
        for rep in range(cfg.mem_reps):
            for plugin in ("ours", "official") if rep % 2 == 0 else ("official", "ours"):
                log(f"memory: {plugin} rep {rep + 1}/{cfg.mem_reps}")
                r = _worker(cfg, "mem", {**common, "plugin": plugin, "streams": cfg.mem_streams})
                r.update(plugin=plugin, kind="rss")
                runs.append(r)
        for plugin in ("ours", "official"):
            log(f"memory: {plugin} tracemalloc")
            r = _worker(
                cfg,
                "mem",
                {**common, "plugin": plugin, "streams": cfg.mem_trace_streams, "tracemalloc": True},
            )
            r.update(plugin=plugin, kind="trace")
            runs.append(r)
    return {"runs": runs}


# --------------------------------------------------------------------------------------------
# 6. end to end (faster-whisper)


async def bench_e2e(cfg: Config) -> dict[str, Any]:
    from benchmarks.clips import reference_clips
    from examples.evaluation import load_reference

    available = reference_clips()
    paths = [p for p in available if not cfg.e2e_clips or p.name in cfg.e2e_clips]
    paths = paths or available[:1]  # a quick run's clip needs ../shared: the demo clip instead
    clips = [p.name for p in paths]
    runs = []
    log("e2e: starting the whisper server")
    server = C.start_local_server("whisper", cpu=None)
    try:
        for i, (clip, path) in enumerate(zip(clips, paths, strict=True)):
            ref = load_reference(path) or ""
            for plugin in ("ours", "official") if i % 2 == 0 else ("official", "ours"):
                log(f"e2e: {plugin} {clip}")
                runs.append(await K.e2e_run(plugin, server, path, ref, speed=cfg.e2e_speed))
    finally:
        server.stop()
    return {"runs": runs, "clips": clips}


# --------------------------------------------------------------------------------------------
# 7. drops


async def bench_drops(cfg: Config) -> dict[str, Any]:
    frames = C.speech_frames_48k(20)
    runs = []
    for mode in cfg.drop_modes:
        for plugin in ("ours", "official"):
            log(f"drops: {plugin} {mode}")
            runs.append(
                await K.drop_run(
                    plugin,
                    frames=frames,
                    seconds=cfg.drop_seconds,
                    turn_s=cfg.drop_turn_s,
                    drop_after_ms=cfg.drop_after_ms,
                    drops=cfg.drops,
                    drop_mode=mode,
                    settle_s=cfg.drop_settle_s,
                )
            )
    # control without drops: turns of 1.03 s (not a multiple of 50 ms) -> what each item holds
    controls = []
    for plugin in ("ours", "official"):
        log(f"drops: {plugin} control (no drop, 1.03 s turns)")
        controls.append(
            await K.drop_run(
                plugin,
                frames=frames,
                seconds=cfg.control_turns * 1.03 + 0.5,
                turn_s=1.03,
                drops=0,
                drop_mode="none",
                settle_s=cfg.drop_settle_s,
            )
        )
    return {"runs": runs, "controls": controls}


# --------------------------------------------------------------------------------------------
# resilience figures of our plugin (issue 5) from benchmarks/resilience_bench.py


def bench_resilience(cfg: Config) -> dict[str, Any]:
    """Run ``benchmarks/resilience_bench.py``: drops per minute, time to resume, outage memory."""
    try:
        mod = importlib.import_module("benchmarks.resilience_bench")
        C.unpin()
        log(f"resilience: resilience_bench.run(quick={cfg.quick})")
        lines = asyncio.run(mod.run(quick=cfg.quick))
    except Exception as e:  # noqa: BLE001 - reported, and makes the run exit non-zero
        return {"status": f"run() failed: {type(e).__name__}: {e}", "error": traceback.format_exc()}
    finally:
        C.pin_to_cpu(C.CLIENT_CPU)
    return {"status": "ok", "markdown": "\n".join(lines)}


# --------------------------------------------------------------------------------------------
# server figures from benchmarks/server_bench.py (another helper's; optional)


def bench_server(cfg: Config) -> dict[str, Any]:
    """Run ``benchmarks/server_bench.py`` (``run(quick=...)`` -> rows) if it is there."""
    path = C.BENCH_DIR / "server_bench.py"
    if not path.is_file():
        return {"status": "benchmarks/server_bench.py not present"}
    try:
        mod = importlib.import_module("benchmarks.server_bench")
    except Exception as e:  # noqa: BLE001
        return {"status": f"import failed: {type(e).__name__}: {e}"}
    fn = getattr(mod, "run", None)
    if not callable(fn):
        return {"status": "server_bench.py has no run()"}
    quick = cfg.quick or cfg.server_quick
    C.unpin()  # its own server processes must not inherit the client's pinning
    try:
        import inspect

        params = inspect.signature(fn).parameters
        kwargs = {"quick": quick} if "quick" in params else {}
        log(f"server: server_bench.run({kwargs})")
        res = fn(**kwargs)
        if asyncio.iscoroutine(res):
            res = asyncio.run(res)
    except Exception as e:  # noqa: BLE001
        return {"status": f"run() failed: {type(e).__name__}: {e}"}
    finally:
        C.pin_to_cpu(C.CLIENT_CPU)
    if isinstance(res, list) and callable(getattr(mod, "markdown", None)):
        try:
            text = "\n".join(mod.markdown(res))
        except Exception:  # noqa: BLE001
            text = "\n".join(str(r) for r in res)
    elif isinstance(res, str):
        text = res
    else:
        text = "```\n" + json.dumps(res, indent=1, default=str)[:6000] + "\n```"
    return {"status": "ok", "quick": quick, "markdown": text}


# --------------------------------------------------------------------------------------------
# report


def fmt(x: Any, digits: int = 2, unit: str = "") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float) and math.isnan(x):
        return "n/a"
    if isinstance(x, float):
        return f"{x:.{digits}f}{unit}"
    return f"{x}{unit}"


def ms(x: Any, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x * 1000:.{digits}f} ms"


def fratio(a: Any, b: Any) -> str:
    r = ratio(a, b) if isinstance(a, (int, float)) and isinstance(b, (int, float)) else math.nan
    if math.isnan(r):
        return "n/a"
    return f"{r:.2f}×" if r >= 0.1 else f"{r:.2g}× (1/{1 / r:.0f})" if r > 0 else "0×"


def build_report(
    cfg: Config, info: dict[str, Any], res: dict[str, Any], elapsed: float
) -> tuple[str, list[tuple[str, str, str, str, str]]]:
    """(markdown, summary rows: figure, ours, official, ours/official, target)."""
    rows: list[tuple[str, str, str, str, str]] = []
    md = io.StringIO()
    w = md.write
    w("# Benchmarks: livekit-plugins-openai-stt vs livekit-plugins-openai\n\n")
    w(
        "Generated by `make bench` (`python -m benchmarks.run`"
        + (" --quick: smoke-sized, numbers not meaningful" if cfg.quick else "")
        + f") on {info['date']}, in {elapsed / 60:.1f} min. Do not edit by hand.\n\n"
    )
    w(
        "Both plugins are driven by the same code against the same local servers, in the same "
        "run, on the same machine; repetitions alternate the plugins (A, B, A, B, ...). "
        f"Model `{C.MODEL}` for both (the one model the official plugin streams with client "
        "commits; our local server runs no turn detection of its own for these figures). "
        '"ours" = `livekit.plugins.openai_stt`, "official" = `livekit.plugins.openai` '
        "(`STT(use_realtime=True)`).\n\n"
    )
    w("## Machine\n\n")
    pk = info["packages"]
    w(f"- project: `{info.get('revision', 'unknown')}`\n")
    w(f"- CPU: {info['cpu']}, {info['cores']} cores; memory {info['memory']}; {info['os']}\n")
    w(f"- Python {info['python']}; " + ", ".join(f"{k} {v}" for k, v in pk.items()) + "\n")
    la = info.get("loadavg")
    la_end = info.get("loadavg_end")
    if la:
        w(
            f"- load average at start {la[0]:.2f}"
            + (f", at end {la_end[0]:.2f}" if la_end else "")
            + " (other work on the machine adds noise)\n"
        )
    w(
        f"- the client process (and each worker) {info.get('pinning', '')}; local servers pinned "
        f"to CPU {C.SERVER_CPU} in their own processes (the whisper server is not pinned)\n\n"
    )

    errors = {k: v["error"] for k, v in res.items() if isinstance(v, dict) and "error" in v}

    # ---- summary rows
    cpu = res.get("cpu", {})
    if "ours" in cpu:
        o, f, n = cpu["ours"]["value"], cpu["official"]["value"], cpu["null"]["value"]
        ok = o <= 0.5 * f
        rows.append(
            (
                "CPU s per stream-minute (48 kHz 10 ms frames, real time)",
                fmt(o, 3),
                fmt(f, 3),
                fratio(o, f),
                f"≤ 0.5× official: {'PASS' if ok else 'FAIL'}",
            )
        )
        if "ours, turns" in cpu and "official, turns" in cpu:
            ot, ft = cpu["ours, turns"]["value"], cpu["official, turns"]["value"]
            rows.append(
                (
                    "  with a turn ended every 2 s (ours: flush(); official: oracle VAD)",
                    fmt(ot, 3),
                    fmt(ft, 3),
                    fratio(ot, ft),
                    "",
                )
            )
        rows.append(
            (
                "  reference: LiveKit's per-frame base-class path alone (null STT)",
                fmt(n, 3),
                fmt(n, 3),
                "",
                "",
            )
        )
    ramp = res.get("ramp", {})
    if "ours" in ramp:

        def cap(r: dict[str, Any]) -> str:
            if r.get("first_fail"):
                return f"≥ {r['max_ok']}, < {r['first_fail']}"
            return f"≥ {r['max_ok']} (the ramp's cap)"

        rows.append(
            (
                "Real-time streams on one core (a turn every 2 s)",
                cap(ramp["ours"]),
                cap(ramp["official"]),
                fratio(float(ramp["ours"]["max_ok"]), float(ramp["official"]["max_ok"])),
                "",
            )
        )
    lat = res.get("latency", {})
    if "runs" in lat:
        lo = _lat_summary(lat["runs"], "ours", "flush")
        lf = _lat_summary(lat["runs"], "official", "vad")
        if lo and lf:
            p95 = lo["interim"]["p95"]
            rows.append(
                (
                    "Server delta -> INTERIM, p95",
                    ms(p95, 2),
                    ms(lf["interim"]["p95"], 1),
                    fratio(p95, lf["interim"]["p95"]),
                    f"≤ 5 ms: {'PASS' if p95 <= 0.005 else 'FAIL'}",
                )
            )
            rows.append(
                (
                    "  deltas shown as an interim",
                    f"{lo['shown_fraction']:.0%}",
                    f"{lf['shown_fraction']:.0%}",
                    "",
                    "",
                )
            )
            rows.append(
                (
                    "End of turn -> commit received, p95 (ours: flush(); official: VAD)",
                    ms(lo["commit"]["p95"], 2),
                    ms(lf["commit"]["p95"], 2),
                    fratio(lo["commit"]["p95"], lf["commit"]["p95"]),
                    "",
                )
            )
            of = _lat_summary(lat["runs"], "official", "flush")
            if of:
                rows.append(
                    (
                        "  flush() -> commit",
                        ms(lo["commit"]["median"], 2) + " median",
                        "never (flush() sends no commit)" if of["commits_missing"] else "?",
                        "",
                        "",
                    )
                )
            ef_o = max((x for x in lo["end_final"] if x is not None), default=math.nan)
            ef_f = max((x for x in lf["end_final"] if x is not None), default=math.nan)
            rows.append(
                (
                    "end_input() -> last FINAL, worst run (recognizer time 0)",
                    ms(ef_o, 2),
                    ms(ef_f, 2),
                    fratio(ef_o, ef_f),
                    f"≤ 1 s + recognizer: {'PASS' if ef_o <= 1.0 else 'FAIL'}",
                )
            )
            es_o = max((x for x in lo["end_stream"] if x is not None), default=math.nan)
            rows.append(
                (
                    "end_input() -> end of the stream, worst run",
                    ms(es_o, 2),
                    "never (stays open until aclose())"
                    if lf["never_ended"]
                    else ms(max(x for x in lf["end_stream"] if x is not None), 2),
                    "",
                    "",
                )
            )
    byt = res.get("bytes", {})
    if "runs" in byt:

        def brow(plugin: str, fmt_: str, chunk: int | None) -> dict[str, Any] | None:
            for r in byt["runs"]:
                if (
                    r["plugin"] == plugin
                    and r["audio_format"] == fmt_
                    and (chunk is None or r["chunk_ms"] == chunk)
                ):
                    return r
            return None

        bo, bf = brow("ours", "pcm16", 100), brow("official", "pcm16", None)
        bg = brow("ours", "g711_ulaw", 100)
        if bo and bf:
            rows.append(
                (
                    "Websocket bytes per second of audio, pcm16 24 kHz",
                    f"{bo['ws_bytes_per_s'] / 1000:.1f} kB",
                    f"{bf['ws_bytes_per_s'] / 1000:.1f} kB",
                    fratio(bo["ws_bytes_per_s"], bf["ws_bytes_per_s"]),
                    "",
                )
            )
        if bg and bf:
            rows.append(
                (
                    "  G.711 µ-law 8 kHz",
                    f"{bg['ws_bytes_per_s'] / 1000:.1f} kB",
                    "n/a",
                    fratio(bg["ws_bytes_per_s"], bf["ws_bytes_per_s"]) + " of official pcm16",
                    "",
                )
            )
    mem = res.get("memory", {})
    if "runs" in mem:

        def mrow(plugin: str, kind: str, key: str) -> float:
            return med([r[key] for r in mem["runs"] if r["plugin"] == plugin and r["kind"] == kind])

        mo, mf = (
            mrow("ours", "rss", "rss_per_stream_kb"),
            mrow("official", "rss", "rss_per_stream_kb"),
        )
        rows.append(
            (
                "Peak RSS growth per stream",
                fmt(mo, 0, " KiB"),
                fmt(mf, 0, " KiB"),
                fratio(mo, mf),
                "",
            )
        )
        to, tf = (
            mrow("ours", "trace", "traced_peak_per_stream_kb"),
            mrow("official", "trace", "traced_peak_per_stream_kb"),
        )
        rows.append(
            (
                "  tracemalloc peak per stream (Python heap)",
                fmt(to, 0, " KiB"),
                fmt(tf, 0, " KiB"),
                fratio(to, tf),
                "",
            )
        )
        bo_, bf_ = mrow("ours", "rss", "rss0_mb"), mrow("official", "rss", "rss0_mb")
        rows.append(
            (
                "  process RSS with the plugin imported and warmed up",
                fmt(bo_, 0, " MiB"),
                fmt(bf_, 0, " MiB"),
                fratio(bo_, bf_),
                "",
            )
        )
    e2e = res.get("e2e", {})
    if "runs" in e2e:

        def erow(plugin: str) -> tuple[list[float], float]:
            sel = [r for r in e2e["runs"] if r["plugin"] == plugin]
            lats = [x for r in sel for x in r["eos_to_final"]]
            words = sum(r["ref_words"] for r in sel)
            errs = sum(r["wer"] * r["ref_words"] for r in sel)
            return lats, errs / words if words else math.nan

        (lo_, wo), (lf_, wf) = erow("ours"), erow("official")
        rows.append(
            (
                "Whisper end to end: end of turn -> FINAL, median",
                ms(C.percentile(lo_, 50), 0),
                ms(C.percentile(lf_, 50), 0),
                fratio(C.percentile(lo_, 50), C.percentile(lf_, 50)),
                "",
            )
        )
        rows.append(
            (
                "  p95",
                ms(C.percentile(lo_, 95), 0),
                ms(C.percentile(lf_, 95), 0),
                fratio(C.percentile(lo_, 95), C.percentile(lf_, 95)),
                "",
            )
        )
        rows.append(("  word error rate (all clips)", f"{wo:.1%}", f"{wf:.1%}", "", ""))
    drops = res.get("drops", {})
    if "runs" in drops:

        def drow(plugin: str) -> tuple[float, int]:
            sel = [r for r in drops["runs"] if r["plugin"] == plugin]
            lost = sum(r["lost_ms"] for r in sel)
            n = sum(r["drops"] for r in sel)
            return (lost / n if n else math.nan), n

        (do, no), (df, nf) = drow("ours"), drow("official")
        rows.append(
            (
                f"Audio lost per connection drop ({no} / {nf} drops)",
                fmt(do, 0, " ms"),
                fmt(df, 0, " ms"),
                "",
                f"0 lost: {'PASS' if do == 0 else 'FAIL'}",
            )
        )
        ctl = {r["plugin"]: r for r in drops.get("controls") or []}
        if {"ours", "official"} <= set(ctl):

            def worst_cut(r: dict[str, Any]) -> float:
                items = r["items_s"][:-1]  # the last item is the tail ended by end_input()
                return max((abs(x - r["turn_s"]) for x in items), default=math.nan) * 1000

            rows.append(
                (
                    "Turn audio committed where the turn ends: worst error (1.03 s turns)",
                    fmt(worst_cut(ctl["ours"]), 0, " ms"),
                    fmt(worst_cut(ctl["official"]), 0, " ms"),
                    "",
                    "",
                )
            )

    # ---- summary table
    w("## Summary\n\n")
    w("| figure | ours | official | ours ÷ official | target (ours) |\n|---|---|---|---|---|\n")
    for r in rows:
        w("| " + " | ".join(r) + " |\n")
    w("\n")
    if errors:
        w(
            "**Sections that failed in this run:** "
            + "; ".join(f"{k}: `{v.splitlines()[-1][:200]}`" for k, v in errors.items())
            + "\n\n"
        )

    # ---- details
    if "ours" in cpu:
        w("## 1. CPU per stream-minute and streams per core\n\n")
        w(
            "Method: every variant in ONE process pinned to one CPU, "
            f"{cfg.cpu_streams} streams each, all connected; in each of {cfg.cpu_rounds} "
            f"rounds every variant's streams are fed in turn for {cfg.cpu_window_s:g} s (the "
            "others get nothing and idle), plus one window with no stream fed "
            f"({cfg.cpu_idle_window_s:g} s, the idle baseline of the pacing loop), the order "
            "rotating each round: A, B, C, idle, B, C, idle, A, ... so drift on the machine hits "
            "every variant alike. Feeding = the same 48 kHz mono 10 ms frames of real speech, "
            "one per stream per 10 ms on an absolute schedule, the streams split in 5 groups "
            "2 ms apart, their chunk boundaries staggered. CPU = `time.process_time()` over the "
            "window (all threads: livekit-rtc's native resampler is counted) minus the idle "
            "rate, per stream-minute. The local server (`python -m livekit.plugins.openai_stt."
            "server --engine scripted`) runs in its own process on the other CPU: its CPU is "
            'not counted. No turn is committed (the audio path), except in the two "turns" '
            "variants: a turn ends every 2 s of each stream's audio (staggered across streams), "
            "committed and answered by the scripted engine's deltas and final, which the app "
            'receives. "null" is a LiveKit '
            "STT that keeps the base class's per-frame path (`RecognizeStream.push_frame` "
            "resamples each 10 ms frame to 24 kHz and queues it) and drops the frames: what a "
            "plugin that keeps that path pays before sending anything. The official plugin "
            "keeps it; ours overrides `push_frame` to gather `chunk_ms` of frames before one "
            f"resampler call and one queue wake-up. {cfg.cpu_reps} processes (variant order "
            "reversed in the second); the figure is their mean, with each process's value and "
            "the spread of single windows.\n\n"
        )
        w(
            "| variant | CPU s / stream-minute | per process | single windows p10-p90 | "
            "worst pacing lateness p95 |\n|---|---|---|---|---|\n"
        )
        for v in cpu["variants"]:
            c = cpu[v["label"]]
            label = {
                "ours": "openai_stt (ours), pcm16, chunk_ms=100 (default)",
                "official": "livekit-plugins-openai (pcm16, 50 ms appends)",
                "ours, turns": "ours, a turn ended every 2 s by flush()",
                "official, turns": "official, a turn ended every 2 s by the oracle VAD",
                "null": "null STT (base-class per-frame path, nothing sent)",
            }.get(v["label"], v["label"])
            procs = ", ".join(
                f"{r['variants'][v['label']]['cpu_s_per_stream_minute']:.3f}" for r in cpu["runs"]
            )
            w(
                f"| {label} | **{c['value']:.3f}** | {procs} | {c['window_p10']:.3f}-"
                f"{c['window_p90']:.3f} | {c['lateness_p95_ms']:.1f} ms |\n"
            )
        w(
            f"\nIdle baseline: {', '.join(f'{x:.3f}' for x in cpu['idle_cpu_per_s'])} CPU s per "
            f"s. Server process CPU over the CPU runs: {fmt(cpu.get('server_cpu_s'), 1, ' s')}. "
            f"Streams that died: {cpu.get('dead_streams', 0)}.\n\n"
        )
        w(
            "**`chunk_ms` (ours)** is the audio per `input_audio_buffer.append` (bytes in "
            "section 4):\n\n"
        )
        w(
            "| chunk_ms | appends / s | CPU s / stream-minute | websocket bytes / s (pcm16) | "
            "est. link bytes / s |\n|---|---|---|---|---|\n"
        )

        def bytes_of(plugin: str, fmt_: str, chunk: int) -> dict[str, Any] | None:
            return next(
                (
                    x
                    for x in res.get("bytes", {}).get("runs", [])
                    if x["plugin"] == plugin
                    and x["audio_format"] == fmt_
                    and x["chunk_ms"] == chunk
                ),
                None,
            )

        for chunk in cfg.chunk_sizes:
            label = "ours" if chunk == 100 else f"ours pcm16 {chunk} ms"
            if label not in cpu:
                continue
            b = bytes_of("ours", "pcm16", chunk)
            w(
                f"| {chunk}{' (default)' if chunk == 100 else ''} | {1000 // chunk} | "
                f"{cpu[label]['value']:.3f} | {fmt(b['ws_bytes_per_s'], 0) if b else 'n/a'} | "
                f"{fmt(b['est_link_bytes_per_s'], 0) if b else 'n/a'} |\n"
            )
        g = cpu.get("ours g711_ulaw 100 ms")
        if g:
            b = bytes_of("ours", "g711_ulaw", 100)
            w(
                f"| 100, G.711 µ-law | 10 | {g['value']:.3f} | "
                f"{fmt(b['ws_bytes_per_s'], 0) if b else 'n/a'} | "
                f"{fmt(b['est_link_bytes_per_s'], 0) if b else 'n/a'} |\n"
            )
        b = bytes_of("official", "pcm16", 50)
        w(
            f"| official (fixed 50 ms) | 20 | {cpu['official']['value']:.3f} | "
            f"{fmt(b['ws_bytes_per_s'], 0) if b else 'n/a'} | "
            f"{fmt(b['est_link_bytes_per_s'], 0) if b else 'n/a'} |\n\n"
        )
    if "ours" in ramp:
        w(
            "**Most concurrent streams one process keeps in real time on one core.** Method: "
            "one process pinned to one CPU; the stream count grows geometrically "
            f"(×{cfg.ramp_factor:g} from {cfg.ramp_start}) and each level is held "
            f"{cfg.ramp_step_seconds:g} s after a 0.5 s warm-up, every stream ending a turn "
            f"every {cfg.ramp_turn_s:g} s of its audio (staggered; ours: `flush()`, official: "
            "the oracle VAD; the server answers each with deltas and a final); a level passes "
            "when the 10 ms "
            "pacing loop's lateness p95 and the event-loop lag p95 (a 5 ms sleeper) are both "
            "≤ 20 ms, no stream's input backlog exceeds 100 ms at the end and no stream died; "
            "then one refinement at the midpoint in a fresh process. The server runs on the other "
            "CPU (its load is shown: a server near 100% would cap the figure, not the client). "
            "A level's new streams are opened and connected first with no audio flowing (so "
            'the level measures steady state; the time they took is the "connect" column: '
            "the official plugin connects one stream at a time, under its pool's lock), then "
            "every stream is fed, given up to 6 s to drain what queued, and measured. "
            '"Other load" is the share of the client\'s CPU that other processes on the machine '
            "took during the level (kernel per-CPU times minus this process): where it is high, "
            "the level failed for want of CPU, not because of the plugin. "
            "The official plugin ran on an aiohttp session without a connection limit here; as "
            "shipped it cannot pass 50 (below).\n\n"
        )
        w(
            "| plugin | streams | connect (new streams) | pacing p95 | loop lag p95 | "
            "backlog end | client CPU | other load on that CPU | server CPU | result |\n"
            "|---|---|---|---|---|---|---|---|---|---|\n"
        )
        for p in ("ours", "official"):
            for lv in ramp[p]["levels"]:
                w(
                    f"| {C.LABELS.get(p, 'null STT (floor)')} | {lv['streams']}"
                    f"{' (refine)' if lv.get('refinement') else ''} | "
                    f"{fmt(lv.get('connect_s'), 1, ' s')} ({lv.get('new_streams', '?')})"
                    f"{'' if lv.get('connected', True) else ' NOT ALL CONNECTED'} | "
                    f"{lv['lateness_p95_ms']:.1f} ms | {fmt(lv['loop_lag_p95_ms'], 1, ' ms')} | "
                    f"{lv['backlog_end_ms']:.0f} ms | {lv['client_core_fraction']:.0%} | "
                    f"{fmt(lv.get('other_load', math.nan) * 100, 0, '%')} | "
                    f"{fmt(max(0.0, lv['server_core_fraction']) * 100, 0, '%')} | "
                    f"{'ok' if lv['ok'] else 'FAIL'} |\n"
                )
        cap51 = ramp.get("official_shipped_51")
        if cap51:
            unconnected = cap51.get("new_streams", 51) if not cap51.get("connected", True) else 0
            w(
                "\nOfficial plugin **as shipped** (the job's default http session), 51 streams: "
                + (
                    f"not all connected after {cap51.get('connect_s', 0):.0f} s; "
                    if unconnected
                    else "all connected; "
                )
                + f"{cap51['dead_streams']} stream(s) ended on an error, "
                f"{cap51['stuck_streams']} never sending (input backlog over 0.5 s); result "
                f"{'ok' if cap51['ok'] else 'FAIL'}. `livekit.agents.utils.http_context` builds "
                "its `aiohttp.TCPConnector(limit_per_host=50)`; each realtime websocket holds a "
                "connection for the stream's life, and the plugin's `ConnectionPool` connects "
                "under one lock, so the 51st stream waits for a slot that never frees (10 s "
                "connect timeout, retries, then the stream fails) and holds up every later "
                "stream's connect meanwhile. Ours opens its own sockets (`websockets`) and has "
                "no such cap.\n"
            )
        w("\n")
    if "runs" in lat:
        w("## 2-3. Latency: delta -> interim, end of turn -> commit, end_input() -> final\n\n")
        w(
            "Method: `benchmarks/probe_server.py` runs in its own process on the other CPU. While "
            f"audio arrives it sends a delta every {cfg.delta_ms:g} ms whose text is "
            "` t=<CLOCK_MONOTONIC seconds>` read just before the send (both processes share "
            "CLOCK_MONOTONIC on Linux); on a commit it records the receive time, sends "
            "`committed` and at once `completed` (recognizer time zero). One stream per run, "
            f"{cfg.lat_turns} turns of {cfg.lat_turn_s:g} s plus a 0.5 s tail ended by "
            "`end_input()`, frames pushed in real time. A delta's latency is the time until the "
            "app iterating the stream receives an INTERIM_TRANSCRIPT containing its stamp. The "
            "end of a turn is ours: `stream.flush()` (what AgentSession does for an STT with "
            "`manual_flush`), or the same VAD as the official plugin; official: an oracle VAD "
            "(`_common.OracleVAD`, no model, fires END_OF_SPEECH exactly at the turn boundary "
            "and at end of input) standing in for the Silero VAD it loads by default, since it "
            f"commits only on its VAD's END_OF_SPEECH. {cfg.lat_reps} runs per configuration, "
            "alternating; all samples pooled.\n\n"
        )
        w(
            "| configuration | delta->interim median / p95 / max (n) | deltas shown as interim | "
            "end of turn -> commit median / p95 / max (n) | end_input -> commit | "
            "end_input -> last FINAL | end_input -> end of stream |\n"
            "|---|---|---|---|---|---|---|\n"
        )
        cfgs = [
            ("ours", "flush", 0),
            ("ours", "vad", 0),
            ("official", "vad", 0),
            ("official", "flush", 0),
            ("ours", "flush", cfg.lat_background),
            ("official", "vad", cfg.lat_background),
        ]
        seen = set()
        for p, m, bg in cfgs:
            if (p, m, bg) in seen:
                continue
            seen.add((p, m, bg))
            s = _lat_summary(lat["runs"], p, m, bg)
            if not s:
                continue
            i, c = s["interim"], s["commit"]
            label = f"{C.LABELS[p]}, {'flush()' if m == 'flush' else 'oracle VAD'}"
            if bg:
                label += f", +{bg} busy streams"

            def worst(xs: list[Any]) -> str:
                if any(x is None for x in xs):
                    return (
                        "never"
                        if all(x is None for x in xs)
                        else f"{ms(max(x for x in xs if x is not None), 2)}, never in "
                        f"{sum(x is None for x in xs)} run(s)"
                    )
                return ms(max(xs), 2) + " (worst)"

            w(
                f"| {label} | {ms(i['median'], 2)} / {ms(i['p95'], 2)} / {ms(i['max'], 2)} "
                f"({i['n']}) | {s['shown_fraction']:.0%} | "
                f"{ms(c['median'], 2)} / {ms(c['p95'], 2)} / {ms(c['max'], 2)} ({c['n']}; "
                f"{s['commits_missing']} of {s['turn_signals']} ends got no commit) | "
                f"{worst(s['end_commit'])} | {worst(s['end_final'])} | {worst(s['end_stream'])} |\n"
            )
        w(
            "\nThe official plugin emits an INTERIM at most every 0.5 s "
            "(`_delta_transcript_interval`): a delta arriving sooner is not shown until a later "
            "delta after the interval (or at all, if the turn's final comes first). Its "
            "`flush()` sends no commit (only the VAD commits), and after `end_input()` its "
            "stream stays open (the receive task waits for the socket) until `aclose()`.\n\n"
        )
    if "runs" in byt:
        w("## 4. Bytes on the wire per second of audio\n\n")
        w(
            f"Method: {cfg.bytes_seconds:g} s of 48 kHz audio pushed through each plugin to the "
            "probe server, which counts every client message: websocket bytes = payload + frame "
            "header + mask (RFC 6455), all messages (session.update and commits included). "
            '"est. link" adds, per message, one TLS record (~29 B) and one TCP/IPv4 segment '
            "header (~52 B), as on a real `wss://` link. Audio bytes are the decoded "
            "`audio` payloads. Chunking does not depend on timing, so the audio is pushed as "
            "fast as the stream takes it.\n\n"
        )
        w(
            "| plugin | format | chunk_ms | ws bytes/s | est. link bytes/s | appends/s | "
            "audio bytes/s |\n|---|---|---|---|---|---|---|\n"
        )
        for r in byt["runs"]:
            w(
                f"| {C.LABELS[r['plugin']]} | {r['audio_format']} | {r['chunk_ms']} | "
                f"{r['ws_bytes_per_s']:.0f} | {r['est_link_bytes_per_s']:.0f} | "
                f"{r['appends_per_s']:.0f} | {r['audio_bytes_per_s']:.0f} |\n"
            )
        w(
            "| livekit-plugins-openai | g711_ulaw / g711_alaw | - | n/a (pcm16 24 kHz only) | n/a "
            "| n/a | n/a |\n\n"
        )
        w(
            "Base64 makes 4 bytes of 3 (+33%); JSON framing adds ~60 B per append. Smaller chunks "
            "cost more messages (bytes and per-message CPU, section 1) for lower delay between a "
            "frame and the server; with the server's deltas arriving only while audio streams "
            "and commits flushing what is buffered, 100 ms keeps the commit path exact while "
            "halving the message rate of the official 50 ms.\n\n"
        )
    if "runs" in mem:
        w("## 5. Memory per stream\n\n")
        w(
            f"Method: a fresh process per run; after a 2-stream warm-up (imports, http session, "
            f"first-use caches) and `gc.collect()`, RSS is read, then {cfg.mem_streams} streams "
            f"run in real time for {cfg.mem_seconds:g} s with a turn ended every 2 s (ours: "
            "`flush()`; official: the oracle VAD), RSS sampled every 250 ms; per stream = (peak "
            f"- before) / streams. tracemalloc runs ({cfg.mem_trace_streams} streams) trace the "
            "Python heap only (native buffers of livekit-rtc and sockets are not seen).\n\n"
        )
        w(
            "| plugin | run | RSS before | RSS peak | per stream (RSS) | per stream "
            "(tracemalloc peak) |\n|---|---|---|---|---|---|\n"
        )
        for r in mem["runs"]:
            w(
                f"| {C.LABELS[r['plugin']]} | {r['kind']} | {r['rss0_mb']:.1f} MiB | "
                f"{r['rss_peak_mb']:.1f} MiB | {r['rss_per_stream_kb']:.0f} KiB | "
                f"{fmt(r['traced_peak_per_stream_kb'], 0, ' KiB')} |\n"
            )
        w(
            "\nOurs keeps the wire audio of every turn not yet finalised (to replay it after a "
            "reconnect), trimmed at each final: with turns it stays small; a stream that is "
            "never flushed holds up to `max_retained_audio_s` (300 s = 14 MB at pcm16 24 kHz, "
            "2.3 MB at G.711).\n\n"
        )
    if "runs" in e2e:
        w("## 6. End to end through faster-whisper\n\n")
        w(
            "Method: the local server with `--engine whisper` (faster-whisper tiny.en int8, "
            "partial pre-commit decodes off, not pinned) in its own process; each clip of "
            f"`../shared/audio` streamed at {cfg.e2e_speed:g}× real time through each plugin "
            "(alternating which goes first). Long clips are cut into turns at pauses (`compare."
            "turn_boundaries`); each turn ends at its boundary (ours: `flush()`, the last one "
            "`end_input()`; official: the oracle VAD). Latency = time from pushing a turn's last "
            "frame to that item's FINAL_TRANSCRIPT: mostly recognizer time, which is the same "
            "server for both. WER: `evaluation.word_error_rate` of the finals joined, against "
            '`transcripts.tsv`; "all clips" weights by reference words.\n\n'
        )
        w(
            "| clip | audio | turns | ours: end->final per turn | ours WER | official: "
            "end->final per turn | official WER |\n|---|---|---|---|---|---|---|\n"
        )
        for clip in e2e["clips"]:
            ro = next((r for r in e2e["runs"] if r["clip"] == clip and r["plugin"] == "ours"), None)
            rf = next(
                (r for r in e2e["runs"] if r["clip"] == clip and r["plugin"] == "official"), None
            )
            if not ro or not rf:
                continue

            def lat_list(r: dict[str, Any]) -> str:
                xs = r["eos_to_final"]
                s = ", ".join(f"{x * 1000:.0f}" for x in xs) + " ms"
                if r["finals"] < r["turns"]:
                    s += f" ({r['turns'] - r['finals']} turn(s) without a FINAL"
                    s += (
                        ": it sends none for an empty transcript)"
                        if r["plugin"] == "official"
                        else ")"
                    )
                return s

            w(
                f"| {clip} | {ro['audio_s']:.1f} s | {ro['turns']} | {lat_list(ro)} | "
                f"{ro['wer']:.1%} | {lat_list(rf)} | {rf['wer']:.1%} |\n"
            )
        w("\n")
    if "runs" in drops:
        w("## 7. Audio lost across connection drops\n\n")
        w(
            f"Method: a fresh local server (scripted engine) per run, started with "
            f"`--drop-after-audio-ms {cfg.drop_after_ms:g} --drop-sessions {cfg.drops}`: each of "
            f"the first {cfg.drops} sessions is dropped once it has received "
            f"{cfg.drop_after_ms:g} ms of audio (`close_1011`: close frame 1011; `reset`: TCP "
            f"abort). {cfg.drop_seconds:g} s of audio in real time, a turn ended every "
            f"{cfg.drop_turn_s:g} s (ours: `flush()`; official: oracle VAD). The scripted "
            'engine\'s transcript of each item is its duration ("1.00 seconds of audio"), so '
            "audio lost = audio pushed - the sum over the finals.\n\n"
        )
        w(
            "| plugin | drop mode | drops | sessions | audio pushed | in finals | lost | "
            "lost per drop | errors reported |\n|---|---|---|---|---|---|---|---|---|\n"
        )
        for r in drops["runs"]:
            w(
                f"| {C.LABELS[r['plugin']]} | {r['drop_mode']} | {r['drops']} | {r['sessions']} | "
                f"{r['audio_s']:.2f} s | {r['transcribed_s']:.2f} s | {r['lost_ms']:.0f} ms"
                + (f" (+{r['duplicated_ms']:.0f} ms duplicated)" if r["duplicated_ms"] else "")
                + f" | {fmt(r['lost_ms_per_drop'], 0, ' ms')} | {len(r['errors'])} |\n"
            )
        ctl = drops.get("controls") or []
        if ctl:
            w(
                "\n**Control, no drop: where a turn ends.** Turns of 1.03 s (not a multiple of 50 "
                "ms), the last one ended by `end_input()`; each item's audio as the server "
                "received it:\n\n| plugin | items (s) | sum |\n|---|---|---|\n"
            )
            for r in ctl:
                w(
                    f"| {C.LABELS[r['plugin']]} | {', '.join(f'{x:.2f}' for x in r['items_s'])} | "
                    f"{sum(r['items_s']):.2f} of {r['audio_s']:.2f} s |\n"
                )
            w(
                "\nThe official plugin sends its commit from the VAD task straight to the socket, "
                "while the turn's last partial 50 ms chunk still waits in its `AudioByteStream`: "
                "items are cut on its 50 ms grid, and up to 50 ms of a turn's end is transcribed "
                "with the next turn. Ours queues the commit behind the audio it closes.\n"
            )
        w(
            "\nThe official plugin reconnects (LiveKit's base-stream retry), but what it appended "
            "to the dead socket and had not committed is gone: the server discards an "
            "uncommitted buffer with its session (docs/protocol.md §6). Ours keeps every "
            "unfinalised turn's audio and replays it, commits included, on the new socket.\n\n"
        )
    srv = res.get("server")
    if srv is not None:
        w("## Server figures (`benchmarks/server_bench.py`)\n\n")
        if srv.get("status") == "ok":
            w(
                "Measured by `benchmarks/server_bench.py` (its own method; `run(quick="
                f"{srv.get('quick')})`), in the same `make bench` run, after the figures above:\n\n"
            )
            w(srv["markdown"].strip() + "\n\n")
        else:
            w(f"Not included: {srv.get('status')}.\n\n")
    resilience = res.get("resilience")
    if resilience is not None:
        w("## Resilience (`benchmarks/resilience_bench.py`)\n\n")
        if resilience.get("status") == "ok":
            w(resilience["markdown"].strip() + "\n\n")
        else:
            w(f"Not included: {resilience.get('status')}.\n\n")
    w("## Targets (ours)\n\n")
    for r in rows:
        if r[4]:
            w(f"- {r[0].strip()}: {r[4]}\n")
    w("\n## Not measured\n\n")
    w(
        "- Real OpenAI endpoints (no network, no key): every figure is against local servers on "
        "loopback; bytes add an estimate for TLS/TCP, latency has no network delay.\n"
        "- The official plugin's own Silero VAD cost and its end-of-speech delay: an oracle VAD "
        "(zero cost, zero delay) stands in for it, which favours the official plugin.\n"
        "- Server-side VAD models (gpt-4o-transcribe with `server_vad`): the benchmarks use "
        f"`{C.MODEL}` with client commits for both plugins.\n"
    )
    return md.getvalue(), rows


def print_table(rows: list[tuple[str, str, str, str, str]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        for r in rows:
            print(" | ".join(r))
        return
    t = Table(title="openai_stt (ours) vs livekit-plugins-openai (official)")
    for col in ("figure", "ours", "official", "ours ÷ official", "target (ours)"):
        t.add_column(col)
    for r in rows:
        t.add_row(*r)
    Console(width=160).print(t)


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smoke-sized run (seconds, not minutes)")
    p.add_argument("--out", type=Path, default=C.ROOT / "BENCHMARKS.md")
    p.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    p.add_argument("--skip", default="", help=f"comma-separated sections to skip: {SECTIONS}")
    p.add_argument("--only", default="", help="comma-separated sections to run")
    p.add_argument("--e2e-speed", type=float, default=None, help="clip speed (1 = real time)")
    p.add_argument("--cpu-streams", type=int, default=None)
    p.add_argument("--cpu-rounds", type=int, default=None)
    p.add_argument(
        "--server-full",
        action="store_true",
        help="run server_bench.py in full, not --quick (adds minutes)",
    )
    p.add_argument(
        "--reps", type=int, default=None, help="repetitions per plugin (cpu, latency, memory)"
    )
    args = p.parse_args(argv)
    cfg = quick_config() if args.quick else Config()
    if args.server_full:
        cfg.server_quick = False
    if args.e2e_speed:
        cfg.e2e_speed = args.e2e_speed
    if args.cpu_streams:
        cfg.cpu_streams = args.cpu_streams
    if args.cpu_rounds:
        cfg.cpu_rounds = args.cpu_rounds
    if args.reps:
        cfg.cpu_reps = cfg.lat_reps = cfg.mem_reps = args.reps
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    only = {s.strip() for s in args.only.split(",") if s.strip()}

    logging.basicConfig(level=logging.CRITICAL)  # plugins' retry tracebacks are expected here
    t0 = time.monotonic()
    info = C.machine_info()
    info["pinning"] = C.pin_to_cpu(C.CLIENT_CPU)
    res: dict[str, Any] = {}

    steps: list[tuple[str, Any]] = [
        ("cpu", lambda: bench_cpu(cfg)),
        ("ramp", lambda: bench_ramp(cfg)),
        ("latency", lambda: asyncio.run(bench_latency(cfg))),
        ("bytes", lambda: asyncio.run(bench_bytes(cfg))),
        ("memory", lambda: bench_memory(cfg)),
        ("e2e", lambda: asyncio.run(bench_e2e(cfg))),
        ("drops", lambda: asyncio.run(bench_drops(cfg))),
        ("server", lambda: bench_server(cfg)),
        ("resilience", lambda: bench_resilience(cfg)),
    ]
    try:
        for name, fn in steps:
            if name in skip or (only and name not in only):
                continue
            t = time.monotonic()
            try:
                res[name] = fn()
            except Exception:  # noqa: BLE001 - one failed section must not lose the others
                res[name] = {"error": traceback.format_exc()}
                log(f"{name} FAILED:\n{res[name]['error']}")
            log(f"{name} done in {time.monotonic() - t:.0f} s")
    finally:
        _stop_shared()
    elapsed = time.monotonic() - t0
    info["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    md, rows = build_report(cfg, info, res, elapsed)
    args.out.write_text(md, encoding="utf-8")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"info": info, "config": asdict(cfg), "results": res}, indent=1, default=str
            ),
            encoding="utf-8",
        )
    print_table(rows)
    print(f"\nwrote {args.out} in {elapsed / 60:.1f} min", flush=True)
    failed = [k for k, v in res.items() if isinstance(v, dict) and "error" in v]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
