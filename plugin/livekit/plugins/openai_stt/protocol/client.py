"""The client's protocol state machine, sans I/O: ``ClientSession``.

One ``ClientSession`` lives as long as a stream, across every socket the stream opens. It owns
all per-stream protocol state: the replay ledger (:mod:`.ledger`), the per-item transcript
assembly (:mod:`.transcript`), the commit bookkeeping (the 100 ms rule, commit ids,
acknowledgements), the final deadlines, the rollover policy and the stream's usage.

Inputs are method calls, with time passed in as ``now`` (seconds on any monotonic clock):

- :meth:`ClientSession.connecting`, :meth:`opened`, :meth:`connection_lost`, :meth:`close`
  move the lifecycle (a state table, :data:`TRANSITIONS`); :meth:`push_audio` (wire bytes),
  :meth:`commit`, :meth:`end_input`, :meth:`update_session` come from the application;
- :meth:`receive` takes each parsed server event, :meth:`tick` the passing of time.

Outputs are drained: :meth:`data_to_send` gives the client events to write, in order; the
methods return :data:`Output` values (transcripts, usage, and the control outputs below) for
the adapter to act on. Nothing here reads a clock, sleeps, logs, or touches a socket.

The rules and where they come from: a commit needs at least 100 ms of audio (docs/protocol.md
§3); everything is matched by ``item_id`` and finals may arrive out of order (§4); errors are
classified once (§5, :mod:`.errors`); audio not finalised when a socket dies is replayed, each
turn committed at the same place, so no word is lost and no final is duplicated (§6); a
session moves to the next one at a turn boundary before the server's cap (§6), and the next
one is opened ahead (make-before-break).
"""

from __future__ import annotations

import dataclasses
from collections import deque

from ..models import ModelInfo
from . import encode
from . import events as ev
from .client_state import (
    AHEAD_MAX_AGE_FRACTION,
    CONNECTED_STATES,
    FORCED_ROLLOVER_GRACE_S,
    MAX_QUICK_RECONNECTS,
    PREPARE_AHEAD_S,
    QUICK_SESSION_S,
    QUIET_TAIL_MS,
    SESSION_UPDATE_ID_PREFIX,
    TRANSITIONS,
    ClientConfig,
    ErrorReportedOut,
    InvalidTransition,
    OpenAheadOut,
    Output,
    ReplayOut,
    SessionEndedOut,
    State,
    UnknownEventOut,
    is_quiet,
)
from .errors import Classified, ErrorAction, classify_error_event, names_permanent_failure
from .ledger import AudioLedger
from .session import wire_bytes_per_sample
from .transcript import (
    CommitRefusedOut,
    CommittedOut,
    FailureOut,
    FinalOut,
    TranscriptAssembler,
    UsageOut,
)
from .transcript import Output as TranscriptOutput
from .usage import UsageSummary
from .vllm_turns import (
    START,
    VllmTurns,
    classify_vllm_error,
    failed_turn,
    final_commit,
    translate,
)

__all__ = [
    "ClientConfig",
    "ClientSession",
    "State",
    "TRANSITIONS",
    "InvalidTransition",
    "ErrorReportedOut",
    "SESSION_UPDATE_ID_PREFIX",
    "SessionEndedOut",
    "OpenAheadOut",
    "ReplayOut",
    "UnknownEventOut",
    "Output",
    "FORCED_ROLLOVER_GRACE_S",
    "PREPARE_AHEAD_S",
    "QUICK_SESSION_S",
    "MAX_QUICK_RECONNECTS",
]


