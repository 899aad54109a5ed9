"""The one vocabulary of the Realtime transcription protocol, for both peers (pure: no I/O, no
clock): typed server events (docs/protocol.md §4; vLLM's from :mod:`.vllm_events`, §7) and client
commands (§3) as frozen dataclasses. :func:`parse` / :func:`parse_client` read one message (a bad
required field raises :class:`EventParseError` naming it); :func:`to_wire` is their inverse."""

from __future__ import annotations

import base64
import binascii
import functools
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Union, get_args

from . import vllm_events as vllm
from .encode import append_event, dumps_event

# fmt: off
__all__ = [
    "EventParseError", "ErrorInfo", "LogProb", "TokenUsage", "DurationUsage", "Usage",
    "SessionCreated", "SessionUpdated", "SpeechStarted", "SpeechStopped", "AudioBufferCommitted",
    "AudioBufferCleared", "ConversationItem", "TranscriptionDelta", "TranscriptionCompleted",
    "TranscriptionFailed", "TranscriptionSegment", "PartialTranscription", "ErrorEvent",
    "UnknownEvent", "ServerEvent", "parse",
    "UpdateSession", "AppendAudio", "CommitAudio", "ClearAudio", "UnknownClientEvent",
    "ClientEvent", "parse_client", "to_wire",
    "MIN_COMMIT_MS", "MAX_APPEND_BYTES",
]
# fmt: on


class EventParseError(ValueError):
    """A message not JSON, not an object, or lacking a required field (``field``: its dotted
    path). ``problem``: ``not_json``, ``not_object``, ``missing``, ``wrong_type``, ``invalid`` or
    ``too_large``; ``event_type``, ``event_id``: the message's; ``value``: a mistyped ``type``.
    The message never holds the payload."""

    def __init__(
        self,
        message: str,
        *,
        event_type: str | None = None,
        field: str | None = None,
        problem: str = "invalid",
        event_id: str | None = None,
        value: Any = None,
    ):
        super().__init__(message)
        self.event_type = event_type
        self.field = field
        self.problem = problem
        self.event_id = event_id
        self.value = value


@dataclass(frozen=True)
class ErrorInfo:
    """The ``error`` of an ``error`` or ``…failed`` event; every field kept (docs/protocol.md §4,
    openai-python issue 2502); ``event_id``: the client event that caused it. A plain-string
    error (vLLM, §7) becomes ``message`` with ``type="error"`` and the ``code`` beside it."""

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


# -- server events (docs/protocol.md §4) ----------------------------------------------------


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
    """``input_audio_buffer.speech_started`` (server VAD); ms since the session's first audio."""

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
    """``…transcription.delta``: text to append to the item; ``item_id`` may be missing before
    the commit (docs/protocol.md §4: which id pre-commit deltas carry is unconfirmed)."""

    item_id: str | None
    delta: str
    content_index: int = 0
    logprobs: tuple[LogProb, ...] | None = None
    event_id: str | None = None
    type: str = "conversation.item.input_audio_transcription.delta"


@dataclass(frozen=True)
class TranscriptionCompleted:
    """``…transcription.completed``: the item's final text; ``languages`` (ISO codes) from
    gpt-transcribe only; ``usage`` may be absent."""

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
    """``…transcription.failed``: the item has no transcript."""

    item_id: str
    error: ErrorInfo
    content_index: int = 0
    event_id: str | None = None
    type: str = "conversation.item.input_audio_transcription.failed"


@dataclass(frozen=True)
class TranscriptionSegment:
    """``…transcription.segment`` (diarizing models); ``start``/``end``: seconds in the item."""

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


# fmt: off
ServerEvent = Union[  # vLLM's (§7) first: for "session.created" _SERVER_TYPES keeps OpenAI's
    vllm.VllmSessionCreated, vllm.VllmTranscriptionDelta, vllm.VllmTranscriptionDone,
    SessionCreated, SessionUpdated, SpeechStarted, SpeechStopped, AudioBufferCommitted,
    AudioBufferCleared, ConversationItem, TranscriptionDelta, TranscriptionCompleted,
    TranscriptionFailed, TranscriptionSegment, PartialTranscription, ErrorEvent, UnknownEvent,
]
# fmt: on


# -- client events (docs/protocol.md §3), named as commands ---------------------------------


