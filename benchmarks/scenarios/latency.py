"""2-3. Delta -> INTERIM latency; end of turn -> commit; end_input() -> last FINAL, -> end."""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass, field
from typing import Any

from benchmarks.clips import speech_frames_48k
from benchmarks.harness.drive import drain, run_stream
from benchmarks.harness.plugins import FINAL, INTERIM, LABELS, OracleVAD, open_stt, text
from benchmarks.harness.servers import Server, probe_server
from benchmarks.harness.stats import Row, describe, fixed, ms, pass_fail, row, worst

_STAMP = re.compile(r"t=(\d+\.\d+)")


@dataclass
class Config:
    turns: int = 3
    turn_s: float = 1.2
    tail_s: float = 0.5
    """The last, open turn, ended by ``end_input()``."""
    reps: int = 2
    background: int = 19
    """Busy streams of the same plugin beside the measured one, in the loaded runs (0: none)."""
    delta_ms: float = 100.0
    warm_s: float = 0.5
    end_timeout_s: float = 2.0
    """How long after ``end_input()`` a stream may take to end."""
    quick: bool = False

    @classmethod
    def small(cls) -> Config:
        return cls(2, 0.2, 0.1, 1, 0, 50.0, 0.1, 0.3, True)


@dataclass
class Result:
    cfg: Config
    runs: list[dict[str, Any]] = field(default_factory=list)

    def pooled(self, plugin: str, mode: str, background: int = 0) -> dict[str, Any] | None:
        """The runs of one configuration, samples pooled."""
        sel = [
            r
            for r in self.runs
            if (r["plugin"], r["mode"], r["background"]) == (plugin, mode, background)
        ]
        if not sel:
            return None
        shown, total = sum(r["tokens_shown"] for r in sel), sum(r["tokens_total"] for r in sel)
        return {
            "interim": describe([x for r in sel for x in r["interim_latencies"]]),
            "shown_fraction": shown / total if total else math.nan,
            "commit": describe([x for r in sel for x in r["commit_latencies"]]),
            "commits_missing": sum(r["commits_missing"] for r in sel),
            "ends": sum(r["turn_signals"] for r in sel) + len(sel),
            "end_commit": [r["end_input_to_commit"] for r in sel],
            "end_final": [r["end_input_to_last_final"] for r in sel],
            "end_stream": [r["end_input_to_stream_end"] for r in sel],
        }


def _delays(signals: list[float], commits: list[float]) -> list[float | None]:
    """For each end-of-turn signal, the delay to the first commit at or after it (and before
    the next signal); None when no commit answered it."""
    out: list[float | None] = []
    for i, s in enumerate(signals):
        nxt = signals[i + 1] if i + 1 < len(signals) else math.inf
        found = next((c for c in sorted(commits) if s - 1e-4 <= c < nxt), None)
        out.append(None if found is None else found - s)
    return out


