"""Resilience figures of our plugin (issue 5): drops, time to resume, rollover, outage memory.

- Audio lost per drop at 1, 3 and 10 drops per minute of audio (:func:`.drops.lost_audio`: the
  scripted engine's transcripts state each item's seconds), and the time from a drop to resumed
  streaming: from the failed socket call to the first audio sent on the next socket, after the
  replay (LiveKit's first retry waits 0.1 s).
- Words lost per drop through the whisper engine on two_cities.wav, drops at given times
  (``Faults.drop_after_s``), aligned with a run without drops.
- The rollover gap: from the old session's close to the first audio on the next one.
- Peak memory of one stream while its server is down (audio queued), and that every turn is
  transcribed once the server is back on the same port.
"""

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
from benchmarks.harness.drive import run_stream
from benchmarks.harness.plugins import FINAL, make_stt, open_stt
from benchmarks.harness.servers import local_server
from benchmarks.scenarios.drops import _SECONDS, lost_audio

RETRY = APIConnectOptions(max_retry=1000, retry_interval=0.2, timeout=5.0)


class TimedConnect:
    """Our STT's ``connect`` seam around its default (``transport.connect``), timing each
    socket's failure, close and first audio sent. ``handshake_delay_s`` is added before each
    connect, as a remote host's TLS and upgrade would take."""

    def __init__(self, handshake_delay_s: float = 0.0) -> None:
        self.failed_at: list[float] = []
        self.first_audio_at: list[float] = []
        self.closed_at: list[float] = []
        self.handshake_delay_s = handshake_delay_s

    async def connect(self, url: str, headers: Mapping[str, str], timeout: float) -> Any:
        from livekit.plugins.openai_stt import transport

        await asyncio.sleep(self.handshake_delay_s)
        conn = await transport.connect(url, headers, timeout)
        timer, audio = self, [False]

        class Conn:
            async def send(self, message: str | bytes) -> None:
                raw = message if isinstance(message, bytes) else message.encode()
                if not audio[0] and b'"input_audio_buffer.append"' in raw:
                    audio[0] = True
                    timer.first_audio_at.append(time.monotonic())
                try:
                    await conn.send(message)
                except Exception:
                    timer.failed_at.append(time.monotonic())
                    raise

            async def recv(self) -> str:
                try:
                    return await conn.recv()
                except Exception:
                    timer.failed_at.append(time.monotonic())
                    raise

            async def aclose(self) -> None:
                timer.closed_at.append(time.monotonic())
                await conn.aclose()

        return Conn()

    def gaps_ms(self, since: list[float]) -> list[float]:
        """From each time in ``since`` to the next first audio on a socket, ms."""
        out = []
        for t in since:
            later = [a for a in self.first_audio_at if a > t]
            if later:
                out.append((later[0] - t) * 1000)
        return out


def _median_max(xs: list[float]) -> tuple[float, float]:
    return (statistics.median(xs), max(xs)) if xs else (float("nan"), float("nan"))


@dataclass
class Config:
    rates: tuple[int, ...] = (1, 3, 10)
    """Drops per minute of audio."""
    drop_audio_s: tuple[float, ...] = (90.0, 60.0, 60.0)
    """Audio per rate (90 s so that even 1 drop a minute happens)."""
    drop_speed: float = 12.0
    drop_turn_s: float = 3.0
    word_rates: tuple[int, ...] = (1, 3, 10)
    passes: int = 2
    """two_cities.wav played this many times in a row, for the words lost."""
    clip_s: float | None = None
    """Use only the clip's first seconds, for the words lost."""
    word_speed: float = 8.0
    rollover_sessions: int = 3
    rollover_s: float = 2.0
    """``session_rollover_s``; turns of a quarter of it, in real time."""
    handshake_ms: float = 300.0
    outage_s: float = 60.0
    quick: bool = False

    @classmethod
    def small(cls) -> Config:
        return cls((30,), (6.0,), 12.0, 1.0, (10,), 1, 5.0, 16.0, 2, 0.6, 100.0, 5.0, True)


@dataclass
class Result:
    cfg: Config
    drops: list[dict[str, Any]] = field(default_factory=list)
    words: list[dict[str, Any]] = field(default_factory=list)
    rollover: dict[str, Any] = field(default_factory=dict)
    outage: dict[str, Any] = field(default_factory=dict)


async def drops_per_minute(
    rate: int, audio_s: float, turn_s: float, speed: float
) -> dict[str, Any]:
    """Audio lost per drop and drop -> resumed streaming, the server dropping every
    ``60 / rate`` s of audio it receives."""
    from livekit.plugins.openai_stt.server import Faults

    timer = TimedConnect()
    faults = Faults(drop_after_audio_ms=60000 / rate, drop_sessions=10_000)
    r = await lost_audio(
        "ours", audio_s, turn_s, faults, speed=speed, conn_options=RETRY, connect=timer.connect
    )
    resume = _median_max(timer.gaps_ms(timer.failed_at))
    return {**r, "rate": rate, "resume_median_ms": resume[0], "resume_max_ms": resume[1]}