@dataclass(frozen=True)
class UpdateSession:
    """``session.update`` or ``transcription_session.update`` (beta) with the ``session`` object
    as sent (docs/protocol.md §2; ``session.parse_session_update`` reads it)."""

    session: dict[str, Any]
    type: str = "session.update"
    event_id: str | None = None


@dataclass(frozen=True)
class AppendAudio:
    """``input_audio_buffer.append``; ``audio``: decoded wire bytes (<= MAX_APPEND_BYTES)."""

    audio: bytes
    event_id: str | None = None
    type: str = "input_audio_buffer.append"


@dataclass(frozen=True)
class CommitAudio:
    """``input_audio_buffer.commit`` (docs/protocol.md §3); vLLM's ``final`` (§7), if sent."""

    event_id: str | None = None
    type: str = "input_audio_buffer.commit"
    final: bool | None = None


@dataclass(frozen=True)
class ClearAudio:
    """``input_audio_buffer.clear``."""

    event_id: str | None = None
    type: str = "input_audio_buffer.clear"


@dataclass(frozen=True)
class UnknownClientEvent:
    """A client event of any other ``type`` (e.g. ``response.create``), kept whole."""

    type: str
    raw: dict[str, Any]


ClientEvent = Union[UpdateSession, AppendAudio, CommitAudio, ClearAudio, UnknownClientEvent]


# -- parsing --------------------------------------------------------------------------------

_MAX_COUNT = 2**53  # larger "numbers" are not counts or milliseconds a server means


def _bad(
    etype: str, key: str, problem: str = "wrong_type", event_id: Any = None
) -> EventParseError:
    message = f"event {etype!r}: field {key!r} is {problem.replace('_', ' ')}"
    return EventParseError(message, event_type=etype, field=key, problem=problem, event_id=event_id)


def _req(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], etype: str) -> Any:
    if obj.get(key) is None:
        raise _bad(etype, key, "missing")
    return _opt(obj, key, kind, etype)


def _opt(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], etype: str) -> Any:
    value = obj.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise _bad(etype, key)
    return value


