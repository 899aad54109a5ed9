"""The local server's own figures (issue 4): CPU per audio minute, end of speech -> final,
concurrent real-time sessions, and WER through the plugin (pcm16 vs G.711).

The faster-whisper engine (Whisper tiny.en, int8, CPU) runs in its own process (not pinned;
psutil reads its CPU, the model load not counted). Raw websockets clients drive the real-time
sessions (cheap and exact to pace: 100 ms appends on an absolute schedule, a client commit at
the end of each utterance); the plugin is used for WER (its resampling and G.711 encoding are
part of that path). The turn script and the WER clips are the team's clips (``../shared``).
"""

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

CHUNK_S = 0.1
RATE = 24000
JFK_CUTS_S = (2.78, 4.90, 7.92)
"""jfk.wav cut in the middle of its pauses (Silero finds speech at 0.32-2.24, 3.33-4.35,
5.44-7.62, 8.22-10.5 s), so each turn ends at an end of speech."""
WER_CLIPS = ("jfk.wav", "goforward.wav", "librivox-0880.wav", "librivox-0930.wav")


@dataclass
class Config:
    full: bool = False
    """The long form (:meth:`long`): a 20 s script of 7 turns (14 s / 5 turns otherwise), a
    server-VAD row, two_cities.wav in the WER."""
    max_sessions: int = 4
    """The concurrency ramp (1, 2, 4, ...) stops here."""
    latency_bound_s: float = 2.0
    """p95 end of speech -> final above which a concurrency level has fallen behind."""
    delta_interval_s: float = 1.0
    """The server's partial (pre-commit) decode interval."""
    script_s: float | None = None
    """Cut the turn script to its first seconds."""
    wer_clips: tuple[str, ...] = WER_CLIPS
    quick: bool = False

    @classmethod
    def small(cls) -> Config:
        return cls(max_sessions=1, script_s=0.5, wer_clips=("goforward.wav",), quick=True)

    @classmethod
    def long(cls) -> Config:
        return cls(full=True, max_sessions=16)


@dataclass
class Result:
    cfg: Config
    rows: list[dict[str, Any]] = field(default_factory=list)
    """metric, value, notes, data."""

    def add(self, metric: str, value: str, notes: str = "", data: Any = None) -> None:
        self.rows.append({"metric": metric, "value": value, "notes": notes, "data": data})


def turn_script(cfg: Config) -> list[bytes]:
    """The utterances one real-time session speaks, pcm16 24 kHz, one per turn."""
    from examples.evaluation import read_wav
    from livekit.plugins.openai_stt.server.engines import resample_int16

    def pcm(name: str) -> Any:
        samples, rate = read_wav(SHARED_AUDIO_DIR / name)
        return resample_int16(samples[:, 0], rate, RATE)

    jfk = pcm("jfk.wav")
    cuts = [0, *(round(c * RATE) for c in JFK_CUTS_S), len(jfk)]
    turns = [pcm("goforward.wav"), *(jfk[a:b] for a, b in itertools.pairwise(cuts))]
    if cfg.full:
        turns += [pcm("librivox-0880.wav"), pcm("librivox-0930.wav")]
    if cfg.script_s is not None:
        turns = [turns[0][: round(cfg.script_s * RATE)]]
    return [t.astype("<i2").tobytes() for t in turns]


