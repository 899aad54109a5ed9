"""Server VAD turn detection as an explicit state table (pure: no clock; positions are seconds of
the session's audio).

The shell runs a speech detector on appended audio (:class:`VadInput`) and hands its
probabilities, one per ``window_s`` of audio, to :meth:`TurnDetector.feed`, which walks
:data:`TRANSITIONS` and returns the turn edges it crossed. ``ServerSession`` turns the edges
into ``speech_started`` / ``speech_stopped`` and a commit (docs/protocol.md §2
``turn_detection``, §4).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Union

__all__ = [
    "DEFAULT_VAD_WINDOW_S",
    "SEMANTIC_SILENCE_MS",
    "TRANSITIONS",
    "Level",
    "Step",
    "TurnDetection",
    "TurnDetector",
    "TurnEdge",
    "TurnStarted",
    "TurnStopped",
    "VadInput",
    "VadState",
]

#: Speech-probability window of the detector the shell runs (Silero: 512 samples at 16 kHz).
DEFAULT_VAD_WINDOW_S = 0.032
#: ``semantic_vad`` eagerness -> silence that ends a turn (ms); ``auto`` is ``medium``.
SEMANTIC_SILENCE_MS = {"low": 1500, "medium": 800, "high": 400, "auto": 800}


@dataclass(frozen=True)
class TurnDetection:
    """Effective server VAD settings (docs/protocol.md §2 ``turn_detection``).

    A speech probability at or above ``threshold`` starts a turn (its audio begins
    ``prefix_padding_ms`` earlier); probabilities below ``max(threshold - 0.15, 0.01)`` for
    ``silence_duration_ms`` end it (Silero's hysteresis, as in ``faster_whisper.vad``).
    """

    type: str = "server_vad"
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500

    @property
    def neg_threshold(self) -> float:
        """Below this a probability counts as silence."""
        return max(self.threshold - 0.15, 0.01)


@dataclass(frozen=True)
class VadInput:
    """Run the speech detector on ``audio`` (wire bytes in ``format_type`` at ``rate`` Hz,
    continuing the stream of earlier inputs of the same ``epoch``; a new epoch means a fresh
    detector), then feed its probabilities to ``ServerSession.speech_probabilities``."""

    audio: bytes
    format_type: str
    rate: int
    epoch: int


class Level(enum.Enum):
    """One window's probability against the thresholds."""

    SPEECH = "speech"  # >= threshold
    UNSURE = "unsure"  # between the two thresholds: changes nothing
    SILENCE = "silence"  # < neg_threshold


class VadState(enum.Enum):
    IDLE = "idle"  # nobody speaks
    SPEAKING = "speaking"
    PAUSING = "pausing"  # speaking, but silent since ``silence_since_s``


class Step(enum.Enum):
    NONE = "none"
    START = "start"  # a turn starts at this window
    SILENT = "silent"  # the silence timer runs (from this window if new); once it lasted
    # ``silence_duration_ms`` the turn ends at this window's end and the state is IDLE


#: (state, level of the window) -> (next state, what happens). Entering SPEAKING drops the
#: silence timer.
TRANSITIONS: dict[tuple[VadState, Level], tuple[VadState, Step]] = {
    (VadState.IDLE, Level.SPEECH): (VadState.SPEAKING, Step.START),
    (VadState.IDLE, Level.UNSURE): (VadState.IDLE, Step.NONE),
    (VadState.IDLE, Level.SILENCE): (VadState.IDLE, Step.NONE),
    (VadState.SPEAKING, Level.SPEECH): (VadState.SPEAKING, Step.NONE),
    (VadState.SPEAKING, Level.UNSURE): (VadState.SPEAKING, Step.NONE),
    (VadState.SPEAKING, Level.SILENCE): (VadState.PAUSING, Step.SILENT),
    (VadState.PAUSING, Level.SPEECH): (VadState.SPEAKING, Step.NONE),
    (VadState.PAUSING, Level.UNSURE): (VadState.PAUSING, Step.NONE),
    (VadState.PAUSING, Level.SILENCE): (VadState.PAUSING, Step.SILENT),
}


@dataclass(frozen=True)
class TurnStarted:
    """Speech from ``at_s`` (the start of its first window), seconds of session audio."""

    at_s: float


@dataclass(frozen=True)
class TurnStopped:
    """The turn ended at ``at_s``: the end of the window that confirmed the silence."""

    at_s: float


TurnEdge = Union[TurnStarted, TurnStopped]


@dataclass
class TurnDetector:
    """The VAD state machine of one detector epoch; ``position_s`` is where its next window
    starts (seconds of session audio)."""

    position_s: float = 0.0
    state: VadState = VadState.IDLE
    silence_since_s: float | None = field(default=None)

    @property
    def speaking(self) -> bool:
        return self.state is not VadState.IDLE

    def end_turn(self) -> None:
        """The turn ended another way (a client commit or clear): nobody speaks."""
        self.state, self.silence_since_s = VadState.IDLE, None

    def feed(
        self, probabilities: list[float] | tuple[float, ...], td: TurnDetection, window_s: float
    ) -> list[TurnEdge]:
        """Walk :data:`TRANSITIONS` over consecutive windows of ``window_s`` seconds; returns
        the edges crossed, in order."""
        edges: list[TurnEdge] = []
        for p in probabilities:
            start = self.position_s
            end = self.position_s = start + window_s
            if p >= td.threshold:
                level = Level.SPEECH
            else:
                level = Level.SILENCE if p < td.neg_threshold else Level.UNSURE
            self.state, step = TRANSITIONS[(self.state, level)]
            if self.state is VadState.SPEAKING:
                self.silence_since_s = None
            if step is Step.START:
                edges.append(TurnStarted(start))
            elif step is Step.SILENT:
                if self.silence_since_s is None:
                    self.silence_since_s = start
                if end - self.silence_since_s >= td.silence_duration_ms / 1000:
                    self.end_turn()
                    edges.append(TurnStopped(end))
        return edges
