"""The pure server side of one Realtime transcription session (sans-I/O; docs/protocol.md).

No asyncio, websockets or livekit, and no clock: time comes in as ``now`` (seconds, any
monotonic origin). :class:`ServerSession` reads each client message with ``parse_client``,
dispatches on the typed command and returns :class:`~.actions.Actions` (typed server events,
decode jobs, a speech-detector input, at most one close) that the shell (``connection.py``)
performs, calling ``to_wire`` at the edge. The rules it applies live beside it: configuration
and compat modes (``config.py``), refusals (``refusals.py``), faults (``faults.py``), turn
detection (``turns.py``), partials (``partials.py``), decode jobs and results (``jobs.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ..protocol import events as ev
from ..protocol.session import SessionConfig
from . import config as rules
from . import faults as fault
from .actions import Actions, Close, Pause
from .jobs import (
    PartialJob,
    Recognition,
    TranscriptionJob,
    completed_event,
    delta_events,
    failed_event,
)
from .limits import IdFactory, SessionLimits, random_id
from .partials import (
    DEFAULT_DELTA_INTERVAL_S,
    DEFAULT_MAX_PARTIAL_S,
    OpenItemPartials,
    continuation,
)
from .quiet import speech_end_bytes
from .refusals import (
    Refusal,
    buffer_full,
    commit_too_small,
    decode_backlog,
    idle_timeout,
    odd_sample_bytes,
    parse_refusal,
    unknown_event,
)
from .session_vad import ServerVad
from .turns import DEFAULT_VAD_WINDOW_S, TurnDetection, TurnDetector, VadInput

__all__ = ["DEFAULT_MAX_BUFFER_S", "MIN_COMMIT_S", "ServerSession"]

#: Least audio a commit needs (docs/protocol.md §3), in seconds.
MIN_COMMIT_S = ev.MIN_COMMIT_MS / 1000
#: Default cap on uncommitted audio per session, in seconds (bounded memory).
DEFAULT_MAX_BUFFER_S = 600.0


class ServerSession(ServerVad):
    """One websocket's worth of protocol state, server side (docs/protocol.md §2-§6).

    Construct with what the handshake told: ``query_model`` (``?model=``, or None),
    ``openai_beta`` (an ``OpenAI-Beta`` header was sent), ``compat``, ``faults`` and the
    server's shared ``counters``. Then call :meth:`opened` once, :meth:`receive` per client
    text message, :meth:`tick` when the shell's timer fires (:attr:`next_tick_at`), and
    :meth:`transcribed` / :meth:`transcription_failed` per finished job. Each returns
    :class:`Actions`. After a :class:`Close` was returned, further calls return nothing.

    Compat modes (docs/protocol.md §1, §5):

    - ``lenient`` (default): both URL forms, any model name, both dialects.
    - ``openai``: ``?model=`` makes the first ``session.update`` fail with ``invalid_model`` and
      close 4000; an ``OpenAI-Beta`` header closes 4000 ``beta_api_shape_disabled``; options a
      model refuses (``ModelInfo.rejected_options``) get their ``unsupported_*`` error; unknown
      models are rejected; the beta ``transcription_session.update`` is an unknown event.
    - ``gateway``: a missing ``?model=`` closes 1008 "model query parameter is required".

    Models behave as their class does (``models.get_model_info``): pre-commit deltas every
    ``delta_interval_s`` (stretched by the decode backlog; None or 0: off; none past
    ``max_partial_s`` of open audio) for ``deltas_before_commit`` models; server VAD when
    ``turn_detection`` is set for ``server_vad`` models and unknown names (while no one speaks,
    only ``prefix_padding_ms`` of audio is kept; client commits still work); deltas after the
    commit for the others, ``completed`` only where ``sends_deltas`` is False (whisper-1).

    Bounds (issue 14): uncommitted audio is capped at ``max_buffer_s`` (past it appends are
    dropped with one ``error`` ``input_audio_buffer_full`` until the next commit or clear);
    committed audio awaiting its decode at ``max_pending_s`` (a commit past it is refused with
    ``rate_limit_exceeded`` and the buffer kept); a session with no client message for
    ``idle_timeout_s`` (None: never) gets an ``error`` ``idle_timeout`` and close 1001. Item and
    event ids come from ``new_id`` (default: ``item_`` / ``event_`` plus 21 random letters and
    digits).

    Raises:
        ValueError: an unknown ``compat``, a negative ``delta_interval_s``, or a
            ``max_buffer_s`` / ``vad_window_s`` / limit that is not positive.
    """

    def __init__(
        self,
        *,
        session_id: str = "sess_001",
        compat: str = "lenient",
        query_model: str | None = None,
        openai_beta: bool = False,
        faults: fault.Faults | None = None,
        counters: fault.FaultCounters | None = None,
        max_session_s: float = 3600.0,
        delta_interval_s: float | None = DEFAULT_DELTA_INTERVAL_S,
        max_partial_s: float = DEFAULT_MAX_PARTIAL_S,
        max_buffer_s: float = DEFAULT_MAX_BUFFER_S,
        vad_window_s: float = DEFAULT_VAD_WINDOW_S,
        limits: SessionLimits | None = None,
        new_id: IdFactory = random_id,
    ) -> None:
        if compat not in rules.COMPAT_MODES or compat == "vllm":  # vLLM's: VllmSession
            raise ValueError(f"compat must be lenient, openai or gateway, not {compat!r}")
        if delta_interval_s is not None and delta_interval_s < 0:
            raise ValueError("delta_interval_s must not be negative")
        if max_buffer_s <= 0 or vad_window_s <= 0:
            raise ValueError("max_buffer_s and vad_window_s must be positive")
        self.session_id = session_id
        self.compat = compat
        self.query_model = query_model
        self.openai_beta = openai_beta
        self.faults = faults or fault.Faults()
        self.counters = counters if counters is not None else fault.FaultCounters()
        self.limits = limits or SessionLimits(max_session_s=max_session_s)
        self.new_id = new_id
        self.delta_interval_s = delta_interval_s or None
        self.max_partial_s = max_partial_s
        self.max_buffer_s = max_buffer_s
        self.vad_window_s = vad_window_s
        model = query_model if query_model and compat != "openai" else rules.DEFAULT_MODEL
        self.config: SessionConfig = rules.initial_config(model)
        self.dialect = "beta" if openai_beta and compat == "lenient" else "ga"
        self.closed = False
        self.turns_committed = 0
        self.partials_run = 0
        self._now = 0.0
        self._buffer = bytearray()
        self._event_seq = 0
        self._item_seq = 0
        self._open_item_id = new_id("item")
        self._last_item_id: str | None = None
        self._audio_received_s = 0.0
        self._updates_seen = 0
        self._transcripts: dict[str, str] = {}
        self._error_fault_sent = False
        self._overflowed = False
        self._open_id_used = False  # the open item's id was already shown to the client
        self._partials = OpenItemPartials()
        self._streamed_by_item: dict[str, str] = {}
        self._turn_detection: TurnDetection | None = None
        self._vad_epoch = 0
        self._turns = TurnDetector()
        self._handlers: dict[type, Callable[[Any], Actions]] = {
            ev.UpdateSession: self._on_update,
            ev.AppendAudio: self._on_append,
            ev.CommitAudio: self._on_commit,
            ev.ClearAudio: self._on_clear,
            ev.UnknownClientEvent: self._on_unknown,
            Refusal: self._refuse,
        }

    @property
    def opened_at(self) -> float | None:
        return self.limits.opened_at

    @property
    def max_session_s(self) -> float:
        return self.limits.max_session_s

    @property
    def expires_at(self) -> float | None:
        """When the session cap is reached (None before opening)."""
        return self.limits.expires_at

    @property
    def next_tick_at(self) -> float | None:
        """When :meth:`tick` must next be called: the session cap, the idle timeout, or an
        earlier timed drop (``Faults.drop_after_s``). None before opening."""
        return fault.next_tick_at(self.limits.due_at, self.faults, self.counters, self.opened_at)

    @property
    def buffered_s(self) -> float:
        """Seconds of audio appended and not yet committed or cleared."""
        return len(self._buffer) / self.config.bytes_per_second

    @property
    def audio_received_s(self) -> float:
        """Seconds of audio appended in this session, in total."""
        return self._audio_received_s

    @property
    def streams_partials(self) -> bool:
        """Partial decodes run: the model streams deltas before the commit."""
        cfg = self.config
        return (
            self.delta_interval_s is not None
            and cfg.transcription_enabled
            and rules.model_streams_before_commit(cfg.model)
        )

    @property
    def _next_item_id(self) -> str:
        return self._open_item_id

    @property
    def _buffer_start_s(self) -> float:
        return self._audio_received_s - self.buffered_s

    def _next_event_id(self) -> str:
        """A new ``event_`` id from ``new_id`` (random, as OpenAI's are: issue 12)."""
        self._event_seq += 1
        return self.new_id("event")

    def _error(
        self,
        code: str | None,
        message: str,
        *,
        param: str | None = None,
        client_event_id: str | None = None,
        etype: str = "invalid_request_error",
    ) -> ev.ErrorEvent:
        info = ev.ErrorInfo(etype, code, message, param, client_event_id)
        return ev.ErrorEvent(error=info, event_id=self._next_event_id())

    def _refuse(self, refusal: Refusal) -> Actions:
        """An ``invalid_request_error`` for a refused client message; the session goes on."""
        return Actions([self._error(**dataclasses.asdict(refusal))])

    def _close(self, actions: Actions, code: int, reason: str, abort: bool = False) -> Actions:
        actions.close = Close(code, reason, abort)
        self.closed = True
        return actions

    def _drop(self, actions: Actions) -> Actions:
        return self._close(actions, *fault.drop_close(self.faults))

    # -- lifecycle -------------------------------------------------------------------------------

    def opened(self, now: float) -> Actions:
        """The websocket is open: ``session.created`` (docs/protocol.md §4), or a compat close."""
        self.limits.open(now)
        self._now = now
        self.counters.sessions_opened += 1
        actions = Actions()
        if self.compat == "openai" and self.openai_beta:
            return self._close(actions, 4000, "beta_api_shape_disabled")
        if self.compat == "gateway" and not self.query_model:
            return self._close(actions, 1008, "model query parameter is required")
        etype = "transcription_session.created" if self.dialect == "beta" else "session.created"
        body = rules.session_body(self.config, self.session_id, self.dialect)
        actions.events.append(ev.SessionCreated(body, self._next_event_id(), etype))
        self._sync_turn_detection()
        return actions

    def tick(self, now: float) -> Actions:
        """Enforce the session cap (docs/protocol.md §6): past ``max_session_s`` since opening,
        an ``error`` ``session_expired`` then close 1001; the idle timeout: an ``error``
        ``idle_timeout`` then close 1001; and a timed drop (``Faults.drop_after_s``)."""
        actions = Actions()
        if self.closed or self.opened_at is None:
            return actions
        if fault.take_timed_drop(self.faults, self.counters, self.opened_at, now):
            return self._drop(actions)
        expired = self.limits.expired(now)
        if expired == "cap":
            minutes = self.max_session_s / 60
            message = f"Your session hit the maximum duration of {minutes:g} minutes."
            actions.events.append(self._error("session_expired", message))
            return self._close(actions, 1001, "maximum duration reached")
        if expired == "idle":
            assert self.limits.idle_timeout_s is not None
            actions.extend(self._refuse(idle_timeout(self.limits.idle_timeout_s)))
            return self._close(actions, 1001, "idle timeout")
        return actions

    # -- client messages -------------------------------------------------------------------------

    def receive(self, text: str, now: float) -> Actions:
        """One client text message -> :class:`Actions` (docs/protocol.md §3): ``parse_client``,
        then :meth:`handle`. A message it refuses (not JSON, no ``type``, a missing field, bad
        base64, an append over 15 MiB) gets an ``error`` event and the session goes on."""
        try:
            event: ev.ClientEvent | Refusal = ev.parse_client(text)
        except ev.EventParseError as exc:
            event = parse_refusal(exc, self.compat)
        return self.handle(event, now)

    def handle(self, event: ev.ClientEvent | Refusal, now: float) -> Actions:
        """One typed client command (``protocol.events``), or a refused message, at ``now`` ->
        :class:`Actions`; past the session cap, its expiry instead."""
        if self.closed:
            return Actions()
        self._now = now
        self.limits.touch(now)
        expired = self.tick(now)
        if expired.close is not None:
            return expired
        return self._handlers[type(event)](event)

    def binary_received(self) -> Actions:
        """A binary websocket message: not part of the protocol -> ``error``, session goes on."""
        if self.closed:
            return Actions()
        message = "Binary messages are not supported; send audio with input_audio_buffer.append."
        return Actions([self._error("invalid_value", message)])

    def server_error(self, code: str, message: str) -> Actions:
        """An ``error`` event of type ``server_error`` the shell needs to tell the client
        about (e.g. the speech detector could not be loaded); the session goes on."""
        if self.closed:
            return Actions()
        return Actions([self._error(code, message, etype="server_error")])

    def _on_unknown(self, event: ev.UnknownClientEvent) -> Actions:
        return self._refuse(unknown_event(event.type, event.raw.get("event_id")))

    # -- session.update ----------------------------------------------------------------------------

    def _on_update(self, event: ev.UpdateSession) -> Actions:
        client_id, body = event.event_id, event.session
        beta = event.type == "transcription_session.update"
        if beta and self.compat == "openai":
            return self._refuse(unknown_event(event.type, client_id))
        if not beta:
            self._updates_seen += 1
            if self.compat == "openai" and self.query_model and self._updates_seen == 1:
                message = f'Model "{self.query_model}" is not supported in transcription mode.'
                param = "session.audio.input.transcription.model"
                error = self._error(
                    "invalid_model", message, param=param, client_event_id=client_id
                )
                return self._close(Actions([error]), 4000, "invalid_model")
        try:
            new, flat = rules.apply_update(self.config, body, self.compat, beta)
        except rules.ConfigError as exc:
            error = self._error(exc.code, exc.message, param=exc.param, client_event_id=client_id)
            return Actions([error])
        self._set_config(new)
        etype = "transcription_session.updated" if beta else "session.updated"
        body = rules.session_body(new, self.session_id, "beta" if flat else "ga")
        return Actions([ev.SessionUpdated(body, self._next_event_id(), etype)])

    def _set_config(self, new: SessionConfig) -> None:
        old = self.config
        self.config = new
        if (new.audio_format, new.sample_rate_hz) != (old.audio_format, old.sample_rate_hz):
            self._reset_open_item(clear=True)  # bytes of another format cannot be mixed
            self._restart_vad()
        elif new.model != old.model or new.transcription_enabled != old.transcription_enabled:
            self._partials.hypothesis = self._partials.pending = None  # start partials afresh
        self._sync_turn_detection()

    # -- audio -------------------------------------------------------------------------------------

    def _reset_open_item(self, *, clear: bool) -> None:
        """The open item ends without a commit (clear, format change): a fresh one follows.
        If its id was already shown (deltas, speech_started), the next item gets a new id."""
        if clear:
            self._buffer.clear()
        if self._open_id_used:
            self._item_seq += 1  # burn the id: the client may hold text under it
            self._open_item_id = self.new_id("item")
        self._open_id_used = False
        self._turns.end_turn()
        self._start_open_item()

    def _start_open_item(self) -> None:
        self._partials = OpenItemPartials(opened_at=self._now if self._buffer else None)
        self._overflowed = False

    def _on_append(self, event: ev.AppendAudio) -> Actions:
        audio, bps = event.audio, self.config.bytes_per_second
        width = self.config.wire_format.bytes_per_sample
        if len(audio) % width:
            return self._refuse(odd_sample_bytes(len(audio), width, event.event_id))
        if (len(self._buffer) + len(audio)) / bps > self.max_buffer_s:
            if self._overflowed:
                return Actions()
            self._overflowed = True
            return self._refuse(buffer_full(self.buffered_s, self.max_buffer_s, event.event_id))
        if not self._buffer:
            self._partials.opened_at = self._now
        self._buffer += audio
        self._audio_received_s += len(audio) / bps
        actions = self._audio_faults()
        if self._turn_detection is not None and audio and not self.closed:
            cfg = self.config
            actions.vad = VadInput(audio, cfg.format_type, cfg.sample_rate_hz, self._vad_epoch)
        return actions

    def _audio_faults(self) -> Actions:
        actions = Actions()
        received_ms = self._audio_received_s * 1000
        code = fault.injected_error_due(
            self.faults, self.counters, received_ms, self._error_fault_sent
        )
        if code is not None:
            self._error_fault_sent = True
            etype = "server_error" if code == "server_error" else "invalid_request_error"
            actions.events.append(self._error(code, f"Injected error '{code}'.", etype=etype))
        if fault.take_audio_drop(self.faults, self.counters, received_ms):
            return self._drop(actions)
        return actions

    def _on_clear(self, event: ev.ClearAudio) -> Actions:
        self._reset_open_item(clear=True)
        return Actions([ev.AudioBufferCleared(event_id=self._next_event_id())])

    def _on_commit(self, event: ev.CommitAudio) -> Actions:
        if self.buffered_s < MIN_COMMIT_S:
            return self._refuse(commit_too_small(self.buffered_s, event.event_id))
        refused = self._backlog_refusal(len(self._buffer), event.event_id)
        if refused is not None:
            return refused
        self._turns.end_turn()
        return self._commit(len(self._buffer))

    def _backlog_refusal(self, nbytes: int, client_event_id: str | None) -> Actions | None:
        """The refusal of a commit of ``nbytes`` past ``max_pending_s`` (the buffer is kept)."""
        seconds = nbytes / self.config.bytes_per_second
        if not self.config.transcription_enabled or self.limits.admits(seconds):
            return None
        lim = self.limits
        return self._refuse(
            decode_backlog(lim.pending_s, seconds, lim.max_pending_s, client_event_id)
        )

    def _commit(self, nbytes: int) -> Actions:
        """Commit the first ``nbytes`` of the buffer as the next item: ``committed`` and a job;
        what follows stays as the start of the next open item."""
        self._item_seq += 1
        item_id, previous = self._open_item_id, self._last_item_id
        self._open_item_id = self.new_id("item")
        self._last_item_id = item_id
        audio = bytes(self._buffer[:nbytes])
        del self._buffer[:nbytes]
        cfg = self.config
        self.turns_committed += 1
        if self._partials.streamed and cfg.transcription_enabled:
            self._streamed_by_item[item_id] = self._partials.streamed
        self._open_id_used = False
        self._start_open_item()
        committed = ev.AudioBufferCommitted(item_id, previous, self._next_event_id())
        actions = Actions([committed])
        if cfg.transcription_enabled:
            self.limits.queued(len(audio) / cfg.bytes_per_second)
            actions.jobs.append(
                TranscriptionJob(
                    item_id=item_id,
                    index=self._item_seq,
                    previous_item_id=previous,
                    fail=self._item_seq in self.faults.fail_items,
                    **self._job_fields(audio),
                )
            )
        return actions

    def _job_fields(self, audio: bytes) -> dict[str, Any]:
        """What every decode job of ``audio`` (wire bytes) carries from the session."""
        cfg = self.config
        return {
            "session_id": self.session_id,
            "audio": audio,
            "format_type": cfg.format_type,
            "rate": cfg.sample_rate_hz,
            "duration_s": len(audio) / cfg.bytes_per_second,
            "model": cfg.model or rules.DEFAULT_MODEL,
            # one possible language is the language; several: the recognizer detects
            "language": cfg.language
            or (cfg.languages[0] if cfg.languages and len(cfg.languages) == 1 else None),
            "prompt": cfg.prompt,
            "logprobs": cfg.logprobs,
        }

    # -- pre-commit deltas -----------------------------------------------------------------------

    def partial_due_at(self, backlog: int = 0) -> float | None:
        """When the next partial decode of the open buffer is due (None: none is wanted now:
        the model has no pre-commit deltas, one is in flight, or too little new audio)."""
        if self.closed or not self.streams_partials:
            return None
        assert self.delta_interval_s is not None
        cfg = self.config
        return self._partials.due_at(
            nbytes=len(self._buffer),
            bytes_per_second=cfg.bytes_per_second,
            interval_s=self.delta_interval_s,
            backlog=backlog,
            max_partial_s=self.max_partial_s,
            speech_end=speech_end_bytes(
                self._buffer, cfg.format_type, cfg.sample_rate_hz, cfg.wire_format.bytes_per_sample
            ),
        )

    def take_partial(self, now: float, backlog: int = 0) -> PartialJob | None:
        """A :class:`PartialJob` if one is due at ``now`` with ``backlog`` decode jobs
        waiting (see :meth:`partial_due_at`); at most one is in flight per session."""
        due = self.partial_due_at(backlog)
        if due is None or now < due:
            return None
        audio = bytes(self._buffer)
        job = PartialJob(
            item_id=self._next_item_id,
            previous_item_id=self._last_item_id,
            **self._job_fields(audio),
        )
        self._partials.taken(job, now, len(audio))
        return job

    def partial_transcribed(self, job: PartialJob, result: Recognition) -> Actions:
        """A partial hypothesis -> deltas of the newly stable words (under ``job.item_id``).

        Nothing if the buffer was committed or cleared since ``job`` was taken."""
        if self.closed or job is not self._partials.pending:
            return Actions()
        self.partials_run += 1
        delta = self._partials.transcribed(result.text.split())
        if not delta:
            return Actions()
        self._open_id_used = True
        deltas = delta_events(job.item_id, delta, result, job.logprobs, self._next_event_id)
        return Actions(list(deltas))

    def partial_failed(self, job: PartialJob) -> None:
        """``job`` was dropped (load) or failed: another may be taken."""
        if job is self._partials.pending:
            self._partials.pending = None

    # -- results -------------------------------------------------------------------------------

    def engine_prompt(self, job: TranscriptionJob | PartialJob, max_chars: int = 600) -> str | None:
        """The prompt to give the recognizer for ``job``: the client's ``prompt`` followed by
        the transcript of the previous item of this session (context across turns), cut to the
        last ``max_chars`` characters; None when both are empty."""
        parts = [p for p in (job.prompt, self._transcripts.get(job.previous_item_id or "")) if p]
        if not parts:
            return None
        return " ".join(parts)[-max_chars:]

    def transcribed(self, job: TranscriptionJob, result: Recognition) -> Actions:
        """The recognizer's result for ``job`` -> deltas of the text not yet streamed (one per
        word piece), an optional :class:`Pause`, then ``completed`` with ``usage``
        (docs/protocol.md §4). The deltas of the item (pre-commit ones included) concatenate to
        the transcript, unless the final disagrees with what was streamed before the commit:
        then the deltas still only append (the ``partials.continuation`` of the streamed text
        in the final), and ``completed`` carries the final text, which is authoritative."""
        streamed = self._streamed_by_item.pop(job.item_id, "")
        self.limits.finished(job.duration_s)
        if self.closed:
            return Actions()
        text = result.text
        self._transcripts[job.item_id] = text
        self._transcripts.pop(job.previous_item_id or "", None)
        actions = Actions()
        if rules.model_sends_deltas(job.model):
            suffix = text.startswith(streamed)
            rest = text[len(streamed) :] if suffix else continuation(streamed, text.split())
            offset = len(streamed) if suffix else None
            actions.events.extend(
                delta_events(job.item_id, rest, result, job.logprobs, self._next_event_id, offset)
            )
        if self.faults.completed_delay_ms > 0:
            actions.events.append(Pause(self.faults.completed_delay_ms / 1000))
        actions.events.append(completed_event(job, result, self._next_event_id))
        return actions

    def transcription_failed(self, job: TranscriptionJob) -> Actions:
        """``job`` could not be transcribed (the ``fail_items`` fault or an engine error) ->
        ``conversation.item.input_audio_transcription.failed`` (docs/protocol.md §4)."""
        self._streamed_by_item.pop(job.item_id, None)
        self.limits.finished(job.duration_s)
        if self.closed:
            return Actions()
        if job.fail:
            self.counters.items_failed += 1
        return Actions([failed_event(job, self._next_event_id)])
