"""Compressed soak of our plugin (issue 14): two hours of audio through one stream, with faults.

One stream of our plugin is fed ``audio_s`` of speech at ``speed`` x real time, in turns of
2.00 to 5.99 s (each turn ``flush()``-ed), against a local server (scripted engine, its own
process) that drops the socket every few minutes of audio, fails one item a session, stops
reading for longer than the plugin's send timeout, while the stream rolls its session over
and has its options changed (``update_options``: delay, prompt, language; clearing the language
needs a new session). The scripted engine names each item after its length (``4.37 s`` ->
``437alpha 437bravo 437charlie 437delta``), so every final is matched to the turn it
transcribes by its audio span, and its words are checked.

Time is compressed, timers are not: reconnect intervals, the send timeout, the rollover and
the server's pauses run in wall time. So the plugin's ``max_queued_audio_s`` is raised (at
100 x, a 0.2 s reconnect queues 20 s of audio) and ``session_rollover_s`` is a few seconds of
wall time; everything else is the default.

Also here: a flood of deltas for one item (issue 14 point 3), both plugins, from a server in
its own process that answers the first commit (or, for the official plugin, which commits only
on its VAD's end of speech, the first second of audio) with ``flood_deltas`` deltas.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import json
import math
import multiprocessing
import os
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks.clips import speech_frames_48k
from benchmarks.harness.drive import LoopLag
from benchmarks.harness.machine import process_cpu_s, rss_bytes, server_cpus
from benchmarks.harness.plugins import FINAL, INTERIM, open_stt, text
from benchmarks.harness.stats import Row, fmt, percentile

TURN_MIN_S, TURN_STEPS = 2.0, 400
"""Turn lengths: ``TURN_MIN_S`` plus 0 to ``TURN_STEPS - 1`` steps of 10 ms."""
WORDS = ("alpha", "bravo", "charlie", "delta")
UPDATES: tuple[dict[str, Any], ...] = (
    {"delay": "low"},
    {"prompt": "A soak test of a voice agent."},
    {"language": "en"},
    {"delay": "medium"},
    {"prompt": None},
    {"language": None},  # clearing the language takes a new session (docs/protocol.md)
)
"""The ``update_options`` calls, in turn, one every ``update_every_audio_s`` of audio."""


def turn_length_s(k: int) -> float:
    """The length of turn ``k`` (0-based), seconds: a permutation of the steps every
    ``TURN_STEPS`` turns, so neighbouring turns never have the same length."""
    return TURN_MIN_S + (k * 157 % TURN_STEPS) / 100


def turn_words(duration_s: float) -> str:
    """The scripted engine's transcript of an item of ``duration_s`` seconds."""
    centis = round(duration_s * 100)
    return " ".join(f"{centis}{w}" for w in WORDS)


@dataclass
class Config:
    audio_s: float = 7200.0
    speed: float = 100.0
    drop_every_audio_s: float = 300.0
    """The server drops each session once it received this much audio (close 1011)."""
    rollover_s: float = 8.0
    """``session_rollover_s``, wall seconds (at 100 x: a session every ~13 min of audio)."""
    fail_item: int = 5
    """Each session's ``fail_item``-th item is answered with ``…transcription.failed``."""
    update_every_audio_s: float = 600.0
    pause_after_audio_s: float = 120.0
    pause_s: float = 4.0
    """The server stops reading for this long (wall), longer than ``send_timeout_s``."""
    pause_sessions: int = 2
    send_timeout_s: float = 3.0
    """``conn_options.timeout``, the plugin's send timeout."""
    warmup_audio_s: float = 900.0
    """RSS growth is counted from here (every fault has happened at least once by then)."""
    flood_deltas: int = 26_000
    inline: bool = False
    """Run the servers in this process (smoke runs: RSS then counts them too)."""
    quick: bool = False

    @classmethod
    def small(cls) -> Config:
        return cls(
            audio_s=120.0,
            speed=40.0,
            drop_every_audio_s=25.0,
            rollover_s=1.2,
            update_every_audio_s=15.0,
            pause_after_audio_s=10.0,
            pause_s=1.3,
            pause_sessions=1,
            send_timeout_s=1.0,
            warmup_audio_s=30.0,
            flood_deltas=2000,
            inline=True,
            quick=True,
        )