async def run_once(
    cfg: Config, server: Server, frames: list[Any], plugin: str, mode: str, background: int = 0
) -> dict[str, Any]:
    """One measured stream (plus ``background`` busy streams): ``turns`` turns ended by
    ``flush()`` (``mode="flush"``) or by the oracle VAD (``"vad"``), then a tail ended by
    ``end_input()``, frames pushed in real time."""
    await server.probe_reset()
    turn_frames = round(cfg.turn_s * 100)
    ends = [turn_frames * (k + 1) for k in range(cfg.turns)]
    n = ends[-1] + round(cfg.tail_s * 100)
    vad = OracleVAD(boundaries_s=[e / 100 for e in ends]) if mode == "vad" else None
    async with (
        open_stt(plugin, server.base_url, vad=vad) as stt,
        open_stt(plugin, server.base_url) as bg_stt,
    ):
        bg = [bg_stt.stream() for _ in range(background)]
        sinks = [asyncio.create_task(drain(s)) for s in bg]
        run = await run_stream(
            stt,
            [frames[i % len(frames)] for i in range(n)],
            turn_ends=ends,
            flush=mode == "flush",
            warm_s=cfg.warm_s,
            background=bg,
            timeout_s=cfg.end_timeout_s,
        )
        await asyncio.gather(*(s.aclose() for s in bg), return_exceptions=True)
        for t in sinks:
            t.cancel()
    records = await server.probe_records()
    commits = [c for r in records for c in r["commits"]]
    t_end = run.end_input_at
    # the VAD's own end-of-input END_OF_SPEECH comes after end_input()
    signals = [s for s in vad.eos_times if s < t_end] if vad else run.turn_ends
    delays = _delays([*signals, t_end], commits)
    shown: dict[str, float] = {}
    final_stamps: set[str] = set()
    for t, e in run.events:
        stamps = _STAMP.findall(text(e))
        if e.type == INTERIM:
            for s in stamps:
                shown.setdefault(s, t - float(s))
        elif e.type == FINAL:
            final_stamps.update(stamps)
    finals_after = [t for t, _ in run.finals() if t >= t_end]
    return {
        "plugin": plugin,
        "mode": mode,
        "background": background,
        "interim_latencies": list(shown.values()),
        "tokens_shown": len(shown),
        "tokens_total": len(shown.keys() | final_stamps),
        "turn_signals": len(signals),
        "commit_latencies": [d for d in delays[:-1] if d is not None],
        "commits_missing": sum(d is None for d in delays),
        "end_input_to_commit": delays[-1],
        "end_input_to_last_final": finals_after[-1] - t_end if finals_after else None,
        "end_input_to_stream_end": run.ended_at - t_end if run.ended_at else None,
    }


async def measure(cfg: Config) -> Result:
    result = Result(cfg)
    frames = speech_frames_48k(20)
    configs = [("ours", "flush"), ("official", "vad"), ("ours", "vad")]
    async with probe_server(cfg.delta_ms, inline=cfg.quick) as server:
        for rep in range(cfg.reps):
            for plugin, mode in configs if rep % 2 == 0 else configs[::-1]:
                result.runs.append(await run_once(cfg, server, frames, plugin, mode))
        # the official plugin's flush() (what AgentSession would call): does it commit?
        result.runs.append(await run_once(cfg, server, frames, "official", "flush"))
        if cfg.background:
            for plugin, mode in (("ours", "flush"), ("official", "vad")):
                result.runs.append(
                    await run_once(cfg, server, frames, plugin, mode, cfg.background)
                )
    return result


def summary(r: Result) -> list[Row]:
    o, f, of = r.pooled("ours", "flush"), r.pooled("official", "vad"), r.pooled("official", "flush")
    assert o and f
    p95, last = o["interim"]["p95"], worst(o["end_final"])
    flush = "never (flush() sends no commit)" if of and of["commits_missing"] else "?"
    end = "never (stays open until aclose())"
    if not any(x is None for x in f["end_stream"]):
        end = ms(worst(f["end_stream"]), 2)
    return [
        row(
            "Server delta -> INTERIM, p95",
            p95,
            f["interim"]["p95"],
            _ms,
            f"≤ 5 ms: {pass_fail(p95 <= 0.005)}",
        ),
        row(
            "  deltas shown as an interim",
            o["shown_fraction"],
            f["shown_fraction"],
            fixed(0, "%", 100),
            div=False,
        ),
        row(
            "End of turn -> commit received, p95 (ours: flush(); official: VAD)",
            o["commit"]["p95"],
            f["commit"]["p95"],
            _ms,
        ),
        ("  flush() -> commit", ms(o["commit"]["median"], 2) + " median", flush, "", ""),
        row(
            "end_input() -> last FINAL, worst run (recognizer time 0)",
            last,
            worst(f["end_final"]),
            _ms,
            f"≤ 1 s + recognizer: {pass_fail(last <= 1.0)}",
        ),
        ("end_input() -> end of the stream, worst run", ms(worst(o["end_stream"]), 2), end, "", ""),
    ]


