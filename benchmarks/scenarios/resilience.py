"""Resilience of our plugin (issue 5): drops, time to resume, rollover, memory in an outage."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import tracemalloc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import APIConnectOptions

from benchmarks.clips import clip_frames, demo_clip, speech_frames_48k, turn_boundaries
from benchmarks.harness.drive import StreamRun, run_stream
from benchmarks.harness.plugins import make_stt, open_stt
from benchmarks.harness.servers import local_server
from benchmarks.harness.stats import Row
from benchmarks.scenarios.drops import lost_audio, seconds_in_finals

RETRY = APIConnectOptions(max_retry=1000, retry_interval=0.2, timeout=5.0)


class TimedConnect:
    """Our STT's ``connect`` seam around its default (``transport.connect``): records when each
    socket failed, closed, and sent its first audio. ``delay_s`` is added before each connect,
    as a remote host's TLS and upgrade would take."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.failed: list[float] = []
        self.closed: list[float] = []
        self.first_audio: list[float] = []

    async def connect(self, url: str, headers: Mapping[str, str], timeout: float) -> Any:
        from livekit.plugins.openai_stt import transport

        await asyncio.sleep(self.delay_s)
        return _TimedConnection(self, await transport.connect(url, headers, timeout))

    def gaps_ms(self, since: list[float]) -> list[float]:
        """From each time in ``since`` to the next socket's first audio, ms."""
        later = [[a for a in self.first_audio if a > t][:1] for t in since]
        return [(a[0] - t) * 1000 for t, a in zip(since, later, strict=True) if a]


class _TimedConnection:
    def __init__(self, timer: TimedConnect, conn: Any) -> None:
        self.timer, self.conn, self.audio = timer, conn, False

    async def send(self, message: str | bytes) -> None:
        raw = message if isinstance(message, bytes) else message.encode()
        if not self.audio and b'"input_audio_buffer.append"' in raw:
            self.audio = True
            self.timer.first_audio.append(time.monotonic())
        try:
            await self.conn.send(message)
        except Exception:
            self.timer.failed.append(time.monotonic())
            raise

    async def recv(self) -> str:
        try:
            return await self.conn.recv()
        except Exception:
            self.timer.failed.append(time.monotonic())
            raise

    async def aclose(self) -> None:
        self.timer.closed.append(time.monotonic())
        await self.conn.aclose()


def _median_max(xs: list[float]) -> tuple[float, float]:
    return (statistics.median(xs), max(xs)) if xs else (float("nan"), float("nan"))


@dataclass
class Config:
    rates: tuple[int, ...] = (1, 3, 10)
    """Drops per minute of audio."""
    drop_audio_s: tuple[float, ...] = (90.0, 60.0, 60.0)
    """Audio per rate (90 s so that even 1 drop a minute happens)."""
    drop_turn_s: float = 3.0
    drop_speed: float = 12.0
    word_rates: tuple[int, ...] = (1, 3, 10)
    passes: int = 2
    """two_cities.wav played this many times in a row, for the words lost."""
    clip_s: float | None = None
    """Only the clip's first seconds, for the words lost."""
    word_speed: float = 8.0
    rollover_sessions: int = 3
    rollover_s: float = 2.0
    """``session_rollover_s`` (1 s at least); turns of a quarter of it, in real time."""
    handshake_ms: float = 300.0
    outage_s: float = 60.0
    quick: bool = False

    @classmethod
    def small(cls) -> Config:
        return cls((30,), (6.0,), 1.0, 12.0, (10,), 1, 5.0, 16.0, 2, 1.0, 100.0, 5.0, True)


@dataclass
class Result:
    cfg: Config
    drops: list[dict[str, Any]] = field(default_factory=list)
    words: list[dict[str, Any]] = field(default_factory=list)
    rollover: dict[str, Any] = field(default_factory=dict)
    outage: dict[str, Any] = field(default_factory=dict)