@dataclass
class Result:
    cfg: Config
    soak: dict[str, Any] = field(default_factory=dict)
    flood: list[dict[str, Any]] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# servers in their own process


def _pin_server() -> None:
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, server_cpus("auto"))


def _new_server(faults: Any) -> Any:
    """The soak's local server (not started): scripted with :func:`turn_words`, ``faults``, no
    session cap, no pre-commit partials."""
    from livekit.plugins.openai_stt.server import LocalRealtimeServer
    from livekit.plugins.openai_stt.server.engines import ScriptedEngine

    return LocalRealtimeServer(
        engine=ScriptedEngine(turn_words),
        port=0,
        faults=faults,
        max_sessions=None,
        delta_interval_s=None,
    )


def _local_server_main(conn: Any, faults: Any) -> None:
    """Child process: the local server, scripted with :func:`turn_words`; sends its port, waits
    for a message, sends back its fault counters and RSS."""
    _pin_server()

    async def main() -> None:
        srv = _new_server(faults)
        await srv.start()
        conn.send(srv.port)
        with contextlib.suppress(EOFError):  # the parent's word, or its end
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        conn.send({**dataclasses.asdict(srv.counters), "rss_bytes": rss_bytes()})
        await srv.aclose()

    asyncio.run(main())


async def _receive(proc: Any, conn: Any, timeout_s: float) -> Any:
    """The next message from a child process, polled (no thread to leave behind).

    Raises:
        RuntimeError: the child died or said nothing within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while not conn.poll():
        if not proc.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server process did not answer (exit code {proc.exitcode})")
        await asyncio.sleep(0.05)
    return conn.recv()


@contextlib.asynccontextmanager
async def soak_server(faults: Any, *, inline: bool) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """The scripted local server with ``faults``: yields ``(port, counters)``; ``counters`` is
    filled (the server's ``FaultCounters`` as a dict) when the block ends."""
    counters: dict[str, Any] = {}
    if inline:
        srv = _new_server(faults)
        await srv.start()
        try:
            yield srv.port, counters
        finally:
            counters.update(dataclasses.asdict(srv.counters))
            await srv.aclose()
        return
    parent, child = multiprocessing.get_context("spawn").Pipe()
    proc = multiprocessing.get_context("spawn").Process(
        target=_local_server_main, args=(child, faults), daemon=True
    )
    proc.start()
    try:
        port = await _receive(proc, parent, 120.0)
        yield port, counters
        parent.send("stop")
        counters.update(await _receive(proc, parent, 30.0))
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()


# --------------------------------------------------------------------------------------------
# the soak


def _speech_48k() -> np.ndarray:
    return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in speech_frames_48k(20)])


def _turn_frames(speech: np.ndarray, k: int, start: int) -> tuple[list[Any], int]:
    """Turn ``k`` as 48 kHz frames of 100 ms (the last one shorter), cut from ``speech`` from
    sample ``start`` on (cycled); returns the frames and the next start."""
    from livekit import rtc

    n = round(turn_length_s(k) * 48000)
    idx = (start + np.arange(n)) % len(speech)
    samples = speech[idx]
    frames = [
        rtc.AudioFrame(samples[i : i + 4800].tobytes(), 48000, 1, len(samples[i : i + 4800]))
        for i in range(0, n, 4800)
    ]
    return frames, (start + n) % len(speech)


