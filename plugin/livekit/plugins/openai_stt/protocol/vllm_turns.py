"""vLLM's turns (docs/protocol.md §7), for :class:`~.client.ClientSession` with
``dialect="vllm"``. Pure.

vLLM has no ``committed`` and no item ids: a plain ``input_audio_buffer.commit`` *starts* a
generation over the queued audio (and whatever follows), ``{"commit", "final": true}`` ends
its input, and ``transcription.done`` carries the turn's whole text; audio sent between the
``final`` and the ``done`` is dropped by the server. So a turn here is: a plain commit before
its first audio, its audio, a ``final`` commit where our commit falls, then nothing more until
its ``done``. Turns committed meanwhile wait in :attr:`VllmTurns.pending`, and so does new
audio (the ledger keeps it). The ``done`` is translated into the ``committed`` and
``completed`` of a synthetic item (``vllm_turn_<n>``) for the transcript assembler, so replay,
deadlines and usage work as for every other dialect.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from . import events as ev
from .errors import Classified, ErrorAction
from .vllm_events import VllmTranscriptionDelta, VllmTranscriptionDone

__all__ = ["VllmTurns", "classify_vllm_error", "failed_turn", "final_commit", "translate"]

START = '{"type":"input_audio_buffer.commit"}'
"""A plain commit: starts a generation."""

_FATAL_CODES = frozenset({"model_not_found", "invalid_event", "model_not_validated"})
"""vLLM's configuration errors (its ``connection.py``): retrying cannot help."""


def final_commit(event_id: str) -> str:
    """``{"type": "input_audio_buffer.commit", "final": true}`` with our ``event_id``."""
    return json.dumps({"type": "input_audio_buffer.commit", "final": True, "event_id": event_id})


def classify_vllm_error(info: ev.ErrorInfo) -> Classified:
    """A vLLM ``error`` (a string with its ``code`` beside it, docs/protocol.md §7):
    ``model_not_found``, ``invalid_event`` (no model) and ``model_not_validated`` are fatal;
    ``processing_error`` means the running generation failed and its ``done`` will not come
    (retry: the turn is replayed on a new socket); the rest are reported."""
    text = f"{info.message or '(no message)'} code={info.code}"
    if info.code in _FATAL_CODES:
        return Classified(ErrorAction.FATAL, text, info.code)
    if info.code == "processing_error":
        return Classified(ErrorAction.RETRY, text, info.code)
    return Classified(ErrorAction.REPORT, text, info.code)


@dataclass
class VllmTurns:
    """Where the current socket is in vLLM's turn protocol."""

    pending: deque[tuple[int, int]] = field(default_factory=deque)
    """Turns committed and not yet ended on this socket: (first, end) wire samples."""
    generating: bool = False
    """A plain commit was sent: a generation takes the audio sent from :attr:`start` on."""
    awaiting_done: bool = False
    """Its ``final`` was sent; nothing more until its ``done``."""
    start: int = 0
    """Where the running generation's audio begins (wire samples)."""
    item_id: str | None = None
    """The synthetic item of the running generation."""
    serial: int = 0

    def reset(self, pending: list[tuple[int, int]]) -> None:
        """A new socket: no generation runs; ``pending`` turns are to be sent first."""
        self.pending = deque(pending)
        self.generating = self.awaiting_done = False
        self.item_id = None

    def begin(self, start: int) -> str:
        """A generation starts at ``start``; returns its item id."""
        self.serial += 1
        self.generating, self.start = True, start
        self.item_id = f"vllm_turn_{self.serial}"
        return self.item_id


def translate(turns: VllmTurns, event: ev.ServerEvent) -> list[ev.ServerEvent]:
    """vLLM's result events as the events of the OpenAI protocol the assembler knows: a delta
    of the running generation's item; ``done`` as ``committed`` then ``completed`` (with
    vLLM's token usage). Other events pass unchanged; a stray ``done`` gives nothing."""
    if isinstance(event, VllmTranscriptionDelta):
        if turns.item_id is None or not event.delta:
            return []
        return [ev.TranscriptionDelta(item_id=turns.item_id, delta=event.delta)]
    if isinstance(event, VllmTranscriptionDone):
        item_id = turns.item_id
        if item_id is None or not turns.awaiting_done:
            return []
        turns.awaiting_done, turns.item_id = False, None
        return [
            ev.AudioBufferCommitted(item_id=item_id),
            ev.TranscriptionCompleted(item_id=item_id, transcript=event.text, usage=_usage(event)),
        ]
    return [event]


def failed_turn(turns: VllmTurns, error: ev.ErrorInfo) -> list[ev.ServerEvent]:
    """A ``processing_error`` while a turn awaits its ``done``: that turn failed (its
    ``done`` will not come), as OpenAI's ``…transcription.failed``; nothing while no turn was
    ended (the audio is replayed on the next socket)."""
    if error.code != "processing_error" or turns.item_id is None or not turns.awaiting_done:
        return []
    item_id, turns.item_id, turns.awaiting_done = turns.item_id, None, False
    return [
        ev.AudioBufferCommitted(item_id=item_id),
        ev.TranscriptionFailed(item_id=item_id, error=error),
    ]


def _usage(event: VllmTranscriptionDone) -> ev.TokenUsage | None:
    raw: dict[str, Any] = event.usage or {}

    def count(key: str) -> int:
        value = raw.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    if not raw:
        return None
    prompt, completion = count("prompt_tokens"), count("completion_tokens")
    total = count("total_tokens") or prompt + completion
    return ev.TokenUsage(input_tokens=prompt, output_tokens=completion, total_tokens=total)
