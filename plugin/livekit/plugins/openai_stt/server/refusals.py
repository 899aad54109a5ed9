"""The ``error`` a client message gets when the server refuses it (pure; docs/protocol.md §3, §5):
OpenAI's ``invalid_request_error`` codes, messages and params. The session goes on after each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..protocol.events import MAX_APPEND_BYTES, MIN_COMMIT_MS, EventParseError

__all__ = [
    "Refusal",
    "buffer_full",
    "commit_too_small",
    "decode_backlog",
    "idle_timeout",
    "odd_sample_bytes",
    "parse_refusal",
    "unknown_event",
]


@dataclass(frozen=True)
class Refusal:
    """An ``error`` (``etype``, by default ``invalid_request_error``): ``code``, ``message``,
    ``param`` (dotted field path) and the refused client event's ``event_id``."""

    code: str
    message: str
    param: str | None = None
    client_event_id: str | None = None
    etype: str = "invalid_request_error"


def unknown_event(etype: Any, client_event_id: Any) -> Refusal:
    """A client event ``type`` this server does not handle (e.g. ``response.create``); a
    ``client_event_id`` that is not a string is left out."""
    message = f"Invalid value: '{etype}'. Unsupported client event type."
    eid = client_event_id if isinstance(client_event_id, str) else None
    return Refusal("invalid_value", message, "type", eid)


def parse_refusal(exc: EventParseError, compat: str) -> Refusal:
    """The refusal of a message ``parse_client`` could not read: not JSON or not an object
    (``invalid_json``), no ``type`` (``missing_required_parameter``), a non-string ``type``
    (``invalid_value``), a missing or mistyped ``session`` / ``audio``
    (``missing_required_parameter``), bad base64 (``invalid_value``), an append over 15 MiB
    (``input_audio_buffer_append_too_large``). With ``compat="openai"`` any
    ``transcription_session.update`` is an unknown event (the beta is gone, docs/protocol.md §1).
    """
    eid, field = exc.event_id, exc.field
    if exc.problem == "not_json":
        return Refusal("invalid_json", "The message is not valid JSON.")
    if exc.problem == "not_object":
        return Refusal("invalid_json", "The message must be a JSON object.")
    if field == "type" and exc.problem == "wrong_type":
        return unknown_event(exc.value, eid)
    if compat == "openai" and exc.event_type == "transcription_session.update":
        return unknown_event(exc.event_type, eid)
    if exc.problem == "too_large":
        message = f"Audio data of an append must be at most {MAX_APPEND_BYTES} bytes."
        return Refusal("input_audio_buffer_append_too_large", message, "audio", eid)
    if exc.problem == "invalid":
        return Refusal("invalid_value", "Invalid base64 in 'audio'.", "audio", eid)
    message = f"Missing required parameter: '{field}'."
    return Refusal("missing_required_parameter", message, field, eid)


def commit_too_small(buffered_s: float, client_event_id: str | None) -> Refusal:
    """A commit with less than 100 ms buffered (docs/protocol.md §3)."""
    message = (
        "Error committing input audio buffer: buffer too small. Expected at least "
        f"{MIN_COMMIT_MS}ms of audio, but buffer only has {buffered_s * 1000:.2f}ms of audio."
    )
    return Refusal("input_audio_buffer_commit_empty", message, None, client_event_id)


def buffer_full(buffered_s: float, max_buffer_s: float, client_event_id: str | None) -> Refusal:
    """An append past the server's ``max_buffer_s`` of uncommitted audio (dropped)."""
    message = (
        f"The input audio buffer already holds {buffered_s:.1f} s of uncommitted "
        f"audio, the most this server keeps (max_buffer_s={max_buffer_s:g}); "
        "audio is dropped until the buffer is committed or cleared."
    )
    return Refusal("input_audio_buffer_full", message, "audio", client_event_id)


def odd_sample_bytes(nbytes: int, bytes_per_sample: int, client_event_id: str | None) -> Refusal:
    """An append that is not a whole number of samples (pcm16: an odd byte count). Kept, it
    would shift every later sample by a byte (issue 14), so it is refused whole."""
    message = (
        f"Invalid 'audio': the session's audio format has {bytes_per_sample} bytes a sample, "
        f"but the append has {nbytes} bytes (not a whole number of samples)."
    )
    return Refusal("invalid_value", message, "audio", client_event_id)


def decode_backlog(
    pending_s: float, commit_s: float, max_pending_s: float, client_event_id: str | None
) -> Refusal:
    """A commit while ``max_pending_s`` of committed audio already awaits its decode (issue
    14): the buffer is kept, uncommitted. OpenAI's answer to a rate limit, code
    ``rate_limit_exceeded`` and a message "Rate limit reached for …: Limit …, Used …,
    Requested …. Please try again in …" (type ``tokens``, as in the bodies quoted by
    openai/codex#246 and Pythagora-io/gpt-pilot#53)."""
    message = (
        "Rate limit reached for committed audio awaiting transcription in this session: "
        f"Limit {max_pending_s:g} s, Used {pending_s:.1f} s, Requested {commit_s:.1f} s. "
        "Please try again once earlier items are transcribed; the input audio buffer is kept."
    )
    return Refusal("rate_limit_exceeded", message, None, client_event_id, etype="tokens")


def idle_timeout(idle_timeout_s: float) -> Refusal:
    """The ``error`` before an idle session is closed (no client message for
    ``idle_timeout_s``); a reaped socket frees its slot for others (issue 14)."""
    message = (
        f"The session was closed after {idle_timeout_s:g} s without a client event "
        "(the server's idle timeout)."
    )
    return Refusal("idle_timeout", message)
