"""The local server's own figures (issue 4): CPU per audio minute, end of speech -> final,
concurrent real-time sessions, and WER through the plugin (pcm16 vs G.711)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.clips import SHARED_AUDIO_DIR, SHARED_AUDIO_MISSING, clip_frames, shared_audio_dir
from benchmarks.harness.drive import Pacer, run_stream
from benchmarks.harness.plugins import make_stt
from benchmarks.harness.servers import Server, local_server
from benchmarks.harness.stats import fmt, percentile

CHUNK_S, RATE = 0.1, 24000
JFK_CUTS_S = (2.78, 4.90, 7.92)
"""jfk.wav cut in the middle of its pauses (Silero finds speech at 0.32-2.24, 3.33-4.35,
5.44-7.62, 8.22-10.5 s), so each turn ends at an end of speech."""


@dataclass
class Config:
    max_sessions: int = 4
    """The concurrency ramp (1, 2, 4, ...) stops here."""
    latency_bound_s: float = 2.0
    """p95 end of speech -> final above which a concurrency level has fallen behind."""
    delta_interval_s: float = 1.0
    """The server's partial (pre-commit) decode interval."""
    script_s: float | None = None
    """Only the script's first seconds."""
    wer_clips: tuple[str, ...] = (
        "jfk.wav",
        "goforward.wav",
        "librivox-0880.wav",
        "librivox-0930.wav",
    )
    quick: bool = False

    @classmethod
    def small(cls) -> Config:
        return cls(max_sessions=1, script_s=0.5, wer_clips=("goforward.wav",), quick=True)


@dataclass
class Result:
    cfg: Config
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    """metric, value, notes."""
    levels: list[dict[str, Any]] = field(default_factory=list)


def turn_script(script_s: float | None) -> list[bytes]:
    """What one real-time session says, pcm16 24 kHz, one utterance per turn: goforward.wav,
    then jfk.wav in 4 (14 s, 5 turns)."""
    from examples.evaluation import read_wav
    from livekit.plugins.openai_stt.server.engines import resample_int16

    def pcm(name: str) -> Any:
        samples, rate = read_wav(SHARED_AUDIO_DIR / name)
        return resample_int16(samples[:, 0], rate, RATE)

    jfk = pcm("jfk.wav")
    cuts = [0, *(round(c * RATE) for c in JFK_CUTS_S), len(jfk)]
    turns = [pcm("goforward.wav"), *(jfk[a:b] for a, b in itertools.pairwise(cuts))]
    if script_s is not None:
        turns = [turns[0][: round(script_s * RATE)]]
    return [t.astype("<i2").tobytes() for t in turns]


async def realtime_session(
    ws_url: str, turns: Sequence[bytes], model: str, delay_s: float = 0.0
) -> dict[str, Any]:
    """Speak ``turns`` in real time (100 ms appends on an absolute schedule, a client commit
    after each turn). Latency: commit sent -> ``completed`` received."""
    from websockets.asyncio.client import connect

    await asyncio.sleep(delay_s)
    loop = asyncio.get_running_loop()
    commits: list[float] = []
    done: dict[int, float] = {}
    index: dict[str, int] = {}
    pre_commit = [0]
    all_done = asyncio.Event()
    audio_in = {
        "format": {"type": "audio/pcm", "rate": RATE},
        "transcription": {"model": model, "language": "en"},
        "turn_detection": None,
    }
    session = {"type": "transcription", "audio": {"input": audio_in}}
    headers = {"Authorization": "Bearer bench"}
    async with connect(f"{ws_url}?intent=transcription", additional_headers=headers) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "session.update", "session": session}))
        await ws.recv()

        async def reader() -> None:
            async for message in ws:
                event = json.loads(message)
                kind = event["type"]
                if kind == "input_audio_buffer.committed":
                    index[event["item_id"]] = len(index)
                elif kind.endswith("transcription.delta") and event["item_id"] not in index:
                    pre_commit[0] += 1
                elif kind.endswith("transcription.completed"):
                    done[index[event["item_id"]]] = loop.time()
                    if len(done) == len(turns):
                        all_done.set()
                elif kind == "error":
                    raise RuntimeError(event["error"])

        read = asyncio.create_task(reader())
        pacer, chunk = Pacer(CHUNK_S), round(RATE * CHUNK_S) * 2
        for turn in turns:
            for k in range(0, len(turn), chunk):
                await pacer.tick()
                audio = base64.b64encode(turn[k : k + chunk]).decode()
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
            await pacer.tick()
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            commits.append(loop.time())
        try:
            await asyncio.wait_for(all_done.wait(), 60)
        finally:
            read.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await read
    return {
        "audio_s": sum(len(t) for t in turns) / (2 * RATE),
        "latencies": [done[i] - commits[i] for i in sorted(done)],
        "pre_commit_deltas": pre_commit[0],
    }


async def level(server: Server, turns: Sequence[bytes], n: int, model: str) -> dict[str, Any]:
    """``n`` real-time sessions at once (starts spread over 2 s); server CPU and latencies."""
    rng = random.Random(n)
    delays = [0.0] + [rng.uniform(0, 2.0) for _ in range(n - 1)]
    cpu0, wall0 = server.cpu_s(), time.monotonic()
    runs = await asyncio.gather(*(realtime_session(server.ws_url, turns, model, d) for d in delays))
    cpu, wall = server.cpu_s() - cpu0, time.monotonic() - wall0
    lat = [x for r in runs for x in r["latencies"]]
    return {
        "sessions": n,
        "cpu_s_per_audio_min": cpu / (sum(r["audio_s"] for r in runs) / 60),
        "cpu_util": cpu / wall / (os.cpu_count() or 1),
        "p50_s": percentile(lat, 50),
        "p95_s": percentile(lat, 95),
        "turns": len(lat),
        "pre_commit_deltas": sum(r["pre_commit_deltas"] for r in runs),
    }