class ClientSession:
    """Per-stream protocol state across sockets (see the module docstring).

    Args:
        config: the stream's numbers (:class:`ClientConfig`).
        model: the registry entry that prices usage (:meth:`update_session` changes it).
    """

    def __init__(self, config: ClientConfig, model: ModelInfo) -> None:
        self.config = config
        self.model = model
        rate = config.sample_rate_hz
        self.sample_rate_hz = rate
        self._bps = wire_bytes_per_sample(config.audio_format)
        self._chunk_samples = max(1, rate * config.chunk_ms // 1000)
        self._min_commit_samples = rate * ev.MIN_COMMIT_MS // 1000
        self._max_item_samples = int(config.max_item_s * rate)
        self.ledger = AudioLedger(self._bps, int(config.max_retained_audio_s * rate))
        self.assembler = TranscriptAssembler(language=config.language)
        self.usage = UsageSummary(model=model)
        self.state = State.IDLE
        self._outbox: list[str | bytes] = []
        self._deadlines: dict[str, float] = {}  # item id -> time its final is due
        self._unacked: deque[float] = deque()  # times of commits sent and not acknowledged
        self._commits_sent = 0
        self._session_started: float | None = None
        self._ahead_requested = False
        self._input_ended = False
        self._quick_ends = 0
        self._unknown_types: set[str] = set()
        self._progress = False  # the current attempt got a commit acknowledged or a final
        self._fruitless_attempts = 0  # attempts in a row that ended with no progress
        self._writing_since: float | None = None  # a send under way since then
        self._configured = False  # the server confirmed the session (session.updated)
        self._vllm = VllmTurns() if config.dialect == "vllm" else None
        self._last_error: ev.ErrorInfo | None = None  # the socket's last error event

    # -- lifecycle ----------------------------------------------------------------------------

    def _transition(self, event: str) -> None:
        try:
            self.state = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise InvalidTransition(
                f"{event!r} is not allowed in state {self.state.value}"
            ) from None

    def connecting(self) -> None:
        """A handshake starts (``IDLE -> CONNECTING``)."""
        self._transition("connecting")

    def opened(self, connected_at: float, now: float) -> list[Output]:
        """The socket is open and its ``session.update`` sent (``CONNECTING -> REPLAYING``).

        Queues the replay (:meth:`AudioLedger.rewind`): every unfinalised turn's audio with its
        commit, then the uncommitted tail. Items committed on the old socket whose finals never
        came are abandoned: their audio is committed again and comes back as new items.

        Args:
            connected_at: when the handshake completed; the server counts the session's age
                from then (docs/protocol.md §6), so a session opened ahead ages from its own
                connect.
            now: the current time (the replayed commits' acknowledgement clock starts here).

        Returns:
            ``[ReplayOut]`` when any audio was replayed, else ``[]``.
        """
        self._transition("opened")
        self._session_started = connected_at
        self._writing_since = None
        self._configured = False
        self._last_error = None
        self._ahead_requested = False
        lost = self.assembler.abandon_unfinished()
        self.ledger.forget_items(lost)
        for item_id in lost:
            self._deadlines.pop(item_id, None)
        self.assembler.begin_session(self.ledger.start / self.sample_rate_hz)
        self._unacked.clear()
        held = self.ledger.held_samples
        commits = 0
        if self._vllm is not None:  # no session.updated in vLLM: silence is success (§7)
            self._configured = True
            steps = self.ledger.rewind()
            self._vllm.reset([(s.start, s.end) for s in steps if s.commit])
            commits = len(self._vllm.pending)
            self._vllm_pump(now)
            if not held:
                return []
            return [ReplayOut(round(held / self.sample_rate_hz, 3), commits, tuple(lost))]
        for step in self.ledger.rewind():
            self.ledger.skip_to(step.start)
            if step.commit:
                commits += 1
                self._send_commit(step.end, now, audio_start=step.start)
            else:
                self._queue_audio(step.end, min_samples=1)
        if not held:
            return []
        return [ReplayOut(round(held / self.sample_rate_hz, 3), commits, tuple(lost))]

    def connection_lost(self) -> None:
        """The socket is gone (or was closed on purpose): back to ``IDLE``; unwritten client
        events are discarded (the ledger replays what matters)."""
        self._outbox.clear()
        if self.state is not State.IDLE and self.state is not State.CLOSED:
            self._transition("connection_lost")

    def close(self) -> None:
        """The stream is over (``* -> CLOSED``)."""
        self._outbox.clear()
        self._transition("close")

    def session_ended(
        self, classified: Classified, now: float, max_attempts: int | None = None
    ) -> Classified:
        """Decide what the end of an attempt (a socket, or a failed open) means for the stream.

        - ``RECONNECT`` (the server ended the session normally): a session ended within
          :data:`QUICK_SESSION_S` of opening made no progress; the
          :data:`MAX_QUICK_RECONNECTS`-th such end in a row becomes a ``RETRY`` failure rather
          than another immediate reconnect.
        - ``RETRY``: attempts that made no progress (no commit acknowledged, no final) are
          counted, whatever their duration; past ``max_attempts`` in a row the failure becomes
          ``FATAL``, so a silent or never-acknowledging server ends the stream with an error
          instead of being retried for ever (LiveKit's own count restarts after any attempt
          longer than ``conn_options.timeout``). An attempt with progress resets the count.
        - ``FATAL`` is returned unchanged.
        """
        progress, self._progress = self._progress, False
        said, self._last_error = self._last_error, None
        if said is not None and names_permanent_failure(said):  # a gateway's refusal, then a close
            classified = dataclasses.replace(classified, action=ErrorAction.FATAL)
        if classified.action is ErrorAction.FATAL and said is not None and said.message:
            if said.message not in classified.message:  # the close, and what came before it
                message = f"{classified.message}; the server said: {said.message}"
                classified = dataclasses.replace(classified, message=message)
            return classified
        if classified.action is ErrorAction.RETRY:
            self._fruitless_attempts = 0 if progress else self._fruitless_attempts + 1
            if max_attempts is not None and self._fruitless_attempts > max_attempts:
                return Classified(
                    ErrorAction.FATAL,
                    f"no progress after {self._fruitless_attempts} attempts "
                    f"(the last: {classified.message})",
                    classified.code,
                    classified.status,
                )
            return classified
        if classified.action is not ErrorAction.RECONNECT:
            return classified
        started = self._session_started
        quick = started is not None and now - started < QUICK_SESSION_S
        self._quick_ends = self._quick_ends + 1 if quick else 0
        if self._quick_ends >= MAX_QUICK_RECONNECTS:
            return Classified(
                ErrorAction.RETRY,
                f"the server keeps ending sessions at once ({classified.message})",
                classified.code,
            )
        return classified

    # -- audio and commits ------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """A socket is configured (replaying, live or rolling over)."""
        return self.state in CONNECTED_STATES

    def push_audio(self, wire: bytes | bytearray | memoryview, now: float) -> None:
        """Append wire-format audio (pcm16 LE or G.711 bytes at the wire rate).

        Full ``chunk_ms`` chunks are queued as ``input_audio_buffer.append`` while connected.
        In the last second before ``max_item_s`` since the previous commit, a block that ends
        in a pause (its last 20 ms under :data:`QUIET_RMS`) is committed, and at
        ``max_item_s`` the item is committed regardless (docs/protocol.md §6:
        gpt-realtime-whisper gives at most 2,000 output tokens an item).

        Raises:
            InvalidTransition: after :meth:`close`.
        """
        if self.state is State.CLOSED:
            raise InvalidTransition("push_audio after close")
        self.ledger.append(wire)
        uncommitted = self.ledger.uncommitted
        if uncommitted >= self._max_item_samples - self.sample_rate_hz and (
            uncommitted >= self._max_item_samples or self._ends_quiet()
        ):
            self.commit(now)
        elif self.connected:
            if self._vllm is not None:
                self._vllm_pump(now)
            else:
                self._queue_audio(self.ledger.appended, min_samples=self._chunk_samples)

    def _vllm_pump(self, now: float) -> None:
        """vLLM's turn order (:mod:`.vllm_turns`): a plain commit before a turn's first audio,
        its audio, a ``final`` commit at its end; then nothing until its ``done``."""
        turns = self._vllm
        assert turns is not None
        while self.connected and not turns.awaiting_done:
            first, target = turns.pending[0] if turns.pending else (None, None)
            if first is not None and not turns.generating:
                self.ledger.skip_to(first)  # a turn already finalised is not sent again
            upto = target if target is not None else self.ledger.appended
            if not turns.generating and (target is not None or upto > self.ledger.sent):
                turns.begin(self.ledger.sent)
                self._outbox.append(START)
            self._queue_audio(upto, min_samples=1 if target is not None else self._chunk_samples)
            if target is None or self.ledger.sent < target:
                return
            turns.pending.popleft()
            self._commits_sent += 1
            event_id = f"commit_{self._commits_sent}"
            rate = self.sample_rate_hz
            self.assembler.commit_sent(
                target / rate, event_id=event_id, audio_start_s=turns.start / rate
            )
            self._unacked.append(now)
            self._outbox.append(final_commit(event_id))
            turns.generating, turns.awaiting_done = False, True

    def _ends_quiet(self) -> bool:
        tail = self.ledger.tail(self.sample_rate_hz * QUIET_TAIL_MS // 1000)
        return is_quiet(tail, self.config.audio_format)

    def commit(self, now: float) -> bool:
        """End the current turn: commit the audio pushed since the last commit.

        Nothing is committed with less than 100 ms uncommitted (docs/protocol.md §3: the
        server would answer ``input_audio_buffer_commit_empty``). The commit follows the audio
        it closes; while disconnected it is recorded in the ledger and sent with the replay.

        Returns:
            True when a commit was made.
        """
        if self.state is State.CLOSED:
            raise InvalidTransition("commit after close")
        if self.ledger.uncommitted < self._min_commit_samples:
            return False
        previous = self.ledger.last_commit
        point = self.ledger.commit()
        if self._vllm is not None:
            self._vllm.pending.append((previous, point))
            self._vllm_pump(now)
        elif self.connected:
            self._send_commit(point, now)
        return True

    def end_input(self, now: float) -> None:
        """No more audio: commit the last turn (under the 100 ms rule) and queue any tail
        shorter than that; no session is opened ahead from now on."""
        self._input_ended = True
        self.commit(now)
        if self.connected and self._vllm is None:
            self._queue_audio(self.ledger.appended, min_samples=1)

    def update_session(self, update: str) -> None:
        """Queue a ``session.update`` (its JSON text) behind the audio already pushed
        (docs/protocol.md §2: a field left out keeps its value)."""
        if self.connected:
            self._queue_audio(self.ledger.appended, min_samples=1)
            self._outbox.append(update)

    def open_text(self) -> str:
        """The text the server streamed so far for the audio not yet committed (the turn a
        commit now would end), or ``""``."""
        return self.assembler.open_text()

    def set_model(self, model: ModelInfo) -> None:
        """The model changed: items completed from now on are priced with ``model``."""
        self.model = model

    def set_language(self, language: str | None) -> None:
        """The configured language changed: finals with no language of their own get it."""
        self.assembler.language = language

    def _send_commit(self, point: int, now: float, audio_start: int | None = None) -> None:
        self._commits_sent += 1
        event_id = f"commit_{self._commits_sent}"
        start_s = None if audio_start is None else audio_start / self.sample_rate_hz
        self.assembler.commit_sent(
            point / self.sample_rate_hz, event_id=event_id, audio_start_s=start_s
        )
        self._unacked.append(now)
        self._queue_audio(point, min_samples=1)
        self._outbox.append(encode.commit_event(event_id))

    def _queue_audio(self, upto: int, *, min_samples: int) -> None:
        """Queue appends of ``chunk_ms`` from what was sent up to ``upto``, while at least
        ``min_samples`` remain."""
        while min(upto, self.ledger.appended) - self.ledger.sent >= min_samples:
            view = self.ledger.take(upto, self._chunk_samples)
            samples = len(view) // self._bps
            if not samples:
                break
            self._outbox.append(encode.append_event(view))
            self.usage.audio_seconds_sent += samples / self.sample_rate_hz

    # -- server events and time -----------------------------------------------------------

    def receive(self, event: ev.ServerEvent, now: float) -> list[Output]:
        """Handle one parsed server event (docs/protocol.md §4, §5).

        Returns the outputs it causes: transcripts and usage (from the assembler), and
        :class:`ErrorReportedOut` (an error the session survives), :class:`SessionEndedOut`
        (an error that ends the socket) or :class:`UnknownEventOut` (first of its type).
        """
        if isinstance(event, ev.UnknownEvent):
            if event.type in self._unknown_types:
                return []
            self._unknown_types.add(event.type)
            return [UnknownEventOut(event.type)]
        if self._vllm is not None:
            return self._receive_vllm(event, now)
        if isinstance(event, ev.SessionUpdated):
            self._configured = True
        if isinstance(event, ev.ErrorEvent):
            classified = classify_error_event(event.error)
            if classified.action is not ErrorAction.IGNORE:
                info = event.error
                self._last_error = info
                if self._answers_configuration(info):
                    classified = Classified(
                        ErrorAction.FATAL,
                        f"the server refused the session configuration: {classified.message}",
                        classified.code,
                    )
                body: dict[str, str | None] = {
                    "type": info.type,
                    "code": info.code,
                    "message": info.message,
                    "param": info.param,
                    "event_id": info.event_id,
                }
                if classified.action is ErrorAction.REPORT:
                    return [ErrorReportedOut(classified, body)]
                return [SessionEndedOut(classified, body)]
        return self._account(self.assembler.receive(event, now), now)

    def _receive_vllm(self, event: ev.ServerEvent, now: float) -> list[Output]:
        """vLLM's events (docs/protocol.md §7): string errors classified by their code; results
        translated for the assembler; the next turn goes out once a ``done`` is in."""
        assert self._vllm is not None
        if isinstance(event, ev.ErrorEvent):
            info = event.error
            self._last_error = info
            classified = classify_vllm_error(info)
            body = {"type": info.type, "code": info.code, "message": info.message}
            if classified.action is ErrorAction.REPORT:
                return [ErrorReportedOut(classified, body)]
            ended: list[Output] = []  # a failed generation ends its turn, as `failed` does
            for failed in failed_turn(self._vllm, info):
                ended += self._account(self.assembler.receive(failed, now), now)
            return [*ended, SessionEndedOut(classified, body)]
        out: list[Output] = []
        for translated in translate(self._vllm, event):
            out += self._account(self.assembler.receive(translated, now), now)
        self._vllm_pump(now)
        return out

    def _answers_configuration(self, info: ev.ErrorInfo) -> bool:
        """An error that names one of our ``session.update`` events, or arrives before the
        server confirmed the session: the session is not configured as asked, and streaming on
        would transcribe wrongly or not at all."""
        ours = (info.event_id or "").startswith(SESSION_UPDATE_ID_PREFIX)
        return ours or not self._configured

    def _account(self, outputs: list[TranscriptOutput], now: float) -> list[Output]:
        """Ledger, deadlines, acknowledgements and usage for the assembler's outputs."""
        trim = False
        for out in outputs:
            if isinstance(out, (CommittedOut, FinalOut, FailureOut)):
                self._progress = True
            if isinstance(out, CommittedOut) and out.by_server:
                # server VAD committed: our next commit starts there (no empty commit), and a
                # replay commits there too
                point = int(round(out.audio_end_s * self.sample_rate_hz))
                self.ledger.server_committed(point)
                self._deadlines[out.item_id] = now + self.config.final_timeout_s
                self.ledger.item_committed(out.item_id, point)
            elif isinstance(out, CommittedOut):
                if self._unacked:
                    self._unacked.popleft()
                self._deadlines[out.item_id] = now + self.config.final_timeout_s
                self.ledger.item_committed(
                    out.item_id, int(round(out.audio_end_s * self.sample_rate_hz))
                )
            elif isinstance(out, CommitRefusedOut):
                # owes no final (with server VAD the server had just committed that audio)
                if self._unacked:
                    self._unacked.pop()
                self.ledger.commit_refused(int(round(out.audio_end_s * self.sample_rate_hz)))
                trim = True
            elif isinstance(out, (FinalOut, UsageOut, FailureOut)):
                self._deadlines.pop(out.item_id, None)
                self.ledger.item_finalized(out.item_id)
                trim = True
                if isinstance(out, UsageOut):
                    self.usage.add_item(out, self.model)
        if trim:
            self.ledger.retain_from(int(round(self.assembler.retain_from_s * self.sample_rate_hz)))
        return list(outputs)

    def tick(self, now: float) -> list[Output]:
        """The passing of time: finals overdue, acknowledgements overdue, the next session.

        - A commit not acknowledged ``final_timeout_s`` after it was sent ends the socket
          (``SessionEndedOut`` with ``RETRY``): the server is not processing our audio.
        - A committed item whose final is ``final_timeout_s`` late ends its turn
          (``FailureOut`` with code ``final_timeout`` and the interim text known); a late
          final for it is dropped.
        - Within :data:`PREPARE_AHEAD_S` of ``session_rollover_s`` (or its second half, for a
          short one), :class:`OpenAheadOut` once per session, unless input has ended.
        """
        out: list[Output] = []
        timeout = self.config.final_timeout_s
        if self._unacked and now - self._unacked[0] > timeout:
            message = f"the server did not acknowledge a commit in {timeout}s"
            out.append(SessionEndedOut(Classified(ErrorAction.RETRY, message)))
            return out
        writing = self._writing_since
        if writing is not None and now - writing > self.config.send_timeout_s:
            message = f"the server stopped reading: a send took over {self.config.send_timeout_s}s"
            out.append(SessionEndedOut(Classified(ErrorAction.RETRY, message)))
            return out
        out.extend(self.assembler.due_interims(now))
        overdue = [item_id for item_id, due in self._deadlines.items() if now >= due]
        if overdue:
            error = ev.ErrorInfo(
                type="timeout",
                code="final_timeout",
                message=f"no final transcript within {timeout}s of the commit",
            )
            expired: list[TranscriptOutput] = []
            for item_id in overdue:
                expired.extend(self.assembler.expire(item_id, error))
                self._deadlines.pop(item_id, None)
            out.extend(self._account(expired, now))
        if self._open_ahead_due(now):
            self._ahead_requested = True
            out.append(OpenAheadOut())
        return out

    def writing(self, since: float | None) -> None:
        """A send to the socket started at ``since`` (``None``: none under way). A send that
        does not complete within ``send_timeout_s`` ends the socket (see :meth:`tick`): a
        server that stops reading cannot stall the stream, nor let its audio pile up."""
        self._writing_since = since

    def _age(self, now: float) -> float:
        return 0.0 if self._session_started is None else now - self._session_started

    def _open_ahead_due(self, now: float) -> bool:
        if self.state is not State.LIVE or self._ahead_requested or self._input_ended:
            return False
        limit = self.config.session_rollover_s
        return self._age(now) >= limit - min(PREPARE_AHEAD_S, limit / 2)

    def check_rollover(self, now: float) -> bool:
        """True (and ``LIVE -> ROLLING_OVER``) when the session is past
        ``session_rollover_s`` at a turn boundary (no final owed), or
        :data:`FORCED_ROLLOVER_GRACE_S` past it regardless."""
        if self.state is not State.LIVE:
            return False
        age, limit = self._age(now), self.config.session_rollover_s
        if age < limit or (self.finals_owed and age < limit + FORCED_ROLLOVER_GRACE_S):
            return False
        self._transition("rollover_due")
        return True

    def ahead_usable(self, connected_at: float, now: float) -> bool:
        """Whether a session opened ahead at ``connected_at`` is young enough to use (under
        three quarters of ``session_rollover_s``: it will not hit the cap before its own
        rollover)."""
        return now - connected_at < AHEAD_MAX_AGE_FRACTION * self.config.session_rollover_s

    # -- outputs ---------------------------------------------------------------------------------

    def data_to_send(self) -> list[str | bytes]:
        """The client events to write, in order (appends are UTF-8 JSON ``bytes``, to be sent
        as text frames); drains the queue. After the replay is drained the session is
        ``LIVE``."""
        out, self._outbox = self._outbox, []
        if self.state is State.REPLAYING:
            self._transition("replay_written")
        return out

    @property
    def events_to_send(self) -> int:
        """Client events queued and not yet drained by :meth:`data_to_send`."""
        return len(self._outbox)

    @property
    def finals_owed(self) -> int:
        """Commits sent and not acknowledged, plus committed items with no final yet."""
        pending = len(self._vllm.pending) if self._vllm is not None else 0
        return self.assembler.pending_items + pending

    @property
    def input_ended(self) -> bool:
        """:meth:`end_input` was called."""
        return self._input_ended
