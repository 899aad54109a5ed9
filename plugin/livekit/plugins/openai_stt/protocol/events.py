"""Typed server events and client event builders of the Realtime transcription protocol.

Pure: no I/O, no clock. ``parse(text)`` turns one websocket text message into one frozen
dataclass; a missing or mistyped required field raises :class:`EventParseError` naming the
field, never a silent ``""``. Event shapes: ``docs/protocol.md`` §3 (client) and §4 (server), and
the generated types in ``openai.types.realtime``.

Client events are built as JSON text. ``input_audio_buffer.append`` is on the per-frame path,
so :func:`append_event` fills a fixed template instead of calling ``json.dumps``.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass, field
from typing import Any, Union

__all__ = [
    "EventParseError",
    "ErrorInfo",
    "LogProb",
    "TokenUsage",
    "DurationUsage",
    "Usage",
    "SessionCreated",
    "SessionUpdated",
    "SpeechStarted",
    "SpeechStopped",
    "AudioBufferCommitted",
    "AudioBufferCleared",
    "ConversationItem",
    "TranscriptionDelta",
    "TranscriptionCompleted",
    "TranscriptionFailed",
    "TranscriptionSegment",
    "PartialTranscription",
    "ErrorEvent",
    "UnknownEvent",
    "ServerEvent",
    "parse",
    "append_event",
    "commit_event",
    "clear_event",
    "MIN_COMMIT_MS",
    "MAX_APPEND_BYTES",
    "dumps_event",
]


class EventParseError(ValueError):
    """A server message that is not valid JSON or lacks a required field.

    ``field`` names the offending field (dotted path), ``event_type`` the event's ``type`` when
    known. The message never contains the raw payload (it may be large).
    """

    def __init__(self, message: str, *, event_type: str | None = None, field: str | None = None):
        super().__init__(message)
        self.event_type = event_type
        self.field = field


# -- shared value objects -------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorInfo:
    """The ``error`` object of an ``error`` event or a ``…transcription.failed`` event.

    Every field is kept (docs/protocol.md §4: SDK models have dropped ``message`` before,
    openai-python issue 2502). ``event_id`` is the id of the client event that caused it.
    Some servers (vLLM, docs/protocol.md §7) send the error as a plain string: it becomes
    ``message`` with ``type="error"``.
    """

    type: str
    code: str | None = None
    message: str = ""
    param: str | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class LogProb:
    """One token's log probability (natural log) as sent with ``include`` logprobs."""

    token: str
    logprob: float


@dataclass(frozen=True)
class TokenUsage:
    """``usage`` of type ``tokens`` (token-billed models, docs/protocol.md §2 and §4)."""

    input_tokens: int
    output_tokens: int
    total_tokens: int
    audio_tokens: int = 0
    text_tokens: int = 0


@dataclass(frozen=True)
class DurationUsage:
    """``usage`` of type ``duration``: billed audio seconds (docs/protocol.md §2 and §4)."""

    seconds: float


Usage = Union[TokenUsage, DurationUsage]


# -- server events -------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionCreated:
    """``session.created`` (GA) or ``transcription_session.created`` (beta): first event."""

    session: dict[str, Any]
    event_id: str | None = None
    type: str = "session.created"


@dataclass(frozen=True)
class SessionUpdated:
    """``session.updated`` / ``transcription_session.updated``: the whole effective config."""

    session: dict[str, Any]
    event_id: str | None = None
    type: str = "session.updated"


@dataclass(frozen=True)
class SpeechStarted:
    """``input_audio_buffer.speech_started`` (server VAD only).

    ``audio_start_ms``: milliseconds since the session's first audio.
    """

    item_id: str
    audio_start_ms: int
    event_id: str | None = None
    type: str = "input_audio_buffer.speech_started"


@dataclass(frozen=True)
class SpeechStopped:
    """``input_audio_buffer.speech_stopped`` (server VAD only); ``audio_end_ms`` as above."""

    item_id: str
    audio_end_ms: int
    event_id: str | None = None
    type: str = "input_audio_buffer.speech_stopped"


@dataclass(frozen=True)
class AudioBufferCommitted:
    """``input_audio_buffer.committed``: the buffer became item ``item_id``."""

    item_id: str
    previous_item_id: str | None = None
    event_id: str | None = None
    type: str = "input_audio_buffer.committed"


@dataclass(frozen=True)
class AudioBufferCleared:
    """``input_audio_buffer.cleared``."""

    event_id: str | None = None
    type: str = "input_audio_buffer.cleared"


