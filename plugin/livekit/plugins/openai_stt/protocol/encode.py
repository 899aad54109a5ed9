"""Client events as wire text, built without a parse: the per-frame path's templates.

Shapes: docs/protocol.md §3. ``events.to_wire`` is the general encoder (every event type, the
inverse of ``events.parse``/``parse_client``); these are the few the client sends all the time.
"""

from __future__ import annotations

import base64
import json
from typing import Any

__all__ = ["append_event", "clear_event", "commit_event", "dumps_event"]

_APPEND_HEAD = b'{"type":"input_audio_buffer.append","audio":"'
_APPEND_TAIL = b'"}'


def append_event(pcm: bytes | bytearray | memoryview) -> bytes:
    """``input_audio_buffer.append`` of wire audio, as UTF-8 JSON bytes from a fixed template
    (no ``json.dumps`` per frame); keep it under 15 MiB (docs/protocol.md §3); send as text."""
    return b"".join((_APPEND_HEAD, base64.b64encode(pcm), _APPEND_TAIL))


def commit_event(event_id: str | None = None) -> str:
    """``input_audio_buffer.commit`` (docs/protocol.md §3); ``event_id`` ties an error to it."""
    if event_id is None:
        return '{"type":"input_audio_buffer.commit"}'
    return json.dumps({"type": "input_audio_buffer.commit", "event_id": event_id})


def clear_event() -> str:
    """``input_audio_buffer.clear`` (docs/protocol.md §3)."""
    return '{"type":"input_audio_buffer.clear"}'


def dumps_event(event: dict[str, Any]) -> str:
    """Serialise a client event dict compactly (``session.update`` and the like)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)
