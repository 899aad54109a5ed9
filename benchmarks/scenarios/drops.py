"""7. Audio lost across connection drops, both plugins; where each commits a turn's end.

:func:`lost_audio` is also the resilience section's drop measurement."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from benchmarks.clips import speech_frames_48k
from benchmarks.harness.drive import StreamRun, run_stream
from benchmarks.harness.plugins import LABELS, OracleVAD, open_stt, text
from benchmarks.harness.servers import local_server
from benchmarks.harness.stats import Row, fixed, fmt, pass_fail, row

_SECONDS = re.compile(r"(\d+\.\d+) seconds of audio")


def seconds_in_finals(run: StreamRun) -> list[float]:
    """The audio each FINAL says its item held, seconds (the scripted engine's transcript)."""
    return [float(m) for _, e in run.finals() for m in _SECONDS.findall(text(e))]


async def lost_audio(
    plugin: str,
    seconds: float,
    turn_s: float,
    faults: Any = None,
    *,
    speed: float = 1.0,
    settle_s: float = 2.5,
    conn_options: Any = None,
    **ours: Any,
) -> dict[str, Any]:
    """``seconds`` of speech through one stream at ``speed`` x real time, a turn ended every
    ``turn_s`` (ours: ``flush()``; official: the oracle VAD), the last one by ``end_input()``,
    against a scripted local server injecting ``faults``; waits for the stream to end (the
    official one never does: ``settle_s`` without a new FINAL). ``ours``: further
    ``openai_stt.STT`` options."""
    from livekit.plugins.openai_stt.server import Faults

    frames = speech_frames_48k(20)
    n, turn_frames = round(seconds * 100), round(turn_s * 100)
    frames = [frames[i % len(frames)] for i in range(n)]
    vad = OracleVAD(turn_s=turn_s) if plugin == "official" else None
    errors: list[str] = []
    async with (
        local_server(inline=True, faults=faults or Faults()) as server,
        open_stt(plugin, server.base_url, vad=vad, **ours) as stt,
    ):
        stt.on("error", lambda e: errors.append(type(e.error).__name__))
        run = await run_stream(
            stt,
            frames,
            turn_ends=range(turn_frames, n, turn_frames),
            flush=plugin == "ours",
            speed=speed,
            conn_options=conn_options,
            timeout_s=settle_s + 60.0,
            quiet_s=settle_s if plugin == "official" else None,
        )
        counters = server.local.counters
    items = seconds_in_finals(run)
    lost = seconds - sum(items)
    return {
        "plugin": plugin,
        "drop_mode": faults.drop_mode if faults else "none",
        "audio_s": seconds,
        "turn_s": turn_s,
        "transcribed_s": sum(items),
        "items_s": items,
        "lost_ms": max(0.0, lost) * 1000,
        "duplicated_ms": max(0.0, -lost) * 1000,
        "drops": counters.drops,
        "sessions": counters.sessions_opened,
        "lost_ms_per_drop": max(0.0, lost) * 1000 / counters.drops if counters.drops else math.nan,
        "finals": len(run.finals()),
        "turns": len(range(turn_frames, n, turn_frames)) + 1,
        "errors": errors,
        "stream_error": run.error,
    }


@dataclass
class Config:
    modes: tuple[str, ...] = ("close_1011", "reset")
    seconds: float = 4.5
    turn_s: float = 1.0
    drop_after_ms: float = 1500.0
    drops: int = 3
    settle_s: float = 2.5
    control_turns: int = 4
    control_turn_s: float = 1.03
    """Not a multiple of 50 ms (the official plugin's chunk)."""
    control_tail_s: float = 0.5
    speed: float = 1.0
    quick: bool = False

    @classmethod
    def small(cls) -> Config:
        return cls(("close_1011",), 1.2, 0.4, 500.0, 1, 0.5, 2, 0.33, 0.2, 3.0, True)


@dataclass
class Result:
    cfg: Config
    runs: list[dict[str, Any]] = field(default_factory=list)
    controls: list[dict[str, Any]] = field(default_factory=list)

    def per_drop(self, plugin: str) -> tuple[float, int]:
        sel = [x for x in self.runs if x["plugin"] == plugin]
        n = sum(x["drops"] for x in sel)
        return (sum(x["lost_ms"] for x in sel) / n if n else math.nan), n


async def measure(cfg: Config) -> Result:
    from livekit.plugins.openai_stt.server import Faults

    result = Result(cfg)
    for mode in cfg.modes:
        for plugin in ("ours", "official"):
            faults = Faults(
                drop_after_audio_ms=cfg.drop_after_ms, drop_sessions=cfg.drops, drop_mode=mode
            )
            result.runs.append(
                await lost_audio(
                    plugin, cfg.seconds, cfg.turn_s, faults, speed=cfg.speed, settle_s=cfg.settle_s
                )
            )
    # control without drops: where each plugin cuts a turn that is not on its chunk grid
    seconds = cfg.control_turns * cfg.control_turn_s + cfg.control_tail_s
    for plugin in ("ours", "official"):
        result.controls.append(
            await lost_audio(
                plugin, seconds, cfg.control_turn_s, speed=cfg.speed, settle_s=cfg.settle_s
            )
        )
    return result


def _worst_cut_ms(x: dict[str, Any]) -> float:
    # the last item is the tail ended by end_input()
    return max((abs(s - x["turn_s"]) for s in x["items_s"][:-1]), default=math.nan) * 1000


def summary(r: Result) -> list[Row]:
    (o, no), (f, nf) = r.per_drop("ours"), r.per_drop("official")
    ctl = {x["plugin"]: _worst_cut_ms(x) for x in r.controls}
    cut = (
        f"Turn audio committed where the turn ends: worst error ({r.cfg.control_turn_s:g} s turns)"
    )
    return [
        row(
            f"Audio lost per connection drop ({no} / {nf} drops)",
            o,
            f,
            fixed(0, " ms"),
            f"0 lost: {pass_fail(o == 0)}",
            div=False,
        ),
        row(cut, ctl["ours"], ctl["official"], fixed(0, " ms"), div=False),
    ]


def render(r: Result) -> str:
    c = r.cfg
    pace = "real time" if c.speed == 1 else f"{c.speed:g}× real time"
    lines = [
        "## 7. Audio lost across connection drops",
        "",
        "Method: a fresh local server (scripted engine, in the client's process) per run, with "
        f"`Faults(drop_after_audio_ms={c.drop_after_ms:g}, drop_sessions={c.drops})` (the CLI's "
        f"`--drop-after-audio-ms {c.drop_after_ms:g} --drop-sessions {c.drops}`): each of the "
        f"first {c.drops} sessions is dropped once it has received {c.drop_after_ms:g} ms of "
        "audio (`close_1011`: close frame 1011; `reset`: TCP abort). "
        f"{c.seconds:g} s of audio in {pace}, a turn ended every {c.turn_s:g} s (ours: "
        "`flush()`; official: oracle VAD). The scripted engine's transcript of each item is its "
        'duration ("1.00 seconds of audio"), so audio lost = audio pushed - the sum over the '
        "finals.",
        "",
        "| plugin | drop mode | drops | sessions | audio pushed | in finals | lost | "
        "lost per drop | errors reported |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for x in r.runs:
        dup = f" (+{x['duplicated_ms']:.0f} ms duplicated)" if x["duplicated_ms"] >= 0.5 else ""
        lines.append(
            f"| {LABELS[x['plugin']]} | {x['drop_mode']} | {x['drops']} | {x['sessions']} | "
            f"{x['audio_s']:.2f} s | {x['transcribed_s']:.2f} s | {x['lost_ms']:.0f} ms{dup} | "
            f"{fmt(x['lost_ms_per_drop'], 0, ' ms')} | {len(x['errors'])} |"
        )
    lines += [
        "",
        f"**Control, no drop: where a turn ends.** Turns of {c.control_turn_s:g} s (not a "
        "multiple of 50 ms), the last one ended by `end_input()`; each item's audio as the "
        "server received it:",
        "",
        "| plugin | items (s) | sum |",
        "|---|---|---|",
    ]
    for x in r.controls:
        items = ", ".join(f"{s:.2f}" for s in x["items_s"])
        lines.append(
            f"| {LABELS[x['plugin']]} | {items} | {sum(x['items_s']):.2f} of {x['audio_s']:.2f} s |"
        )
    lines += [
        "",
        "The official plugin sends its commit from the VAD task straight to the socket, while "
        "the turn's last partial 50 ms chunk still waits in its `AudioByteStream`: items are cut "
        "on its 50 ms grid, and up to 50 ms of a turn's end is transcribed with the next turn. "
        "Ours queues the commit behind the audio it closes.",
        "",
        "The official plugin reconnects (LiveKit's base-stream retry), but what it appended to "
        "the dead socket and had not committed is gone: the server discards an uncommitted "
        "buffer with its session (docs/protocol.md §6). Ours keeps every unfinalised turn's "
        "audio and replays it, commits included, on the new socket.",
    ]
    return "\n".join(lines)
