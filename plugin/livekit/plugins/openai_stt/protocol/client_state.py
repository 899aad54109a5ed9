"""The vocabulary of :class:`~.client.ClientSession`: its configuration, its lifecycle as an
explicit state table, its control outputs, and the numbers of its policies. Pure."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Union

import numpy as np

from . import g711
from .errors import Classified
from .session import AudioFormat, Dialect, wire_sample_rate_hz
from .transcript import Output as TranscriptOutput

__all__ = [
    "AHEAD_MAX_AGE_FRACTION",
    "CONNECTED_STATES",
    "QUIET_TAIL_MS",
    "ClientConfig",
    "ErrorReportedOut",
    "FORCED_ROLLOVER_GRACE_S",
    "InvalidTransition",
    "MAX_QUICK_RECONNECTS",
    "OpenAheadOut",
    "Output",
    "PREPARE_AHEAD_S",
    "QUICK_SESSION_S",
    "QUIET_RMS",
    "ReplayOut",
    "SESSION_UPDATE_ID_PREFIX",
    "SessionEndedOut",
    "State",
    "TRANSITIONS",
    "UnknownEventOut",
    "is_quiet",
]

FORCED_ROLLOVER_GRACE_S = 240.0
"""Past ``session_rollover_s`` by this much, roll over even with a final still owed."""
PREPARE_AHEAD_S = 30.0
"""Open the next session this long before a rollover is due (or half ``session_rollover_s``)."""
AHEAD_MAX_AGE_FRACTION = 0.75
"""A session opened ahead that has aged past this fraction of ``session_rollover_s`` is not used."""
QUICK_SESSION_S = 5.0
"""A session the server ends sooner than this after it opened made no progress."""
MAX_QUICK_RECONNECTS = 3
"""Sessions ended at once by the server in a row before the stream gives up."""
SESSION_UPDATE_ID_PREFIX = "session_update_"
"""Our ``session.update`` events carry an ``event_id`` with this prefix, so that an ``error``
answering one is known for what it is (docs/protocol.md §3: an error names the client event
that caused it)."""
QUIET_RMS = 300.0
"""int16 RMS (about -40 dBFS) taken as a pause when cutting a long item."""
QUIET_TAIL_MS = 20
"""The tail of a block, milliseconds, that must be quiet to cut a long item there."""


class State(enum.Enum):
    """Where the stream is in its session lifecycle."""

    IDLE = "idle"
    """No socket: audio is held in the ledger for the next one."""
    CONNECTING = "connecting"
    """A handshake (and ``session.update``) is under way."""
    REPLAYING = "replaying"
    """Configured; the replay of unfinished turns is queued and not yet written."""
    LIVE = "live"
    """Audio flows; commits and finals as they come."""
    ROLLING_OVER = "rolling_over"
    """The session is past ``session_rollover_s`` at a turn boundary: move to the next one."""
    CLOSED = "closed"
    """The stream is over; no input is taken."""


TRANSITIONS: dict[tuple[State, str], State] = {
    (State.IDLE, "connecting"): State.CONNECTING,
    (State.CONNECTING, "opened"): State.REPLAYING,
    (State.CONNECTING, "connection_lost"): State.IDLE,
    (State.REPLAYING, "replay_written"): State.LIVE,
    (State.REPLAYING, "connection_lost"): State.IDLE,
    (State.LIVE, "rollover_due"): State.ROLLING_OVER,
    (State.LIVE, "connection_lost"): State.IDLE,
    (State.ROLLING_OVER, "connection_lost"): State.IDLE,
    **{(state, "close"): State.CLOSED for state in State},
}
"""``(state, event) -> next state``; any other pair is an :class:`InvalidTransition`."""

CONNECTED_STATES = frozenset({State.REPLAYING, State.LIVE, State.ROLLING_OVER})


class InvalidTransition(RuntimeError):
    """A lifecycle event that the current state does not allow (a bug in the caller)."""


# -- control outputs ----------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorReportedOut:
    """An ``error`` event with no close: the session goes on; tell the application
    (docs/protocol.md §5). ``body`` holds every field of the error."""

    classified: Classified
    body: dict[str, str | None]


@dataclass(frozen=True)
class SessionEndedOut:
    """This socket is over. ``classified.action``: ``RECONNECT`` (the server ended the session
    normally: open the next one at once), ``RETRY`` (a transient failure) or ``FATAL``.
    ``body`` holds the server's error fields when an ``error`` event caused it."""

    classified: Classified
    body: dict[str, str | None] | None = None


@dataclass(frozen=True)
class OpenAheadOut:
    """A rollover nears: open and configure the next session now (make-before-break)."""


@dataclass(frozen=True)
class ReplayOut:
    """A new socket was given the unfinished audio again: ``audio_s`` seconds, with
    ``commits`` commits; ``abandoned_items`` are the ids whose finals died with the old
    socket (their turns come back as new items)."""

    audio_s: float
    commits: int
    abandoned_items: tuple[str, ...]


@dataclass(frozen=True)
class UnknownEventOut:
    """A server event type this client does not know (reported once per type)."""

    event_type: str


Output = Union[
    TranscriptOutput,
    ErrorReportedOut,
    SessionEndedOut,
    OpenAheadOut,
    ReplayOut,
    UnknownEventOut,
]


@dataclass(frozen=True)
class ClientConfig:
    """The numbers a :class:`ClientSession` works with.

    Attributes:
        audio_format: wire format (docs/protocol.md §2); decides the rate and sample width.
        pcm_rate_hz: the pcm16 rate (24000; vLLM takes 16000).
        dialect: the server's dialect; ``vllm`` changes how turns are committed (§7).
        chunk_ms: audio per ``input_audio_buffer.append``, milliseconds.
        final_timeout_s: a turn whose final has not come this long after its commit ends
            without it; a commit not acknowledged this long fails the socket.
        max_item_s: longest audio committed as one item, seconds (cut at a pause in its last
            second, else at this length).
        max_retained_audio_s: most audio the ledger keeps for replay, seconds.
        session_rollover_s: move to the next session at a turn boundary after this long.
        language: the configured language, for finals whose server names none.
        send_timeout_s: a send to the socket that takes longer ends it (the server stopped
            reading).

    Raises:
        ValueError: an unknown audio format.
    """

    audio_format: AudioFormat = "pcm16"
    pcm_rate_hz: int = 24000
    dialect: Dialect = "ga"
    chunk_ms: int = 100
    final_timeout_s: float = 15.0
    max_item_s: float = 120.0
    max_retained_audio_s: float = 300.0
    session_rollover_s: float = 55 * 60.0
    language: str | None = None
    send_timeout_s: float = 10.0

    @property
    def sample_rate_hz(self) -> int:
        """Wire sample rate: ``pcm_rate_hz`` for pcm16 (24000; 16000 for vLLM), 8000 for
        G.711."""
        if self.audio_format == "pcm16":
            return self.pcm_rate_hz
        return wire_sample_rate_hz(self.audio_format)


def is_quiet(wire: bytes, audio_format: AudioFormat) -> bool:
    """Whether wire audio (pcm16 LE or G.711) is a pause: RMS under :data:`QUIET_RMS`."""
    if audio_format == "pcm16":
        samples = np.frombuffer(wire, dtype="<i2")
    else:
        samples = g711.decode(audio_format, wire)
    if not len(samples):
        return False
    x = samples.astype(np.float32)
    return bool(math.sqrt(float(np.mean(x * x))) < QUIET_RMS)
