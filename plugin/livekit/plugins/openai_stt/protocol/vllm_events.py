"""vLLM's realtime server events (docs/protocol.md §7), part of the one vocabulary: defined
here, re-exported, parsed and written by :mod:`.events` (``parse`` / ``to_wire``). Pure.

Read from ``vllm/frontend/entrypoints/speech_to_text/realtime/protocol.py`` (vLLM's
``SessionCreated``, ``TranscriptionDelta``, ``TranscriptionDone``); vLLM's string ``error`` is
an :class:`~.events.ErrorEvent` whose ``ErrorInfo.type`` is ``"error"``, and its commit with
``final: true`` is ``CommitAudio(final=True)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "READERS",
    "VllmSessionCreated",
    "VllmTranscriptionDelta",
    "VllmTranscriptionDone",
    "is_plain_error",
    "vllm_class",
]


@dataclass(frozen=True)
class VllmSessionCreated:
    """vLLM's ``session.created``: ``id`` (``sess-<hex>``) and ``created`` (unix seconds), no
    ``session`` object (``parse`` tells it from OpenAI's by that)."""

    id: str
    created: int = 0
    event_id: str | None = None
    type: str = "session.created"


@dataclass(frozen=True)
class VllmTranscriptionDelta:
    """``transcription.delta``: the next piece of the running generation's text (may be empty);
    no item id, no logprobs."""

    delta: str
    event_id: str | None = None
    type: str = "transcription.delta"


@dataclass(frozen=True)
class VllmTranscriptionDone:
    """``transcription.done``: the generation's whole ``text`` (its deltas joined) and
    ``usage`` as vLLM sends it (``UsageInfo``: ``prompt_tokens``, ``completion_tokens``,
    ``total_tokens``, ``prompt_tokens_details``), kept whole."""

    text: str
    usage: dict[str, Any] | None = None
    event_id: str | None = None
    type: str = "transcription.done"


def is_plain_error(info: Any) -> bool:
    """An ``ErrorInfo`` vLLM would send: type ``"error"``, no ``param``, no ``event_id``;
    ``to_wire`` writes it as vLLM does, ``{"type":"error","error":message,"code":code}``."""
    return (info.type, info.param, info.event_id) == ("error", None, None)


def vllm_class(etype: str, obj: dict[str, Any]) -> type | None:
    """The vLLM event class a server message of ``etype`` is, when the shape says so:
    a ``session.created`` with ``id`` and no ``session`` object is vLLM's."""
    if etype == "session.created" and "session" not in obj and "id" in obj:
        return VllmSessionCreated
    return None


def _created(obj: dict[str, Any], key: str, etype: str) -> int:
    value = obj.get(key)
    return value if type(value) is int else 0


#: How :func:`.events.parse` reads the fields of vLLM's events (merged into its readers).
READERS: dict[str, Any] = {
    "created": _created,
    "VllmTranscriptionDone.usage": lambda o, k, t: o[k] if isinstance(o.get(k), dict) else None,
}