async def _whisper_run(
    cfg: Config, drop_every_wall_s: float | None, max_drops: int = 0
) -> tuple[str, int, float]:
    """two_cities.wav ``passes`` times through the whisper engine at ``word_speed``, flushed at
    the speaker's pauses, the server dropping each session (close 1011) ``drop_every_wall_s``
    after it opened (None: no drops), ``max_drops`` at most. Returns the finals' text, the
    drops, and the seconds of audio."""
    from livekit.plugins.openai_stt.server import Faults

    clip = demo_clip()
    one = clip_frames(clip, cfg.clip_s)
    per_pass = sorted(
        {min(round(t * 100) + 1, len(one)) for t in turn_boundaries(clip, seconds=cfg.clip_s)}
    )
    faults = Faults(drop_after_s=drop_every_wall_s, drop_sessions=max_drops)
    async with (
        local_server(
            "whisper", inline=True, faults=faults if drop_every_wall_s else None
        ) as server,
        open_stt("ours", server.base_url) as stt,
    ):
        run = await run_stream(
            stt,
            one * cfg.passes,
            turn_ends=[k * len(one) + e for k in range(cfg.passes) for e in per_pass],
            speed=cfg.word_speed,
            conn_options=RETRY,
            timeout_s=180.0,
        )
        drops = server.local.counters.drops
    return run.final_text(), drops, len(one) * cfg.passes / 100


async def words_lost(cfg: Config) -> list[dict[str, Any]]:
    """Words lost per drop: each run's transcript aligned (jiwer) with a run of the same audio
    without drops. The server drops each session a fixed wall time after it opened,
    ``60 / rate / speed`` s, so that about ``rate`` drops fall in each minute of audio, and at
    most as many as that rate asks for over the whole audio (drops at given times: unlike a
    drop after N s of *received* audio, the replay does not bring the next drop closer)."""
    import jiwer

    from examples.evaluation import load_reference, normalize_transcript, word_error_rate

    reference = " ".join([load_reference(demo_clip()) or ""] * cfg.passes)
    baseline, _, audio_s = await _whisper_run(cfg, None)
    rows: list[dict[str, Any]] = [
        {"rate": 0, "drops": 0, "wer": word_error_rate(reference, baseline), "audio_s": audio_s}
    ]
    for rate in cfg.word_rates:
        max_drops = max(1, round(rate * audio_s / 60))
        text, drops, _ = await _whisper_run(cfg, 60.0 / rate / cfg.word_speed, max_drops)
        out = jiwer.process_words(normalize_transcript(baseline), normalize_transcript(text))
        rows.append(
            {
                "rate": rate,
                "drops": drops,
                "audio_s": audio_s,
                "lost": out.deletions,
                "added": out.insertions,
                "substituted": out.substitutions,
                "wer": word_error_rate(reference, text),
            }
        )
    return rows


async def rollover_gap(sessions: int, rollover_s: float, handshake_s: float) -> dict[str, Any]:
    """From the old session's close to the first audio on the next one at each rollover
    (every ``rollover_s``, turns of a quarter of it in real time), each connect delayed
    ``handshake_s``. The next session is opened ahead, so the gap should hold the replay, not
    the handshake."""
    timer = TimedConnect(handshake_s)
    r = await lost_audio(
        "ours",
        rollover_s * sessions,
        rollover_s / 4,
        connect=timer.connect,
        session_rollover_s=rollover_s,
    )
    gaps = timer.gaps_ms(sorted(timer.closed_at)[:-1])  # every close but the stream's last
    median, worst = _median_max(gaps)
    return {
        "rollovers": len(gaps),
        "gap_median_ms": median,
        "gap_max_ms": worst,
        "finals": r["finals"],
        "turns": r["turns"],
        "handshake_ms": handshake_s * 1000,
        "rollover_s": rollover_s,
    }