async def plugin_wer(base_url: str, audio_format: str, clips: Sequence[str]) -> dict[str, Any]:
    """Each clip through ``openai_stt.STT`` (one stream, 100 ms frames as fast as it takes them,
    one turn) -> WER, pooled over all reference words."""
    from examples.evaluation import load_reference, normalize_transcript, word_error_rate

    stt = make_stt("ours", base_url, audio_format=audio_format)
    per_clip: dict[str, float] = {}
    errors = words = 0
    for clip in clips:
        path = SHARED_AUDIO_DIR / clip
        reference = load_reference(path) or ""
        frames = clip_frames(path, frame_ms=100)
        run = await run_stream(stt, frames, speed=float("inf"), timeout_s=60.0)
        per_clip[clip] = word_error_rate(reference, run.final_text())
        n = len(normalize_transcript(reference).split())
        errors, words = errors + per_clip[clip] * n, words + n
    await stt.aclose()
    return {"wer": errors / words, "words": words, "per_clip": per_clip}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


async def measure(cfg: Config) -> Result:
    result = Result(cfg)
    if shared_audio_dir() is None:
        result.rows.append(("skipped", "-", f"the local server's figures {SHARED_AUDIO_MISSING}"))
        return result
    turns = turn_script(cfg.script_s)
    script = f"{sum(len(t) for t in turns) / (2 * RATE):.0f} s script, {len(turns)} turns"
    partials = cfg.delta_interval_s
    async with local_server("whisper", inline=cfg.quick, partials_s=partials, cpu=None) as server:
        await level(server, turns[:1], 1, "gpt-4o-transcribe")  # the first decode allocates
        n = 1
        while n <= cfg.max_sessions:
            result.levels.append(await level(server, turns, n, "gpt-realtime-whisper"))
            if result.levels[-1]["p95_s"] > cfg.latency_bound_s:
                break
            n *= 2
        plain = await level(server, turns, 1, "gpt-4o-transcribe")
        wer = {
            f: await plugin_wer(server.base_url, f, cfg.wer_clips) for f in ("pcm16", "g711_ulaw")
        }
    one, bound = result.levels[0], cfg.latency_bound_s
    deltas = (
        f"partial decode every {partials:g} s ({one['pre_commit_deltas']} deltas before commits)"
    )
    for model, x, kind, notes in (
        ("gpt-realtime-whisper", one, "pre-commit deltas", f"real time, {script}, {deltas}"),
        ("gpt-4o-transcribe", plain, "client commits", "finals only, no partial decodes"),
    ):
        cpu = fmt(x["cpu_s_per_audio_min"], 1, " CPU s")
        result.rows.append((f"CPU per audio minute, 1 session, {model} ({kind})", cpu, notes))
        metric = f"end of speech (commit) -> final, 1 session, {model}"
        result.rows.append(
            (metric, f"median {_ms(x['p50_s'])}, p95 {_ms(x['p95_s'])}", f"{x['turns']} turns")
        )
    ramp = "; ".join(
        f"{x['sessions']}: p50 {_ms(x['p50_s'])} / p95 {_ms(x['p95_s'])}, "
        f"CPU {x['cpu_util'] * 100:.0f}%"
        for x in result.levels
    )
    if result.levels[-1]["p95_s"] <= bound:
        ramp += f"; the ramp stopped at {cfg.max_sessions}"
    kept_up = max((x["sessions"] for x in result.levels if x["p95_s"] <= bound), default=0)
    notes = f"largest count with p95 commit->final <= {bound:g} s; sessions: {ramp}"
    result.rows.append(
        ("concurrent real-time sessions (gpt-realtime-whisper)", str(kept_up), notes)
    )
    for audio_format, label in (("pcm16", "pcm16 24 kHz"), ("g711_ulaw", "G.711 mu-law 8 kHz")):
        w = wer[audio_format]
        per = ", ".join(f"{c.removesuffix('.wav')} {x:.0%}" for c, x in w["per_clip"].items())
        notes = f"{w['words']} words pooled over {len(w['per_clip'])} clips ({per})"
        result.rows.append((f"WER through the plugin, {label}", f"{w['wer']:.1%}", notes))
    return result


def summary(r: Result) -> list[Any]:
    return []  # the server alone: nothing to compare with the official plugin


def render(r: Result) -> str:
    rows = [f"| {m} | {v} | {n} |" for m, v, n in r.rows]
    return "\n".join(
        [
            "## Server figures (the local server alone)",
            "",
            "Method: the local server with the faster-whisper engine (Whisper tiny.en, int8, "
            "CPU, one decode worker) in its own process, not pinned; its CPU is read with psutil "
            "(the model load is not counted). Raw websockets clients speak a script of the "
            "team's clips in real time (100 ms appends on an absolute schedule, a client commit "
            "at the end of each utterance): one session of gpt-realtime-whisper (partial "
            "pre-commit decodes), then 1, 2, 4, ... sessions at once (starts spread over 2 s) "
            "until the p95 latency passes the bound, and one session of gpt-4o-transcribe "
            "(finals only). Latency: commit sent -> `completed` received. WER: each clip through "
            "`openai_stt.STT`, one stream, pcm16 24 kHz vs G.711 µ-law 8 kHz, pooled over all "
            "reference words.",
            "",
            "| metric | value | notes |",
            "|---|---|---|",
            *rows,
        ]
    )