def _account(
    finals: list[tuple[float, float, str, bool]], starts: list[float], flushed: list[float]
) -> dict[str, Any]:
    """Matches each final ``(received_at, audio_start_s, text, incomplete)`` to the turn whose
    audio it starts in; per turn: finals, words lost and the wait from its ``flush()``."""
    per_turn: list[list[tuple[float, str, bool]]] = [[] for _ in starts]
    for received, audio_start, words, incomplete in finals:
        k = max(0, bisect.bisect_right(starts, audio_start + 0.005) - 1)
        per_turn[k].append((received, words, incomplete))
    lost_words = altered = duplicates = no_final = 0
    waits = []
    for k, got in enumerate(per_turn):
        if not got:
            no_final += 1
            continue
        duplicates += len(got) - 1
        waits.append(got[0][0] - flushed[k])
        expected = turn_words(turn_length_s(k)).split()
        heard = " ".join(words for _, words, _ in got).split()
        missing = sum(1 for w in expected if w not in heard)
        lost_words += missing
        altered += missing > 0 or len(heard) != len(expected)
    return {
        "turns": len(starts),
        "finals": len(finals),
        "no_final": no_final,
        "duplicates": duplicates,
        "altered": altered,
        "lost_words_in_finals": lost_words,
        "incomplete_finals": sum(1 for *_, inc in finals if inc),
        "waits_s": {
            "median": percentile(waits, 50),
            "p99": percentile(waits, 99),
            "max": max(waits, default=math.nan),
        },
    }


async def soak(cfg: Config) -> dict[str, Any]:
    """The soak run; returns its figures (see :func:`render`)."""
    from livekit.agents import APIConnectOptions

    from livekit.plugins.openai_stt.server import Faults

    faults = Faults(
        drop_after_audio_ms=cfg.drop_every_audio_s * 1000,
        drop_sessions=100_000,
        fail_items=frozenset({cfg.fail_item}),
        pause_reading_after_audio_ms=cfg.pause_after_audio_s * 1000,
        pause_reading_s=cfg.pause_s,
        pause_sessions=cfg.pause_sessions,
    )
    conn = APIConnectOptions(max_retry=20, retry_interval=0.2, timeout=cfg.send_timeout_s)
    speech = _speech_48k()
    finals: list[tuple[float, float, str, bool]] = []
    failures: list[str] = []
    starts: list[float] = []
    flushed: list[float] = []
    rss: list[tuple[float, int]] = []
    lag = LoopLag(0.01)
    stream_error: str | None = None
    async with (
        soak_server(faults, inline=cfg.inline) as (port, counters),
        open_stt(
            "ours",
            f"http://127.0.0.1:{port}/v1",
            session_rollover_s=cfg.rollover_s,
            max_queued_audio_s=cfg.audio_s,
        ) as stt,
    ):
        stt.on(
            "error",
            lambda e: failures.append(str(e.error)) if e.recoverable else None,
        )
        stream = stt.stream(conn_options=conn)

        async def consume() -> None:
            nonlocal stream_error
            try:
                async for e in stream:
                    if e.type == FINAL and e.alternatives:
                        d = e.alternatives[0]
                        incomplete = bool((d.metadata or {}).get("incomplete"))
                        finals.append((time.monotonic(), d.start_time, d.text, incomplete))
            except Exception as e:  # noqa: BLE001 - a failed stream is a result here
                stream_error = f"{type(e).__name__}: {e}"

        consumer = asyncio.create_task(consume())
        lag.start()
        cpu0, t0 = process_cpu_s(None), time.monotonic()
        pushed_s, start, k, updates = 0.0, 0, 0, 0
        while pushed_s < cfg.audio_s - 1e-9:
            frames, start = _turn_frames(speech, k, start)
            starts.append(pushed_s)
            for f in frames:
                stream.push_frame(f)
                pushed_s += f.samples_per_channel / 48000
                await asyncio.sleep(max(0.0, t0 + pushed_s / cfg.speed - time.monotonic()))
            flushed.append(time.monotonic())
            stream.flush()
            k += 1
            if pushed_s >= (updates + 1) * cfg.update_every_audio_s:
                stream.update_options(**UPDATES[updates % len(UPDATES)])
                updates += 1
            if not rss or pushed_s - rss[-1][0] >= 60.0:
                rss.append((pushed_s, rss_bytes()))
        stream.end_input()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(consumer), 60)
        wall_s = time.monotonic() - t0
        cpu_s = process_cpu_s(None) - cpu0
        rss.append((pushed_s, rss_bytes()))
        await lag.stop()
        await stream.aclose()
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
    after = [b for s, b in rss if s >= cfg.warmup_audio_s] or [rss[-1][1]]
    transcription_failures = sum(1 for f in failures if f.startswith("transcription failed"))
    out = _account(finals, starts, flushed)
    no_final = out["no_final"]
    return {
        **out,
        "audio_s": pushed_s,
        "wall_s": wall_s,
        "client_cpu_s": cpu_s,
        "updates": updates,
        "server": counters,
        "failures_reported": transcription_failures,
        "other_errors": len(failures) - transcription_failures,
        "lost_turns": max(0, no_final - transcription_failures),
        "lost_words": out["lost_words_in_finals"]
        + len(WORDS) * max(0, no_final - transcription_failures),
        "rss_mb": {
            "start": rss[0][1] / 1e6,
            "after_warmup": after[0] / 1e6,
            "end": rss[-1][1] / 1e6,
            "max": max(b for _, b in rss) / 1e6,
        },
        "loop_lag_max_ms": max(lag.samples, default=math.nan) * 1000,
        "stream_error": stream_error,
    }