@dataclass(frozen=True)
class ConversationItem:
    """``conversation.item.added`` / ``.done`` / ``.created``: carries the item's id."""

    type: str
    item_id: str
    item: dict[str, Any] = field(default_factory=dict)
    previous_item_id: str | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class TranscriptionDelta:
    """``conversation.item.input_audio_transcription.delta``: text to append to the item.

    ``item_id`` may be missing before the commit with client-committed models (docs/protocol.md §4:
    which id pre-commit deltas carry is unconfirmed), hence ``str | None``.
    """

    item_id: str | None
    delta: str
    content_index: int = 0
    logprobs: tuple[LogProb, ...] | None = None
    event_id: str | None = None
    type: str = "conversation.item.input_audio_transcription.delta"


@dataclass(frozen=True)
class TranscriptionCompleted:
    """``conversation.item.input_audio_transcription.completed``: the item's final text.

    ``languages`` (ISO codes) is sent by gpt-transcribe only; ``usage`` may be absent.
    """

    item_id: str
    transcript: str
    content_index: int = 0
    logprobs: tuple[LogProb, ...] | None = None
    languages: tuple[str, ...] | None = None
    usage: Usage | None = None
    event_id: str | None = None
    type: str = "conversation.item.input_audio_transcription.completed"


@dataclass(frozen=True)
class TranscriptionFailed:
    """``conversation.item.input_audio_transcription.failed``: the item has no transcript."""

    item_id: str
    error: ErrorInfo
    content_index: int = 0
    event_id: str | None = None
    type: str = "conversation.item.input_audio_transcription.failed"


@dataclass(frozen=True)
class TranscriptionSegment:
    """``conversation.item.input_audio_transcription.segment`` (diarizing models).

    ``start``/``end`` are seconds within the item.
    """

    item_id: str
    id: str
    text: str
    speaker: str | None = None
    start: float = 0.0
    end: float = 0.0
    event_id: str | None = None
    type: str = "conversation.item.input_audio_transcription.segment"


@dataclass(frozen=True)
class PartialTranscription:
    """speaches' ``input_audio_buffer.partial_transcription``: the full text so far
    (docs/protocol.md §7); it replaces, rather than extends, the item's interim text."""

    item_id: str | None
    transcript: str
    event_id: str | None = None
    type: str = "input_audio_buffer.partial_transcription"


@dataclass(frozen=True)
class ErrorEvent:
    """``error``: with no close, the session is still usable (docs/protocol.md §5)."""

    error: ErrorInfo
    event_id: str | None = None
    type: str = "error"


@dataclass(frozen=True)
class UnknownEvent:
    """Any other ``type``: kept whole so the adapter can log it once (docs/architecture.md)."""

    type: str
    raw: dict[str, Any]


ServerEvent = Union[
    SessionCreated,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    AudioBufferCommitted,
    AudioBufferCleared,
    ConversationItem,
    TranscriptionDelta,
    TranscriptionCompleted,
    TranscriptionFailed,
    TranscriptionSegment,
    PartialTranscription,
    ErrorEvent,
    UnknownEvent,
]


# -- parsing --------------------------------------------------------------------------------

_MISSING = object()


def _req(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], etype: str) -> Any:
    value = obj.get(key, _MISSING)
    if value is _MISSING or value is None:
        raise EventParseError(
            f"server event {etype!r} lacks required field {key!r}", event_type=etype, field=key
        )
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise EventParseError(
            f"server event {etype!r} has field {key!r} of the wrong type",
            event_type=etype,
            field=key,
        )
    return value


def _opt(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], etype: str) -> Any:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise EventParseError(
            f"server event {etype!r} has field {key!r} of the wrong type",
            event_type=etype,
            field=key,
        )
    return value


_MAX_COUNT = 2**53  # larger "numbers" are not counts or milliseconds a server means


