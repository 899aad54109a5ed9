"""What bounds one server session (pure: time comes in as ``now``): the session cap, the idle
timeout, and the committed audio still awaiting its decode (issue 14); and the ids a session
hands out (``item_`` plus a random suffix, as OpenAI's: issue 12).
"""

from __future__ import annotations

import math
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DEFAULT_IDLE_TIMEOUT_S",
    "DEFAULT_MAX_PENDING_S",
    "IdFactory",
    "SessionLimits",
    "random_id",
    "sequential_ids",
]

#: Seconds without a client message after which a session is closed (``idle_timeout_s``).
#: Longer than the plugin's longest wait on an open socket (a session opened 30 s ahead).
DEFAULT_IDLE_TIMEOUT_S = 120.0
#: Seconds of committed audio a session may have awaiting its decode (``max_pending_s``).
DEFAULT_MAX_PENDING_S = 120.0

IdFactory = Callable[[str], str]
"""``prefix -> id``: a new id for an item (``"item"``) or a session (``"sess"``)."""

_ALPHABET = string.ascii_letters + string.digits


def random_id(prefix: str) -> str:
    """``<prefix>_`` and 21 random letters and digits, the shape of OpenAI's ids (e.g.
    ``item_BOrBPrgrKh2WyKvZXU7f3``): unique across sessions and processes."""
    return f"{prefix}_" + "".join(secrets.choice(_ALPHABET) for _ in range(21))


def sequential_ids() -> IdFactory:
    """An :data:`IdFactory` numbering each prefix on its own (``item_001``, ``item_002``, …),
    for tests and tables that need stable ids."""
    counts: dict[str, int] = {}

    def next_id(prefix: str) -> str:
        counts[prefix] = counts.get(prefix, 0) + 1
        return f"{prefix}_{counts[prefix]:03d}"

    return next_id


Expiry = Literal["cap", "idle"]


@dataclass
class SessionLimits:
    """The time limits and the decode backlog of one session.

    ``max_session_s``: the cap from opening (docs/protocol.md §6); ``idle_timeout_s``: the
    longest silence from the client (None: no limit); ``max_pending_s``: the committed audio
    allowed to await its decode; a commit is admitted when nothing is pending, so one long
    item always goes through.

    Raises:
        ValueError: a limit that is not a positive finite number.
    """

    max_session_s: float = 3600.0
    idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S
    max_pending_s: float = DEFAULT_MAX_PENDING_S
    opened_at: float | None = None
    last_activity: float = 0.0
    pending_s: float = 0.0

    def __post_init__(self) -> None:
        for name in ("max_session_s", "idle_timeout_s", "max_pending_s"):
            value = getattr(self, name)
            if value is None and name == "idle_timeout_s":
                continue
            if value is None or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds")

    def open(self, now: float) -> None:
        self.opened_at = self.last_activity = now

    def touch(self, now: float) -> None:
        """A client message arrived at ``now``."""
        self.last_activity = max(self.last_activity, now)

    @property
    def expires_at(self) -> float | None:
        """When the session cap is reached (None before opening)."""
        return None if self.opened_at is None else self.opened_at + self.max_session_s

    @property
    def idle_at(self) -> float | None:
        """When the session is idle too long, if nothing arrives meanwhile."""
        if self.opened_at is None or self.idle_timeout_s is None:
            return None
        return self.last_activity + self.idle_timeout_s

    @property
    def due_at(self) -> float | None:
        """The earlier of :attr:`expires_at` and :attr:`idle_at`."""
        times = [t for t in (self.expires_at, self.idle_at) if t is not None]
        return min(times) if times else None

    def expired(self, now: float) -> Expiry | None:
        """``"cap"`` or ``"idle"`` once that limit is reached at ``now``, else None."""
        if self.expires_at is not None and now >= self.expires_at:
            return "cap"
        if self.idle_at is not None and now >= self.idle_at:
            return "idle"
        return None

    def admits(self, seconds: float) -> bool:
        """Whether a commit of ``seconds`` may join the decode backlog."""
        return self.pending_s <= 0 or self.pending_s + seconds <= self.max_pending_s

    def queued(self, seconds: float) -> None:
        self.pending_s += seconds

    def finished(self, seconds: float) -> None:
        self.pending_s = max(0.0, self.pending_s - seconds)