async def _whisper_run(cfg: Config, drop_every_s: float | None, max_drops: int) -> tuple[str, int]:
    """two_cities.wav ``passes`` times through the whisper engine at ``word_speed``, flushed at
    the speaker's pauses, the server dropping each session (close 1011) ``drop_every_s`` after
    it opened (None: never), ``max_drops`` times at most. Returns the finals' text, the drops."""
    from livekit.plugins.openai_stt.server import Faults

    clip = demo_clip()
    one = clip_frames(clip, cfg.clip_s)
    cuts = {min(round(t * 100) + 1, len(one)) for t in turn_boundaries(clip, seconds=cfg.clip_s)}
    faults = Faults(drop_after_s=drop_every_s, drop_sessions=max_drops) if drop_every_s else None
    async with (
        local_server("whisper", inline=True, faults=faults) as server,
        open_stt("ours", server.base_url) as stt,
    ):
        ends = [k * len(one) + c for k in range(cfg.passes) for c in sorted(cuts)]
        run = await run_stream(
            stt,
            one * cfg.passes,
            turn_ends=ends,
            speed=cfg.word_speed,
            conn_options=RETRY,
            timeout_s=180.0,
        )
        return run.final_text(), server.local.counters.drops


async def words_lost(cfg: Config) -> list[dict[str, Any]]:
    """Words lost per drop: each run's transcript aligned (jiwer) with a run of the same audio
    without drops; lost = the baseline's words missing (deletions). The server drops each
    session ``60 / rate / speed`` s after it opened, so that about ``rate`` drops fall in each
    minute of audio, and at most as many as that rate asks for over the whole audio (drops at
    given times: unlike a drop after N s of *received* audio, the replay does not bring the
    next drop closer)."""
    import jiwer

    from examples.evaluation import load_reference, normalize_transcript, word_error_rate

    reference = " ".join([load_reference(demo_clip()) or ""] * cfg.passes)
    audio_s = len(clip_frames(demo_clip(), cfg.clip_s)) * cfg.passes / 100
    baseline, _ = await _whisper_run(cfg, None, 0)
    rows = [{"rate": 0, "drops": 0, "wer": word_error_rate(reference, baseline)}]
    for rate in cfg.word_rates:
        max_drops = max(1, round(rate * audio_s / 60))
        text, drops = await _whisper_run(cfg, 60.0 / rate / cfg.word_speed, max_drops)
        out = jiwer.process_words(normalize_transcript(baseline), normalize_transcript(text))
        rows.append(
            {
                "rate": rate,
                "drops": drops,
                "lost": out.deletions,
                "added": out.insertions,
                "substituted": out.substitutions,
                "wer": word_error_rate(reference, text),
            }
        )
    return [{**row, "audio_s": audio_s} for row in rows]


async def outage_memory(outage_s: float) -> dict[str, Any]:
    """Peak Python heap growth of one stream while its server is down for ``outage_s`` of audio
    (pushed faster than real time: what is measured is the audio queued), then the server comes
    back on the same port and every turn must be transcribed."""
    frames = speech_frames_48k(1.0)
    async with local_server(inline=True) as first:
        stt = make_stt("ours", first.base_url)
        stream = stt.stream(conn_options=RETRY)
        run = StreamRun()

        async def collect() -> None:
            with contextlib.suppress(Exception):
                async for e in stream:
                    run.events.append((time.monotonic(), e))

        consumer = asyncio.create_task(collect())
        for f in frames * 2:
            stream.push_frame(f)
        stream.flush()
        await asyncio.sleep(0.5)
    tracemalloc.start()  # the outage begins
    baseline = tracemalloc.get_traced_memory()[0]
    for second in range(round(outage_s)):
        for f in frames:
            stream.push_frame(f)
        if second % 10 == 9:
            stream.flush()
        await asyncio.sleep(0.02)
    peak = tracemalloc.get_traced_memory()[1] - baseline
    tracemalloc.stop()
    async with local_server(inline=True, port=first.port):  # the outage ends
        stream.end_input()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(consumer, 60)
        await stream.aclose()
        await stt.aclose()
    transcribed = sum(seconds_in_finals(run))
    return {"peak_mb": peak / 1e6, "audio_s": 2.0 + outage_s, "transcribed_s": transcribed}


