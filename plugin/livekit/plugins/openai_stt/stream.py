"""The LiveKit ``SpeechStream``: frames out, speech events in.

Out: frames (stereo downmixed; gathered into blocks of ``chunk_ms`` and resampled to the wire
rate a block at a time) -> wire bytes appended to a *ledger* -> ``input_audio_buffer.append``
chunks of ``chunk_ms`` -> socket. A flush (framework
``flush()``/``end_input()``, or the optional VAD's end of speech) becomes a ``commit`` sent by
the same single writer, behind the audio it closes, and only with at least 100 ms uncommitted
(docs/protocol.md §3).

In: socket text -> ``events.parse`` -> ``TranscriptAssembler`` -> ``SpeechEvent``.

Failures become LiveKit ``APIError``s in one place (:func:`_api_error`) and LiveKit's base
stream retries retryable ones by calling ``_run`` again; there is no second retry loop here.
What a retry would lose is kept: the ledger holds the wire audio of every turn not yet
finalised, and each new socket gets it replayed, with its commits at the same places, before
new audio (docs/protocol.md §6: audio not committed when a socket dies is lost on the server side).
A session that ends normally (``session_expired``, close 1001, docs/protocol.md §5), a rollover
before the session cap (§6) and a model change reconnect at once, in ``_run``, without
counting as a failure. A rollover is make-before-break: the next session is opened and
configured shortly before it is due (``_PREPARE_AHEAD_S``), so at the turn boundary the move
costs no connect time, only the replay of the audio not yet committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np
from livekit import rtc
from livekit.agents import APIConnectionError, APIConnectOptions, APIError, APIStatusError, stt
from livekit.agents import vad as vad_mod
from livekit.agents.language import LanguageCode
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.agents.utils import aio, is_given

from .log import logger
from .models import get_model_info
from .protocol import events as ev
from .protocol import g711
from .protocol.endpoint import redact_url
from .protocol.errors import Classified, ErrorAction, classify_error_event
from .protocol.events import MIN_COMMIT_MS
from .protocol.session import build_session_update, wire_bytes_per_sample
from .protocol.transcript import (
    CommitRefusedOut,
    CommittedOut,
    FailureOut,
    FinalOut,
    InterimOut,
    Output,
    SpeechEndedOut,
    SpeechStartedOut,
    TranscriptAssembler,
    UsageOut,
)
from .protocol.usage import UsageSummary
from .transport import Connection, TransportError

if TYPE_CHECKING:
    from .stt import STT, STTOptions

__all__ = ["SpeechStream", "option_changes"]


_DEADLINE_TICK_S = 0.25
_QUICK_SESSION_S = 5.0  # a session that ends sooner than this made no progress
_MAX_QUICK_RECONNECTS = 3
_FORCED_ROLLOVER_GRACE_S = 240.0
_PREPARE_AHEAD_S = 30.0  # open the next session this long before a rollover is due
_QUIET_RMS = 300.0  # int16 RMS (about -40 dBFS) taken as a pause when cutting a long item


class _VadCommit:
    """Marker put in the input channel by the VAD task: commit here (single writer)."""


class _SessionChange:
    """Marker put in the input channel by ``update_options``: resend the session config
    (or reconnect, for a model change) here, behind the audio already queued."""


class _Reconnect(Exception):
    """The session ended normally (expiry, close 1001): open the next one at once."""


def option_changes(**options: Any) -> dict[str, Any]:
    """The options given (not ``NOT_GIVEN``) to an ``update_options`` call, normalised:
    an empty language becomes ``None``, a turn-detection mapping a plain dict."""
    changes = {name: value for name, value in options.items() if is_given(value)}
    if "language" in changes:
        changes["language"] = changes["language"] or None
    if changes.get("turn_detection") is not None:
        changes["turn_detection"] = dict(changes["turn_detection"])
    return changes


def _api_error(classified: Classified, body: object | None = None) -> APIError:
    """The one place where a classified failure becomes a LiveKit ``APIError``."""
    retryable = classified.retryable
    if classified.status is not None and 100 <= classified.status < 600:
        return APIStatusError(
            classified.message, status_code=classified.status, body=body, retryable=retryable
        )
    if retryable:
        return APIConnectionError(classified.message)
    return APIError(classified.message, body=body, retryable=False)


def _downmix(frame: rtc.AudioFrame) -> rtc.AudioFrame:
    samples = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
    mono = samples.mean(axis=1).astype(np.int16)
    return rtc.AudioFrame(
        data=mono.tobytes(),
        sample_rate=frame.sample_rate,
        num_channels=1,
        samples_per_channel=frame.samples_per_channel,
    )


class SpeechStream(stt.RecognizeStream):
    """A streaming recognition session; see :meth:`STT.stream`.

    Events: START_OF_SPEECH / END_OF_SPEECH (server VAD, or the ``vad`` given to the STT);
    INTERIM_TRANSCRIPT with the full text of the item so far; FINAL_TRANSCRIPT per completed
    item (``request_id`` = item id; ``start_time``/``end_time`` in seconds on the session
    clock: the item's audio offsets plus ``start_time_offset``); RECOGNITION_USAGE per item
    (``audio_duration`` = seconds committed in the item).

    A turn whose final does not come within ``final_timeout_s`` of its commit ends with the
    interim text it had (``metadata={"incomplete": True, "reason": "final_timeout"}``) and a
    recoverable ``error``; a late final for it is dropped.
    """

    def __init__(
        self,
        *,
        stt: STT,
        opts: STTOptions,
        conn_options: APIConnectOptions,
        vad: vad_mod.VAD | None,
    ) -> None:
        # resampling happens in push_frame (after downmixing, and across rate changes)
        super().__init__(stt=stt, conn_options=conn_options)
        self._stt_impl = stt
        self._opts = opts
        self._rate = opts.sample_rate_hz
        self._bps = wire_bytes_per_sample(opts.audio_format)
        self._chunk_bytes = self._rate * opts.chunk_ms // 1000 * self._bps
        self._min_commit_samples = self._rate * MIN_COMMIT_MS // 1000
        self._max_retained_bytes = int(opts.max_retained_audio_s * self._rate) * self._bps
        self._max_queued_samples = int(opts.max_queued_audio_s * self._rate)
        self._max_item_samples = int(opts.max_item_s * self._rate)
        self._assembler = TranscriptAssembler(language=opts.language)
        self._usage = UsageSummary(model=stt.model_info)
        # the ledger: wire bytes from sample `_ledger_start` on (all audio not yet finalised)
        self._ledger = bytearray()
        self._ledger_start = 0
        self._appended = 0  # wire samples pushed since the stream began (the stream clock)
        self._sent = 0  # wire samples the current socket has received
        self._last_commit = 0  # wire sample index of the last commit
        self._commit_points: deque[int] = deque()  # commits of turns not yet finalised
        self._item_points: dict[str, int] = {}  # item id -> its commit point (wire samples)
        self._finalized_points: set[int] = set()  # commit points whose turn has its final
        self._commits_sent = 0
        self._queued = 0  # wire samples waiting in the input channel
        self._queue_overflowed = False
        self._connected = False
        self._resampler_rate = 0
        # input frames of one rate are gathered into blocks of chunk_ms before resampling and
        # queueing: one native resampler call and one writer wake-up a chunk, not a frame
        self._block = bytearray()
        self._block_rate = 0
        self._block_samples = 0
        self._block_target = 0
        self._sessions = 0
        self._session_started = 0.0
        self._quick_reconnects = 0
        self._time_base: float | None = None
        self._drained = asyncio.Event()
        self._unknown_types: set[str] = set()
        self._deadlines: dict[str, float] = {}  # item id -> loop time its final is due
        self._unacked_commits: deque[float] = deque()  # loop times of commits not acked
        self._vad = vad
        self._vad_stream: vad_mod.VADStream | None = None
        self._vad_task: asyncio.Task[None] | None = None
        if vad is not None:  # it sees every input frame, as pushed
            self._vad_stream = vad.stream()
            self._vad_task = asyncio.create_task(self._vad_loop(), name="openai_stt.vad")
        self._reconnect_requested = False
        # make-before-break rollover: the next session, opened ahead, and the options it has
        self._next_conn: asyncio.Task[tuple[Connection, float]] | None = None
        self._next_conn_opts: STTOptions | None = None

    # -- public ---------------------------------------------------------------------------

    @property
    def usage(self) -> UsageSummary:
        """This stream's totals: audio seconds sent/committed, tokens, estimated USD."""
        return self._usage

    def push_frame(self, frame: rtc.AudioFrame) -> None:
        """Push audio: any sample rate (a change mid-stream is handled: the old rate's audio
        is flushed first), mono or multi-channel (downmixed to mono before resampling); empty
        frames are ignored.

        Raises:
            RuntimeError: after ``end_input()`` or ``aclose()``.
        """
        self._check_input_not_ended()
        self._check_not_closed()
        if frame.samples_per_channel == 0:
            return
        if frame.num_channels > 1:
            frame = _downmix(frame)
        if frame.sample_rate != self._block_rate:
            self._flush_block(flush_resampler=True)
            self._block_rate = frame.sample_rate
            self._block_target = frame.sample_rate * self._opts.chunk_ms // 1000
        self._block += frame.data
        self._block_samples += frame.samples_per_channel
        if self._vad_stream is not None:
            self._vad_stream.push_frame(frame)
        if self._block_samples >= self._block_target:
            self._flush_block(flush_resampler=False)

    def flush(self) -> None:
        """End the current turn: its audio is committed, and its final follows."""
        self._check_input_not_ended()
        self._check_not_closed()
        self._flush_block(flush_resampler=True)
        self._input_ch.send_nowait(self._FlushSentinel())

    async def aclose(self) -> None:
        """Close now: cancels every task, closes the socket; safe to call twice."""
        try:
            await super().aclose()
        finally:
            await self._close_vad()

    def update_options(
        self,
        *,
        model: NotGivenOr[str] = NOT_GIVEN,
        language: NotGivenOr[str | None] = NOT_GIVEN,
        prompt: NotGivenOr[str | None] = NOT_GIVEN,
        delay: NotGivenOr[str | None] = NOT_GIVEN,
        noise_reduction: NotGivenOr[str | None] = NOT_GIVEN,
        turn_detection: NotGivenOr[dict[str, Any] | None] = NOT_GIVEN,
    ) -> None:
        """Change options of the open stream.

        Sent as a ``session.update`` by the single writer, behind audio already pushed
        (docs/protocol.md §2: a field left out keeps its value). A model change reconnects: the
        audio of unfinished turns is replayed to the new session, so no word is lost.
        """
        changes = option_changes(
            model=model,
            language=language,
            prompt=prompt,
            delay=delay,
            noise_reduction=noise_reduction,
            turn_detection=turn_detection,
        )
        if not changes:
            return
        if "model" in changes and changes["model"] != self._opts.model:
            self._reconnect_requested = True
        self._opts = dataclasses.replace(self._opts, **changes)
        self._assembler.language = self._opts.language
        if not self._input_ch.closed:
            self._flush_block(flush_resampler=False)  # behind the audio already pushed
            self._input_ch.send_nowait(_SessionChange())  # type: ignore[arg-type]

    # -- input ----------------------------------------------------------------------------

    def _flush_block(self, *, flush_resampler: bool) -> None:
        """Resample and queue the gathered block (and the resampler's tail, if asked)."""
        if self._block_samples:
            block = rtc.AudioFrame(bytes(self._block), self._block_rate, 1, self._block_samples)
            self._block.clear()
            self._block_samples = 0
            if self._block_rate == self._rate:
                self._enqueue(block)
            else:
                if self._resampler is None or self._resampler_rate != self._block_rate:
                    self._drop_resampler()
                    self._resampler = rtc.AudioResampler(
                        self._block_rate, self._rate, quality=rtc.AudioResamplerQuality.HIGH
                    )
                    self._resampler_rate = self._block_rate
                for out in self._resampler.push(block):
                    self._enqueue(out)
        if flush_resampler and self._resampler is not None:
            for out in self._resampler.flush():
                self._enqueue(out)

    def _drop_resampler(self) -> None:
        if self._resampler is not None:
            for out in self._resampler.flush():
                self._enqueue(out)
            self._resampler = None
            self._resampler_rate = 0

    def _enqueue(self, frame: rtc.AudioFrame) -> None:
        self._queued += frame.samples_per_channel
        if (
            not self._connected
            and self._queued > self._max_queued_samples
            and not self._queue_overflowed
        ):
            self._queue_overflowed = True
            logger.error(
                "audio queued while disconnected exceeds the bound; the stream will fail",
                extra={"max_queued_audio_s": self._opts.max_queued_audio_s},
            )
        self._input_ch.send_nowait(frame)

    # -- the attempt ------------------------------------------------------------------------

    async def _run(self) -> None:
        if self._time_base is None:
            self._time_base = self.start_time_offset

        try:
            while True:
                self._check_queue()
                started = asyncio.get_running_loop().time()
                try:
                    again = await self._run_session(await self._open())
                except _Reconnect as e:
                    quick = asyncio.get_running_loop().time() - started < _QUICK_SESSION_S
                    self._quick_reconnects = self._quick_reconnects + 1 if quick else 0
                    if self._quick_reconnects >= _MAX_QUICK_RECONNECTS:
                        raise APIConnectionError(
                            f"the server keeps ending sessions at once ({e})"
                        ) from None
                    logger.info(
                        "session ended by the server; reconnecting", extra={"reason": str(e)}
                    )
                    continue
                if not again:
                    break
                logger.info("opening the next session", extra={"model": self._opts.model})
        finally:
            await self._discard_next_session()

        if self._vad_task is not None:  # let the VAD report the last end of speech
            await asyncio.wait({self._vad_task}, timeout=1.0)
        await self._close_vad()

    def _check_queue(self) -> None:
        if self._queue_overflowed:
            raise APIError(
                "more than max_queued_audio_s="
                f"{self._opts.max_queued_audio_s}s of audio queued while disconnected; "
                "failing rather than dropping audio",
                retryable=False,
            )

    async def _run_session(self, conn: Connection) -> bool:
        """Run one socket until input ends (False) or a new socket is wanted (True).

        Raises:
            _Reconnect: the server ended the session normally.
            APIError: any failure, classified.
        """
        writer = asyncio.create_task(self._write_loop(conn), name="openai_stt.writer")
        reader = asyncio.create_task(self._read_loop(conn), name="openai_stt.reader")
        watchdog = asyncio.create_task(self._deadline_loop(), name="openai_stt.deadlines")
        self._connected = True
        try:
            done, _ = await asyncio.wait(
                {writer, reader, watchdog}, return_when=asyncio.FIRST_COMPLETED
            )
            try:
                if writer in done:
                    return writer.result()
                for task in (reader, watchdog):
                    if task in done:
                        task.result()  # raises the failure
            except TransportError as e:  # whichever task saw the socket die first
                if e.classified.action == ErrorAction.RECONNECT:
                    raise _Reconnect(e.classified.message) from None
                raise _api_error(e.classified) from None
            raise _api_error(Classified(ErrorAction.RETRY, "server ended the session"))
        finally:
            self._connected = False
            await aio.cancel_and_wait(writer, reader, watchdog)
            await conn.aclose()

    async def _open(self) -> Connection:
        """A socket whose session is configured and has every unfinalised turn replayed: the
        one opened ahead for a rollover when it is usable, else a new one.

        Raises:
            APIError: connecting, configuring or replaying failed (classified).
        """
        taken = await self._take_next_session()
        if taken is not None:
            conn, self._session_started = taken  # its age counts from its connect
            try:
                await self._replay(conn)
                return conn
            except TransportError:  # it died while waiting: open another, no failure
                await conn.aclose()
                logger.info("the session opened ahead was closed; opening another")
            except BaseException:  # cancelled (aclose()): leave no socket behind
                await conn.aclose()
                raise
        try:
            conn, self._session_started = await self._connect()
        except TransportError as e:
            raise _api_error(e.classified) from None
        try:
            await self._replay(conn)
        except TransportError as e:
            await conn.aclose()
            raise _api_error(e.classified) from None
        except BaseException:
            await conn.aclose()
            raise
        return conn

    async def _connect(self) -> tuple[Connection, float]:
        """Open a socket and configure its session (``session.update``), with no audio yet.

        Returns:
            The socket, and the event-loop time its handshake completed (the server counts
            the session's age from then; docs/protocol.md §6).

        Raises:
            TransportError: the handshake or the first send failed.
        """
        opts = self._opts
        url = opts.url()
        conn = await self._stt_impl._connect(
            url, self._stt_impl._headers(), self._conn_options.timeout
        )
        connected_at = asyncio.get_running_loop().time()
        self._sessions += 1
        logger.debug(
            "connected",
            extra={"url": redact_url(url), "model": opts.model, "session": self._sessions},
        )
        try:
            await self._send_session_update(conn)
        except BaseException:
            await conn.aclose()
            raise
        return conn, connected_at

    def _prepare_next_session(self) -> None:
        """Open the next session in the background once a rollover is near (within
        ``_PREPARE_AHEAD_S``, or the second half of a shorter ``session_rollover_s``)."""
        if self._next_conn is not None or self._input_ch.closed:
            return
        limit = self._opts.session_rollover_s
        age = asyncio.get_running_loop().time() - self._session_started
        if age < limit - min(_PREPARE_AHEAD_S, limit / 2):
            return
        self._next_conn_opts = self._opts
        self._next_conn = asyncio.create_task(self._connect(), name="openai_stt.next_session")

    async def _take_next_session(self) -> tuple[Connection, float] | None:
        """The session opened ahead and its connect time, if it was opened with the current
        options, its connect succeeded (waiting for it if still connecting) and it is younger
        than three quarters of ``session_rollover_s``; else None (and it is closed).

        ``_next_conn`` stays set until the connect is in hand, so that a cancellation while
        waiting leaves it to :meth:`_discard_next_session` (``_run``'s ``finally``)."""
        task = self._next_conn
        if task is None:
            return None
        if self._next_conn_opts is not self._opts:  # options changed since: not this one
            await self._discard_next_session()
            return None
        try:
            conn, connected_at = await task
        except TransportError as e:
            self._next_conn = None
            logger.info("opening the next session ahead failed", extra={"reason": str(e)})
            return None
        self._next_conn = None
        age = asyncio.get_running_loop().time() - connected_at
        if age >= 0.75 * self._opts.session_rollover_s:  # waited too long (no audio came)
            await conn.aclose()
            logger.info("the session opened ahead waited too long; opening another")
            return None
        return conn, connected_at

    async def _discard_next_session(self) -> None:
        task, self._next_conn = self._next_conn, None
        if task is not None:
            await aio.cancel_and_wait(task)
            if not task.cancelled() and task.exception() is None:
                await task.result()[0].aclose()

    async def _send_session_update(self, conn: Connection) -> None:
        opts = self._opts
        update = build_session_update(
            opts.session_config(), get_model_info(opts.model), opts.dialect
        )
        self._stt_impl._warn_dropped(update.dropped, opts.model)
        await conn.send(ev.dumps_event(update.payload))

    async def _replay(self, conn: Connection) -> None:
        """On a new socket, resend every unfinalised turn's audio and its commits."""
        lost = self._assembler.abandon_unfinished()
        for item_id in lost:
            self._deadlines.pop(item_id, None)
            self._item_points.pop(item_id, None)
        self._assembler.begin_session(self._ledger_start / self._rate)
        self._unacked_commits.clear()
        self._sent = self._ledger_start
        if self._appended == self._ledger_start:
            return
        points = [p for p in self._commit_points if p > self._ledger_start]
        logger.info(
            "replaying unfinished audio on the new session",
            extra={
                "audio_s": round((self._appended - self._ledger_start) / self._rate, 3),
                "commits": len(points),
                "abandoned_items": lost,
            },
        )
        now = asyncio.get_running_loop().time()
        previous = self._ledger_start
        for point in points:
            if point in self._finalized_points:
                # a later turn that already has its final (completions can come out of
                # order): skip its audio rather than transcribe it twice
                self._sent = point
            else:
                event_id = self._next_commit_id()
                self._assembler.commit_sent(
                    point / self._rate, event_id=event_id, audio_start_s=previous / self._rate
                )
                self._unacked_commits.append(now)
                await self._send_audio(conn, upto=point)
                await conn.send(ev.commit_event(event_id))
            previous = point
        self._update_drained()
        await self._send_audio(conn, upto=self._appended)

    def _next_commit_id(self) -> str:
        self._commits_sent += 1
        return f"commit_{self._commits_sent}"

    # -- writer ----------------------------------------------------------------------------

    async def _send_audio(self, conn: Connection, *, upto: int, min_bytes: int = 1) -> None:
        """Send ledger audio from ``_sent`` to sample ``upto`` in chunks of ``chunk_ms``."""
        while (upto - self._sent) * self._bps >= min_bytes:
            start = (self._sent - self._ledger_start) * self._bps
            end = min((upto - self._ledger_start) * self._bps, start + self._chunk_bytes)
            with memoryview(self._ledger) as view:
                payload = ev.append_event(view[start:end])
            await conn.send(payload)
            samples = (end - start) // self._bps
            self._sent += samples
            self._usage.audio_seconds_sent += samples / self._rate
            self._stt_impl.usage.audio_seconds_sent += samples / self._rate

    def _append_frame(self, frame: rtc.AudioFrame) -> None:
        self._queued -= frame.samples_per_channel
        if self._bps == 2:
            self._ledger += frame.data
        else:
            encoded = g711.encode(self._opts.audio_format, np.frombuffer(frame.data, np.int16))
            self._ledger += encoded.data
        self._appended += frame.samples_per_channel
        overflow = len(self._ledger) - self._max_retained_bytes
        if overflow > 0:  # bound memory: only replay is affected, never the live audio
            drop = min(overflow // self._bps, self._sent - self._ledger_start)
            if drop > 0:
                del self._ledger[: drop * self._bps]
                self._ledger_start += drop

    async def _commit(self, conn: Connection) -> None:
        if self._appended - self._last_commit < self._min_commit_samples:
            return  # docs/protocol.md §3: under 100 ms the server answers commit_empty
        # bookkeeping first: if the socket dies mid-send, the replay re-commits here
        self._last_commit = self._appended
        self._commit_points.append(self._appended)
        event_id = self._next_commit_id()
        self._assembler.commit_sent(self._appended / self._rate, event_id=event_id)
        self._unacked_commits.append(asyncio.get_running_loop().time())
        self._update_drained()
        await self._send_audio(conn, upto=self._appended)
        await conn.send(ev.commit_event(event_id))

    async def _cut_long_item(self, conn: Connection, frame: rtc.AudioFrame) -> None:
        """Commit a long monologue (docs/protocol.md §2: gpt-realtime-whisper gives at most 2,000
        output tokens an item): in the last second before ``max_item_s``, at the end of the
        first block whose last 20 ms are quiet (the cut falls inside a pause), else at
        ``max_item_s``."""
        at_cap = self._appended - self._last_commit >= self._max_item_samples
        tail = np.frombuffer(frame.data, dtype=np.int16)[-self._rate // 50 :]  # its last 20 ms
        samples = tail.astype(np.float32)
        quiet = float(np.sqrt(np.mean(samples * samples))) < _QUIET_RMS
        if at_cap or quiet:
            logger.debug(
                "committing a long item",
                extra={"audio_s": (self._appended - self._last_commit) / self._rate},
            )
            await self._commit(conn)

    def _rollover_due(self) -> bool:
        """Past ``session_rollover_s`` at a turn boundary (no final owed), or well past it."""
        age = asyncio.get_running_loop().time() - self._session_started
        limit = self._opts.session_rollover_s
        if age < limit:
            return False
        return not self._assembler.pending_items or age >= limit + _FORCED_ROLLOVER_GRACE_S

    async def _write_loop(self, conn: Connection) -> bool:
        """The single writer. Returns True when a new socket is wanted (model change or
        rollover), False when input has ended and the finals are in (or overdue)."""
        async for item in self._input_ch:
            if isinstance(item, rtc.AudioFrame):
                self._append_frame(item)
                if self._appended - self._last_commit >= self._max_item_samples - self._rate:
                    await self._cut_long_item(conn, item)
                if (self._appended - self._sent) * self._bps >= self._chunk_bytes:
                    await self._send_audio(conn, upto=self._appended, min_bytes=self._chunk_bytes)
                    if self._rollover_due():  # checked once a chunk, not once a frame
                        return True
            elif isinstance(item, _SessionChange):
                if self._reconnect_requested:
                    self._reconnect_requested = False
                    return True
                await self._send_session_update(conn)
            else:  # a flush from the framework, or the VAD's end of speech
                await self._commit(conn)
        await self._commit(conn)  # end_input() flushed already; a no-op unless the VAD raced
        await self._send_audio(conn, upto=self._appended)  # a tail under 100 ms
        if self._vad_stream is not None:
            with contextlib.suppress(RuntimeError):
                self._vad_stream.end_input()
        await self._drained.wait()  # bounded: the watchdog expires overdue finals
        return False

    # -- reader ----------------------------------------------------------------------------

    async def _read_loop(self, conn: Connection) -> None:
        """Parse and handle server events until the socket fails (a ``TransportError``,
        mapped by :meth:`_run_session` like the writer's)."""
        while True:
            text = await conn.recv()
            try:
                event = ev.parse(text)
            except ev.EventParseError as e:
                logger.warning(
                    "unparseable server event; skipped",
                    extra={"event_type": e.event_type, "field": e.field, "reason": str(e)},
                )
                continue
            self._on_event(event)

    def _on_event(self, event: ev.ServerEvent) -> None:
        if isinstance(event, ev.ErrorEvent):
            self._on_error(event.error)  # raises unless the session goes on
        if isinstance(event, ev.UnknownEvent):
            if event.type not in self._unknown_types:
                self._unknown_types.add(event.type)
                logger.info("unhandled server event type", extra={"event_type": event.type})
            return
        for out in self._assembler.receive(event):
            self._emit(out)
        self._update_drained()

    def _update_drained(self) -> None:
        """``_drained`` is set exactly when no final is owed."""
        if self._assembler.pending_items:
            self._drained.clear()
        else:
            self._drained.set()

    def _on_error(self, info: ev.ErrorInfo) -> None:
        classified = classify_error_event(info)
        body = {
            "type": info.type,
            "code": info.code,
            "message": info.message,
            "param": info.param,
            "event_id": info.event_id,
        }
        extra = {f"error_{key}": value for key, value in body.items()}
        if classified.action == ErrorAction.IGNORE:
            logger.debug("server error ignored", extra=extra)
        elif classified.action == ErrorAction.REPORT:
            logger.warning("server error event; session continues", extra=extra)
            self._emit_error(APIError(classified.message, body=body, retryable=True), True)
        elif classified.action == ErrorAction.RECONNECT:
            raise _Reconnect(classified.message)
        else:
            raise _api_error(classified, body)

    def _finalized(self, item_id: str) -> None:
        self._deadlines.pop(item_id, None)
        point = self._item_points.pop(item_id, None)
        if point is not None:
            self._finalized_points.add(point)

    # -- deadlines -------------------------------------------------------------------------

    async def _deadline_loop(self) -> None:
        """Ends turns whose final is overdue; a commit never acknowledged fails the socket;
        opens the next session ahead when a rollover nears."""
        loop = asyncio.get_running_loop()
        timeout = self._opts.final_timeout_s
        while True:
            await asyncio.sleep(_DEADLINE_TICK_S)
            self._prepare_next_session()
            now = loop.time()
            if self._unacked_commits and now - self._unacked_commits[0] > timeout:
                raise _api_error(
                    Classified(
                        ErrorAction.RETRY, f"the server did not acknowledge a commit in {timeout}s"
                    )
                )
            overdue = [item_id for item_id, due in self._deadlines.items() if now >= due]
            for item_id in overdue:
                del self._deadlines[item_id]
                error = ev.ErrorInfo(
                    type="timeout",
                    code="final_timeout",
                    message=f"no final transcript within {timeout}s of the commit",
                )
                for out in self._assembler.expire(item_id, error):
                    self._emit(out)
            if overdue:
                self._update_drained()

    # -- outputs -> SpeechEvents ------------------------------------------------------------

    def _send_event(self, event: stt.SpeechEvent) -> None:
        with contextlib.suppress(aio.ChanClosed):
            self._event_ch.send_nowait(event)

    def _speech_data(
        self, text: str, start_s: float = 0.0, end_s: float = 0.0, **kw: Any
    ) -> stt.SpeechData:
        base = self._time_base or 0.0
        return stt.SpeechData(
            language=LanguageCode(kw.pop("language", None) or self._opts.language or ""),
            text=text,
            start_time=base + start_s if end_s else 0.0,
            end_time=base + end_s if end_s else 0.0,
            **kw,
        )

    def _emit(self, out: Output) -> None:
        T = stt.SpeechEventType
        if isinstance(out, InterimOut):
            self._send_event(
                stt.SpeechEvent(
                    type=T.INTERIM_TRANSCRIPT,
                    request_id=out.item_id,
                    alternatives=[self._speech_data(out.text)],
                )
            )
        elif isinstance(out, FinalOut):
            self._finalized(out.item_id)
            self._send_event(
                stt.SpeechEvent(
                    type=T.FINAL_TRANSCRIPT,
                    request_id=out.item_id,
                    alternatives=[
                        self._speech_data(
                            out.text,
                            out.audio_start_s,
                            out.audio_end_s,
                            language=out.language,
                            confidence=out.confidence if out.confidence is not None else 0.0,
                        )
                    ],
                )
            )
            self._trim_ledger()
        elif isinstance(out, UsageOut):
            self._finalized(out.item_id)
            model = get_model_info(self._opts.model)
            self._usage.add_item(out, model)
            self._stt_impl.usage.add_item(out, model)
            self._send_event(
                stt.SpeechEvent(
                    type=T.RECOGNITION_USAGE,
                    request_id=out.item_id,
                    recognition_usage=stt.RecognitionUsage(
                        audio_duration=out.audio_seconds,
                        input_tokens=out.input_tokens,
                        output_tokens=out.output_tokens,
                    ),
                )
            )
            self._trim_ledger()
        elif isinstance(out, FailureOut):
            self._finalized(out.item_id)
            reason = out.error.code or "transcription_failed"
            body = {"item_id": out.item_id, "code": out.error.code, "message": out.error.message}
            logger.warning(
                "turn ended without a final transcript",
                extra={
                    "item_id": out.item_id,
                    "error_code": out.error.code,
                    "error_message": out.error.message,
                },
            )
            self._emit_error(
                APIError(f"transcription failed: {out.error.message}", body=body, retryable=True),
                True,
            )
            if out.text.strip():
                self._send_event(
                    stt.SpeechEvent(
                        type=T.FINAL_TRANSCRIPT,
                        request_id=out.item_id,
                        alternatives=[
                            self._speech_data(
                                out.text,
                                out.audio_start_s,
                                out.audio_end_s,
                                metadata={"incomplete": True, "reason": reason},
                            )
                        ],
                    )
                )
            self._trim_ledger()
        elif isinstance(out, CommittedOut):
            if self._unacked_commits:
                self._unacked_commits.popleft()
            loop = asyncio.get_running_loop()
            self._deadlines[out.item_id] = loop.time() + self._opts.final_timeout_s
            self._item_points[out.item_id] = int(round(out.audio_end_s * self._rate))
        elif isinstance(out, CommitRefusedOut):
            # owes no final (with server VAD the server had just committed that audio itself)
            if self._unacked_commits:
                self._unacked_commits.pop()
            with contextlib.suppress(ValueError):
                self._commit_points.remove(int(round(out.audio_end_s * self._rate)))
            self._trim_ledger()
        elif isinstance(out, SpeechStartedOut):
            self._send_event(stt.SpeechEvent(type=T.START_OF_SPEECH, request_id=out.item_id))
        elif isinstance(out, SpeechEndedOut):
            self._send_event(stt.SpeechEvent(type=T.END_OF_SPEECH, request_id=out.item_id))

    def _trim_ledger(self) -> None:
        """Drop ledger audio that every finalised turn has left behind."""
        keep_from = int(round(self._assembler.retain_from_s * self._rate))
        keep_from = max(self._ledger_start, min(keep_from, self._sent, self._appended))
        drop = keep_from - self._ledger_start
        if drop > 0:
            del self._ledger[: drop * self._bps]
            self._ledger_start = keep_from
        while self._commit_points and self._commit_points[0] <= self._ledger_start:
            self._finalized_points.discard(self._commit_points.popleft())

    # -- optional VAD ------------------------------------------------------------------------

    async def _vad_loop(self) -> None:
        assert self._vad_stream is not None
        async for event in self._vad_stream:
            if event.type == vad_mod.VADEventType.START_OF_SPEECH:
                self._send_event(stt.SpeechEvent(type=stt.SpeechEventType.START_OF_SPEECH))
            elif event.type == vad_mod.VADEventType.END_OF_SPEECH:
                self._send_event(stt.SpeechEvent(type=stt.SpeechEventType.END_OF_SPEECH))
                if not self._input_ch.closed:
                    self._flush_block(flush_resampler=False)  # the turn's audio goes first
                    self._input_ch.send_nowait(_VadCommit())  # type: ignore[arg-type]

    async def _close_vad(self) -> None:
        if self._vad_task is not None:
            await aio.cancel_and_wait(self._vad_task)
        if self._vad_stream is not None:
            with contextlib.suppress(Exception):
                await self._vad_stream.aclose()