async def realtime_session(
    ws_url: str, turns: Sequence[bytes], *, model: str, server_vad: bool = False, delay_s: float = 0
) -> dict[str, Any]:
    """Speak ``turns`` at real time (100 ms appends on an absolute schedule); a client commit
    after each turn, or with ``server_vad`` 0.8 s of silence and the server's own commits.
    Latency: commit sent (or ``speech_stopped`` received) -> ``completed`` received."""
    from websockets.asyncio.client import connect

    await asyncio.sleep(delay_s)
    loop = asyncio.get_running_loop()
    chunk = round(RATE * CHUNK_S) * 2
    td = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300}
    ends: list[float] = []  # end-of-speech times, in order of items
    done: dict[int, float] = {}
    index: dict[str, int] = {}
    pre_commit = [0]
    all_done = asyncio.Event()
    script = [t + bytes(int(RATE * 0.8) * 2) for t in turns] if server_vad else list(turns)
    session = {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": RATE},
                "transcription": {"model": model, "language": "en"},
                "turn_detection": {**td, "silence_duration_ms": 500} if server_vad else None,
            }
        },
    }
    async with connect(
        ws_url + "?intent=transcription",
        additional_headers={"Authorization": "Bearer bench"},
        max_size=None,
    ) as ws:
        await ws.recv()
        await ws.send(json.dumps({"type": "session.update", "session": session}))
        await ws.recv()

        async def reader() -> None:
            async for message in ws:
                event, now = json.loads(message), loop.time()
                kind = event["type"]
                if kind == "input_audio_buffer.speech_stopped":
                    ends.append(now)
                elif kind == "input_audio_buffer.committed":
                    index[event["item_id"]] = len(index)
                elif kind.endswith("transcription.delta") and event["item_id"] not in index:
                    pre_commit[0] += 1
                elif kind.endswith("transcription.completed"):
                    done[index[event["item_id"]]] = now
                    if len(done) >= len(turns):
                        all_done.set()
                elif kind == "error":
                    raise RuntimeError(event["error"])

        read = asyncio.create_task(reader())
        pacer = Pacer(CHUNK_S)
        for turn in script:
            for k in range(0, len(turn), chunk):
                await pacer.tick()
                audio = base64.b64encode(turn[k : k + chunk]).decode()
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
            if not server_vad:
                await pacer.tick()
                await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
                ends.append(loop.time())
        try:
            await asyncio.wait_for(all_done.wait(), 60)
        finally:
            read.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await read
    return {
        "audio_s": sum(len(t) for t in script) / (2 * RATE),
        "latencies": [done[i] - ends[i] for i in sorted(done) if i < len(ends)],
        "pre_commit_deltas": pre_commit[0],
    }


async def level(
    server: Server, turns: Sequence[bytes], n: int, *, model: str, server_vad: bool = False
) -> dict[str, Any]:
    """``n`` real-time sessions at once (starts spread over 2 s); server CPU and latencies."""
    rng = random.Random(n)
    cpu0, wall0 = server.cpu_s(), time.monotonic()
    results = await asyncio.gather(
        *(
            realtime_session(
                server.ws_url,
                turns,
                model=model,
                server_vad=server_vad,
                delay_s=0.0 if i == 0 else rng.uniform(0, 2.0),
            )
            for i in range(n)
        )
    )
    cpu, wall = server.cpu_s() - cpu0, time.monotonic() - wall0
    audio_s = sum(r["audio_s"] for r in results)
    lat = [x for r in results for x in r["latencies"]]
    return {
        "sessions": n,
        "cpu_s_per_audio_min": cpu / (audio_s / 60),
        "cpu_util": cpu / wall / (os.cpu_count() or 1),
        "p50_s": percentile(lat, 50),
        "p95_s": percentile(lat, 95),
        "turns": len(lat),
        "pre_commit_deltas": sum(r["pre_commit_deltas"] for r in results),
    }


async def plugin_wer(base_url: str, audio_format: str, clips: Sequence[str]) -> dict[str, Any]:
    """Each clip through ``openai_stt.STT`` (one stream, 100 ms frames as fast as it takes them,
    one turn) -> WER pooled over all reference words."""
    from examples.evaluation import load_reference, normalize_transcript, word_error_rate

    stt = make_stt("ours", base_url, audio_format=audio_format)
    per_clip: dict[str, float] = {}
    errors = words = 0.0
    for clip in clips:
        path = SHARED_AUDIO_DIR / clip
        reference = load_reference(path) or ""
        frames = clip_frames(path, frame_ms=100)
        run = await run_stream(stt, frames, speed=float("inf"), timeout_s=60.0)
        per_clip[clip] = word_error_rate(reference, run.final_text())
        n = len(normalize_transcript(reference).split())
        errors, words = errors + per_clip[clip] * n, words + n
    await stt.aclose()
    return {"wer": errors / words, "words": int(words), "per_clip": per_clip}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