async def measure(cfg: Config) -> Result:
    from livekit.plugins.openai_stt.server import Faults

    result = Result(cfg)
    for rate, audio_s in zip(cfg.rates, cfg.drop_audio_s, strict=True):
        timer = TimedConnect()
        faults = Faults(drop_after_audio_ms=60000 / rate, drop_sessions=10_000)
        r = await lost_audio(
            "ours",
            audio_s,
            cfg.drop_turn_s,
            faults,
            speed=cfg.drop_speed,
            conn_options=RETRY,
            connect=timer.connect,
        )
        resume = _median_max(timer.gaps_ms(timer.failed))
        result.drops.append({**r, "rate": rate, "resume_ms": resume})
    result.words = await words_lost(cfg)
    # the rollover gap: turns of a quarter of the rollover time, each connect delayed
    timer = TimedConnect(cfg.handshake_ms / 1000)
    r = await lost_audio(
        "ours",
        cfg.rollover_s * cfg.rollover_sessions,
        cfg.rollover_s / 4,
        connect=timer.connect,
        session_rollover_s=cfg.rollover_s,
    )
    gaps = timer.gaps_ms(sorted(timer.closed)[:-1])  # every close but the stream's last
    result.rollover = {"gaps_ms": gaps, "finals": r["finals"], "turns": r["turns"]}
    result.outage = await outage_memory(cfg.outage_s)
    return result


def summary(r: Result) -> list[Row]:
    return []  # ours only: the README quotes this section in prose


def render(r: Result) -> str:
    c, g, m = r.cfg, r.rollover, r.outage
    lines = [
        "## Resilience (our plugin; issue 5)",
        "",
        "Drops: the local server (scripted engine) drops the socket (close 1011) every 60/N s of "
        f"audio it receives; {c.drop_turn_s:g} s turns flushed, at {c.drop_speed:g}× real time; "
        "audio lost = audio pushed - the seconds the finals state. Drop -> resumed streaming: "
        "from the failed socket call to the first audio sent on the next socket, after the "
        "replay.",
        "",
        "| drops per minute of audio | drops | audio lost per drop (ms) | turns with a final | "
        "drop -> resumed streaming, median / max (ms) |",
        "|---|---|---|---|---|",
    ]
    for d in r.drops:
        lost = d["lost_ms_per_drop"] if d["drops"] else 0.0
        resume = " / ".join(f"{x:.0f}" for x in d["resume_ms"])
        lines.append(
            f"| {d['rate']} | {d['drops']} | {lost:.0f} | {d['finals']}/{d['turns']} | {resume} |"
        )
    lines += [
        "",
        f"Words lost per drop, whisper engine (tiny.en), two_cities.wav x{c.passes} "
        f"({r.words[0]['audio_s']:.0f} s of audio at {c.word_speed:g}x real time, turns flushed "
        "at the speaker's pauses); each run aligned with a run without drops. Words lost are "
        "the baseline's words missing from the run; words added and changed come from the "
        "recognizer, which conditions each item on the previous item's text *in the same "
        "session*, so the first item after a reconnect decodes without that context (often "
        "differently, not worse: see the WER column):",
        "",
        "| drops per minute of audio, asked (got) | drops | words lost (per drop) | words added | "
        "words changed | WER vs reference |",
        "|---|---|---|---|---|---|",
    ]
    for w in r.words:
        if not w["rate"]:
            lines.append(f"| none (baseline) | 0 | - | - | - | {w['wer']:.1%} |")
            continue
        per_drop, got = w["lost"] / max(1, w["drops"]), w["drops"] * 60 / w["audio_s"]
        lines.append(
            f"| {w['rate']} ({got:.1f}) | {w['drops']} | {w['lost']} ({per_drop:.2f}) | "
            f"{w['added']} | {w['substituted']} | {w['wer']:.1%} |"
        )
    median, worst = _median_max(g["gaps_ms"])
    lines += [
        "",
        f"Rollover (`session_rollover_s={c.rollover_s:g}`, {c.rollover_s / 4:g} s turns in real "
        f"time, each connect delayed {c.handshake_ms:.0f} ms as a remote host's handshake would "
        f"be): {len(g['gaps_ms'])} rollovers, from the old session's close to the first audio "
        f"on the next **{median:.1f} ms median, {worst:.1f} ms max** (the next session is opened "
        f"ahead, so no handshake is waited for); {g['finals']}/{g['turns']} turns with a final.",
        "",
        f"Peak Python memory of one stream during a {c.outage_s:.0f} s outage (server down, "
        f"audio queued): **{m['peak_mb']:.1f} MB**; after the server came back, "
        f"{m['transcribed_s']:.1f} of {m['audio_s']:.1f} s of audio were transcribed.",
    ]
    return "\n".join(lines)
