"""Feeding streams: the pacer, the one paced-push driver, one stream's run, a fleet of streams.

Frames are 10 ms (:data:`FRAME_S`); "real time" is one frame per stream per 10 ms on an absolute
schedule (a late tick is caught up, not skipped), ``speed`` times faster when asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.harness.plugins import FINAL, OracleVAD, make_stt, text

FRAME_S = 0.01
PHASES = 5
"""A fleet's streams are fed in this many groups, evenly spaced in each 10 ms (2 ms apart), as
the frames of independent participants arrive, rather than all at once."""


class Pacer:
    """An absolute schedule, one tick every ``period_s / speed`` seconds (``speed`` infinite:
    no wait, but a yield). ``lateness``: how late each tick was, seconds."""

    def __init__(self, period_s: float = FRAME_S, speed: float = 1.0) -> None:
        self.period = period_s / speed
        self.t0 = time.monotonic()
        self.k = 0
        self.lateness: list[float] = []

    async def tick(self) -> None:
        self.k += 1
        target = self.t0 + self.k * self.period
        # always yield: a late driver catching up must not starve the tasks it feeds
        await asyncio.sleep(max(0.0, target - time.monotonic()))
        self.lateness.append(max(0.0, time.monotonic() - target))

    def p95_ms(self) -> float:
        from benchmarks.harness.stats import percentile

        return percentile(self.lateness, 95) * 1000


class LoopLag:
    """Event-loop lag probe: sleeps ``interval_s`` over and over and records the oversleep (s)."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval = interval_s
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t = time.monotonic()
            await asyncio.sleep(self.interval)
            self.samples.append(time.monotonic() - t - self.interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def push_paced(
    streams: Sequence[Any],
    frames: Sequence[Any],
    rounds: int,
    *,
    start: int = 0,
    pacer: Pacer | None = None,
    speed: float = 1.0,
    phases: int = 1,
    after_push: Callable[[Any], None] | None = None,
    after_round: Callable[[int], None] | None = None,
    sample: Callable[[], None] | None = None,
    dead: set[int] | None = None,
) -> int:
    """The one paced-push driver: ``rounds`` times, push ``frames[(start + r) % len(frames)]``
    to every stream, each stream once per 10 ms / ``speed``, the streams split in ``phases``
    groups evenly spaced in each period. ``after_push(stream)`` follows each push,
    ``after_round(r)`` each round; ``sample()`` runs every 25 rounds (250 ms of audio). A stream
    whose ``push_frame`` raises RuntimeError has died (its retries ran out): its id goes in
    ``dead`` if given, else the error propagates. Returns ``start + rounds``."""
    pacer = pacer or Pacer(FRAME_S / phases, speed)
    groups = [streams[j::phases] for j in range(phases)]
    for r in range(rounds):
        frame = frames[(start + r) % len(frames)]
        if sample is not None and r % 25 == 0:
            sample()
        for group in groups:
            await pacer.tick()
            for s in group:
                try:
                    s.push_frame(frame)
                    if after_push is not None:
                        after_push(s)
                except RuntimeError:
                    if dead is None:
                        raise
                    dead.add(id(s))
        if after_round is not None:
            after_round(r)
    return start + rounds


async def drain(stream: Any) -> None:
    """Consume a stream's events until it ends (errors included)."""
    with contextlib.suppress(Exception):
        async for _ in stream:
            pass


# --------------------------------------------------------------------------------------------
# one stream


@dataclass
class StreamRun:
    """What one stream did. Times are ``time.monotonic()`` seconds."""

    events: list[tuple[float, Any]] = field(default_factory=list)
    """(when the app iterating the stream received it, ``SpeechEvent``)."""
    turn_ends: list[float] = field(default_factory=list)
    """Just after each turn's last frame was pushed (before its ``flush()``, if any)."""
    end_input_at: float = math.nan
    ended_at: float | None = None
    """When the stream's iterator ended (None: still open when the run stopped waiting)."""
    error: str | None = None
    lateness: list[float] = field(default_factory=list)

    def finals(self) -> list[tuple[float, Any]]:
        return [(t, e) for t, e in self.events if e.type == FINAL]

    def final_text(self) -> str:
        return " ".join(text(e) for _, e in self.finals())


async def run_stream(
    stt: Any,
    frames: Sequence[Any],
    *,
    turn_ends: Sequence[int] = (),
    flush: bool = True,
    speed: float = 1.0,
    warm_s: float = 0.0,
    background: Sequence[Any] = (),
    conn_options: Any = None,
    timeout_s: float = 10.0,
    quiet_s: float | None = None,
    expect_finals: int | None = None,
) -> StreamRun:
    """Open a stream, push ``frames`` at ``speed`` x real time (``background`` streams get the
    same frames), end a turn after each frame count in ``turn_ends`` (``flush()`` if ``flush``),
    ``end_input()`` after the last frame, then wait for the stream to end, at most ``timeout_s``
    (or ``quiet_s`` without a new FINAL, or until ``expect_finals`` FINALs: the official stream
    never ends by itself), and close it. ``warm_s``: the stream connects before the clock
    starts (both plugins connect lazily)."""
    stream = stt.stream(conn_options=conn_options) if conn_options else stt.stream()
    run = StreamRun()

    async def reader() -> None:
        try:
            async for event in stream:
                run.events.append((time.monotonic(), event))
        except Exception as e:  # noqa: BLE001 - a failed stream is a result here
            run.error = f"{type(e).__name__}: {e}"
        run.ended_at = time.monotonic()

    task = asyncio.create_task(reader())
    await asyncio.sleep(warm_s)
    ends = set(turn_ends)
    pacer = Pacer(speed=speed)

    def after_round(r: int) -> None:
        if r + 1 in ends:
            run.turn_ends.append(time.monotonic())
            if flush and r + 1 < len(frames):
                stream.flush()

    await push_paced(
        [stream, *background], frames, len(frames), pacer=pacer, after_round=after_round
    )
    run.end_input_at = t_end = time.monotonic()
    stream.end_input()
    while not task.done():
        now = time.monotonic()
        finals = run.finals()
        last = max([t_end] + [t for t, _ in finals])
        if (
            now - t_end > timeout_s
            or (quiet_s is not None and now - last > quiet_s)
            or (expect_finals is not None and len(finals) >= expect_finals)
        ):
            break
        await asyncio.sleep(0.02)
    gave_up = not task.done()
    await stream.aclose()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if gave_up:  # it ended because aclose() closed it
        run.ended_at = None
    run.lateness = pacer.lateness
    return run


# --------------------------------------------------------------------------------------------
# many streams

_STREAM_INDEX = itertools.count()
"""Numbers every fleet stream of the process: stream ``j`` ends its turns ``37 j`` frames off."""


class Fleet:
    """Streams of one plugin fed together, as independent participants are.

    Their chunk boundaries are staggered (stream ``i`` of an :meth:`open` first gets
    ``i * 7 % 20`` frames at once) and, with turns (``turn_s``), so are their turn ends: ours is
    flushed every ``turn_s`` of its audio, ``37 j`` frames off for the ``j``-th stream (as
    ``AgentSession`` flushes an STT with ``manual_flush``); the official plugin commits only on
    its VAD's END_OF_SPEECH, so it gets the :class:`OracleVAD`, staggered alike.
    """

    def __init__(self, plugin: str, base_url: str, turn_s: float = 0.0, **stt_kw: Any) -> None:
        vad = OracleVAD(turn_s=turn_s, stagger=True) if turn_s and plugin == "official" else None
        self.stt = make_stt(plugin, base_url, vad=vad, **stt_kw)
        self.flush_every = round(turn_s * 100) if turn_s and plugin == "ours" else 0
        self.streams: list[Any] = []
        self.dead: set[int] = set()
        self._sinks: list[asyncio.Task[None]] = []
        self._pushed: dict[int, int] = {}
        self._offset: dict[int, int] = {}

    async def open(self, n: int, preroll: Sequence[Any] = ()) -> list[Any]:
        """Open ``n`` more streams, each drained by a task; returns them."""
        new = []
        for i in range(n):
            s = self.stt.stream()
            self._sinks.append(asyncio.create_task(drain(s)))
            self._pushed[id(s)], self._offset[id(s)] = 0, next(_STREAM_INDEX) * 37
            for f in preroll[: i * 7 % 20]:
                s.push_frame(f)
                self._pushed[id(s)] += 1
            new.append(s)
        self.streams += new
        return new

    def _after_push(self, s: Any) -> None:
        n = self._pushed[id(s)] = self._pushed[id(s)] + 1
        if self.flush_every and (n - self._offset[id(s)]) % self.flush_every == 0:
            s.flush()

    async def feed(
        self,
        frames: Sequence[Any],
        seconds: float,
        *,
        start: int = 0,
        pacer: Pacer | None = None,
        sample: Callable[[], None] | None = None,
    ) -> int:
        """Feed every stream in real time for ``seconds`` (:data:`PHASES` groups); returns the
        next frame index."""
        return await push_paced(
            self.streams,
            frames,
            round(seconds / FRAME_S),
            start=start,
            pacer=pacer or Pacer(FRAME_S / PHASES),
            phases=PHASES,
            after_push=self._after_push,
            sample=sample,
            dead=self.dead,
        )

    def backlog_ms(self, streams: Sequence[Any] | None = None) -> float:
        """Largest input backlog among the streams, ms of audio: frames still queued in the
        base stream's input channel (``_input_ch``), ~10 ms each."""
        return max((s._input_ch.qsize() for s in streams or self.streams), default=0) * 10.0

    def stuck(self, over_ms: float = 500.0) -> int:
        """Streams whose input backlog exceeds ``over_ms`` (not consuming at all, usually)."""
        return sum(s._input_ch.qsize() * 10.0 > over_ms for s in self.streams)

    async def aclose(self) -> None:
        await asyncio.gather(*(s.aclose() for s in self.streams), return_exceptions=True)
        for t in self._sinks:
            t.cancel()
        await asyncio.gather(*self._sinks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.stt.aclose()
