"""The replay ledger: the wire audio of every turn that has no final yet, and its commits.

Pure (no I/O, no clock). Positions are *wire samples* on the stream's audio clock: sample 0 is
the first sample pushed into the stream, across every socket it ever had.

Why it exists (docs/protocol.md §6): audio appended but not committed when a socket dies is
lost on the server side, and so is a committed item whose final had not arrived. The ledger
keeps that audio, and the commits inside it, so that a new socket can be given the same turns
again, each committed at the same place, before any new audio. A turn whose final already
arrived, even out of order (docs/protocol.md §4), is not replayed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["AudioLedger", "ReplayStep"]


@dataclass(frozen=True)
class ReplayStep:
    """One step of a replay: send the ledger's audio from ``start`` to ``end`` (wire samples),
    then commit it when ``commit`` is true. A turn already finalised is skipped: its step is
    absent, so its audio is never sent twice."""

    start: int
    end: int
    commit: bool


class AudioLedger:
    """Wire audio from :attr:`start` to :attr:`appended`, with what was sent and committed.

    Args:
        bytes_per_sample: 2 for pcm16, 1 for G.711 (docs/protocol.md §2).
        max_retained_samples: bound on the audio kept; past it the oldest audio *already sent*
            is dropped (only a replay after a drop could miss it; live audio never is).

    Invariants: ``start <= sent <= appended``; every commit point is in ``(start, appended]``
    and they increase.
    """

    def __init__(self, bytes_per_sample: int, max_retained_samples: int) -> None:
        if bytes_per_sample not in (1, 2):
            raise ValueError("bytes_per_sample must be 1 or 2")
        self.bytes_per_sample = bytes_per_sample
        self.max_retained_samples = max_retained_samples
        self._buf = bytearray()
        self.start = 0
        """First sample still held."""
        self.appended = 0
        """Samples pushed since the stream began: the stream's audio clock."""
        self.sent = 0
        """Samples the current socket has been given."""
        self.last_commit = 0
        """Where the last commit ended (0 before any)."""
        self._commit_points: deque[int] = deque()
        self._item_points: dict[str, int] = {}
        self._finalized_points: set[int] = set()

    # -- audio -------------------------------------------------------------------------------

    def append(self, wire: bytes | bytearray | memoryview) -> int:
        """Add wire audio; returns the samples added. Drops the oldest sent audio past the
        bound."""
        samples = len(wire) // self.bytes_per_sample
        self._buf += wire
        self.appended += samples
        overflow = len(self._buf) // self.bytes_per_sample - self.max_retained_samples
        if overflow > 0:
            self._drop_to(self.start + min(overflow, self.sent - self.start))
        return samples

    @property
    def uncommitted(self) -> int:
        """Samples pushed since the last commit."""
        return self.appended - self.last_commit

    @property
    def unsent(self) -> int:
        """Samples pushed but not given to the current socket."""
        return self.appended - self.sent

    def take(self, upto: int, max_samples: int) -> memoryview:
        """The next audio to send, from :attr:`sent` to at most ``upto`` and at most
        ``max_samples`` long; advances :attr:`sent`. Empty when nothing is due. The view is
        valid until the ledger next changes."""
        end = min(upto, self.sent + max_samples, self.appended)
        if end <= self.sent:
            return memoryview(b"")
        bps = self.bytes_per_sample
        view = memoryview(self._buf)[(self.sent - self.start) * bps : (end - self.start) * bps]
        self.sent = end
        return view

    def tail(self, samples: int) -> bytes:
        """The last ``samples`` samples pushed (fewer if the ledger holds fewer)."""
        return bytes(self._buf[-samples * self.bytes_per_sample :]) if samples > 0 else b""

    # -- commits and items ---------------------------------------------------------------------

    def commit(self) -> int:
        """Commit everything pushed: returns the commit point (a wire sample index)."""
        self.last_commit = self.appended
        self._commit_points.append(self.appended)
        return self.appended

    def server_committed(self, point: int) -> None:
        """The server committed by itself (server VAD) up to ``point``: a commit of ours
        there would be empty, and a replay commits there too."""
        point = min(max(point, self.start), self.appended)
        if point > self.last_commit:
            self.last_commit = point
        if point > self.start and point not in self._commit_points:
            self._commit_points.append(point)
            self._commit_points = deque(sorted(self._commit_points))

    def commit_refused(self, point: int) -> None:
        """The server refused the commit at ``point`` as empty (docs/protocol.md §3): it owes
        no final, and a replay must not commit there."""
        if point in self._commit_points:
            self._commit_points.remove(point)

    def item_committed(self, item_id: str, point: int) -> None:
        """The server made item ``item_id`` of the audio ending at ``point``."""
        self._item_points[item_id] = point

    def item_finalized(self, item_id: str) -> None:
        """Item ``item_id`` has its final (or ended without one): its turn needs no replay."""
        point = self._item_points.pop(item_id, None)
        if point is not None:
            self._finalized_points.add(point)

    def forget_items(self, item_ids: list[str]) -> None:
        """Items of a dead socket: they will be replayed as new items."""
        for item_id in item_ids:
            self._item_points.pop(item_id, None)

    def retain_from(self, sample: int) -> None:
        """No unfinished turn needs audio before ``sample``: drop it (never audio not yet sent,
        nor beyond what was pushed)."""
        self._drop_to(max(self.start, min(sample, self.sent, self.appended)))

    def _drop_to(self, sample: int) -> None:
        drop = sample - self.start
        if drop > 0:
            del self._buf[: drop * self.bytes_per_sample]
            self.start = sample
        while self._commit_points and self._commit_points[0] <= self.start:
            self._finalized_points.discard(self._commit_points.popleft())

    # -- replay --------------------------------------------------------------------------------

    def rewind(self) -> list[ReplayStep]:
        """A new socket: plan the replay of every held turn and reset :attr:`sent` to
        :attr:`start`.

        Returns the steps in order: for each commit point after :attr:`start`, the audio of
        that turn and its commit, skipping turns already finalised (their audio is jumped
        over); then the uncommitted tail (``commit=False``; absent when empty).
        """
        self.sent = self.start
        steps: list[ReplayStep] = []
        previous = self.start
        for point in self._commit_points:
            if point <= self.start:
                continue
            if point not in self._finalized_points:
                steps.append(ReplayStep(previous, point, True))
            previous = point
        if self.appended > previous:
            steps.append(ReplayStep(previous, self.appended, False))
        return steps

    def skip_to(self, sample: int) -> None:
        """Jump :attr:`sent` forward to ``sample`` without sending (a finalised turn)."""
        self.sent = max(self.sent, min(sample, self.appended))

    @property
    def held_samples(self) -> int:
        """Samples held (memory bound: ``held_samples * bytes_per_sample`` bytes)."""
        return self.appended - self.start
