"""Figures for the local server (issue 4): CPU, latency, concurrent sessions, WER.

Run standalone (prints a Markdown table; ``--quick`` for a shorter run)::

    python -m benchmarks.server_bench [--quick]

or from another script: ``rows = await server_bench.run(report=print)`` (each row is a
:class:`Row`; ``str(row)`` is its Markdown table line, :func:`markdown` the whole table).

What is measured, all with the faster-whisper engine (Whisper tiny.en, int8, CPU) in a server
*subprocess* (``python -m livekit.plugins.openai_stt.server``), so its CPU time is the server's
alone (psutil; the model load is not counted):

- **CPU per audio minute** of one session streamed at real time (100 ms appends on a wall-clock
  schedule, a client commit at the end of each utterance): ``gpt-realtime-whisper`` (partial
  decodes every ``delta_interval_s`` for pre-commit deltas) and ``gpt-4o-transcribe`` (final
  decodes only), and ``gpt-4o-transcribe`` with server VAD (Silero) committing by itself.
- **End of speech -> final latency** (median, p95): from sending ``commit`` (or, with server
  VAD, from receiving ``speech_stopped``) to receiving ``completed``.
- **Concurrent real-time sessions**: 1, 2, 4, ... sessions of ``gpt-realtime-whisper`` at
  real time at once, until finals fall behind (p95 latency above ``--latency-bound-s``); the
  figure is the largest count that kept up.
- **WER** over the clips of ``../shared/audio`` (``transcripts.tsv``) through the plugin
  (``openai_stt.STT``, one stream per clip, audio pushed faster than real time, one flush),
  pcm16 at 24 kHz vs G.711 mu-law at 8 kHz; pooled over all reference words.

Raw websockets clients drive the real-time sessions (cheap and exact to pace); the plugin is
used for WER (its resampling and G.711 encoding are part of that path).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import platform
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.clips import SHARED_AUDIO_DIR, SHARED_AUDIO_MISSING, shared_audio_dir

ROOT = Path(__file__).resolve().parents[1]
CHUNK_S = 0.1
RATE = 24000

# utterances of jfk.wav (speech found by Silero at 0.32-2.24, 3.33-4.35, 5.44-7.62, 8.22-10.5 s):
# cut in the middle of each pause, so each turn ends at an end of speech
JFK_CUTS_S = (2.78, 4.90, 7.92)


# --------------------------------------------------------------------------------------------
# rows


@dataclass
class Row:
    """One line of the figures table."""

    metric: str
    value: str
    notes: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"| {self.metric} | {self.value} | {self.notes} |"


HEADER = ["| metric | value | notes |", "|---|---|---|"]


def markdown(rows: Sequence[Row]) -> list[str]:
    """The Markdown table lines (header included) for ``rows``."""
    return HEADER + [str(r) for r in rows]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    return float(np.percentile(np.asarray(values, dtype=float), q))


# --------------------------------------------------------------------------------------------
# audio


def _pcm24k(name: str) -> np.ndarray:
    from examples.evaluation import read_wav
    from livekit.plugins.openai_stt.server.engines import resample_int16

    samples, rate = read_wav(SHARED_AUDIO_DIR / name)
    return resample_int16(samples[:, 0], rate, RATE)


def turn_script(quick: bool) -> list[bytes]:
    """The utterances one real-time session speaks, as pcm16 24 kHz bytes, one per turn."""
    jfk = _pcm24k("jfk.wav")
    cuts = [0, *(round(c * RATE) for c in JFK_CUTS_S), len(jfk)]
    turns = [_pcm24k("goforward.wav")]
    turns += [jfk[a:b] for a, b in itertools.pairwise(cuts)]
    if not quick:
        turns += [_pcm24k("librivox-0880.wav"), _pcm24k("librivox-0930.wav")]
    return [t.astype("<i2").tobytes() for t in turns]


# --------------------------------------------------------------------------------------------
# the server, in its own process


class ServerProcess:
    """``python -m livekit.plugins.openai_stt.server`` on a free port, whisper engine."""

    def __init__(self, *extra_args: str) -> None:
        self.extra_args = extra_args
        self.proc: asyncio.subprocess.Process | None = None
        self.ws_url = ""
        self.base_url = ""
        self._drain: asyncio.Task[None] | None = None

    async def __aenter__(self) -> ServerProcess:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "livekit.plugins.openai_stt.server",
            "--port",
            "0",
            "--engine",
            "whisper",
            "--max-sessions",
            "0",
            "--log-level",
            "WARNING",
            *self.extra_args,
            stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
        )
        assert self.proc.stderr is not None
        lines = []
        while True:
            line = await asyncio.wait_for(self.proc.stderr.readline(), 120)
            if not line:
                raise RuntimeError("server did not start:\n" + b"".join(lines).decode())
            lines.append(line)
            match = re.search(rb"listening on (ws://\S+)", line)
            if match:
                self.ws_url = match[1].decode()
                self.base_url = self.ws_url.replace("ws://", "http://").removesuffix("/realtime")
                break
        self._drain = asyncio.create_task(self._drain_stderr())
        return self

    async def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while await self.proc.stderr.readline():
            pass

    def cpu_s(self) -> float:
        import psutil

        assert self.proc is not None
        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 10)
            if self.proc.returncode is None:
                self.proc.kill()
                await self.proc.wait()
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain


# --------------------------------------------------------------------------------------------
# one real-time session, raw websockets


@dataclass
class SessionResult:
    audio_s: float
    latencies_s: list[float]
    finals: list[str]
    pre_commit_deltas: int = 0


async def realtime_session(
    ws_url: str,
    turns: Sequence[bytes],
    *,
    model: str,
    server_vad: bool = False,
    start_delay_s: float = 0.0,
) -> SessionResult:
    """Speak ``turns`` at real time (100 ms appends on a wall-clock schedule); a client commit
    after each turn, or with ``server_vad`` 0.8 s of silence and the server's own commits.
    Latency: commit sent (or ``speech_stopped`` received) -> ``completed`` received."""
    from websockets.asyncio.client import connect

    await asyncio.sleep(start_delay_s)
    loop = asyncio.get_running_loop()
    chunk = int(RATE * CHUNK_S) * 2
    td = (
        {
            "type": "server_vad",
            "threshold": 0.5,
            "prefix_padding_ms": 300,
            "silence_duration_ms": 500,
        }
        if server_vad
        else None
    )
    ends: list[float] = []  # end-of-speech times, in order of items
    done: dict[int, float] = {}
    finals: list[str] = []
    pre_commit = 0
    expected = len(turns)
    async with connect(
        ws_url + "?intent=transcription",
        additional_headers={"Authorization": "Bearer bench"},
        max_size=None,
    ) as ws:
        json.loads(await ws.recv())
        await ws.send(
            json.dumps(
                {
                    "type": "session.update",
                    "session": {
                        "type": "transcription",
                        "audio": {
                            "input": {
                                "format": {"type": "audio/pcm", "rate": RATE},
                                "transcription": {"model": model, "language": "en"},
                                "turn_detection": td,
                            }
                        },
                    },
                }
            )
        )
        json.loads(await ws.recv())
        item_index: dict[str, int] = {}
        all_done = asyncio.Event()

        async def reader() -> None:
            nonlocal pre_commit
            async for message in ws:
                event = json.loads(message)
                etype = event["type"]
                now = loop.time()
                if etype == "input_audio_buffer.speech_stopped":
                    ends.append(now)
                elif etype == "input_audio_buffer.committed":
                    item_index[event["item_id"]] = len(item_index)
                elif etype.endswith("transcription.delta") and event["item_id"] not in item_index:
                    pre_commit += 1
                elif etype.endswith("transcription.completed"):
                    done[item_index[event["item_id"]]] = now
                    finals.append(event["transcript"])
                    if len(done) >= expected:
                        all_done.set()
                elif etype == "error":
                    raise RuntimeError(event["error"])

        read = asyncio.create_task(reader())
        script = list(turns)
        if server_vad:
            silence = bytes(int(RATE * 0.8) * 2)
            script = [t + silence for t in turns]
        t0 = loop.time()
        sent = 0
        for turn in script:
            for k in range(0, len(turn), chunk):
                await asyncio.sleep(max(0.0, t0 + sent * CHUNK_S - loop.time()))
                await ws.send(
                    json.dumps(
                        {
                            "type": "input_audio_buffer.append",
                            "audio": base64.b64encode(turn[k : k + chunk]).decode(),
                        }
                    )
                )
                sent += 1
            if not server_vad:
                await asyncio.sleep(max(0.0, t0 + sent * CHUNK_S - loop.time()))
                await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
                ends.append(loop.time())
        try:
            await asyncio.wait_for(all_done.wait(), 60)
        finally:
            read.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await read
    audio_s = sum(len(t) for t in script) / (2 * RATE)
    latencies = [done[i] - ends[i] for i in sorted(done) if i < len(ends)]
    return SessionResult(audio_s, latencies, finals, pre_commit)


async def realtime_level(
    server: ServerProcess,
    turns: Sequence[bytes],
    n: int,
    *,
    model: str,
    server_vad: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """``n`` real-time sessions at once (starts spread over 2 s); server CPU and latencies."""
    rng = random.Random(seed)
    cpu0, wall0 = server.cpu_s(), time.monotonic()
    results = await asyncio.gather(
        *(
            realtime_session(
                server.ws_url,
                turns,
                model=model,
                server_vad=server_vad,
                start_delay_s=0.0 if i == 0 else rng.uniform(0, 2.0),
            )
            for i in range(n)
        )
    )
    cpu, wall = server.cpu_s() - cpu0, time.monotonic() - wall0
    audio_s = sum(r.audio_s for r in results)
    latencies = [x for r in results for x in r.latencies_s]
    return {
        "sessions": n,
        "audio_s": audio_s,
        "cpu_s": cpu,
        "wall_s": wall,
        "cpu_s_per_audio_min": cpu / (audio_s / 60),
        "cpu_util": cpu / wall / (os.cpu_count() or 1),
        "latency_p50_s": percentile(latencies, 50),
        "latency_p95_s": percentile(latencies, 95),
        "latency_max_s": max(latencies) if latencies else float("nan"),
        "turns": len(latencies),
        "pre_commit_deltas": sum(r.pre_commit_deltas for r in results),
    }


# --------------------------------------------------------------------------------------------
# WER through the plugin


async def plugin_wer(base_url: str, audio_format: str, clips: Sequence[str]) -> dict[str, Any]:
    """Each clip through ``openai_stt.STT`` (one stream, all frames, one flush) -> WER."""
    from livekit.agents import stt as lk_stt
    from livekit.plugins import openai_stt

    from examples.evaluation import (
        load_reference,
        normalize_transcript,
        wav_frames,
        word_error_rate,
    )

    stt = openai_stt.STT(base_url=base_url, api_key="bench", audio_format=audio_format)
    per_clip: dict[str, float] = {}
    errors = words = 0.0
    for clip in clips:
        path = SHARED_AUDIO_DIR / clip
        reference = load_reference(path)
        assert reference, clip
        stream = stt.stream()
        for frame in wav_frames(path, frame_ms=100):
            stream.push_frame(frame)
        stream.flush()
        stream.end_input()
        events = [e async for e in stream]
        await stream.aclose()
        hypothesis = " ".join(
            e.alternatives[0].text
            for e in events
            if e.type == lk_stt.SpeechEventType.FINAL_TRANSCRIPT
        )
        wer = word_error_rate(reference, hypothesis)
        n = len(normalize_transcript(reference).split())
        per_clip[clip] = wer
        errors += wer * n
        words += n
    await stt.aclose()
    return {"wer": errors / words, "words": int(words), "per_clip": per_clip}


# --------------------------------------------------------------------------------------------
# the run


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


async def run(
    report: Callable[[Row], Any] | None = None,
    *,
    quick: bool = False,
    max_sessions: int = 16,
    latency_bound_s: float = 2.0,
    wer: bool = True,
    delta_interval_s: float = 1.0,
) -> list[Row]:
    """Measure everything; ``report(row)`` is called as each row is ready. Returns the rows.

    ``quick``: a 14 s script of 5 turns instead of 20 s / 7 turns, no server-VAD row, the
    ramp up to 4 sessions and WER without two_cities. ``latency_bound_s``: p95 end-of-speech
    -> final latency above which a concurrency level has fallen behind real time.
    """
    rows: list[Row] = []

    def add(row: Row) -> None:
        rows.append(row)
        if report is not None:
            report(row)

    if shared_audio_dir() is None:  # its turn script and WER clips are the team's clips
        add(Row("skipped", "-", f"the local server's figures {SHARED_AUDIO_MISSING}"))
        return rows
    turns = turn_script(quick)
    script_s = sum(len(t) for t in turns) / (2 * RATE)
    add(
        Row(
            "machine",
            _machine(),
            "server: Whisper tiny.en int8 (faster-whisper), one decode worker; Silero VAD",
        )
    )
    async with ServerProcess("--delta-interval-s", str(delta_interval_s)) as server:
        # warm up (first decode allocates)
        await realtime_level(server, turns[:1], 1, model="gpt-4o-transcribe")

        levels: list[dict[str, Any]] = []
        n = 1
        limit = 4 if quick else max_sessions
        while n <= limit:
            level = await realtime_level(server, turns, n, model="gpt-realtime-whisper", seed=n)
            levels.append(level)
            if level["latency_p95_s"] > latency_bound_s:
                break
            n *= 2
        single = levels[0]
        add(
            Row(
                "CPU per audio minute, 1 session, gpt-realtime-whisper (pre-commit deltas)",
                f"{single['cpu_s_per_audio_min']:.1f} CPU s",
                f"real time, {script_s:.0f} s script, {single['turns']} turns, partial decode "
                f"every {delta_interval_s:g} s ({single['pre_commit_deltas']} deltas before "
                "commits)",
                single,
            )
        )
        add(
            Row(
                "end of speech (commit) -> final, 1 session, gpt-realtime-whisper",
                f"median {_ms(single['latency_p50_s'])}, p95 {_ms(single['latency_p95_s'])}",
                f"{single['turns']} turns",
                single,
            )
        )

        plain = await realtime_level(server, turns, 1, model="gpt-4o-transcribe")
        add(
            Row(
                "CPU per audio minute, 1 session, gpt-4o-transcribe (client commits)",
                f"{plain['cpu_s_per_audio_min']:.1f} CPU s",
                "finals only, no partial decodes",
                plain,
            )
        )
        add(
            Row(
                "end of speech (commit) -> final, 1 session, gpt-4o-transcribe",
                f"median {_ms(plain['latency_p50_s'])}, p95 {_ms(plain['latency_p95_s'])}",
                f"{plain['turns']} turns",
                plain,
            )
        )

        if not quick:
            vad = await realtime_level(server, turns, 1, model="gpt-4o-transcribe", server_vad=True)
            add(
                Row(
                    "end of speech (speech_stopped) -> final, server VAD, gpt-4o-transcribe",
                    f"median {_ms(vad['latency_p50_s'])}, p95 {_ms(vad['latency_p95_s'])}",
                    f"silence_duration_ms=500 comes before this; "
                    f"{vad['cpu_s_per_audio_min']:.1f} CPU s per audio minute "
                    f"(incl. 0.8 s of silence a turn)",
                    vad,
                )
            )

        kept_up = [lv["sessions"] for lv in levels if lv["latency_p95_s"] <= latency_bound_s]
        ramp = "; ".join(
            f"{lv['sessions']}: p50 {_ms(lv['latency_p50_s'])} / p95 "
            f"{_ms(lv['latency_p95_s'])}, CPU {lv['cpu_util'] * 100:.0f}%"
            for lv in levels
        )
        last = levels[-1]
        more = f"; the ramp stopped at {limit}" if last["latency_p95_s"] <= latency_bound_s else ""
        add(
            Row(
                "concurrent real-time sessions (gpt-realtime-whisper)",
                str(max(kept_up)) if kept_up else "0",
                f"largest count with p95 commit->final <= {latency_bound_s:g} s; "
                f"sessions: {ramp}{more}",
                {"levels": levels},
            )
        )

        if wer:
            clips = ["jfk.wav", "goforward.wav", "librivox-0880.wav", "librivox-0930.wav"]
            if not quick:
                clips.append("two_cities.wav")
            for audio_format, label in (
                ("pcm16", "pcm16 24 kHz"),
                ("g711_ulaw", "G.711 mu-law 8 kHz"),
            ):
                result = await plugin_wer(server.base_url, audio_format, clips)
                per = ", ".join(
                    f"{Path(c).stem} {w * 100:.0f}%" for c, w in result["per_clip"].items()
                )
                add(
                    Row(
                        f"WER through the plugin, {label}",
                        f"{result['wer'] * 100:.1f}%",
                        f"{result['words']} words pooled over {len(clips)} clips ({per})",
                        result,
                    )
                )
    return rows


def main(argv: Sequence[str] | None = None) -> list[str]:
    """Run, print the Markdown table, return its lines."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="shorter run (about a minute)")
    p.add_argument(
        "--max-sessions", type=int, default=16, help="highest concurrency level tried (default 16)"
    )
    p.add_argument(
        "--latency-bound-s",
        type=float,
        default=2.0,
        help="p95 commit->final latency that counts as falling behind (default 2)",
    )
    p.add_argument(
        "--delta-interval-s",
        type=float,
        default=1.0,
        help="the server's partial decode interval (default 1.0)",
    )
    p.add_argument("--no-wer", action="store_true", help="skip the WER rows")
    args = p.parse_args(argv)
    started = time.monotonic()

    def progress(row: Row) -> None:
        print(
            f"[{time.monotonic() - started:5.0f} s] {row.metric}: {row.value}",
            file=sys.stderr,
            flush=True,
        )

    rows = asyncio.run(
        run(
            progress,
            quick=args.quick,
            max_sessions=args.max_sessions,
            latency_bound_s=args.latency_bound_s,
            wer=not args.no_wer,
            delta_interval_s=args.delta_interval_s,
        )
    )
    lines = markdown(rows)
    print("\n".join(lines))
    print(f"\n(run time {time.monotonic() - started:.0f} s)", file=sys.stderr)
    return lines


if __name__ == "__main__":
    main()
