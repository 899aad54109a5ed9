"""The pure server side of one session in vLLM's realtime dialect (``compat="vllm"``,
docs/protocol.md §7): what vLLM's ``RealtimeConnection`` does with each client message, without
its engine. No asyncio, no clock: time comes in as ``now``; results come back as for
:class:`~.session.ServerSession` (the same shell runs both).

Source: ``vllm/frontend/entrypoints/speech_to_text/realtime/connection.py`` (``C:``, lines of
commit ``055e47c2``) and ``protocol.py`` in vLLM's repository:

- ``session.created`` ``{id, created}`` on accept (C:64); ``session.update`` needs a top-level
  ``model`` and is never answered when accepted (C:105-115); a commit before it gets
  ``model_not_validated`` (C:143-152).
- appends go to one queue whatever the state (C:117-140): base64 pcm16 at 16 kHz, refused with
  ``invalid_audio`` when not decodable, odd, empty or over ``VLLM_MAX_AUDIO_CLIP_FILESIZE_MB``
  (25 Mi samples).
- a plain commit starts a generation that takes the queue from its head, audio appended before
  the commit included, and goes on taking appends as they come (C:158-189); a plain commit
  while one runs is ignored, silently (C:173-175); ``final: true`` puts the end on the queue
  (C:156-157). The generation sends ``transcription.delta`` as it goes and, after its end,
  ``transcription.done`` (its deltas joined, and usage), then clears the queue: audio appended
  after the ``final`` and before ``done`` is dropped (C:261-265). A failed generation sends
  ``processing_error`` and no ``done`` (C:267-269).
- errors are ``{"type":"error","error":"<message>","code":"<code>"}`` and never close the socket
  (C:72-76, 278-281); a binary frame ends the connection (``receive_text`` fails outside the
  per-event ``try``, C:68-83; uvicorn then closes with 1000).

This server's own bounds still apply (``SessionLimits``: cap, idle timeout; ``max_buffer_s`` of
audio held), and ``Faults`` ``fail_items`` / timed and audio drops. Deltas come from partial
decodes of the generation's audio so far (the stable words; an empty delta when a decode adds
none, as vLLM sends empty deltas) and, at the end, from the final decode.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, field
from typing import Any

from ..protocol import events as ev
from ..protocol.session import VLLM_RATE_HZ, SessionConfig
from ..protocol.vllm_events import VllmSessionCreated, VllmTranscriptionDelta, VllmTranscriptionDone
from . import faults as fault
from .actions import Actions, Close
from .jobs import PartialJob, Recognition, TranscriptionJob, split_pieces
from .limits import SessionLimits
from .partials import (
    DEFAULT_DELTA_INTERVAL_S,
    DEFAULT_MAX_PARTIAL_S,
    OpenItemPartials,
    continuation,
)

__all__ = ["MAX_APPEND_SAMPLES", "VLLM_RATE_HZ", "VllmSession"]

#: vLLM's per-append limit: ``VLLM_MAX_AUDIO_CLIP_FILESIZE_MB`` (25) compared with samples / 2**20.
MAX_APPEND_SAMPLES = 25 * 1024**2
_BYTES_PER_SECOND = 2 * VLLM_RATE_HZ
_PCM = "audio/pcm"
_FINAL = None  # the end marker a ``final`` commit puts on the queue (vLLM's sentinel)
_TRUE = ("1", "true", "t", "yes", "y", "on")
_FALSE = ("0", "false", "f", "no", "n", "off")


@dataclass
class _Generation:
    """One running generation: the audio it took so far, whether it met the end marker, the
    text its deltas carried, and its partial-decode state."""

    number: int
    audio: bytearray = field(default_factory=bytearray)
    ended: bool = False
    streamed: str = ""
    partials: OpenItemPartials = field(default_factory=OpenItemPartials)

    @property
    def item_id(self) -> str:
        return f"gen_{self.number:03d}"


def _lax_bool(value: Any) -> bool | None:
    """pydantic's lax ``bool`` (what vLLM's ``final: bool`` accepts); None: a validation error."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    return None