# --------------------------------------------------------------------------------------------
# the delta flood


def _flood_messages(n: int) -> tuple[str, list[str]]:
    item = "item_flood"
    deltas = [
        json.dumps(
            {
                "type": "conversation.item.input_audio_transcription.delta",
                "event_id": f"event_{i}",
                "item_id": item,
                "content_index": 0,
                "delta": "word ",
            }
        )
        for i in range(n)
    ]
    return item, deltas


async def _flood_handler(ws: Any, n: int) -> None:
    """One connection: ``session.created``, ``session.updated`` for each ``session.update``,
    and after the first commit (or 1 s of appended audio): ``committed``, ``n`` deltas,
    ``completed``."""
    item, deltas = _flood_messages(n)
    await ws.send(json.dumps({"type": "session.created", "event_id": "e_c", "session": {}}))
    appended_b64 = 0
    flooded = False
    async for raw in ws:
        msg = json.loads(raw)
        kind = msg.get("type")
        if kind == "session.update":
            reply = {"type": "session.updated", "event_id": "e_u", "session": {}}
            await ws.send(json.dumps(reply))
        elif kind == "input_audio_buffer.append":
            appended_b64 += len(msg.get("audio", ""))
        if flooded or not (kind == "input_audio_buffer.commit" or appended_b64 > 64_000):
            continue  # 64,000 base64 chars: 1 s of pcm16 at 24 kHz
        flooded = True
        committed = {
            "type": "input_audio_buffer.committed",
            "event_id": "e_k",
            "item_id": item,
            "previous_item_id": None,
        }
        await ws.send(json.dumps(committed))
        for d in deltas:
            await ws.send(d)
        completed = {
            "type": "conversation.item.input_audio_transcription.completed",
            "event_id": "e_d",
            "item_id": item,
            "content_index": 0,
            "transcript": "word " * n,
            "usage": {"type": "duration", "seconds": 1.0},
        }
        await ws.send(json.dumps(completed))


async def _serve_flood(n: int, ready: Any) -> None:
    import websockets

    async with websockets.serve(
        lambda ws: _flood_handler(ws, n), "127.0.0.1", 0, max_size=None
    ) as server:
        ready(next(iter(server.sockets)).getsockname()[1])
        await asyncio.Future()


def _flood_server_main(conn: Any, n: int) -> None:
    _pin_server()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_flood(n, conn.send))


