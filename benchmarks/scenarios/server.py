"""The local server's own figures (issues 4 and 13): commit -> final latency, WER and CPU per
recognizer variant, concurrent real-time sessions with the metrics scraped meanwhile, and WER
through the plugin (pcm16 vs G.711)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from benchmarks.clips import (
    SHARED_AUDIO_DIR,
    SHARED_AUDIO_MISSING,
    clip_frames,
    demo_clip,
    reference_clips,
    shared_audio_dir,
)
from benchmarks.harness.drive import run_stream
from benchmarks.harness.plugins import make_stt
from benchmarks.harness.realtime import clip_items, pause_turns, scrape, sessions_at_once
from benchmarks.harness.servers import local_server
from benchmarks.harness.stats import fmt

MODEL = "gpt-realtime-whisper"

VARIANTS: dict[str, tuple[str, ...]] = {
    "before: 1 worker x 2 threads, beam 5, temperature fallback": (
        "--workers", "1", "--cpu-threads", "2", "--temperature-fallback", "--no-speculate",
    ),
    "no temperature fallback": ("--workers", "1", "--cpu-threads", "2", "--no-speculate"),
    "greedy (beam 1)": ("--workers", "1", "--cpu-threads", "2", "--beam-size", "1",
                        "--no-speculate"),
    "2 workers x 1 thread": ("--workers", "2", "--cpu-threads", "1", "--no-speculate"),
    "final decoded ahead at pauses, 1 x 2": ("--workers", "1", "--cpu-threads", "2", "--speculate"),
    "final decoded ahead at pauses, 2 x 1": ("--workers", "2", "--cpu-threads", "1", "--speculate"),
    "final decoded ahead at pauses, 2 x 2": ("--workers", "2", "--cpu-threads", "2", "--speculate"),
    "ahead, 1 x 2, no fast finals": ("--workers", "1", "--cpu-threads", "2", "--speculate",
                                     "--no-fast-finals-under-load"),
}  # fmt: skip
"""Server flags of each variant (the rest default: tiny.en, int8, CPU, partials every 1 s)."""
DEFAULT = "final decoded ahead at pauses, 1 x 2"
"""The variant the server's defaults amount to on 2 cores (kept as the default by these
figures)."""

SCRAPED = (
    "openai_stt_server_sessions_open",
    "openai_stt_server_sessions_total",
    "openai_stt_server_sessions_refused_total",
    "openai_stt_server_audio_received_seconds_total",
    "openai_stt_server_commits_total",
    "openai_stt_server_commit_to_final_seconds_count",
    "openai_stt_server_commit_to_final_seconds_sum",
    "openai_stt_server_decode_queue_depth",
    "openai_stt_server_partials_shed_total",
    "openai_stt_server_speculative_finals_total",
    "openai_stt_server_fast_finals_total",
    "openai_stt_server_errors_total",
)


@dataclass
class Config:
    variants: tuple[str, ...] = (
        "before: 1 worker x 2 threads, beam 5, temperature fallback",
        "greedy (beam 1)",
        "2 workers x 1 thread",
        DEFAULT,
    )
    capacity_variant: str = DEFAULT
    more_capacity_variants: tuple[str, ...] = ()
    """Further variants ramped like the default (their tables only)."""
    sessions: tuple[int, ...] = (1, 2, 4, 8)
    """The capacity ramp (concurrent real-time sessions)."""
    latency_bound_s: float = 0.4
    """p95 commit -> final a concurrency level must keep (issue 13)."""
    delta_interval_s: float = 1.0
    script_s: float | None = None
    """Only the demo clip's first seconds."""
    plugin_wer_clips: tuple[str, ...] = (
        "jfk.wav",
        "goforward.wav",
        "librivox-0880.wav",
        "librivox-0930.wav",
    )
    quick: bool = False

    @classmethod
    def small(cls) -> Config:
        return cls(
            variants=(DEFAULT,),
            more_capacity_variants=(),
            sessions=(1,),
            script_s=3.0,
            plugin_wer_clips=("goforward.wav",),
            quick=True,
        )

    @classmethod
    def long(cls) -> Config:
        """Every variant, and the capacity ramp without fast finals too (``--server-full``)."""
        return cls(
            variants=tuple(v for v in VARIANTS if "no fast finals" not in v),
            more_capacity_variants=("ahead, 1 x 2, no fast finals",),
            sessions=(1, 2, 4, 6, 8, 10),
        )


