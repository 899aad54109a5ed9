"""What a ``ServerSession`` asks its I/O shell to do (pure): typed server events to send, with
optional pauses, decode jobs, a speech-detector input and at most one close.

Events stay typed (``protocol.events``) until the shell sends them: ``to_wire`` is called at
the edge, in the connection runner.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Union

from ..protocol.events import ServerEvent, to_wire
from .jobs import TranscriptionJob
from .turns import VadInput

__all__ = ["Actions", "Close", "Outgoing", "Pause"]


@dataclass(frozen=True)
class Pause:
    """Wait ``seconds`` before sending the events that follow (``completed_delay_ms`` fault)."""

    seconds: float


@dataclass(frozen=True)
class Close:
    """End the connection: close frame ``code``/``reason``, or with ``abort`` a TCP reset
    (no close frame)."""

    code: int
    reason: str
    abort: bool = False


Outgoing = Union[ServerEvent, Pause]


@dataclass
class Actions:
    """What the I/O shell must do, in order: send ``events`` (a :class:`Pause` means sleep),
    queue ``jobs``, run the speech detector on ``vad`` if set, then perform ``close`` if set."""

    events: list[Outgoing] = field(default_factory=list)
    jobs: list[TranscriptionJob] = field(default_factory=list)
    close: Close | None = None
    vad: VadInput | None = None

    def extend(self, other: Actions) -> None:
        """Append ``other``'s events and jobs; keep the first close and detector input."""
        self.events.extend(other.events)
        self.jobs.extend(other.jobs)
        if self.close is None:
            self.close = other.close
        if self.vad is None:
            self.vad = other.vad

    @property
    def server_events(self) -> list[ServerEvent]:
        """The typed events without pauses."""
        return [e for e in self.events if not isinstance(e, Pause)]

    @property
    def sent(self) -> list[dict[str, Any]]:
        """The events without pauses as they go over the wire (JSON objects; for tests)."""
        return [json.loads(to_wire(e)) for e in self.server_events]