def _number(value: Any, key: str, etype: str) -> float:
    """A finite JSON number of sane size, else :class:`EventParseError` naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EventParseError(
            f"server event {etype!r} has field {key!r} of the wrong type",
            event_type=etype,
            field=key,
        )
    if isinstance(value, int):
        if abs(value) > _MAX_COUNT:
            raise EventParseError(
                f"server event {etype!r} has field {key!r} out of range",
                event_type=etype,
                field=key,
            )
        return float(value)
    if not math.isfinite(value) or abs(value) > _MAX_COUNT:
        raise EventParseError(
            f"server event {etype!r} has field {key!r} out of range", event_type=etype, field=key
        )
    return value


def _error_info(raw: Any, etype: str) -> ErrorInfo:
    if isinstance(raw, str):  # vLLM sends a plain string (docs/protocol.md §7)
        return ErrorInfo(type="error", message=raw)
    if not isinstance(raw, dict):
        raise EventParseError(
            f"server event {etype!r} lacks required field 'error'", event_type=etype, field="error"
        )

    def text(key: str) -> str | None:
        value = raw.get(key)
        return None if value is None else str(value)

    return ErrorInfo(
        type=text("type") or "error",
        code=text("code"),
        message=text("message") or "",
        param=text("param"),
        event_id=text("event_id"),
    )


def _logprobs(raw: Any) -> tuple[LogProb, ...] | None:
    if not isinstance(raw, list):
        return None
    out: list[LogProb] = []
    for entry in raw:
        if isinstance(entry, dict):
            lp = entry.get("logprob")
            if type(lp) is int:  # a JSON integer may be too large for a float
                lp = float(min(max(lp, -(10**9)), 0))
            if isinstance(lp, float) and math.isfinite(lp):
                out.append(LogProb(token=str(entry.get("token", "")), logprob=lp))
    return tuple(out)


def _usage(raw: Any, etype: str) -> Usage | None:
    if not isinstance(raw, dict):
        return None

    def num(key: str, src: dict[str, Any] = raw, path: str = "usage") -> float:
        value = src.get(key)
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return 0.0
        return _number(value, f"{path}.{key}", etype)

    if raw.get("type") == "duration" or ("seconds" in raw and "input_tokens" not in raw):
        return DurationUsage(seconds=num("seconds"))
    details = raw.get("input_token_details")
    details = details if isinstance(details, dict) else {}
    input_tokens = int(num("input_tokens"))
    output_tokens = int(num("output_tokens"))
    return TokenUsage(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=int(num("total_tokens")) or input_tokens + output_tokens,
        audio_tokens=int(num("audio_tokens", details, "usage.input_token_details")),
        text_tokens=int(num("text_tokens", details, "usage.input_token_details")),
    )


def _languages(raw: Any) -> tuple[str, ...] | None:
    if not isinstance(raw, list):
        return None
    codes = []
    for entry in raw:
        if isinstance(entry, dict) and isinstance(entry.get("code"), str):
            codes.append(entry["code"])
        elif isinstance(entry, str):
            codes.append(entry)
    return tuple(codes)


def _item_id_of_item(obj: dict[str, Any], etype: str) -> str:
    item = obj.get("item")
    item_id = item.get("id") if isinstance(item, dict) else None
    if isinstance(item_id, str):
        return item_id
    item_id = obj.get("item_id")
    if isinstance(item_id, str):
        return item_id
    raise EventParseError(
        f"server event {etype!r} lacks required field 'item.id'", event_type=etype, field="item.id"
    )


def parse(text: str | bytes) -> ServerEvent:
    """Parse one server message (a JSON object) into its typed event.

    Args:
        text: one websocket message, UTF-8 text (bytes are decoded).

    Returns:
        A frozen dataclass of :data:`ServerEvent`; an unrecognised ``type`` gives
        :class:`UnknownEvent` holding the raw object.

    Raises:
        EventParseError: not JSON, not an object, no string ``type``, or a required field of a
            known event missing or mistyped (the error names the field).
    """
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise EventParseError("server message is not valid JSON") from e
    if not isinstance(obj, dict):
        raise EventParseError("server message is not a JSON object")
    etype = obj.get("type")
    if not isinstance(etype, str):
        raise EventParseError("server message lacks required field 'type'", field="type")
    event_id = obj.get("event_id") if isinstance(obj.get("event_id"), str) else None

    if etype in ("session.created", "transcription_session.created"):
        session = obj.get("session")
        session = session if isinstance(session, dict) else {}
        return SessionCreated(session=session, event_id=event_id, type=etype)
    if etype in ("session.updated", "transcription_session.updated"):
        session = obj.get("session")
        session = session if isinstance(session, dict) else {}
        return SessionUpdated(session=session, event_id=event_id, type=etype)
    if etype == "input_audio_buffer.speech_started":
        return SpeechStarted(
            item_id=_req(obj, "item_id", str, etype),
            audio_start_ms=int(_number(obj.get("audio_start_ms"), "audio_start_ms", etype)),
            event_id=event_id,
        )
    if etype == "input_audio_buffer.speech_stopped":
        return SpeechStopped(
            item_id=_req(obj, "item_id", str, etype),
            audio_end_ms=int(_number(obj.get("audio_end_ms"), "audio_end_ms", etype)),
            event_id=event_id,
        )
    if etype == "input_audio_buffer.committed":
        return AudioBufferCommitted(
            item_id=_req(obj, "item_id", str, etype),
            previous_item_id=_opt(obj, "previous_item_id", str, etype),
            event_id=event_id,
        )
    if etype == "input_audio_buffer.cleared":
        return AudioBufferCleared(event_id=event_id)
    if etype in ("conversation.item.added", "conversation.item.done", "conversation.item.created"):
        item = obj.get("item")
        return ConversationItem(
            type=etype,
            item_id=_item_id_of_item(obj, etype),
            item=item if isinstance(item, dict) else {},
            previous_item_id=_opt(obj, "previous_item_id", str, etype),
            event_id=event_id,
        )
    if etype == "conversation.item.input_audio_transcription.delta":
        return TranscriptionDelta(
            item_id=_opt(obj, "item_id", str, etype),
            delta=_req(obj, "delta", str, etype),
            content_index=int(_opt(obj, "content_index", int, etype) or 0),
            logprobs=_logprobs(obj.get("logprobs")),
            event_id=event_id,
        )
    if etype == "conversation.item.input_audio_transcription.completed":
        return TranscriptionCompleted(
            item_id=_req(obj, "item_id", str, etype),
            transcript=_req(obj, "transcript", str, etype),
            content_index=int(_opt(obj, "content_index", int, etype) or 0),
            logprobs=_logprobs(obj.get("logprobs")),
            languages=_languages(obj.get("languages")),
            usage=_usage(obj.get("usage"), etype),
            event_id=event_id,
        )
    if etype == "conversation.item.input_audio_transcription.failed":
        return TranscriptionFailed(
            item_id=_req(obj, "item_id", str, etype),
            error=_error_info(obj.get("error"), etype),
            content_index=int(_opt(obj, "content_index", int, etype) or 0),
            event_id=event_id,
        )
    if etype == "conversation.item.input_audio_transcription.segment":
        return TranscriptionSegment(
            item_id=_req(obj, "item_id", str, etype),
            id=str(obj.get("id") or ""),
            text=_req(obj, "text", str, etype),
            speaker=_opt(obj, "speaker", str, etype),
            start=_number(_opt(obj, "start", (int, float), etype) or 0.0, "start", etype),
            end=_number(_opt(obj, "end", (int, float), etype) or 0.0, "end", etype),
            event_id=event_id,
        )
    if etype == "input_audio_buffer.partial_transcription":
        return PartialTranscription(
            item_id=_opt(obj, "item_id", str, etype),
            transcript=_req(obj, "transcript", str, etype),
            event_id=event_id,
        )
    if etype == "error":
        return ErrorEvent(error=_error_info(obj.get("error"), etype), event_id=event_id)
    return UnknownEvent(type=etype, raw=obj)


# -- client events ---------------------------------------------------------------------------

MIN_COMMIT_MS = 100
"""Least audio a commit needs, milliseconds: with less the server answers
``input_audio_buffer_commit_empty`` (docs/protocol.md §3)."""

MAX_APPEND_BYTES = 15 * 1024 * 1024
"""Most decoded audio one ``input_audio_buffer.append`` may carry, bytes (docs/protocol.md §3)."""

_APPEND_HEAD = b'{"type":"input_audio_buffer.append","audio":"'
_APPEND_TAIL = b'"}'


def append_event(pcm: bytes | bytearray | memoryview) -> bytes:
    """``input_audio_buffer.append`` for wire-format audio bytes, as UTF-8 JSON bytes.

    Filled from a fixed template (no ``json.dumps`` on the per-frame path). Callers keep each
    event well under the 15 MiB limit of docs/protocol.md §3. Send the result as a *text* frame.
    """
    return b"".join((_APPEND_HEAD, base64.b64encode(pcm), _APPEND_TAIL))


def commit_event(event_id: str | None = None) -> str:
    """``input_audio_buffer.commit`` (docs/protocol.md §3); ``event_id`` ties a reply error to
    it."""
    if event_id is None:
        return '{"type":"input_audio_buffer.commit"}'
    return json.dumps({"type": "input_audio_buffer.commit", "event_id": event_id})


def clear_event() -> str:
    """``input_audio_buffer.clear`` (docs/protocol.md §3)."""
    return '{"type":"input_audio_buffer.clear"}'


def dumps_event(event: dict[str, Any]) -> str:
    """Serialise a client event dict compactly (``session.update`` and the like)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)