@contextlib.asynccontextmanager
async def flood_server(n: int, *, inline: bool) -> AsyncIterator[int]:
    """The delta-flood server (its own process unless ``inline``); yields its port."""
    if inline:
        got: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(_serve_flood(n, got.set_result))
        try:
            yield await got
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return
    parent, child = multiprocessing.get_context("spawn").Pipe()
    proc = multiprocessing.get_context("spawn").Process(
        target=_flood_server_main, args=(child, n), daemon=True
    )
    proc.start()
    try:
        yield await _receive(proc, parent, 60.0)
    finally:
        proc.kill()
        proc.join(10)


class _RssPeak:
    """Samples this process's RSS every 5 ms in a thread; :attr:`peak` in bytes."""

    def __init__(self) -> None:
        self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_bytes())

    def __enter__(self) -> _RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def flood(plugin: str, n: int, *, inline: bool) -> dict[str, Any]:
    """``n`` deltas for one item into one stream of ``plugin``: CPU of this process, peak RSS
    growth and the longest event-loop stall from the first commit to the final."""
    speech = speech_frames_48k(3)
    async with (
        flood_server(n, inline=inline) as port,
        open_stt(plugin, f"http://127.0.0.1:{port}/v1") as stt,
    ):
        stream = stt.stream()
        interims = 0
        final: str | None = None
        got_final = asyncio.Event()

        async def consume() -> None:
            nonlocal interims, final
            with contextlib.suppress(Exception):
                async for e in stream:
                    if e.type == INTERIM:
                        interims += 1
                    elif e.type == FINAL:
                        final = text(e)
                        got_final.set()

        consumer = asyncio.create_task(consume())
        lag = LoopLag(0.005)
        base = rss_bytes()
        with _RssPeak() as peak:
            lag.start()
            cpu0, t0 = process_cpu_s(None), time.monotonic()
            # ours commits after 0.5 s (flush); the official plugin gets the flood at 1 s
            for f in speech[: 50 if plugin == "ours" else 150]:
                stream.push_frame(f)
                await asyncio.sleep(0.001)
            if plugin == "ours":
                stream.flush()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(got_final.wait(), 120)
            elapsed, cpu = time.monotonic() - t0, process_cpu_s(None) - cpu0
            await lag.stop()
        await stream.aclose()
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
    return {
        "plugin": plugin,
        "deltas": n,
        "cpu_s": cpu,
        "to_final_s": elapsed if final is not None else math.nan,
        "peak_rss_growth_mb": (peak.peak - base) / 1e6,
        "loop_lag_max_ms": max(lag.samples, default=math.nan) * 1000,
        "interims": interims,
        "final_chars": len(final) if final is not None else None,
    }


async def measure(cfg: Config) -> Result:
    result = Result(cfg)
    result.soak = await soak(cfg)
    for plugin in ("ours", "official"):
        await flood(plugin, 200, inline=cfg.inline)  # warm-up: imports, first connection
        result.flood.append(await flood(plugin, cfg.flood_deltas, inline=cfg.inline))
    return result


def summary(r: Result) -> list[Row]:
    s = r.soak
    rss = s["rss_mb"]["end"] - s["rss_mb"]["after_warmup"]
    return [
        (
            f"soak, {s['audio_s'] / 3600:.1f} h of audio with faults: words lost / duplicate "
            "finals (ours only)",
            f"{s['lost_words']} / {s['duplicates']}",
            "",
            "",
            "0 / 0",
        ),
        (
            "soak: RSS growth after warm-up (ours only)",
            f"{rss:+.1f} MB",
            "",
            "",
            "flat, under 5 MB",
        ),
    ]


