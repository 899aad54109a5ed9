"""Injected failures of the local server, and when each is due (pure: time comes in as ``now``).

A client is tested against a misbehaving server by giving :class:`LocalRealtimeServer` (or the
CLI's fault flags) a :class:`Faults`. The budget is per server: every session shares one
:class:`FaultCounters`. The functions below only decide; ``ServerSession`` acts on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "FaultCounters",
    "Faults",
    "drop_close",
    "injected_error_due",
    "next_tick_at",
    "take_audio_drop",
    "take_read_pause",
    "take_timed_drop",
    "timed_drop_at",
]

DropMode = Literal["close_1011", "reset"]


@dataclass(frozen=True)
class Faults:
    """Injected failures, for testing clients against a misbehaving server.

    All counters are per server (shared by its sessions through :class:`FaultCounters`).

    - ``drop_after_audio_ms``: once a session has received this much audio (milliseconds of
      appended audio, in the session's wire format), drop the connection: ``drop_mode``
      ``"close_1011"`` sends a close frame 1011, ``"reset"`` aborts the TCP connection without a
      close frame. At most ``drop_sessions`` sessions are dropped (default 1, so a reconnect
      then succeeds).
    - ``drop_after_s``: drop each session (within the same ``drop_sessions`` budget) this many
      seconds after it opened, whatever audio it has: a drop at a given time.
    - ``fail_items``: 1-based item indexes (per session) answered with
      ``conversation.item.input_audio_transcription.failed`` instead of deltas/completed
      (docs/protocol.md §4).
    - ``error_code_after_audio_ms``: ``(code, ms)``: send one ``error`` event with that code once a
      session has received ``ms`` of audio; once per server.
    - ``completed_delay_ms``: wait this long between the last delta and ``completed``.
    - ``reject_handshake_status``: answer the HTTP upgrade with this status (401, 429, 500, ...)
      instead of switching protocols, for the first ``reject_handshakes`` attempts (``None``:
      all of them).
    - ``pause_reading_after_audio_ms``: once a session has received this much audio, stop
      reading its socket for ``pause_reading_s`` seconds (a stalled server: the client's
      sends back up and no event comes); at most ``pause_sessions`` sessions.

    Raises:
        ValueError: an unknown ``drop_mode``.
    """

    drop_after_audio_ms: float | None = None
    drop_after_s: float | None = None
    drop_mode: DropMode = "close_1011"
    drop_sessions: int = 1
    fail_items: frozenset[int] = frozenset()
    error_code_after_audio_ms: tuple[str, float] | None = None
    completed_delay_ms: float = 0.0
    reject_handshake_status: int | None = None
    reject_handshakes: int | None = None
    pause_reading_after_audio_ms: float | None = None
    pause_reading_s: float = 0.0
    pause_sessions: int = 1

    def __post_init__(self) -> None:
        if self.drop_mode not in ("close_1011", "reset"):
            raise ValueError(f"drop_mode must be 'close_1011' or 'reset', not {self.drop_mode!r}")
        if not isinstance(self.fail_items, frozenset):
            object.__setattr__(self, "fail_items", frozenset(self.fail_items))


@dataclass
class FaultCounters:
    """Per-server fault budget: how many drops, error events and rejections were used.

    Mutable but pure: the server creates one and hands it to every session.
    """

    sessions_opened: int = 0
    drops: int = 0
    read_pauses: int = 0
    items_failed: int = 0
    """Items answered with a failure because of ``fail_items``."""
    error_events: int = 0
    handshakes_rejected: int = 0


def drop_close(faults: Faults) -> tuple[int, str, bool]:
    """How a drop ends the connection: ``(code, reason, abort)``. ``reset`` aborts without a
    close frame (reported as 1006); ``close_1011`` sends close 1011."""
    if faults.drop_mode == "reset":
        return 1006, "reset", True
    return 1011, "internal error (fault injection)", False


def timed_drop_at(faults: Faults, counters: FaultCounters, opened_at: float) -> float | None:
    """When ``Faults.drop_after_s`` drops a session opened at ``opened_at`` (seconds, the
    session's clock), or None: no timed drop, or the ``drop_sessions`` budget is spent."""
    if faults.drop_after_s is None or counters.drops >= faults.drop_sessions:
        return None
    return opened_at + faults.drop_after_s


def next_tick_at(
    due_at: float | None, faults: Faults, counters: FaultCounters, opened_at: float | None
) -> float | None:
    """When a session's ``tick`` must next run (seconds, the session's clock): the earlier of
    ``due_at`` (its limits: cap, idle timeout) and its timed drop; None before opening."""
    if opened_at is None or due_at is None:
        return None
    drop = timed_drop_at(faults, counters, opened_at)
    return due_at if drop is None else min(due_at, drop)


def take_timed_drop(faults: Faults, counters: FaultCounters, opened_at: float, now: float) -> bool:
    """True (and one drop of the budget used) when the timed drop is due at ``now``."""
    due = timed_drop_at(faults, counters, opened_at)
    if due is None or now < due:
        return False
    counters.drops += 1
    return True


def take_audio_drop(faults: Faults, counters: FaultCounters, received_ms: float) -> bool:
    """True (and one drop used) once a session has received ``drop_after_audio_ms`` of audio,
    while the ``drop_sessions`` budget lasts."""
    if (
        faults.drop_after_audio_ms is None
        or received_ms < faults.drop_after_audio_ms
        or counters.drops >= faults.drop_sessions
    ):
        return False
    counters.drops += 1
    return True


def take_read_pause(faults: Faults, counters: FaultCounters, received_ms: float) -> float:
    """Seconds to stop reading now (one pause used), once a session has received
    ``pause_reading_after_audio_ms`` of audio, while the ``pause_sessions`` budget lasts;
    0.0 otherwise."""
    if (
        faults.pause_reading_after_audio_ms is None
        or faults.pause_reading_s <= 0
        or received_ms < faults.pause_reading_after_audio_ms
        or counters.read_pauses >= faults.pause_sessions
    ):
        return 0.0
    counters.read_pauses += 1
    return faults.pause_reading_s


def injected_error_due(
    faults: Faults, counters: FaultCounters, received_ms: float, already_sent: bool
) -> str | None:
    """The error code to send now (one ``error`` event per server) once ``received_ms`` of
    audio reached ``error_code_after_audio_ms``; None otherwise. Uses the budget when due."""
    fault = faults.error_code_after_audio_ms
    if fault is None or already_sent or counters.error_events >= 1 or received_ms < fault[1]:
        return None
    counters.error_events += 1
    return fault[0]
