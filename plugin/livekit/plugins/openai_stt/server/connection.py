"""The I/O shell of one session: runs a pure :class:`~.session.ServerSession` (or, for
``compat="vllm"``, a :class:`~.vllm_session.VllmSession`) over a :class:`~.channel.ServerChannel`.

It only moves bytes and keeps time (``loop.time()``): client messages go into the session,
the :class:`~.actions.Actions` that come out are performed in order (typed events turned into
text with ``to_wire`` here, at the edge), committed items and partial decodes run on the
server-wide :class:`~.scheduler.DecodeScheduler`, and the speech detector runs on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..protocol.events import to_wire
from ..protocol.session import SessionConfig
from .actions import Actions, Pause
from .audio import wire_to_float32
from .channel import ChannelClosed, ServerChannel
from .engines import Engine, SpeechDetector, accepts_logprobs
from .faults import take_read_pause
from .jobs import PartialJob, Recognition, TranscriptionJob
from .limits import SessionLimits
from .scheduler import DecodeScheduler
from .turns import VadInput

__all__ = ["DEFAULT_SEND_TIMEOUT_S", "PureSession", "SessionRunner", "VadFactory"]

logger = logging.getLogger("livekit.plugins.openai_stt.server")

#: Longest wait for one message to go out (``send_timeout_s``): a client that stops reading
#: fills the socket's buffers and would otherwise hold its session, its cap and its keepalive
#: for ever (issue 14); past it the connection is dropped.
DEFAULT_SEND_TIMEOUT_S = 10.0

#: OpenAI's message for an internal error ("server_error").
INTERNAL_ERROR = "The server had an error while processing your request. Sorry about that!"

VadFactory = Callable[[str, int], SpeechDetector]
"""``(format_type, rate) -> detector``: a fresh speech detector for one stream of wire audio."""


class PureSession(Protocol):
    """What the shell calls on a pure session (``ServerSession`` and ``VllmSession`` both)."""

    session_id: str
    closed: bool
    limits: SessionLimits
    turns_committed: int
    partials_run: int

    @property
    def next_tick_at(self) -> float | None: ...

    @property
    def config(self) -> SessionConfig: ...

    @property
    def vad_active(self) -> bool: ...

    @property
    def audio_received_s(self) -> float: ...

    def opened(self, now: float) -> Actions: ...

    def tick(self, now: float) -> Actions: ...

    def receive(self, text: str, now: float) -> Actions: ...

    def binary_received(self) -> Actions: ...

    def server_error(self, code: str, message: str) -> Actions: ...

    def speech_probabilities(self, probabilities: Any, epoch: int) -> Actions: ...

    def engine_prompt(self, job: Any, max_chars: int = 600) -> str | None: ...

    def transcribed(self, job: TranscriptionJob, result: Recognition) -> Actions: ...

    def transcription_failed(self, job: TranscriptionJob) -> Actions: ...

    def partial_due_at(self, backlog: int = 0) -> float | None: ...

    def take_partial(self, now: float, backlog: int = 0) -> PartialJob | None: ...

    def partial_transcribed(self, job: PartialJob, result: Recognition) -> Actions: ...

    def partial_failed(self, job: PartialJob) -> None: ...


class SessionRunner:
    """One session over one channel: the ordered sender, the session's final queue, the
    wake-up of its partial loop and its speech detector. :meth:`run` returns when the
    connection is over (the client left, the session closed it, or a send took longer than
    ``send_timeout_s``: then the connection is aborted)."""

    def __init__(
        self,
        channel: ServerChannel,
        session: PureSession,
        *,
        scheduler: DecodeScheduler,
        engine: Engine,
        vad_factory: VadFactory,
        send_timeout_s: float = DEFAULT_SEND_TIMEOUT_S,
    ) -> None:
        self.channel = channel
        self.send_timeout_s = send_timeout_s
        self.session = session
        self.scheduler = scheduler
        self.engine = engine
        self._logprobs_kw = accepts_logprobs(engine)
        self.vad_factory = vad_factory
        self.send_lock = asyncio.Lock()
        self.finals: asyncio.Queue[TranscriptionJob] = asyncio.Queue()
        self.audio_arrived = asyncio.Event()
        self.detector: SpeechDetector | None = None
        self.detector_epoch = -1
        self.detector_failed = False
        self.recv_task: asyncio.Future[str | bytes] | None = None

    async def run(self) -> None:
        """Open the session, then read, tick and perform until the connection is over."""
        loop = asyncio.get_running_loop()
        session, channel = self.session, self.channel
        tasks = [
            asyncio.create_task(self._run_finals()),
            asyncio.create_task(self._run_partials()),
        ]
        try:
            if await self._perform(session.opened(loop.time())):
                while True:
                    tick_at = session.next_tick_at
                    assert tick_at is not None
                    if self.recv_task is None:
                        self.recv_task = asyncio.ensure_future(channel.recv())
                    timeout = max(0.0, tick_at - loop.time())
                    done, _ = await asyncio.wait({self.recv_task}, timeout=timeout)
                    if not done:  # the session cap or a timed drop: the read goes on meanwhile
                        actions = self._guarded(session.tick, loop.time())
                    else:
                        received, self.recv_task = self.recv_task, None
                        try:
                            message = received.result()
                        except ChannelClosed:
                            break
                        if isinstance(message, str):
                            actions = self._guarded(session.receive, message, loop.time())
                        else:
                            actions = self._guarded(session.binary_received)
                    if not await self._perform(actions):
                        break
                    self.audio_arrived.set()
                    await self._maybe_pause_reading()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if self.recv_task is not None and not self.recv_task.done():
                self.recv_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ChannelClosed):
                    await self.recv_task
            self.scheduler.drop_partial(session.session_id)

    async def _maybe_pause_reading(self) -> None:
        """The ``pause_reading_*`` fault: stop reading for a while (finals still go out)."""
        session = self.session
        faults, counters = getattr(session, "faults", None), getattr(session, "counters", None)
        if faults is None or counters is None:
            return
        pause = take_read_pause(faults, counters, session.audio_received_s * 1000)
        if pause > 0:
            logger.info("pausing reads (fault injection)", extra={"pause_s": pause})
            await asyncio.sleep(pause)

    def _guarded(self, call: Callable[..., Actions], *args: Any) -> Actions:
        """``call(*args)``; a bug that raises becomes an ``error`` event (``server_error``)
        and the session goes on, instead of a dead handler and close 1011 (issue 14)."""
        try:
            return call(*args)
        except Exception:
            logger.exception(
                "session handler failed", extra={"session_id": self.session.session_id}
            )
            return self.session.server_error("server_error", INTERNAL_ERROR)

    async def _perform(self, actions: Actions) -> bool:
        """Send, queue, detect and close as ``actions`` says; False once the connection is
        over. Batches are sent whole and in the order they were made (one lock per channel)."""
        try:
            async with self.send_lock:
                for event in actions.events:
                    if isinstance(event, Pause):
                        await asyncio.sleep(event.seconds)
                    else:
                        await self._send(to_wire(event))
        except ChannelClosed:
            return False
        if actions.jobs:
            self.scheduler.drop_partial(self.session.session_id)  # the final wins
            for job in actions.jobs:
                self.finals.put_nowait(job)
        if actions.vad is not None:
            more = self._detect(actions.vad)
            if more is not None and not await self._perform(more):
                return False
        if actions.close is not None:
            if actions.close.abort:
                self.channel.abort()
            else:
                # Keep reading while closing: unread client messages would otherwise fill the
                # receive queue, pause reading and hide the client's close frame until timeout.
                drain = asyncio.create_task(self._drain())
                try:
                    await self.channel.close(actions.close.code, actions.close.reason)
                finally:
                    drain.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await drain
            return False
        return True

    async def _send(self, text: str) -> None:
        """One message out within ``send_timeout_s``, else abort the connection.

        Raises:
            ChannelClosed: the connection is over (or was just aborted).
        """
        try:
            await asyncio.wait_for(self.channel.send(text), self.send_timeout_s)
        except (asyncio.TimeoutError, TimeoutError):
            logger.warning(
                "client not reading: connection dropped",
                extra={"session_id": self.session.session_id, "timeout_s": self.send_timeout_s},
            )
            self.channel.abort()
            raise ChannelClosed(None) from None

    def _detect(self, vad: VadInput) -> Actions | None:
        """Run the session's speech detector (on the loop: ~0.1 ms a 32 ms window)."""
        if self.detector_failed:
            return None
        if self.detector is None or self.detector_epoch != vad.epoch:
            try:
                self.detector = self.vad_factory(vad.format_type, vad.rate)
            except Exception:
                logger.exception(
                    "speech detector unavailable", extra={"session_id": self.session.session_id}
                )
                self.detector_failed = True
                return self.session.server_error(
                    "vad_unavailable",
                    "Server VAD is unavailable on this server (the speech "
                    "detector could not be loaded); commit turns yourself.",
                )
            self.detector_epoch = vad.epoch
        probabilities = self.detector.push(vad.audio)
        if not probabilities:
            return None
        return self.session.speech_probabilities(probabilities, vad.epoch)

    async def _drain(self) -> None:
        """Discard incoming messages until the connection is closed."""
        with contextlib.suppress(ChannelClosed):
            if self.recv_task is not None:
                await self.recv_task
            while True:
                await self.channel.recv()

    async def _run_finals(self) -> None:
        """This session's items, in commit order, through the shared decode queue."""
        session = self.session
        while True:
            job = await self.finals.get()
            if job.fail:
                actions = session.transcription_failed(job)
            else:
                prompt = session.engine_prompt(job)
                started = time.monotonic()
                try:
                    result = await self.scheduler.submit_final(self._recognize, job, prompt)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception(
                        "transcription failed",
                        extra={"session_id": session.session_id, "item_id": job.item_id},
                    )
                    actions = session.transcription_failed(job)
                else:
                    logger.info(
                        "turn transcribed",
                        extra={
                            "session_id": session.session_id,
                            "item_id": job.item_id,
                            "audio_s": round(job.duration_s, 3),
                            "latency_s": round(time.monotonic() - started, 3),
                            "chars": len(result.text),
                        },
                    )
                    actions = session.transcribed(job, result)
            if not await self._perform(actions):
                return

    async def _run_partials(self) -> None:
        """Partial decodes of the open buffer when the session says one is due."""
        loop = asyncio.get_running_loop()
        session, scheduler = self.session, self.scheduler
        while True:
            job = session.take_partial(loop.time(), scheduler.backlog)
            if job is not None:
                try:
                    result = await scheduler.submit_partial(
                        session.session_id, self._recognize_partial, job, session.engine_prompt(job)
                    )
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.debug(
                        "partial decode failed",
                        exc_info=True,
                        extra={"session_id": session.session_id},
                    )
                    result = None
                if result is None:  # dropped (a commit came first) or failed
                    session.partial_failed(job)
                    continue
                if not await self._perform(session.partial_transcribed(job, result)):
                    return
                continue
            self.audio_arrived.clear()
            due = session.partial_due_at(scheduler.backlog)
            timeout = None if due is None else max(0.0, due - loop.time())
            with contextlib.suppress(asyncio.TimeoutError, TimeoutError):
                await asyncio.wait_for(self.audio_arrived.wait(), timeout)

    def _samples(self, job: TranscriptionJob | PartialJob) -> Any:
        return wire_to_float32(job.audio, job.format_type, job.rate, self.engine.sample_rate_hz)

    def _recognize(self, job: TranscriptionJob, prompt: str | None) -> Recognition:
        """Worker thread: wire bytes -> engine samples -> :class:`Recognition` (with the
        recognizer's per-token log probabilities when asked and the engine gives them)."""
        samples, language = self._samples(job), job.language
        if job.logprobs and self._logprobs_kw:
            recognize: Any = self.engine.recognize
            result: Recognition = recognize(
                samples, language=language, prompt=prompt, logprobs=True
            )
            return result
        return self.engine.recognize(samples, language=language, prompt=prompt)

    def _recognize_partial(self, job: PartialJob, prompt: str | None) -> Recognition:
        """Worker thread: a partial decode (the engine's cheaper ``recognize_partial``)."""
        samples = self._samples(job)
        return self.engine.recognize_partial(samples, language=job.language, prompt=prompt)