def render(r: Result) -> str:
    c, s = r.cfg, r.soak
    srv, rss, w = s["server"], s["rss_mb"], s["waits_s"]
    lines = [
        "## Soak (our plugin; issue 14)",
        "",
        f"One stream, {s['audio_s'] / 3600:.2f} h of speech at {c.speed:g}x real time "
        f"({s['wall_s']:.0f} s of wall time) in {s['turns']} turns of 2.00 to 5.99 s, each "
        "flushed, against the local server (scripted engine, its own process) that drops the "
        f"socket (close 1011) once a session received {c.drop_every_audio_s:g} s of audio, "
        f"fails each session's item {c.fail_item} (`…transcription.failed`) and stops reading "
        f"for {c.pause_s:g} s (wall) in {c.pause_sessions} session(s), longer than the "
        f"{c.send_timeout_s:g} s send timeout; `session_rollover_s={c.rollover_s:g}` (wall); "
        f"{s['updates']} `update_options` calls (delay, prompt, language; clearing the "
        "language takes a new session). Reconnects every 0.2 s; `max_queued_audio_s` raised "
        f"to the whole audio, because compressed time queues {c.speed:g} x more audio during "
        "a reconnect. Each final is matched to its turn by its audio span; the scripted engine "
        "names an item by its length, so a final's words show whether it holds its whole turn.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| sessions opened / drops / read pauses (server) | {srv.get('sessions_opened')} / "
        f"{srv.get('drops')} / {srv.get('read_pauses')} |",
        f"| items failed by the server (fault) / failures the stream reported | "
        f"{srv.get('items_failed')} / {s['failures_reported']} |",
        f"| turns / finals / turns without a final | {s['turns']} / {s['finals']} / "
        f"{s['no_final']} |",
        f"| **words lost** (turns without a final and no failure reported, words missing "
        f"from finals) | **{s['lost_words']}** ({s['lost_turns']} turns) |",
        f"| **duplicate finals** | **{s['duplicates']}** |",
        f"| finals not holding exactly their turn's words | {s['altered']} |",
        f"| wait from a turn's `flush()` to its final, median / p99 / **max** (wall) | "
        f"{w['median'] * 1000:.0f} ms / {w['p99'] * 1000:.0f} ms / **{w['max']:.2f} s** |",
        f"| RSS at start / after {c.warmup_audio_s / 60:g} min of audio / end / max | "
        f"{rss['start']:.1f} / {rss['after_warmup']:.1f} / {rss['end']:.1f} / "
        f"{rss['max']:.1f} MB |",
        f"| **RSS growth after warm-up** | **{rss['end'] - rss['after_warmup']:+.1f} MB** |",
        f"| client CPU | {s['client_cpu_s']:.1f} s ({s['client_cpu_s'] / s['audio_s'] * 60:.3f} "
        "s per minute of audio) |",
        f"| longest event-loop stall | {s['loop_lag_max_ms']:.0f} ms |",
        f"| stream error | {s['stream_error'] or 'none'} |",
        "",
        "The longest wait is a turn flushed while the server had stopped reading: it waits for "
        "the send timeout, a reconnect and the replay of its audio.",
        "",
        f"A flood of deltas: the server answers the first commit with {c.flood_deltas:,} "
        "one-word deltas for one item, then its `completed` (the official plugin gets them "
        "after 1 s of audio, as it commits only on its VAD's end of speech). CPU of the client "
        "process and its peak RSS growth, from the first audio to the final, after a warm-up "
        "flood of 200 (issue 14 found +3.3 GB, 5.5 s of CPU and stalls of 3 s here):",
        "",
        "| plugin | CPU (s) | to the final (s) | peak RSS growth (MB) | longest event-loop "
        "stall (ms) | interim transcripts |",
        "|---|---|---|---|---|---|",
    ]
    for f in r.flood:
        lines.append(
            f"| {f['plugin']} | {f['cpu_s']:.2f} | {fmt(f['to_final_s'])} | "
            f"{f['peak_rss_growth_mb']:.1f} | {f['loop_lag_max_ms']:.0f} | {f['interims']} |"
        )
    return "\n".join(lines)