async def measure(cfg: Config) -> Result:
    result = Result(cfg)
    if shared_audio_dir() is None:
        result.add("skipped", "-", f"the local server's figures {SHARED_AUDIO_MISSING}")
        return result
    turns = turn_script(cfg)
    script_s = sum(len(t) for t in turns) / (2 * RATE)
    result.add(
        "recognizer", "Whisper tiny.en int8 (faster-whisper)", "one decode worker; Silero VAD"
    )
    async with local_server(
        "whisper", inline=cfg.quick, partials_s=cfg.delta_interval_s, cpu=None
    ) as server:
        await level(server, turns[:1], 1, model="gpt-4o-transcribe")  # the first decode allocates
        levels, n = [], 1
        while n <= cfg.max_sessions:
            levels.append(await level(server, turns, n, model="gpt-realtime-whisper"))
            if levels[-1]["p95_s"] > cfg.latency_bound_s:
                break
            n *= 2
        one = levels[0]
        result.add(
            "CPU per audio minute, 1 session, gpt-realtime-whisper (pre-commit deltas)",
            fmt(one["cpu_s_per_audio_min"], 1, " CPU s"),
            f"real time, {script_s:.0f} s script, {one['turns']} turns, partial decode every "
            f"{cfg.delta_interval_s:g} s ({one['pre_commit_deltas']} deltas before commits)",
            one,
        )
        result.add(
            "end of speech (commit) -> final, 1 session, gpt-realtime-whisper",
            f"median {_ms(one['p50_s'])}, p95 {_ms(one['p95_s'])}",
            f"{one['turns']} turns",
        )
        plain = await level(server, turns, 1, model="gpt-4o-transcribe")
        result.add(
            "CPU per audio minute, 1 session, gpt-4o-transcribe (client commits)",
            fmt(plain["cpu_s_per_audio_min"], 1, " CPU s"),
            "finals only, no partial decodes",
            plain,
        )
        result.add(
            "end of speech (commit) -> final, 1 session, gpt-4o-transcribe",
            f"median {_ms(plain['p50_s'])}, p95 {_ms(plain['p95_s'])}",
            f"{plain['turns']} turns",
        )
        if cfg.full:
            vad = await level(server, turns, 1, model="gpt-4o-transcribe", server_vad=True)
            result.add(
                "end of speech (speech_stopped) -> final, server VAD, gpt-4o-transcribe",
                f"median {_ms(vad['p50_s'])}, p95 {_ms(vad['p95_s'])}",
                f"silence_duration_ms=500 comes before this; {vad['cpu_s_per_audio_min']:.1f} "
                "CPU s per audio minute (incl. 0.8 s of silence a turn)",
                vad,
            )
        kept_up = [x["sessions"] for x in levels if x["p95_s"] <= cfg.latency_bound_s]
        ramp = "; ".join(
            f"{x['sessions']}: p50 {_ms(x['p50_s'])} / p95 {_ms(x['p95_s'])}, CPU "
            f"{x['cpu_util'] * 100:.0f}%"
            for x in levels
        )
        more = (
            f"; the ramp stopped at {cfg.max_sessions}"
            if levels[-1]["p95_s"] <= cfg.latency_bound_s
            else ""
        )
        result.add(
            "concurrent real-time sessions (gpt-realtime-whisper)",
            str(max(kept_up, default=0)),
            f"largest count with p95 commit->final <= {cfg.latency_bound_s:g} s; sessions: "
            f"{ramp}{more}",
            levels,
        )
        clips = [*cfg.wer_clips, *(["two_cities.wav"] if cfg.full else [])]
        for audio_format, label in (("pcm16", "pcm16 24 kHz"), ("g711_ulaw", "G.711 mu-law 8 kHz")):
            wer = await plugin_wer(server.base_url, audio_format, clips)
            per = ", ".join(f"{c.removesuffix('.wav')} {w:.0%}" for c, w in wer["per_clip"].items())
            result.add(
                f"WER through the plugin, {label}",
                f"{wer['wer']:.1%}",
                f"{wer['words']} words pooled over {len(clips)} clips ({per})",
                wer,
            )
    return result


def summary(r: Result) -> list[Any]:
    return []  # the server's own figures: no comparison with the official plugin


def render(r: Result) -> str:
    lines = [
        "## Server figures (the local server alone)",
        "",
        "Method: the local server with the faster-whisper engine (Whisper tiny.en, int8, CPU) "
        "in its own process, not pinned; its CPU is read with psutil (the model load is not "
        "counted). Raw websockets clients speak a script of the team's clips in real time "
        "(100 ms appends on an absolute schedule, a client commit at the end of each "
        "utterance): one session of gpt-realtime-whisper (partial pre-commit decodes), one of "
        "gpt-4o-transcribe (finals only), then 1, 2, 4, ... sessions at once (starts spread "
        "over 2 s) until the p95 latency passes the bound. Latency: commit sent -> `completed` "
        "received. WER: each clip through `openai_stt.STT`, one stream, pcm16 24 kHz vs G.711 "
        "µ-law 8 kHz, pooled over all reference words.",
        "",
        "| metric | value | notes |",
        "|---|---|---|",
    ]
    lines += [f"| {x['metric']} | {x['value']} | {x['notes']} |" for x in r.rows]
    return "\n".join(lines)
