"""The LiveKit ``SpeechStream``: a thin asyncio shell around the pure ``ClientSession``.

Out: ``push_frame`` -> :class:`.audio_input.AudioInput` (downmix, ``chunk_ms`` blocks,
resampling, G.711) -> the input channel -> the single writer -> ``ClientSession.push_audio`` /
``commit`` -> ``data_to_send()`` -> socket. In: socket text -> ``events.parse`` ->
``ClientSession.receive`` -> outputs -> :func:`.speech.speech_event` -> ``SpeechEvent``.
Time passes through ``ClientSession.tick``, driven by a ticker task.

Every protocol rule (the 100 ms commit, replay without loss or duplicates, out-of-order
finals, deadlines, rollover) lives in :mod:`.protocol.client`; this module only moves bytes,
runs the three tasks of a socket (writer, reader, ticker), and maps outputs to LiveKit.
Failures become LiveKit ``APIError``s in one place (:func:`.speech.api_error`) and LiveKit's
base stream retries the retryable ones by calling ``_run`` again; a normal end of session, a
rollover and a model change reconnect at once in ``_run`` without counting as failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, Literal

from livekit import rtc
from livekit.agents import APIConnectOptions, APIError, stt
from livekit.agents import vad as vad_mod
from livekit.agents.language import LanguageCode
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.agents.utils import aio

from .audio_input import AudioInput, downmix
from .log import logger
from .opener import SessionOpener
from .options import STTOptions, option_changes
from .protocol import events as ev
from .protocol.client import (
    ClientSession,
    ErrorReportedOut,
    OpenAheadOut,
    Output,
    ReplayOut,
    SessionEndedOut,
    UnknownEventOut,
)
from .protocol.errors import Classified, ErrorAction
from .protocol.transcript import FailureOut, SpeechEndedOut, SpeechStartedOut, UsageOut
from .protocol.usage import UsageSummary
from .speech import api_error, speech_event
from .transport import Connection, TransportError

__all__ = ["SpeechStream"]

_YIELD_EVERY_EVENTS = 64
"""The reader lets other tasks run after this many events (a flood must not stall the loop)."""
_TICK_S = 0.25  # how often time is passed to the ClientSession (deadlines, rollover)

_Verdict = Literal["done", "move"] | SessionEndedOut
"""How a socket ended: input over and finals in; a move to the next session (rollover, model
change); or the session ended (classified: reconnect, retry or fatal)."""


_CLEARED_ONLY_BY_A_NEW_SESSION = ("language", "languages", "delay")
"""Options sent only when set: a ``session.update`` without them keeps the old value
(docs/protocol.md §2), so clearing one moves the stream to a new session (the official plugin
does the same for the language)."""


class _VadCommit:
    """Marker put in the input channel by the VAD task: commit here (single writer)."""


class _SessionChange:
    """Marker put in the input channel by ``update_options``: the new session config (or a
    reconnect, for a model change) goes here, behind the audio already queued."""


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
        stt: stt.STT,
        opts: STTOptions,
        conn_options: APIConnectOptions,
        vad: vad_mod.VAD | None,
        opener: SessionOpener,
        usage_total: UsageSummary,
    ) -> None:
        super().__init__(stt=stt, conn_options=conn_options)
        self._opts = opts
        self._opener = opener
        self._usage_total = usage_total
        config = dataclasses.replace(opts.client_config(), send_timeout_s=conn_options.timeout)
        self._session = ClientSession(config, opts.model_info)
        self._input = AudioInput(opts.audio_format, opts.chunk_ms, opts.sample_rate_hz)
        self._bps = 2 if opts.audio_format == "pcm16" else 1
        self._max_queued_samples = int(opts.max_queued_audio_s * opts.sample_rate_hz)
        self._queued = 0  # wire samples waiting in the input channel
        self._pushed = 0  # wire samples pushed since the stream began (the audio clock)
        # (samples pushed, wall time) of each block of the last two minutes: audio times of
        # server events map back to the wall clock (speech_start_time, speech_end_time)
        self._wall_marks: deque[tuple[int, float]] = deque(maxlen=1200)
        self._queue_overflowed = False
        self._connected = False
        self._sent_reported_s = 0.0
        self._time_base: float | None = None
        self._drained = asyncio.Event()
        self._send_lock = asyncio.Lock()
        self._reconnect_requested = False
        self._vad_stream: vad_mod.VADStream | None = None
        self._vad_task: asyncio.Task[None] | None = None
        if vad is not None:  # it sees every input frame, as pushed
            self._vad_stream = vad.stream()
            self._vad_task = asyncio.create_task(self._vad_loop(), name="openai_stt.vad")

    # -- public ---------------------------------------------------------------------------

    @property
    def usage(self) -> UsageSummary:
        """This stream's totals: audio seconds sent/committed, tokens, estimated USD."""
        return self._session.usage

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
        frame = downmix(frame)
        if self._vad_stream is not None:
            self._vad_stream.push_frame(frame)
        for block in self._input.push(frame):
            self._enqueue(block)

    def flush(self) -> None:
        """End the current turn: its audio is committed, and its final follows."""
        self._check_input_not_ended()
        self._check_not_closed()
        for block in self._input.flush(resampler=True):
            self._enqueue(block)
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
        if "turn_detection" in changes:
            changes["turn_detection_auto"] = False
        self.apply_options(changes)

    def apply_options(self, changes: Mapping[str, Any]) -> None:
        """Apply changes to this stream's :class:`~.options.STTOptions` (field name -> value,
        as ``STT.update_options`` normalises them): a ``session.update`` behind the audio
        already pushed, or a reconnect with replay for a model change."""
        if not changes:
            return
        if "model" in changes and changes["model"] != self._opts.model:
            self._reconnect_requested = True
        for name in _CLEARED_ONLY_BY_A_NEW_SESSION:
            if name in changes and getattr(self._opts, name) and not changes[name]:
                self._reconnect_requested = True  # a field left out keeps its value
        self._opts = dataclasses.replace(self._opts, **changes)
        self._session.set_language(self._opts.language)
        self._session.set_model(self._opts.model_info)
        if not self._input_ch.closed:
            for block in self._input.flush(resampler=False):  # behind the audio pushed
                self._enqueue(block)
            self._input_ch.send_nowait(_SessionChange())  # type: ignore[arg-type]

    # -- input ----------------------------------------------------------------------------

    def _enqueue(self, block: bytes) -> None:
        samples = len(block) // self._bps
        self._queued += samples
        self._pushed += samples
        self._wall_marks.append((self._pushed, time.time()))
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
        self._input_ch.send_nowait(block)  # type: ignore[arg-type]

    def _wall_time(self, audio_s: float) -> float | None:
        """The wall-clock time (``time.time()``) the audio at ``audio_s`` (stream clock,
        seconds) was pushed, or ``None`` when it is older than the marks kept."""
        sample = audio_s * self._opts.sample_rate_hz
        for pushed, wall in self._wall_marks:
            if pushed >= sample:
                return wall - (pushed - sample) / self._opts.sample_rate_hz
        return None

    def _check_queue(self) -> None:
        if self._queue_overflowed:
            raise APIError(
                "more than max_queued_audio_s="
                f"{self._opts.max_queued_audio_s}s of audio queued while disconnected; "
                "failing rather than dropping audio",
                retryable=False,
            )

    # -- the attempt (LiveKit calls it again after a retryable failure) -----------------------

    async def _run(self) -> None:
        if self._time_base is None:
            self._time_base = self.start_time_offset
        loop = asyncio.get_running_loop()
        try:
            while True:
                self._check_queue()
                verdict = await self._run_session(await self._open())
                if verdict == "done":
                    self._session.close()
                    break
                if verdict == "move":
                    logger.info("opening the next session", extra={"model": self._opts.model})
                    continue
                classified = self._session.session_ended(
                    verdict.classified, loop.time(), self._conn_options.max_retry
                )
                if classified.action is not ErrorAction.RECONNECT:
                    raise api_error(classified, verdict.body)
                logger.info(
                    "session ended by the server; reconnecting",
                    extra={"reason": classified.message},
                )
        finally:
            await self._opener.discard()
        if self._vad_task is not None:  # let the VAD report the last end of speech
            await asyncio.wait({self._vad_task}, timeout=1.0)
        await self._close_vad()

    async def _open(self) -> Connection:
        """A configured socket with every unfinalised turn replayed: the session opened ahead
        for a rollover when it is usable, else a new one.

        Raises:
            APIError: connecting, configuring or replaying failed (classified).
        """
        loop = asyncio.get_running_loop()
        asked = loop.time()
        taken = await self._opener.take(self._opts)
        if taken is not None and not self._session.ahead_usable(taken[1], loop.time()):
            await taken[0].aclose()
            logger.info("the session opened ahead waited too long; opening another")
            taken = None
        if taken is not None:
            try:
                conn = await self._replay(*taken)
                self._report_connection_acquired(loop.time() - asked, True)
                return conn
            except TransportError:  # it died while waiting: open another, no failure
                logger.info("the session opened ahead was closed; opening another")
        self._session.connecting()
        try:
            asked = loop.time()
            conn, connected_at = await self._opener.open(self._opts)
            self._report_connection_acquired(loop.time() - asked, False)
        except BaseException as e:
            self._session.connection_lost()
            if isinstance(e, TransportError):
                raise self._attempt_failed(e) from None
            raise
        try:
            return await self._replay(conn, connected_at, connecting=False)
        except TransportError as e:
            raise self._attempt_failed(e) from None

    def _attempt_failed(self, e: TransportError) -> APIError:
        """The LiveKit error for an attempt that failed before its session ran."""
        loop = asyncio.get_running_loop()
        classified = self._session.session_ended(
            e.classified, loop.time(), self._conn_options.max_retry
        )
        return api_error(classified)

    async def _replay(
        self, conn: Connection, connected_at: float, *, connecting: bool = True
    ) -> Connection:
        """Give ``conn`` the unfinished audio again. Raises ``TransportError`` (the socket is
        then closed and the session idle)."""
        if connecting:
            self._session.connecting()
        try:
            for out in self._session.opened(connected_at, asyncio.get_running_loop().time()):
                if isinstance(out, ReplayOut):
                    logger.info(
                        "replaying unfinished audio on the new session",
                        extra={
                            "audio_s": out.audio_s,
                            "commits": out.commits,
                            "abandoned_items": list(out.abandoned_items),
                        },
                    )
            self._update_drained()
            await self._write_replay(conn)
        except BaseException:
            self._session.connection_lost()
            await conn.aclose()
            raise
        return conn

    async def _write(self, conn: Connection) -> int:
        """Send what the session has queued; returns the number of client events sent.

        Each send is watched (``ClientSession.writing``): while a session runs, the ticker
        ends the socket when one takes longer than ``send_timeout_s``. The writer, the reader
        and the ticker may all call it (a server event can make the session queue a client
        event, e.g. vLLM's next turn after a ``done``); a lock keeps each drained batch whole
        and the batches in the order they were drained.
        """
        if not self._session.events_to_send:
            return 0
        async with self._send_lock:
            messages = self._session.data_to_send()
            loop = asyncio.get_running_loop()
            for message in messages:
                self._session.writing(loop.time())
                await conn.send(message)
            self._session.writing(None)
        sent_s = self._session.usage.audio_seconds_sent
        self._usage_total.audio_seconds_sent += sent_s - self._sent_reported_s
        self._sent_reported_s = sent_s
        return len(messages)

    async def _write_replay(self, conn: Connection) -> None:
        """Send the replay, before the ticker runs: bounded here, as a whole, by
        ``send_timeout_s`` plus 0.1 s an event (an append holds 0.1 s of audio: a link slower
        than real time cannot carry the stream anyway).

        Raises:
            TransportError: the server stopped reading.
        """
        count = self._session.events_to_send
        timeout = self._session.config.send_timeout_s + 0.1 * count
        try:
            await asyncio.wait_for(self._write(conn), timeout)
        except asyncio.TimeoutError:
            message = f"the server stopped reading: the replay took over {timeout:.1f}s"
            raise TransportError(Classified(ErrorAction.RETRY, message)) from None

    async def _run_session(self, conn: Connection) -> _Verdict:
        """Run one socket's writer, reader and ticker until the first of them ends."""
        tasks = [
            asyncio.create_task(self._write_loop(conn), name="openai_stt.writer"),
            asyncio.create_task(self._read_loop(conn), name="openai_stt.reader"),
            asyncio.create_task(self._tick_loop(conn), name="openai_stt.ticker"),
        ]
        self._connected = True
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            return next(task for task in tasks if task in done).result()
        finally:
            self._connected = False
            await aio.cancel_and_wait(*tasks)
            self._session.connection_lost()
            await conn.aclose()

    async def _write_loop(self, conn: Connection) -> _Verdict:
        """The single writer: audio, commits and session updates, in the order pushed."""
        loop = asyncio.get_running_loop()
        try:
            async for item in self._input_ch:
                if isinstance(item, bytes):
                    self._queued -= len(item) // self._bps
                    self._session.push_audio(item, loop.time())
                    if await self._write(conn) and self._session.check_rollover(loop.time()):
                        return "move"
                elif isinstance(item, _SessionChange):
                    if self._reconnect_requested:
                        self._reconnect_requested = False
                        return "move"
                    self._session.update_session(self._opener.session_update(self._opts))
                    await self._write(conn)
                else:  # a flush from the framework, or the VAD's end of speech
                    preflight = self._session.open_text()
                    if self._session.commit(loop.time()):
                        self._preflight(preflight)
                    await self._write(conn)
                self._update_drained()
            self._session.end_input(loop.time())
            await self._write(conn)
            if self._vad_stream is not None:
                with contextlib.suppress(RuntimeError):
                    self._vad_stream.end_input()
            self._update_drained()
            await self._drained.wait()  # bounded: the ticker expires overdue finals
            return "done"
        except TransportError as e:
            return SessionEndedOut(e.classified)

    async def _read_loop(self, conn: Connection) -> _Verdict:
        """Parse and hand each server event to the session, until the socket ends."""
        loop = asyncio.get_running_loop()
        try:
            count = 0
            while True:
                text = await conn.recv()
                count += 1
                if count % _YIELD_EVERY_EVENTS == 0:
                    await asyncio.sleep(0)  # buffered events do not suspend recv()
                try:
                    event = ev.parse(text)
                except ev.EventParseError as e:
                    logger.warning(
                        "unparseable server event; skipped",
                        extra={"event_type": e.event_type, "field": e.field, "reason": str(e)},
                    )
                    continue
                ended = self._handle(self._session.receive(event, loop.time()))
                if ended is not None:
                    return ended
                await self._write(conn)
        except TransportError as e:
            return SessionEndedOut(e.classified)

    async def _tick_loop(self, conn: Connection) -> _Verdict:
        """Pass time to the session: overdue finals, unacknowledged commits, the next session."""
        loop = asyncio.get_running_loop()
        try:
            while True:
                await asyncio.sleep(_TICK_S)
                ended = self._handle(self._session.tick(loop.time()))
                if ended is not None:
                    return ended
                await self._write(conn)
        except TransportError as e:
            return SessionEndedOut(e.classified)

    # -- outputs --------------------------------------------------------------------------------

    def _handle(self, outputs: list[Output]) -> SessionEndedOut | None:
        """Act on the session's outputs; returns the end of the socket if one came."""
        try:
            for out in outputs:
                if isinstance(out, SessionEndedOut):
                    return out
                if isinstance(out, ErrorReportedOut):
                    logger.warning(
                        "server error event; session continues",
                        extra={f"error_{key}": value for key, value in out.body.items()},
                    )
                    error = APIError(out.classified.message, body=out.body, retryable=True)
                    self._emit_error(error, True)
                elif isinstance(out, OpenAheadOut):
                    if not self._input_ch.closed:
                        self._opener.open_ahead(self._opts)
                elif isinstance(out, UnknownEventOut):
                    logger.info("unhandled server event type", extra={"event_type": out.event_type})
                elif isinstance(out, FailureOut):
                    self._report_failure(out)
                elif isinstance(out, UsageOut):
                    self._usage_total.add_item(out, self._opts.model_info)
                event = speech_event(
                    out, time_base_s=self._time_base or 0.0, language=self._opts.language
                )
                if isinstance(out, SpeechStartedOut) and event is not None:
                    event.speech_start_time = self._wall_time(out.audio_start_s)
                elif isinstance(out, SpeechEndedOut) and event is not None:
                    silence_s = self._server_vad_silence_s()
                    wall = self._wall_time(out.audio_end_s)
                    if wall is not None and silence_s is not None:
                        event.speech_end_time = wall - silence_s
                if event is not None:
                    self._send_event(event)
            return None
        finally:
            self._update_drained()

    def _send_event(self, event: stt.SpeechEvent) -> None:
        with contextlib.suppress(aio.ChanClosed):
            self._event_ch.send_nowait(event)

    def _preflight(self, text: str) -> None:
        """PREFLIGHT_TRANSCRIPT at the end of a turn, from the text the model streamed before
        the commit (models with ``deltas_before_commit``): a delta only appends, so this text
        stands unless the final differs, and LiveKit starts preemptive generation on it (and
        runs it again when the final differs)."""
        if text.strip() and self._opts.model_info.deltas_before_commit:
            data = stt.SpeechData(language=LanguageCode(self._opts.language or ""), text=text)
            self._send_event(
                stt.SpeechEvent(type=stt.SpeechEventType.PREFLIGHT_TRANSCRIPT, alternatives=[data])
            )

    def _report_failure(self, out: FailureOut) -> None:
        body = {"item_id": out.item_id, "code": out.error.code, "message": out.error.message}
        logger.warning(
            "turn ended without a final transcript",
            extra={
                "item_id": out.item_id,
                "error_code": out.error.code,
                "error_message": out.error.message,
            },
        )
        message = f"transcription failed: {out.error.message}"
        self._emit_error(APIError(message, body=body, retryable=True), True)

    def _server_vad_silence_s(self) -> float | None:
        """The silence ``speech_stopped``'s ``audio_end_ms`` includes (types: it "includes the
        min_silence_duration_ms"): ``silence_duration_ms`` of server_vad (500 unless set), or
        ``None`` for semantic VAD (its silence is not known)."""
        td = self._opts.effective_turn_detection or {}
        if td.get("type") != "server_vad":
            return None
        return float(td.get("silence_duration_ms", 500)) / 1000.0

    def _update_drained(self) -> None:
        """``_drained`` is set exactly when no final is owed."""
        if self._session.finals_owed:
            self._drained.clear()
        else:
            self._drained.set()

    # -- optional VAD ----------------------------------------------------------------------------

    async def _vad_loop(self) -> None:
        assert self._vad_stream is not None
        async for event in self._vad_stream:
            if event.type == vad_mod.VADEventType.START_OF_SPEECH:
                self._send_event(
                    stt.SpeechEvent(
                        type=stt.SpeechEventType.START_OF_SPEECH,
                        speech_start_time=time.time() - event.speech_duration,
                    )
                )
            elif event.type == vad_mod.VADEventType.END_OF_SPEECH:
                self._send_event(
                    stt.SpeechEvent(
                        type=stt.SpeechEventType.END_OF_SPEECH,
                        speech_end_time=time.time() - event.silence_duration,
                    )
                )
                if not self._input_ch.closed:
                    for block in self._input.flush(resampler=False):  # the turn's audio first
                        self._enqueue(block)
                    self._input_ch.send_nowait(_VadCommit())  # type: ignore[arg-type]

    async def _close_vad(self) -> None:
        if self._vad_task is not None:
            await aio.cancel_and_wait(self._vad_task)
        if self._vad_stream is not None:
            with contextlib.suppress(Exception):
                await self._vad_stream.aclose()
