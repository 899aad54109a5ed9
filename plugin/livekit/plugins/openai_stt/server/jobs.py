"""Decode jobs and their results (pure): what the recognizer is asked to do, and the typed server
events a result becomes (docs/protocol.md §4).

A :class:`TranscriptionJob` is one committed item, a :class:`PartialJob` a decode of the open
buffer (pre-commit deltas). The engine answers with a :class:`Recognition`; the functions below
build the ``delta`` / ``completed`` / ``failed`` events, reading model facts (deltas or not,
usage shape, languages) from ``models.get_model_info``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..models import get_model_info
from ..protocol.events import (
    DurationUsage,
    ErrorInfo,
    LogProb,
    TokenUsage,
    TranscriptionCompleted,
    TranscriptionDelta,
    TranscriptionFailed,
    Usage,
)

__all__ = [
    "PartialJob",
    "Recognition",
    "TranscriptionJob",
    "completed_event",
    "delta_events",
    "failed_event",
    "split_pieces",
    "usage_for",
]

#: Log probability reported per token when the engine gives none.
DEFAULT_LOGPROB = -0.1


@dataclass(frozen=True)
class Recognition:
    """What an engine heard: ``text`` (no leading/trailing space), an optional mean log
    probability per token (natural log, <= 0) used for ``logprobs`` (docs/protocol.md §4), and
    the ``language`` it detected (ISO-639-1; None when it was told the language)."""

    text: str
    logprob: float | None = None
    language: str | None = None


@dataclass(frozen=True)
class TranscriptionJob:
    """One committed item for the recognizer.

    ``audio`` holds the item's wire bytes in ``format_type`` (GA name: ``audio/pcm``, …) at
    ``rate`` Hz; ``duration_s`` is computed from the byte count. ``index`` is 1-based within
    the session. ``fail`` means the ``fail_items`` fault applies: do not run the engine, call
    ``ServerSession.transcription_failed``.
    """

    session_id: str
    item_id: str
    index: int
    previous_item_id: str | None
    audio: bytes
    format_type: str
    rate: int
    duration_s: float
    model: str
    language: str | None
    prompt: str | None
    logprobs: bool
    fail: bool = False


@dataclass(frozen=True)
class PartialJob:
    """A partial decode of the open (uncommitted) buffer, for pre-commit deltas.

    ``item_id`` is the id the next commit will give this audio. Run it on the decode worker
    (finals first), then call ``ServerSession.partial_transcribed`` (or ``partial_failed``); a
    result for a buffer that was committed or cleared meanwhile is ignored there.
    """

    session_id: str
    item_id: str
    previous_item_id: str | None
    audio: bytes
    format_type: str
    rate: int
    duration_s: float
    model: str
    language: str | None
    prompt: str | None
    logprobs: bool


_PIECE = re.compile(r"\s*\S+")


def split_pieces(transcript: str) -> list[str]:
    """Split a transcript into delta pieces: each word with its leading whitespace, so that
    ``"".join(split_pieces(t)) == t`` (trailing whitespace rides on the last piece)."""
    pieces = _PIECE.findall(transcript)
    rest = transcript[sum(map(len, pieces)) :]
    if rest:
        if pieces:
            pieces[-1] += rest
        else:
            pieces.append(rest)
    return pieces


def usage_for(model: str, duration_s: float, transcript: str) -> Usage:
    """The ``usage`` of a completed item (docs/protocol.md §4), in the shape the model reports
    (``ModelInfo.reported_usage_kind``; unknown models: duration).

    Duration: ``DurationUsage(seconds)``, the item's committed audio in seconds (3 decimals).
    Tokens: *estimates*: input (audio) tokens N = round(10 * seconds), output tokens
    M = ceil(len(transcript) / 4) (about four characters a text token).
    """
    if get_model_info(model).reported_usage_kind == "tokens":
        n = round(10 * duration_s)
        m = -(-len(transcript) // 4)
        return TokenUsage(input_tokens=n, output_tokens=m, total_tokens=n + m, audio_tokens=n)
    return DurationUsage(seconds=round(duration_s, 3))


def _logprob(logprob: float | None) -> float:
    return DEFAULT_LOGPROB if logprob is None else round(float(logprob), 4)


def delta_events(
    item_id: str, text: str, result: Recognition, with_logprobs: bool, next_id: Callable[[], str]
) -> list[TranscriptionDelta]:
    """``text`` as one ``delta`` per word piece (:func:`split_pieces`) of item ``item_id``, each
    with ``logprobs`` when asked; ``next_id()`` gives each event's id."""
    lp = _logprob(result.logprob)
    return [
        TranscriptionDelta(
            item_id=item_id,
            delta=piece,
            logprobs=(LogProb(piece, lp),) if with_logprobs else None,
            event_id=next_id(),
        )
        for piece in split_pieces(text)
    ]


def completed_event(
    job: TranscriptionJob, result: Recognition, next_id: Callable[[], str]
) -> TranscriptionCompleted:
    """``completed`` for ``job``: the whole transcript, its usage, logprobs per piece when asked,
    and ``languages``: for models that return them (gpt-transcribe), and for any model when the
    engine detected the language (the session set none; a local-server extension), the
    language found, else the session's."""
    text = result.text
    lp = _logprob(result.logprob)
    languages = None
    if result.language is not None:
        languages = (result.language,)
    elif get_model_info(job.model).returns_languages:
        languages = (job.language or "en",)
    return TranscriptionCompleted(
        item_id=job.item_id,
        transcript=text,
        logprobs=tuple(LogProb(p, lp) for p in split_pieces(text)) if job.logprobs else None,
        languages=languages,
        usage=usage_for(job.model, job.duration_s, text),
        event_id=next_id(),
    )


def failed_event(job: TranscriptionJob, next_id: Callable[[], str]) -> TranscriptionFailed:
    """``…transcription.failed`` for ``job``: a ``server_error`` naming the item."""
    message = f"Input transcription failed for item '{job.item_id}'."
    return TranscriptionFailed(
        item_id=job.item_id,
        error=ErrorInfo(type="server_error", message=message),
        event_id=next_id(),
    )