@dataclass
class Result:
    cfg: Config
    variants: list[dict[str, Any]] = field(default_factory=list)
    levels: list[dict[str, Any]] = field(default_factory=list)
    more_levels: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    scraped: list[dict[str, float]] = field(default_factory=list)
    """``/metrics`` after each capacity level (cumulative)."""
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    """metric, value, notes."""
    words: int = 0


def _wer(reference: str, hypothesis: str) -> tuple[float, int]:
    from examples.evaluation import normalize_transcript, word_error_rate

    n = len(normalize_transcript(reference).split())
    return (word_error_rate(reference, hypothesis) * n, n) if n else (0.0, 0)


async def measure_variant(
    name: str, cfg: Config, turns: list[bytes], reference: str, clips: list[Any]
) -> dict[str, Any]:
    """One real-time session of the demo clip (its turns), then each short clip as one item."""
    from examples.evaluation import load_reference

    args = VARIANTS[name]
    async with local_server(
        "whisper", inline=cfg.quick, partials_s=cfg.delta_interval_s, args=args, cpu=None
    ) as server:
        await sessions_at_once(server, turns[:1], 1, MODEL)  # the first decode allocates
        one = await sessions_at_once(server, turns, 1, MODEL)
        texts = await clip_items(server.ws_url, clips, MODEL)
        metrics = await scrape(server.port)
    errors, words = _wer(reference, " ".join(one["texts"]))
    for clip in clips:
        e, n = _wer(load_reference(clip) or "", texts[clip.name])
        errors, words = errors + e, words + n
    hits = metrics.get('openai_stt_server_speculative_finals_total{outcome="hit"}', 0.0)
    misses = metrics.get('openai_stt_server_speculative_finals_total{outcome="miss"}', 0.0)
    return {
        "name": name,
        "args": " ".join(args),
        **{k: v for k, v in one.items() if k != "texts"},
        "wer": errors / words if words else math.nan,
        "words": words,
        "ahead": f"{hits:.0f}/{hits + misses:.0f}" if hits + misses else "-",
        "texts": [*one["texts"], *texts.values()],
    }


async def measure(cfg: Config) -> Result:
    result = Result(cfg)
    if shared_audio_dir() is None:
        result.rows.append(("skipped", "-", f"the local server's figures {SHARED_AUDIO_MISSING}"))
        return result
    from examples.evaluation import load_reference

    demo = demo_clip()
    turns = pause_turns(demo, cfg.script_s)
    reference = load_reference(demo) or ""
    if cfg.script_s is not None:
        reference = ""  # a cut clip has no reference; WER of the short clips only
    clips = [c for c in reference_clips() if c.name != demo.name]
    if cfg.quick:
        clips = clips[:1]
    for name in cfg.variants:
        result.variants.append(await measure_variant(name, cfg, turns, reference, clips))
    for name in cfg.more_capacity_variants:
        result.more_levels[name] = await ramp(name, cfg, turns, reference)
    args = VARIANTS[cfg.capacity_variant]
    async with local_server(
        "whisper", inline=cfg.quick, partials_s=cfg.delta_interval_s, args=args, cpu=None
    ) as server:
        await sessions_at_once(server, turns[:1], 1, MODEL)
        for n in cfg.sessions:
            level = await sessions_at_once(server, turns, n, MODEL)
            _level_wer(level, reference)
            result.levels.append(level)
            result.scraped.append(await scrape(server.port))
        plain = await sessions_at_once(server, turns, 1, "gpt-4o-transcribe")
        wer = {f: await plugin_wer(server.base_url, f, cfg.plugin_wer_clips) for f in
               ("pcm16", "g711_ulaw")}  # fmt: skip
    result.rows += _rows(result, plain, wer, len(turns))
    return result