async def outage_memory(outage_s: float) -> dict[str, Any]:
    """Peak Python heap growth of one stream while its server is down for ``outage_s`` of audio
    (pushed faster than real time: what is measured is the audio queued), then the server
    comes back on the same port and every turn must be transcribed."""
    frames = speech_frames_48k(1.0)
    events: list[Any] = []
    async with local_server(inline=True) as first:
        port = first.port
        stt = make_stt("ours", first.base_url)
        stream = stt.stream(conn_options=RETRY)

        async def collect() -> None:
            with contextlib.suppress(Exception):
                async for e in stream:
                    events.append(e)

        consumer = asyncio.create_task(collect())
        for f in frames * 2:
            stream.push_frame(f)
        stream.flush()
        await asyncio.sleep(0.5)
    # the outage begins
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    for second in range(round(outage_s)):
        for f in frames:
            stream.push_frame(f)
        if second % 10 == 9:
            stream.flush()
        await asyncio.sleep(0.02)
    peak = tracemalloc.get_traced_memory()[1] - baseline
    tracemalloc.stop()
    async with local_server(inline=True, port=port):  # the outage ends
        stream.end_input()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(consumer, 60)
        await stream.aclose()
        await stt.aclose()
    transcribed = sum(
        float(m)
        for e in events
        if e.type == FINAL
        for m in _SECONDS.findall(e.alternatives[0].text)
    )
    return {"peak_mb": peak / 1e6, "audio_s": 2.0 + outage_s, "transcribed_s": transcribed}


async def measure(cfg: Config) -> Result:
    result = Result(cfg)
    for rate, audio_s in zip(cfg.rates, cfg.drop_audio_s, strict=True):
        result.drops.append(await drops_per_minute(rate, audio_s, cfg.drop_turn_s, cfg.drop_speed))
    result.words = await words_lost(cfg)
    result.rollover = await rollover_gap(
        cfg.rollover_sessions, cfg.rollover_s, cfg.handshake_ms / 1000
    )
    result.outage = await outage_memory(cfg.outage_s)
    return result


def summary(r: Result) -> list[Any]:
    return []  # ours only: the README quotes this section in prose


def render(r: Result) -> str:
    c = r.cfg
    lines = [
        "## Resilience (our plugin; issue 5)",
        "",
        f"Drops: the local server (scripted engine) drops the socket (close 1011) every 60/N "
        f"seconds of audio it receives; {c.drop_turn_s:g} s turns flushed at {c.drop_speed:g}× "
        "real time; audio "
        "lost = audio pushed - the seconds the finals state. Drop -> resumed streaming: from "
        "the failed socket call to the first audio sent on the next socket, after the replay.",
        "",
        "| drops per minute of audio | drops | audio lost per drop (ms) | turns with a final | "
        "drop -> resumed streaming, median / max (ms) |",
        "|---|---|---|---|---|",
    ]
    for d in r.drops:
        lost = d["lost_ms_per_drop"] if d["drops"] else 0.0
        lines.append(
            f"| {d['rate']} | {d['drops']} | {lost:.0f} | {d['finals']}/{d['turns']} | "
            f"{d['resume_median_ms']:.0f} / {d['resume_max_ms']:.0f} |"
        )
    audio_s = r.words[0]["audio_s"]
    lines += [
        "",
        f"Words lost per drop, whisper engine (tiny.en), two_cities.wav x{c.passes} ({audio_s:.0f} "
        f"s of audio at {c.word_speed:g}x real time, turns flushed at the speaker's pauses); "
        "each run aligned with a run without drops. Words lost are the baseline's words missing "
        "from the run; words added and changed come from the recognizer, which conditions each "
        "item on the previous item's text *in the same session*, so the first item after a "
        "reconnect decodes without that context (often differently, not worse: see the WER "
        "column):",
        "",
        "| drops per minute of audio, asked (got) | drops | words lost (per drop) | words added | "
        "words changed | WER vs reference |",
        "|---|---|---|---|---|---|",
    ]
    for w in r.words:
        if w["rate"] == 0:
            lines.append(f"| none (baseline) | 0 | - | - | - | {w['wer']:.1%} |")
            continue
        per_drop = w["lost"] / w["drops"] if w["drops"] else 0.0
        lines.append(
            f"| {w['rate']} ({w['drops'] * 60 / w['audio_s']:.1f}) | {w['drops']} | "
            f"{w['lost']} ({per_drop:.2f}) | {w['added']} | {w['substituted']} | {w['wer']:.1%} |"
        )
    g, m = r.rollover, r.outage
    lines += [
        "",
        f"Rollover (`session_rollover_s={g['rollover_s']:g}`, {g['rollover_s'] / 4:g} s turns "
        f"in real time, each connect delayed {g['handshake_ms']:.0f} ms as a remote host's "
        f"handshake would be): {g['rollovers']} rollovers, from the old session's close to "
        f"the first audio on the next **{g['gap_median_ms']:.1f} ms median, "
        f"{g['gap_max_ms']:.1f} ms max** (the next session is opened ahead, so no handshake "
        f"is waited for); {g['finals']}/{g['turns']} turns with a final.",
        "",
        f"Peak Python memory of one stream during a {m['audio_s'] - 2:.0f} s outage (server "
        f"down, audio queued): **{m['peak_mb']:.1f} MB**; after the server came back, "
        f"{m['transcribed_s']:.1f} of {m['audio_s']:.1f} s of audio were transcribed.",
    ]
    return "\n".join(lines)
