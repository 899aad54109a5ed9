"""Server VAD for :class:`~.session.ServerSession` (pure, no clock): which turn detection a
session runs, and the turn events and self-commits its detector's probabilities become
(docs/protocol.md §4; the state table is ``turns.py``). A mixin: the session owns the state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..protocol import events as ev
from ..protocol.session import SessionConfig
from . import config as rules
from .actions import Actions
from .partials import OpenItemPartials
from .turns import TurnDetection, TurnDetector, TurnStarted

__all__ = ["ServerVad"]


class ServerVad:
    """Server VAD of one session: :meth:`speech_probabilities` and the detector's epoch."""

    config: SessionConfig
    closed: bool
    vad_window_s: float
    _turn_detection: TurnDetection | None
    _turns: TurnDetector
    _vad_epoch: int
    _buffer: bytearray
    _partials: OpenItemPartials
    _now: float
    _open_id_used: bool
    _audio_received_s: float

    if TYPE_CHECKING:  # provided by ServerSession

        @property
        def _buffer_start_s(self) -> float: ...

        @property
        def _next_item_id(self) -> str: ...

        def _next_event_id(self) -> str: ...

        def _commit(self, nbytes: int) -> Actions: ...

        def _backlog_refusal(self, nbytes: int, client_event_id: str | None) -> Actions | None: ...

        def _reset_open_item(self, *, clear: bool) -> None: ...

    @property
    def vad_active(self) -> bool:
        """Server VAD runs: ``turn_detection`` is set and the model detects turns."""
        return self._turn_detection is not None

    def _sync_turn_detection(self) -> None:
        cfg = self.config
        td = None
        if cfg.turn_detection is not None and rules.model_runs_server_vad(cfg.model):
            try:
                td = rules.parse_turn_detection(cfg.turn_detection)
            except rules.ConfigError:  # validated when set; keep the server alive regardless
                td = None
        if td != self._turn_detection:
            was_active = self._turn_detection is not None
            self._turn_detection = td
            if td is not None and not was_active:
                self._restart_vad()

    def _restart_vad(self) -> None:
        """A fresh detector from the current audio position (new epoch), nobody speaking."""
        self._vad_epoch += 1
        self._turns = TurnDetector(position_s=self._audio_received_s)

    def _bytes_before(self, t_s: float) -> int:
        """Bytes of the buffer before session time ``t_s`` (whole samples, clamped)."""
        cfg = self.config
        samples = round((t_s - self._buffer_start_s) * cfg.sample_rate_hz)
        return min(max(0, samples * cfg.wire_format.bytes_per_sample), len(self._buffer))

    def speech_probabilities(
        self, probabilities: list[float] | tuple[float, ...], epoch: int
    ) -> Actions:
        """The detector's speech probabilities for the next windows (``vad_window_s`` each) of
        the audio of :class:`VadInput` s of ``epoch`` -> turn events (docs/protocol.md §4).

        A turn start sends ``speech_started`` (``audio_start_ms`` = speech start minus
        ``prefix_padding_ms``, not before the buffer); a confirmed silence sends
        ``speech_stopped`` (``audio_end_ms`` where it was confirmed), then commits the audio up
        to there as the turn (``turns.TRANSITIONS``). Results of an old epoch are ignored.
        """
        td = self._turn_detection
        actions = Actions()
        if self.closed or td is None or epoch != self._vad_epoch:
            return actions
        for edge in self._turns.feed(probabilities, td, self.vad_window_s):
            if isinstance(edge, TurnStarted):
                audio_start = max(self._buffer_start_s, edge.at_s - td.prefix_padding_ms / 1000)
                del self._buffer[: self._bytes_before(audio_start)]
                if self._partials.opened_at is None and self._buffer:
                    self._partials.opened_at = self._now
                self._open_id_used = True
                start_ms = max(0, round(self._buffer_start_s * 1000))
                started = ev.SpeechStarted(self._next_item_id, start_ms, self._next_event_id())
                actions.events.append(started)
            else:
                end_ms = round(edge.at_s * 1000)
                stopped = ev.SpeechStopped(self._next_item_id, end_ms, self._next_event_id())
                actions.events.append(stopped)
                nbytes = self._bytes_before(edge.at_s)
                refused = self._backlog_refusal(nbytes, None)
                if refused is None:
                    actions.extend(self._commit(nbytes))
                else:  # the turn is dropped (the backlog is full); its id is not reused
                    actions.extend(refused)
                    del self._buffer[:nbytes]
                    self._reset_open_item(clear=False)
        if not self._turns.speaking:  # keep only the padding a next turn may need
            keep_from = self._turns.position_s - td.prefix_padding_ms / 1000
            del self._buffer[: self._bytes_before(keep_from)]
            if not self._buffer:
                self._partials.opened_at = None
        return actions
