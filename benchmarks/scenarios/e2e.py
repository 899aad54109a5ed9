"""6. End to end through faster-whisper: end of turn -> FINAL per turn, and word error rate."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from benchmarks.clips import clip_frames, reference_clips, turn_boundaries
from benchmarks.harness.drive import run_stream
from benchmarks.harness.plugins import OracleVAD, open_stt, text
from benchmarks.harness.servers import Server, local_server
from benchmarks.harness.stats import Row, ms, percentile, ratio


@dataclass
class Config:
    clips: tuple[str, ...] = ()
    """Clip names (empty: every clip with a reference text, see ``clips.reference_clips``)."""
    clip_s: float | None = None
    """Use only each clip's first seconds."""
    speed: float = 2.5
    final_timeout_s: float = 30.0
    quiet_s: float = 5.0
    """Stop waiting after this long without a new FINAL (the official plugin sends none for an
    empty transcript, and its stream never ends by itself)."""
    quick: bool = False

    @classmethod
    def small(cls) -> Config:
        return cls(("two_cities.wav",), 5.0, 8.0, 10.0, 2.0, True)


@dataclass
class Result:
    cfg: Config
    runs: list[dict[str, Any]] = field(default_factory=list)
    clips: list[str] = field(default_factory=list)

    def pooled(self, plugin: str) -> tuple[list[float], float]:
        """Every turn's end -> FINAL latency (s), and the WER weighted by reference words."""
        sel = [x for x in self.runs if x["plugin"] == plugin]
        words = sum(x["ref_words"] for x in sel)
        errors = sum(x["wer"] * x["ref_words"] for x in sel)
        return [t for x in sel for t in x["eos_to_final"]], errors / words if words else math.nan


async def run_once(cfg: Config, server: Server, plugin: str, clip: Any) -> dict[str, Any]:
    """Stream a clip at ``speed`` x real time, ending each turn at its boundary (ours:
    ``flush()``, the last one ``end_input()``; official: the oracle VAD); time each turn's
    last frame -> its FINAL."""
    from examples.evaluation import load_reference, word_error_rate

    frames = clip_frames(clip, cfg.clip_s)
    ends = [min(len(frames), round(b * 100)) for b in turn_boundaries(clip, seconds=cfg.clip_s)]
    ends[-1] = len(frames)
    vad = OracleVAD(boundaries_s=[e / 100 for e in ends[:-1]]) if plugin == "official" else None
    async with open_stt(plugin, server.base_url, vad=vad) as stt:
        run = await run_stream(
            stt,
            frames,
            turn_ends=ends,
            flush=plugin == "ours",
            speed=cfg.speed,
            warm_s=0.3,
            timeout_s=cfg.final_timeout_s,
            quiet_s=cfg.quiet_s,
            expect_finals=len(ends),
        )
    # one session, items committed in turn order: the k-th item to get a FINAL is turn k (item
    # ids are random, as OpenAI's are); the last FINAL of an item counts
    finals: dict[str, tuple[float, str]] = {}
    for t, e in run.finals():
        finals[e.request_id] = (t, text(e))  # a dict keeps the first-seen order
    ordered = list(finals.values())
    lat = [ordered[j][0] - t_end for j, t_end in enumerate(run.turn_ends) if j < len(ordered)]
    hypothesis = " ".join(x.strip() for _, x in ordered if x.strip())
    reference = load_reference(clip) or ""
    return {
        "plugin": plugin,
        "clip": clip.name,
        "turns": len(ends),
        "finals": len(finals),
        "eos_to_final": lat,
        "wer": word_error_rate(reference, hypothesis) if reference else math.nan,
        "ref_words": len(reference.split()),
        "audio_s": sum(f.samples_per_channel for f in frames) / frames[0].sample_rate,
    }


async def measure(cfg: Config) -> Result:
    available = reference_clips()
    paths = [p for p in available if not cfg.clips or p.name in cfg.clips] or available[:1]
    result = Result(cfg, clips=[p.name for p in paths])
    async with local_server("whisper", inline=cfg.quick, cpu=None) as server:
        for i, path in enumerate(paths):
            for plugin in ("ours", "official") if i % 2 == 0 else ("official", "ours"):
                result.runs.append(await run_once(cfg, server, plugin, path))
    return result


def summary(r: Result) -> list[Row]:
    (lo, wo), (lf, wf) = r.pooled("ours"), r.pooled("official")
    rows: list[Row] = []
    for figure, q in (("Whisper end to end: end of turn -> FINAL, median", 50), ("  p95", 95)):
        o, f = percentile(lo, q), percentile(lf, q)
        rows.append((figure, ms(o, 0), ms(f, 0), ratio(o, f), ""))
    return [*rows, ("  word error rate (all clips)", f"{wo:.1%}", f"{wf:.1%}", "", "")]


def _per_turn(x: dict[str, Any]) -> str:
    out = ", ".join(f"{t * 1000:.0f}" for t in x["eos_to_final"]) + " ms"
    if x["finals"] < x["turns"]:
        out += f" ({x['turns'] - x['finals']} turn(s) without a FINAL"
        out += ": it sends none for an empty transcript)" if x["plugin"] == "official" else ")"
    return out


def render(r: Result) -> str:
    c = r.cfg
    part = f" (its first {c.clip_s:g} s)" if c.clip_s else ""
    lines = [
        "## 6. End to end through faster-whisper",
        "",
        "Method: the local server with `--engine whisper` (faster-whisper tiny.en int8, partial "
        "pre-commit decodes off, not pinned) in its own process; each clip with a reference "
        f"text{part} streamed at {c.speed:g}× real time through each plugin (alternating which "
        "goes first). Long clips are cut into turns at pauses (`clips.turn_boundaries`); each "
        "turn ends at its boundary (ours: `flush()`, the last one `end_input()`; official: the "
        "oracle VAD). Latency = time from pushing a turn's last frame to that item's "
        "FINAL_TRANSCRIPT: mostly recognizer time, which is the same server for both. WER: "
        '`evaluation.word_error_rate` of the finals joined, against the reference; "all clips" '
        "weights by reference words.",
        "",
        "| clip | audio | turns | ours: end->final per turn | ours WER | official: end->final "
        "per turn | official WER |",
        "|---|---|---|---|---|---|---|",
    ]
    for clip in r.clips:
        o = next((x for x in r.runs if (x["clip"], x["plugin"]) == (clip, "ours")), None)
        f = next((x for x in r.runs if (x["clip"], x["plugin"]) == (clip, "official")), None)
        if o and f:
            lines.append(
                f"| {clip} | {o['audio_s']:.1f} s | {o['turns']} | {_per_turn(o)} | "
                f"{o['wer']:.1%} | {_per_turn(f)} | {f['wer']:.1%} |"
            )
    return "\n".join(lines)
