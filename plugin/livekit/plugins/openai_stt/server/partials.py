"""Pre-commit deltas (pure): when a partial decode of the open buffer is due, and which words of
a hypothesis are stable enough to stream (docs/protocol.md §4, "Order with client commits").

Models with ``deltas_before_commit`` (gpt-realtime-whisper, gpt-live-transcribe) stream text
while audio arrives. The server re-decodes the open buffer every so often
(:class:`OpenItemPartials`), streams the words two consecutive hypotheses agree on
(:func:`stable_delta`), and never takes a delta back (:func:`continuation`).
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher

from .jobs import PartialJob
from .quiet import QUIET_TAIL_S

__all__ = [
    "DEFAULT_DELTA_INTERVAL_S",
    "DEFAULT_MAX_PARTIAL_S",
    "MIN_PARTIAL_GROWTH_S",
    "MIN_PARTIAL_S",
    "OpenItemPartials",
    "continuation",
    "partial_interval",
    "stable_delta",
    "stable_prefix",
]

#: Default seconds between partial decodes of the open buffer (models with pre-commit deltas).
DEFAULT_DELTA_INTERVAL_S = 1.0
#: Least open audio worth a partial decode, and least new audio since the previous one.
MIN_PARTIAL_S = 0.5
MIN_PARTIAL_GROWTH_S = 0.25
#: No partial decodes of an open buffer longer than one Whisper window (the final still comes).
DEFAULT_MAX_PARTIAL_S = 30.0


def _word_key(word: str) -> str:
    """A word as hypotheses are compared: lower case, letters and digits only."""
    return "".join(ch for ch in word.lower() if ch.isalnum())


def stable_prefix(
    previous: list[str] | tuple[str, ...] | None, current: list[str] | tuple[str, ...]
) -> list[str]:
    """The words two consecutive hypotheses agree on: their longest common prefix, compared
    word by word without case and punctuation ("Americans." = "americans"), in the spelling of
    ``current`` (``previous`` None: nothing is stable yet)."""
    if previous is None:
        return []
    n = 0
    for a, b in zip(previous, current, strict=False):
        if _word_key(a) != _word_key(b):
            break
        n += 1
    return list(current[:n])


def continuation(streamed: str, words: list[str] | tuple[str, ...]) -> str:
    """The part of ``words`` that comes after the text already ``streamed``, as a delta
    (``""``: nothing new; a leading space unless nothing was streamed).

    ``streamed`` is aligned to ``words`` (without case and punctuation): normally it is their
    prefix and the rest follows. When they disagree (an earlier hypothesis said "asked", now
    "ask"), deltas cannot be taken back: the alignment (``difflib``) finds where the streamed
    text ends in ``words``, counting an unmatched streamed tail as one word for one, and the
    words after that follow. The final transcript, sent whole in ``completed``, is
    authoritative.
    """
    have = streamed.split()
    k = len(have)
    if not words:
        return ""
    if k == 0:
        return " ".join(words)
    have_keys = [_word_key(w) for w in have]
    keys = [_word_key(w) for w in words]
    if keys[:k] == have_keys:
        j = k
    else:
        blocks = [
            b
            for b in SequenceMatcher(None, have_keys, keys, autojunk=False).get_matching_blocks()
            if b.size
        ]
        if blocks:
            last = blocks[-1]
            j = last.b + last.size + (k - (last.a + last.size))
        else:
            j = k
    if j >= len(words):
        return ""
    return " " + " ".join(words[j:])


def stable_delta(
    streamed: str,
    previous: list[str] | tuple[str, ...] | None,
    current: list[str] | tuple[str, ...],
) -> str:
    """The delta to send now that hypothesis ``current`` follows ``previous``, given the text
    already ``streamed`` for the item: the :func:`continuation` of the streamed text in their
    :func:`stable_prefix`, or ``""``. Deltas only ever append."""
    return continuation(streamed, stable_prefix(previous, current))


def partial_interval(base_s: float, backlog: int) -> float:
    """Seconds between partial decodes of one session when ``backlog`` decode jobs wait in the
    shared queue: ``base_s * (1 + backlog)``, so partials thin out as the worker falls behind
    (finals are queued ahead of partials anyway)."""
    return base_s * (1 + max(0, backlog))


@dataclass
class OpenItemPartials:
    """Partial-decode state of the open item (the uncommitted buffer); a commit or a clear
    starts a fresh one. Times are the session's ``now`` (seconds, any monotonic origin).

    ``opened_at``: when the buffer got its first audio (None: empty); ``pending``: the one
    partial in flight; ``last_at`` / ``bytes_at_last``: when the previous one was taken and how
    much audio it had; ``hypothesis``: its words; ``streamed``: the text sent as deltas so far.
    """

    opened_at: float | None = None
    pending: PartialJob | None = None
    last_at: float | None = None
    bytes_at_last: int = 0
    hypothesis: list[str] | None = None
    streamed: str = ""

    def due_at(
        self,
        *,
        nbytes: int,
        bytes_per_second: int,
        interval_s: float,
        backlog: int,
        max_partial_s: float,
        speech_end: int | None = None,
    ) -> float | None:
        """When the next partial decode of ``nbytes`` of open audio is due, or None: one is in
        flight, the buffer is empty, under :data:`MIN_PARTIAL_S`, grew less than
        :data:`MIN_PARTIAL_GROWTH_S` since the last one, or is over ``max_partial_s``. The
        interval (:func:`partial_interval`) counts from the previous partial, else from the
        buffer's first audio.

        ``speech_end`` (bytes; :func:`.quiet.speech_end_bytes`, None: unknown) refines this:
        when speech ended at least :data:`.quiet.QUIET_TAIL_S` ago and none of it was decoded
        yet, a partial is due at once, whatever the interval, if no decode job waits
        (``backlog`` 0): a pause began, and its decode may stand for the final
        (``speculation.py``); when nothing but quiet came since the previous partial, none is
        due (it would hear nothing new)."""
        if self.pending is not None or self.opened_at is None:
            return None
        bps = bytes_per_second
        if nbytes < MIN_PARTIAL_S * bps or nbytes > max_partial_s * bps:
            return None
        if speech_end is not None:
            pause = QUIET_TAIL_S * bps
            decoded = self.last_at is not None and self.bytes_at_last - speech_end >= pause
            if nbytes - speech_end >= pause and not decoded and backlog == 0:
                return self.opened_at  # a pause began and no decode heard it: due now
            if self.last_at is not None and speech_end <= self.bytes_at_last:
                return None  # only quiet since the previous partial
        if nbytes - self.bytes_at_last < MIN_PARTIAL_GROWTH_S * bps:
            return None
        last = self.last_at if self.last_at is not None else self.opened_at
        return last + partial_interval(interval_s, backlog)

    def taken(self, job: PartialJob, now: float, nbytes: int) -> None:
        """``job`` (of ``nbytes`` of audio) was handed out at ``now``."""
        self.pending, self.last_at, self.bytes_at_last = job, now, nbytes

    def transcribed(self, words: list[str]) -> str:
        """The pending partial heard ``words``: the stable delta to stream ("" for none)."""
        self.pending = None
        delta = stable_delta(self.streamed, self.hypothesis, words)
        self.hypothesis = words
        self.streamed += delta
        return delta