def _number(value: Any, key: str, etype: str) -> float:
    """A finite JSON number of sane size, else :class:`EventParseError` naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(etype, key)
    if abs(value) > _MAX_COUNT or not math.isfinite(value):
        raise _bad(etype, key, "invalid")
    return float(value)


def _error_info(raw: Any, etype: str, code: Any = None) -> ErrorInfo:
    if isinstance(raw, str):  # vLLM: a plain string, its code beside it (docs/protocol.md §7)
        return ErrorInfo(type="error", code=code if isinstance(code, str) else None, message=raw)
    if not isinstance(raw, dict):
        raise _bad(etype, "error", "missing")
    keys = ("type", "code", "message", "param", "event_id")
    f = {k: None if raw.get(k) is None else str(raw[k]) for k in keys}
    return ErrorInfo(f["type"] or "error", f["code"], f["message"] or "", f["param"], f["event_id"])


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
    details, path = (details if isinstance(details, dict) else {}), "usage.input_token_details"
    n_in, n_out = int(num("input_tokens")), int(num("output_tokens"))
    total = int(num("total_tokens")) or n_in + n_out
    audio, text = (int(num(key, details, path)) for key in ("audio_tokens", "text_tokens"))
    return TokenUsage(n_in, n_out, total, audio, text)


def _languages(raw: Any) -> tuple[str, ...] | None:
    if not isinstance(raw, list):
        return None
    codes = [e.get("code") if isinstance(e, dict) else e for e in raw]
    return tuple(c for c in codes if isinstance(c, str))


def _item_id_of_item(obj: dict[str, Any], key: str, etype: str) -> str:
    item = obj.get("item")
    item_id = item.get("id") if isinstance(item, dict) else None
    if isinstance(item_id, str):
        return item_id
    if isinstance(obj.get("item_id"), str):
        return str(obj["item_id"])
    raise _bad(etype, "item.id", "missing")


# How each field is read, by name; any other field is a string, optional when its type allows
# None. Fields are read in declaration order, so the first bad one is the one named.
_READERS: dict[str, Any] = {
    "audio_start_ms": lambda o, k, t: int(_number(o.get(k), k, t)),
    "audio_end_ms": lambda o, k, t: int(_number(o.get(k), k, t)),
    "content_index": lambda o, k, t: int(_opt(o, k, int, t) or 0),
    "start": lambda o, k, t: _number(_opt(o, k, (int, float), t) or 0.0, k, t),
    "end": lambda o, k, t: _number(_opt(o, k, (int, float), t) or 0.0, k, t),
    "id": lambda o, k, t: str(o.get(k) or ""),
    "logprobs": lambda o, k, t: _logprobs(o.get(k)),
    "languages": lambda o, k, t: _languages(o.get(k)),
    "usage": lambda o, k, t: _usage(o.get(k), t),
    "error": lambda o, k, t: _error_info(o.get(k), t, o.get("code")),
    **vllm.READERS,
    "session": lambda o, k, t: o[k] if isinstance(o.get(k), dict) else {},
    "item": lambda o, k, t: o[k] if isinstance(o.get(k), dict) else {},
    "ConversationItem.item_id": _item_id_of_item,
}
_SERVER_TYPES: dict[str, Any] = {
    **{c.type: c for c in get_args(ServerEvent) if isinstance(getattr(c, "type", None), str)},
    "transcription_session.created": SessionCreated,
    "transcription_session.updated": SessionUpdated,
    "conversation.item.added": ConversationItem,
    "conversation.item.done": ConversationItem,
    "conversation.item.created": ConversationItem,
}


def _load(text: str | bytes, side: str) -> tuple[dict[str, Any], str, str | None]:
    """One message -> (object, its string ``type``, its string ``event_id`` or None)."""
    try:
        obj = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise EventParseError(f"{side} message is not valid JSON", problem="not_json") from e
    if not isinstance(obj, dict):
        raise EventParseError(f"{side} message is not a JSON object", problem="not_object")
    event_id = obj.get("event_id") if isinstance(obj.get("event_id"), str) else None
    etype = obj.get("type")
    if not isinstance(etype, str):
        problem = "missing" if etype is None else "wrong_type"
        message = f"{side} message lacks a string 'type'"
        raise EventParseError(
            message, field="type", problem=problem, event_id=event_id, value=etype
        )
    return obj, etype, event_id


def parse(text: str | bytes) -> ServerEvent:
    """One server message (UTF-8 JSON text or bytes) -> its frozen :data:`ServerEvent`
    (docs/protocol.md §4); an unknown ``type`` gives :class:`UnknownEvent`.

    Raises:
        EventParseError: not JSON, not an object, no string ``type``, or a required field of a
            known event missing or mistyped (the error names the field).
    """
    obj, etype, event_id = _load(text, "server")
    cls = vllm.vllm_class(etype, obj) or _SERVER_TYPES.get(etype)
    if cls is None:
        return UnknownEvent(type=etype, raw=obj)
    values = {name: read(obj, name, etype) for name, read in _plan(cls)}
    event: ServerEvent = cls(**values, event_id=event_id, type=etype)
    return event


_PLANS: dict[type, tuple[tuple[str, Callable[[dict[str, Any], str, str], Any]], ...]] = {}


def _plan(cls: type) -> tuple[tuple[str, Callable[[dict[str, Any], str, str], Any]], ...]:
    """How :func:`parse` reads each field of ``cls``: ``(name, read(obj, name, etype))``, worked
    out once per class (a flood of deltas parses one event type over and over)."""
    plan = _PLANS.get(cls)
    if plan is None:
        steps = []
        for f in fields(cls):
            if f.name in ("type", "event_id"):
                continue
            read = _READERS.get(f"{cls.__name__}.{f.name}") or _READERS.get(f.name)
            if read is None:
                plain = _opt if "None" in str(f.type) else _req
                read = functools.partial(_read_str, plain)
            steps.append((f.name, read))
        plan = _PLANS[cls] = tuple(steps)
    return plan


def _read_str(read: Callable[..., Any], obj: dict[str, Any], key: str, etype: str) -> Any:
    return read(obj, key, str, etype)


MIN_COMMIT_MS = 100
"""Least audio a commit needs, in ms: less is refused (docs/protocol.md §3)."""

MAX_APPEND_BYTES = 15 * 1024 * 1024
"""Most decoded audio one ``input_audio_buffer.append`` may carry, bytes (docs/protocol.md §3)."""

_MAX_APPEND_BASE64 = (MAX_APPEND_BYTES * 4) // 3 + 4


def parse_client(text: str | bytes) -> ClientEvent:
    """One client message -> its typed command (docs/protocol.md §3), strict like :func:`parse`:
    an update's ``session`` must be an object, an append's ``audio`` base64 of at most
    :data:`MAX_APPEND_BYTES` (length checked before decoding); a non-string ``event_id`` is
    ignored; another ``type`` gives :class:`UnknownClientEvent`.

    Raises:
        EventParseError: with ``problem`` ``not_json``, ``not_object``, ``missing``,
            ``wrong_type``, ``invalid`` (base64) or ``too_large``, naming the field."""
    obj, etype, event_id = _load(text, "client")

    def required(key: str, kind: type) -> Any:
        value = obj.get(key)
        if value is None or not isinstance(value, kind):
            raise _bad(etype, key, "missing" if value is None else "wrong_type", event_id)
        return value

    if etype in ("session.update", "transcription_session.update"):
        return UpdateSession(session=required("session", dict), type=etype, event_id=event_id)
    if etype == "input_audio_buffer.append":
        audio = required("audio", str)
        if len(audio) > _MAX_APPEND_BASE64:
            raise _bad(etype, "audio", "too_large", event_id)
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise _bad(etype, "audio", "invalid", event_id) from None
        if len(data) > MAX_APPEND_BYTES:
            raise _bad(etype, "audio", "too_large", event_id)
        return AppendAudio(audio=data, event_id=event_id)
    if etype == "input_audio_buffer.commit":
        return CommitAudio(event_id, final=f if isinstance(f := obj.get("final"), bool) else None)
    if etype == "input_audio_buffer.clear":
        return ClearAudio(event_id=event_id)
    return UnknownClientEvent(type=etype, raw=obj)


def _wire_obj(event: ServerEvent | ClientEvent) -> dict[str, Any]:
    if isinstance(event, (UnknownEvent, UnknownClientEvent)):
        return event.raw
    out: dict[str, Any] = {"type": event.type}
    if event.event_id is not None:
        out["event_id"] = event.event_id
    for f in fields(event):
        name, value = f.name, getattr(event, f.name)
        if name in ("type", "event_id") or (value is None and name != "previous_item_id"):
            continue
        if name == "logprobs":
            value = [
                {
                    "token": p.token,
                    "logprob": p.logprob,
                    "bytes": list(p.token.encode("utf-8", "surrogatepass")),
                }
                for p in value
            ]
        elif name == "languages":
            value = [{"code": code} for code in value]
        elif isinstance(event, ErrorEvent) and vllm.is_plain_error(value):
            value, out["code"] = value.message, value.code  # vLLM's string error
        elif isinstance(value, ErrorInfo):
            value = asdict(value)  # an error event's error has all five fields, always
            if value["event_id"] is None and not isinstance(event, ErrorEvent):
                del value["event_id"]
        elif isinstance(value, DurationUsage):
            value = {"type": "duration", "seconds": value.seconds}
        elif isinstance(value, TokenUsage):
            counts = asdict(value)
            details = {key: counts.pop(key) for key in ("audio_tokens", "text_tokens")}
            value = {"type": "tokens", **counts, "input_token_details": details}
        elif isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        out[name] = value
    return out


def to_wire(event: ServerEvent | ClientEvent) -> str:
    """One event as JSON text, the inverse of :func:`parse` / :func:`parse_client` (§3, §4) for
    well-formed events (finite numbers up to 2**53, a non-empty ``ErrorInfo.type``, ``total_tokens``
    0 only with no tokens, ``item["id"]`` equal to ``item_id``, an unknown event's ``raw["type"]``
    its type). Server events: ``json.dumps``; ``None`` left out but ``previous_item_id``; an
    ``error``'s five fields (vLLM's: a string, ``code`` beside it, §7). Client events: compact
    (:func:`dumps_event`); an append without ``event_id`` is exactly :func:`append_event`."""
    if isinstance(event, AppendAudio) and event.event_id is None:
        return append_event(event.audio).decode("ascii")  # the per-frame path's own text
    if isinstance(event, get_args(ClientEvent)):
        return dumps_event(_wire_obj(event))
    return json.dumps(_wire_obj(event))