async def ramp(name: str, cfg: Config, turns: list[bytes], reference: str) -> list[dict[str, Any]]:
    """The capacity ramp on variant ``name``, with ``/metrics`` scraped after each level."""
    levels = []
    async with local_server(
        "whisper", inline=cfg.quick, partials_s=cfg.delta_interval_s, args=VARIANTS[name], cpu=None
    ) as server:
        await sessions_at_once(server, turns[:1], 1, MODEL)
        for n in cfg.sessions:
            level = await sessions_at_once(server, turns, n, MODEL)
            _level_wer(level, reference)
            level["metrics"] = await scrape(server.port)
            levels.append(level)
    return levels


def _level_wer(level: dict[str, Any], reference: str) -> None:
    """Replace a level's transcripts by their WER, pooled over its sessions."""
    level.pop("texts")
    errors = words = 0.0
    for texts in level.pop("all_texts"):
        e, n = _wer(reference, " ".join(texts))
        errors, words = errors + e, words + n
    level["wer"] = errors / words if words else math.nan


async def plugin_wer(base_url: str, audio_format: str, clips: tuple[str, ...]) -> dict[str, Any]:
    """Each clip through ``openai_stt.STT`` (one stream, 100 ms frames as fast as it takes them,
    one turn) -> WER, pooled over all reference words."""
    from examples.evaluation import load_reference

    stt = make_stt("ours", base_url, audio_format=audio_format)
    per_clip: dict[str, float] = {}
    errors = words = 0.0
    for clip in clips:
        path = SHARED_AUDIO_DIR / clip
        run = await run_stream(stt, clip_frames(path, frame_ms=100), speed=float("inf"),
                               timeout_s=60.0)  # fmt: skip
        e, n = _wer(load_reference(path) or "", run.final_text())
        per_clip[clip] = e / n if n else math.nan
        errors, words = errors + e, words + n
    await stt.aclose()
    return {"wer": errors / words if words else math.nan, "words": int(words), "per_clip": per_clip}


def _ms(seconds: float) -> str:
    return "n/a" if math.isnan(seconds) else f"{seconds * 1000:.0f} ms"


def _rows(r: Result, plain: dict[str, Any], wer: dict[str, Any], n_turns: int) -> list[Any]:
    rows = []
    bound = r.cfg.latency_bound_s
    kept = [x["sessions"] for x in r.levels if x["p95_s"] <= bound and not x["refused"]]
    first = r.levels[0] if r.levels else None
    if first is not None:
        rows.append(
            (
                f"commit -> final, 1 session, {MODEL} ({r.cfg.capacity_variant})",
                f"median {_ms(first['p50_s'])}, p95 {_ms(first['p95_s'])}",
                f"{first['turns']} turns; target p50 <= 250 ms, p95 <= 400 ms",
            )
        )
        cpu = fmt(first["cpu_s_per_audio_min"], 1, " CPU s")
        rows.append((f"CPU per audio minute, 1 session, {MODEL}", cpu, "partials on"))
    rows.append(
        (
            "CPU per audio minute, 1 session, gpt-4o-transcribe (finals only)",
            fmt(plain["cpu_s_per_audio_min"], 1, " CPU s"),
            f"commit -> final median {_ms(plain['p50_s'])}, p95 {_ms(plain['p95_s'])}",
        )
    )
    rows.append(
        (
            f"concurrent real-time sessions with p95 commit -> final <= {bound * 1000:.0f} ms",
            str(max(kept, default=0)),
            f"of {', '.join(str(x['sessions']) for x in r.levels)} tried; target 8",
        )
    )
    for audio_format, label in (("pcm16", "pcm16 24 kHz"), ("g711_ulaw", "G.711 mu-law 8 kHz")):
        w = wer[audio_format]
        per = ", ".join(f"{c.removesuffix('.wav')} {x:.0%}" for c, x in w["per_clip"].items())
        notes = f"{w['words']} words pooled over {len(w['per_clip'])} clips ({per})"
        rows.append((f"WER through the plugin, {label}", f"{w['wer']:.1%}", notes))
    return rows


def summary(r: Result) -> list[Any]:
    return []  # the server alone: nothing to compare with the official plugin