class VllmSession:
    """One websocket in vLLM's dialect. Same calls as :class:`~.session.ServerSession`:
    :meth:`opened`, :meth:`receive`, :meth:`tick`, :meth:`transcribed` /
    :meth:`transcription_failed` for a generation's final decode, and :meth:`take_partial` /
    :meth:`partial_transcribed` for its deltas. ``created``: unix seconds for
    ``session.created`` (the shell reads the clock). ``max_buffer_s``: audio held (queued and
    in the running generation) past which appends are refused with ``processing_error``.
    """

    vad_active = False
    vad_window_s = 0.032

    def __init__(
        self,
        *,
        session_id: str = "sess-0",
        created: int = 0,
        limits: SessionLimits | None = None,
        faults: fault.Faults | None = None,
        counters: fault.FaultCounters | None = None,
        delta_interval_s: float | None = DEFAULT_DELTA_INTERVAL_S,
        max_partial_s: float = DEFAULT_MAX_PARTIAL_S,
        max_buffer_s: float = 600.0,
    ) -> None:
        if delta_interval_s is not None and delta_interval_s < 0:
            raise ValueError("delta_interval_s must not be negative")
        if not max_buffer_s > 0:
            raise ValueError("max_buffer_s must be positive")
        self.session_id = session_id
        self.created = created
        self.limits = limits or SessionLimits()
        self.faults = faults or fault.Faults()
        self.counters = counters if counters is not None else fault.FaultCounters()
        self.delta_interval_s = delta_interval_s or None
        self.max_partial_s = max_partial_s
        self.max_buffer_s = max_buffer_s
        self.config = SessionConfig(model="", language=None, pcm_rate_hz=VLLM_RATE_HZ)
        self.closed = False
        self.model_validated = False
        self.turns_committed = 0
        self.partials_run = 0
        self.audio_received_s = 0.0
        self._queue: list[bytes | None] = []
        self._generation: _Generation | None = None
        self._generations = 0

    # -- the shell's view ----------------------------------------------------------------------

    @property
    def opened_at(self) -> float | None:
        return self.limits.opened_at

    @property
    def next_tick_at(self) -> float | None:
        """When :meth:`tick` must next be called (cap, idle timeout or a timed drop)."""
        return fault.next_tick_at(self.limits.due_at, self.faults, self.counters, self.opened_at)

    @property
    def held_s(self) -> float:
        """Seconds of audio queued or taken by the running generation."""
        queued = sum(len(a) for a in self._queue if a is not None)
        running = len(self._generation.audio) if self._generation is not None else 0
        return (queued + running) / _BYTES_PER_SECOND

    def _error(self, message: str, code: str) -> ev.ErrorEvent:
        return ev.ErrorEvent(ev.ErrorInfo("error", code, message))

    def _close(self, actions: Actions, code: int, reason: str, abort: bool = False) -> Actions:
        actions.close = Close(code, reason, abort)
        self.closed = True
        return actions

    def opened(self, now: float) -> Actions:
        """The websocket was accepted: ``session.created`` (C:64)."""
        self.limits.open(now)
        self.counters.sessions_opened += 1
        return Actions([VllmSessionCreated(self.session_id, self.created)])

    def tick(self, now: float) -> Actions:
        """This server's bounds (vLLM has none): the cap and the idle timeout close 1001 after
        an ``error`` in vLLM's shape; a timed drop fault."""
        actions = Actions()
        if self.closed or self.opened_at is None:
            return actions
        if fault.take_timed_drop(self.faults, self.counters, self.opened_at, now):
            return self._close(actions, *fault.drop_close(self.faults))
        expired = self.limits.expired(now)
        if expired is None:
            return actions
        if expired == "cap":
            message, code = f"Session reached {self.limits.max_session_s:g} s.", "session_expired"
        else:
            message, code = "Session idle for too long.", "idle_timeout"
        actions.events.append(self._error(message, code))
        return self._close(actions, 1001, "maximum duration reached" if expired == "cap" else code)

    def server_error(self, code: str, message: str) -> Actions:
        """An error the shell must report (a handler bug): vLLM's ``processing_error``."""
        return Actions() if self.closed else Actions([self._error(message, "processing_error")])

    def binary_received(self) -> Actions:
        """vLLM reads text only: a binary frame ends the connection (C:68, 80-83)."""
        return Actions() if self.closed else self._close(Actions(), 1000, "")

    def speech_probabilities(self, probabilities: Any, epoch: int) -> Actions:
        return Actions()  # no server VAD in vLLM's realtime API

    def engine_prompt(self, job: TranscriptionJob | PartialJob, max_chars: int = 600) -> None:
        return None  # vLLM's realtime API takes no prompt

    # -- client messages (C:66-76, 94-161) -------------------------------------------------------

    def receive(self, text: str, now: float) -> Actions:
        """One client text message -> :class:`Actions`, as vLLM's connection handles it."""
        if self.closed:
            return Actions()
        self.limits.touch(now)
        expired = self.tick(now)
        if expired.close is not None:
            return expired
        try:
            event = json.loads(text)
        except ValueError:  # json.JSONDecodeError (C:72-73)
            return Actions([self._error("Invalid JSON", "invalid_json")])
        except RecursionError as exc:  # not a JSONDecodeError: the generic handler (C:74-76)
            return Actions([self._error(str(exc), "processing_error")])
        if not isinstance(event, dict):
            message = f"'{type(event).__name__}' object has no attribute 'get'"
            return Actions([self._error(message, "processing_error")])
        etype = event.get("type")
        if etype == "session.update":
            return self._on_update(event)
        if etype == "input_audio_buffer.append":
            return self._on_append(event, now)
        if etype == "input_audio_buffer.commit":
            return self._on_commit(event, now)
        return Actions([self._error(f"Unknown event type: {etype}", "unknown_event")])

    def _on_update(self, event: dict[str, Any]) -> Actions:
        model = event.get("model")
        if model is None:
            return Actions([self._error("Missing required field: model", "invalid_event")])
        if not isinstance(model, str) or not model.strip():  # this server serves any name
            message = f"The model `{model}` does not exist."
            return Actions([self._error(message, "model_not_found")])
        self.model_validated = True
        self.config = SessionConfig(model=model, language=None, pcm_rate_hz=VLLM_RATE_HZ)
        return Actions()  # no session.updated

    def _on_append(self, event: dict[str, Any], now: float) -> Actions:
        audio = event.get("audio")
        if not isinstance(audio, str):  # pydantic validation, outside the decode try (C:117)
            problem = "Field required" if audio is None else "Input should be a valid string"
            message = f"1 validation error for InputAudioBufferAppend\naudio\n  {problem}"
            return Actions([self._error(message, "processing_error")])
        try:
            data = base64.b64decode(audio)
        except (binascii.Error, ValueError):
            data = b"\x00"  # undecodable: refused below like an odd length
        samples = len(data) // 2
        if len(data) % 2 or not data or samples > MAX_APPEND_SAMPLES:
            return Actions([self._error("Invalid audio data", "invalid_audio")])
        if self.held_s + samples / VLLM_RATE_HZ > self.max_buffer_s:
            message = (
                f"This server holds at most {self.max_buffer_s:g} s of audio per session "
                "(max_buffer_s); send a final commit and wait for transcription.done."
            )
            return Actions([self._error(message, "processing_error")])
        self._queue.append(data)
        self.audio_received_s += samples / VLLM_RATE_HZ
        actions = self._pump(now)
        received_ms = self.audio_received_s * 1000
        if fault.take_audio_drop(self.faults, self.counters, received_ms):
            return self._close(actions, *fault.drop_close(self.faults))
        return actions

    def _on_commit(self, event: dict[str, Any], now: float) -> Actions:
        if not self.model_validated:
            message = (
                "Model not validated. Make sure to validate the model by sending a "
                "session.update event."
            )
            return Actions([self._error(message, "model_not_validated")])
        final = _lax_bool(event.get("final", False))
        if final is None:
            message = (
                "1 validation error for InputAudioBufferCommit\nfinal\n"
                "  Input should be a valid boolean"
            )
            return Actions([self._error(message, "processing_error")])
        if final:
            self._queue.append(_FINAL)
            return self._pump(now)
        if self._generation is not None:
            return Actions()  # "Generation already in progress, ignoring commit" (log only)
        self._generations += 1
        self._generation = _Generation(self._generations)
        return self._pump(now)

    def _pump(self, now: float) -> Actions:
        """The running generation takes the queue from its head up to the end marker; at the
        marker its audio goes to the decoder as one job."""
        gen = self._generation
        if gen is None or gen.ended:
            return Actions()
        while self._queue:
            item = self._queue.pop(0)
            if item is _FINAL:
                gen.ended = True
                self.turns_committed += 1
                return Actions(jobs=[self._job(gen)])
            if not gen.audio:
                gen.partials.opened_at = now
            gen.audio += item
        return Actions()

    def _job(self, gen: _Generation) -> TranscriptionJob:
        audio = bytes(gen.audio)
        duration_s = len(audio) / _BYTES_PER_SECOND
        self.limits.queued(duration_s)
        return TranscriptionJob(
            session_id=self.session_id,
            item_id=gen.item_id,
            index=gen.number,
            previous_item_id=None,
            audio=audio,
            format_type=_PCM,
            rate=VLLM_RATE_HZ,
            duration_s=duration_s,
            model=self.config.model,
            language=None,
            prompt=None,
            logprobs=False,
            fail=gen.number in self.faults.fail_items,
        )

    # -- deltas while audio arrives --------------------------------------------------------------

    def partial_due_at(self, backlog: int = 0) -> float | None:
        """When the next partial decode of the running generation's audio is due (None: no
        generation, it has ended, one decode is in flight, or too little new audio)."""
        gen = self._generation
        if self.closed or gen is None or gen.ended or self.delta_interval_s is None:
            return None
        return gen.partials.due_at(
            nbytes=len(gen.audio),
            bytes_per_second=_BYTES_PER_SECOND,
            interval_s=self.delta_interval_s,
            backlog=backlog,
            max_partial_s=self.max_partial_s,
        )

    def take_partial(self, now: float, backlog: int = 0) -> PartialJob | None:
        """A :class:`PartialJob` of the running generation's audio if one is due at ``now``."""
        due = self.partial_due_at(backlog)
        gen = self._generation
        if due is None or now < due or gen is None:
            return None
        audio = bytes(gen.audio)
        job = PartialJob(
            session_id=self.session_id,
            item_id=gen.item_id,
            previous_item_id=None,
            audio=audio,
            format_type=_PCM,
            rate=VLLM_RATE_HZ,
            duration_s=len(audio) / _BYTES_PER_SECOND,
            model=self.config.model,
            language=None,
            prompt=None,
            logprobs=False,
        )
        gen.partials.taken(job, now, len(audio))
        return job

    def partial_transcribed(self, job: PartialJob, result: Recognition) -> Actions:
        """A partial hypothesis -> a ``transcription.delta`` of the newly stable words, or an
        empty one (vLLM sends a delta per engine step, text or not)."""
        gen = self._generation
        if self.closed or gen is None or job is not gen.partials.pending:
            return Actions()
        self.partials_run += 1
        delta = gen.partials.transcribed(result.text.split())
        gen.streamed += delta
        return Actions([VllmTranscriptionDelta(delta)])

    def partial_failed(self, job: PartialJob) -> None:
        gen = self._generation
        if gen is not None and job is gen.partials.pending:
            gen.partials.pending = None

    # -- the end of a generation (C:254-269) -----------------------------------------------------

    def transcribed(self, job: TranscriptionJob, result: Recognition) -> Actions:
        """The final decode -> deltas of the text not yet streamed, ``transcription.done`` (its
        deltas joined, usage), then the queue is cleared (C:263-265)."""
        self.limits.finished(job.duration_s)
        gen = self._generation
        if self.closed or gen is None or gen.item_id != job.item_id:
            return Actions()
        text, streamed = result.text, gen.streamed
        rest = text[len(streamed) :] if text.startswith(streamed) else None
        rest = continuation(streamed, text.split()) if rest is None else rest
        actions = Actions([VllmTranscriptionDelta(piece) for piece in split_pieces(rest)])
        full = streamed + rest
        prompt = math.ceil(12.5 * job.duration_s)  # Voxtral: one audio token per 80 ms
        completion = math.ceil(len(full) / 4)
        usage = {
            "prompt_tokens": prompt,
            "total_tokens": prompt + completion,
            "completion_tokens": completion,
            "prompt_tokens_details": None,
        }
        actions.events.append(VllmTranscriptionDone(full, usage))
        self._queue.clear()
        self._generation = None
        return actions

    def transcription_failed(self, job: TranscriptionJob) -> Actions:
        """A failed generation: ``processing_error`` and no ``done``; the queue is kept."""
        self.limits.finished(job.duration_s)
        gen = self._generation
        if self.closed or gen is None or gen.item_id != job.item_id:
            return Actions()
        self._generation = None
        if job.fail:
            self.counters.items_failed += 1
        message = f"Transcription of generation {gen.number} failed."
        return Actions([self._error(message, "processing_error")])