def _ms(seconds: float) -> str:
    return ms(seconds, 2 if seconds < 0.01 else 1)


def _worst_of_runs(xs: list[float | None]) -> str:
    if all(x is None for x in xs):
        return "never"
    if any(x is None for x in xs):
        return f"{ms(worst(xs), 2)}, never in {sum(x is None for x in xs)} run(s)"
    return ms(worst(xs), 2) + " (worst)"


def render(r: Result) -> str:
    c = r.cfg
    lines = [
        "## 2-3. Latency: delta -> interim, end of turn -> commit, end_input() -> final",
        "",
        "Method: the probe server (`benchmarks/harness/probe.py`) runs in its own process on the "
        f"other CPU. While audio arrives it sends a delta every {c.delta_ms:g} ms whose text is "
        "` t=<CLOCK_MONOTONIC seconds>` read just before the send (both processes share "
        "CLOCK_MONOTONIC on Linux); on a commit it records the receive time, sends `committed` "
        "and at once `completed` (recognizer time zero). One stream per run, "
        f"{c.turns} turns of {c.turn_s:g} s plus a {c.tail_s:g} s tail ended by `end_input()`, "
        "frames pushed in real time. A delta's latency is the time until the app iterating the "
        "stream receives an INTERIM_TRANSCRIPT containing its stamp. The end of a turn is ours: "
        "`stream.flush()` (what AgentSession does for an STT with `manual_flush`), or the same "
        "VAD as the official plugin; official: an oracle VAD (`harness.plugins.OracleVAD`, no "
        "model, fires END_OF_SPEECH exactly at the turn boundary and at end of input) standing "
        "in for the Silero VAD it loads by default, since it commits only on its VAD's "
        f"END_OF_SPEECH. {c.reps} runs per configuration, alternating; all samples pooled.",
        "",
        "| configuration | delta->interim median / p95 / max (n) | deltas shown as interim | "
        "end of turn -> commit median / p95 / max (n) | end_input -> commit | "
        "end_input -> last FINAL | end_input -> end of stream |",
        "|---|---|---|---|---|---|---|",
    ]
    for plugin, mode, bg in dict.fromkeys(
        [
            ("ours", "flush", 0),
            ("ours", "vad", 0),
            ("official", "vad", 0),
            ("official", "flush", 0),
            ("ours", "flush", c.background),
            ("official", "vad", c.background),
        ]
    ):
        s = r.pooled(plugin, mode, bg)
        if s is None:
            continue
        i, m = s["interim"], s["commit"]
        label = f"{LABELS[plugin]}, {'flush()' if mode == 'flush' else 'oracle VAD'}"
        label += f", +{bg} busy streams" if bg else ""
        lines.append(
            f"| {label} | {ms(i['median'], 2)} / {ms(i['p95'], 2)} / {ms(i['max'], 2)} "
            f"({i['n']}) | {s['shown_fraction']:.0%} | {ms(m['median'], 2)} / {ms(m['p95'], 2)} / "
            f"{ms(m['max'], 2)} ({m['n']}; {s['commits_missing']} of {s['ends']} ends got no "
            f"commit) | {_worst_of_runs(s['end_commit'])} | {_worst_of_runs(s['end_final'])} | "
            f"{_worst_of_runs(s['end_stream'])} |"
        )
    lines += [
        "",
        "The official plugin emits an INTERIM at most every 0.5 s (`_delta_transcript_interval`): "
        "a delta arriving sooner is not shown until a later delta after the interval (or at "
        "all, if the turn's final comes first). Its `flush()` sends no commit (only the VAD "
        "commits), and after `end_input()` its stream stays open (the receive task waits for "
        "the socket) until `aclose()`.",
    ]
    return "\n".join(lines)