def _variant_table(r: Result) -> list[str]:
    lines = [
        "| variant | flags | commit -> final p50 | p95 | max | WER | CPU s / audio min | "
        "finals decoded ahead (used/tried) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v in r.variants:
        mark = " (default)" if v["name"] == DEFAULT else ""
        lines.append(
            f"| {v['name']}{mark} | `{v['args']}` | {_ms(v['p50_s'])} | {_ms(v['p95_s'])} | "
            f"{_ms(v['max_s'])} | {v['wer']:.1%} ({v['words']} words) | "
            f"{fmt(v['cpu_s_per_audio_min'], 1)} | {v['ahead']} |"
        )
    return lines


def _capacity_table(r: Result) -> list[str]:
    return _capacity_rows([{**x, "metrics": m} for x, m in zip(r.levels, r.scraped, strict=False)])


def _capacity_rows(levels: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| sessions | commit -> final p50 | p95 | max | server CPU (of the machine) | "
        "WER | pre-commit deltas | partials shed | finals decoded ahead / fast | load avg |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    prev: dict[str, float] = {}
    for x in levels:
        m = x["metrics"]

        shed, hits, fast = (
            m.get(key, math.nan) - prev.get(key, 0.0)  # counters: this level's share
            for key in (
                "openai_stt_server_partials_shed_total",
                'openai_stt_server_speculative_finals_total{outcome="hit"}',
                "openai_stt_server_fast_finals_total",
            )
        )
        prev = m
        lines.append(
            f"| {x['sessions']} | {_ms(x['p50_s'])} | {_ms(x['p95_s'])} | {_ms(x['max_s'])} | "
            f"{x['cpu_util'] * 100:.0f}% | {x.get('wer', math.nan):.1%} | "
            f"{x['pre_commit_deltas']} | {shed:.0f} | "
            f"{hits:.0f} / {fast:.0f} | {x['loadavg']:.2f} |"
        )
    return lines


def _scraped(r: Result) -> list[str]:
    if not r.scraped:
        return []
    last = r.scraped[-1]
    keep = [(k, v) for k, v in last.items() if k.split("{")[0] in SCRAPED]
    return [
        "",
        f"`/metrics` scraped after the {r.levels[-1]['sessions']}-session level (cumulative "
        "over the capacity run):",
        "",
        "| series | value |",
        "|---|---|",
        *(f"| `{k}` | {v:g} |" for k, v in keep),
    ]


def render(r: Result) -> str:
    rows = [f"| {m} | {v} | {n} |" for m, v, n in r.rows]
    cores = os.cpu_count()
    return "\n".join(
        [
            "## Server figures (the local server alone)",
            "",
            "Method: the local server with the faster-whisper engine (Whisper tiny.en, int8, "
            f"CPU, {cores} cores) in its own process, not pinned; its CPU is read with psutil "
            "(the model load is not counted). Raw websockets clients (in the benchmark's "
            "process, on the same cores) speak the demo clip (`two_cities.wav`, 44 s) cut at "
            "its 17 pauses of 0.3 s or more (one turn every 2.6 s), in real time: 100 ms appends "
            "on an absolute schedule and a commit at each pause, as the plugin does with "
            "`chunk_ms=100` and `flush()`; model gpt-realtime-whisper (partial decodes every "
            "1 s for pre-commit deltas). Latency: commit sent -> `completed` received. WER: "
            "the session's finals against the clip's reference, plus each short clip of "
            "`../shared/audio` as one item, pooled over all reference words. Each variant runs "
            "in a fresh server; the capacity run starts 1, 2, 4, 8 sessions at once (starts "
            "spread over one turn) on the default variant and scrapes `/metrics` after each "
            "level.",
            "",
            "**Variants** (one real-time session each):",
            "",
            *_variant_table(r),
            "",
            f"**Capacity** ({r.cfg.capacity_variant}):",
            "",
            *_capacity_table(r),
            *_scraped(r),
            *(
                line
                for name, levels in r.more_levels.items()
                for line in ("", f"Capacity, {name}:", "", *_capacity_rows(levels))
            ),
            "",
            "| metric | value | notes |",
            "|---|---|---|",
            *rows,
        ]
    )
