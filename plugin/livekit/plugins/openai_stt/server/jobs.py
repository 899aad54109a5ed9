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
    "piece_logprobs",
    "split_pieces",
    "token_starts",
    "usage_for",
]

#: Log probability reported per token when the engine gives none.
DEFAULT_LOGPROB = -0.1


@dataclass(frozen=True)
class Recognition:
    """What an engine heard: ``text`` (no leading/trailing space), an optional mean log
    probability per token (natural log, <= 0), and optionally the recognizer's own ``tokens``:
    each token's (or word's) text and log probability, in order, spelling ``text`` up to
    whitespace. ``logprobs`` (docs/protocol.md §4) carry the tokens when they spell the text,
    else the mean for every word (issue 12). ``language``: the language the engine detected
    (ISO-639-1; None when it was told the language; issue 13)."""

    text: str
    logprob: float | None = None
    tokens: tuple[LogProb, ...] | None = None
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


def token_starts(text: str, tokens: tuple[LogProb, ...] | None) -> list[int] | None:
    """Where each of ``tokens`` starts in ``text`` (its first non-space character), or None
    when the tokens do not spell ``text`` up to whitespace (then the mean is used)."""
    if not tokens:
        return None
    starts, pos = [], 0
    for tok in tokens:
        core = tok.token.strip()
        i = text.find(core, pos) if core else pos
        if i < 0 or text[pos:i].strip():
            return None
        starts.append(i)
        pos = i + len(core)
    return None if text[pos:].strip() else starts


def piece_logprobs(
    text: str, result: Recognition, offset: int | None = None
) -> list[tuple[LogProb, ...]]:
    """The ``logprobs`` of each piece of ``text`` (:func:`split_pieces`), found at ``offset`` in
    ``result.text``: the recognizer's tokens that start inside the piece; the piece with the
    mean log probability when ``offset`` is None or the tokens do not spell the text."""
    pieces = split_pieces(text)
    starts = token_starts(result.text, result.tokens) if offset is not None else None
    if starts is None or result.tokens is None or offset is None:
        lp = _logprob(result.logprob)
        return [(LogProb(piece, lp),) for piece in pieces]
    out, pos = [], offset
    for piece in pieces:
        end = pos + len(piece)
        mine = tuple(
            LogProb(t.token.lstrip() if s == 0 else t.token, round(t.logprob, 4))
            for t, s in zip(result.tokens, starts, strict=True)
            if pos <= s < end
        )
        out.append(mine or (LogProb(piece, _logprob(result.logprob)),))
        pos = end
    return out


def delta_events(
    item_id: str,
    text: str,
    result: Recognition,
    with_logprobs: bool,
    next_id: Callable[[], str],
    offset: int | None = None,
) -> list[TranscriptionDelta]:
    """``text`` as one ``delta`` per word piece (:func:`split_pieces`) of item ``item_id``, each
    with ``logprobs`` when asked (the recognizer's tokens of that piece when ``text`` is found
    at ``offset`` in ``result.text``); ``next_id()`` gives each event's id."""
    pieces = split_pieces(text)
    lps = piece_logprobs(text, result, offset) if with_logprobs else [None] * len(pieces)
    return [
        TranscriptionDelta(item_id=item_id, delta=piece, logprobs=lp, event_id=next_id())
        for piece, lp in zip(pieces, lps, strict=True)
    ]


def completed_event(
    job: TranscriptionJob, result: Recognition, next_id: Callable[[], str]
) -> TranscriptionCompleted:
    """``completed`` for ``job``: the whole transcript, its usage, logprobs when asked (every
    token of the recognizer, else one per piece with the mean), and ``languages``: for models
    that return them (gpt-transcribe), and for any model when the engine detected the language
    (the session set none; a local-server extension), the language found, else the session's."""
    text = result.text
    logprobs = None
    if job.logprobs:
        logprobs = tuple(lp for piece in piece_logprobs(text, result, 0) for lp in piece)
    languages = None
    if result.language is not None:
        languages = (result.language,)
    elif get_model_info(job.model).returns_languages:
        languages = (job.language or "en",)
    return TranscriptionCompleted(
        item_id=job.item_id,
        transcript=text,
        logprobs=logprobs,
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
