"""Per-item transcript assembly: server events in, neutral outputs out.

Pure (no clock, no I/O). Everything is keyed by ``item_id`` (docs/protocol.md §4): interim text is
the full text of *its* item so far and never mixes items; completions of different turns may
arrive out of order; a ``…transcription.failed`` ends its turn; a late event for an ended item
is dropped.

Audio times are seconds on the *stream's* audio clock (audio pushed since the stream began,
across reconnects). The client tells the assembler where each commit ends
(:meth:`TranscriptAssembler.commit_sent`) and where each server session's audio begins
(:meth:`TranscriptAssembler.begin_session`), so server-VAD offsets (ms since the session's first
audio) map onto the same clock.
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Union

from . import events as ev

__all__ = [
    "SpeechStartedOut",
    "SpeechEndedOut",
    "InterimOut",
    "FinalOut",
    "FailureOut",
    "UsageOut",
    "CommittedOut",
    "CommitRefusedOut",
    "Output",
    "TranscriptAssembler",
    "mean_token_probability",
]


@dataclass(frozen=True)
class SpeechStartedOut:
    """Server VAD heard speech begin at ``audio_start_s`` (stream audio clock, seconds)."""

    item_id: str
    audio_start_s: float


@dataclass(frozen=True)
class SpeechEndedOut:
    """Server VAD heard speech end at ``audio_end_s`` (stream audio clock, seconds)."""

    item_id: str
    audio_end_s: float


@dataclass(frozen=True)
class CommittedOut:
    """The server acknowledged a commit: item ``item_id`` spans the given audio seconds."""

    item_id: str
    audio_start_s: float
    audio_end_s: float
    by_server: bool = False
    """The server committed by itself (server VAD), not in answer to a commit of ours."""


@dataclass(frozen=True)
class CommitRefusedOut:
    """A commit the server refused as empty (docs/protocol.md §3) ended at ``audio_end_s``; it owes
    no final."""

    audio_end_s: float


@dataclass(frozen=True)
class InterimOut:
    """The full text of item ``item_id`` so far (never another item's words)."""

    item_id: str
    text: str


@dataclass(frozen=True)
class FinalOut:
    """The final text of an item (empty for an item with no speech: the turn still ends).
    ``confidence`` is the mean token probability in [0, 1] when
    logprobs were asked for, else ``None``. ``language`` comes from ``completed.languages``
    when the server sends it, else the configured language."""

    item_id: str
    text: str
    audio_start_s: float
    audio_end_s: float
    language: str | None
    confidence: float | None
    languages: tuple[str, ...] | None = None
    """Every language the server detected (``completed.languages``, gpt-transcribe), most
    prevalent first; ``None`` when it sent none."""


@dataclass(frozen=True)
class FailureOut:
    """``…transcription.failed`` (or a missed deadline): the turn ends with the text known."""

    item_id: str
    error: ev.ErrorInfo
    text: str
    audio_start_s: float
    audio_end_s: float


@dataclass(frozen=True)
class UsageOut:
    """Usage of one completed item. ``audio_seconds``: audio committed in the item (client
    count). ``billed_seconds``: the server's ``duration`` usage when sent, else ``None``."""

    item_id: str
    audio_seconds: float
    input_tokens: int = 0
    output_tokens: int = 0
    audio_input_tokens: int = 0
    text_input_tokens: int = 0
    billed_seconds: float | None = None


Output = Union[
    SpeechStartedOut,
    SpeechEndedOut,
    CommittedOut,
    CommitRefusedOut,
    InterimOut,
    FinalOut,
    FailureOut,
    UsageOut,
]


def mean_token_probability(logprobs: tuple[ev.LogProb, ...] | list[ev.LogProb]) -> float | None:
    """Mean of ``exp(logprob)`` over tokens, in [0, 1]; ``None`` for no tokens."""
    if not logprobs:
        return None
    return sum(math.exp(min(0.0, lp.logprob)) for lp in logprobs) / len(logprobs)


@dataclass
class _Item:
    parts: list[str] = field(default_factory=list)
    chars: int = 0
    logprobs: list[ev.LogProb] = field(default_factory=list)
    audio_start_s: float = 0.0
    audio_end_s: float = 0.0
    span_start_s: float = 0.0
    committed_audio_s: float = 0.0
    committed: bool = False
    interim_at: float | None = None  # when its last interim was given (None: never)
    interim_owed: bool = False  # its text changed since then

    @property
    def text(self) -> str:
        if len(self.parts) > 1:  # joined once, not once a delta
            self.parts = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""

    def set_text(self, text: str, *, append: bool) -> None:
        """Append (a delta) or replace (a partial) the text, bounded by MAX_ITEM_TEXT_CHARS."""
        if not append:
            self.parts, self.chars = [], 0
        room = MAX_ITEM_TEXT_CHARS - self.chars
        if room > 0 and text:
            piece = text[:room]
            self.parts.append(piece)
            self.chars += len(piece)


_OPEN = "\x00open"  # key of the uncommitted buffer's item while its id is unknown
_DONE_MEMORY = 512
_HELD_MEMORY = 64  # ends of items not yet committed, held for their commit

MAX_ITEM_TEXT_CHARS = 16_384
"""Most interim text kept per item, characters. gpt-realtime-whisper gives at most 2,000
output tokens an item (docs/protocol.md §6), about 10,000 characters; text past the bound (a
flooding server) is not kept. The final comes whole from ``completed``."""

MIN_INTERIM_INTERVAL_S = 0.05
"""With time given, an item's interim transcripts come at most this often (20 a second);
text that arrives in between is given by :meth:`TranscriptAssembler.due_interims`. So the cost
per delta stays constant however fast a server sends them."""

MAX_LOGPROBS_PER_ITEM = 8_192
"""Most token logprobs kept per item (confidence is their mean)."""


class TranscriptAssembler:
    """Assembles server events into outputs for one stream (sans-I/O).

    Args:
        language: the configured language, used for finals when the server names none.

    Use: call :meth:`begin_session` after each (re)connect, :meth:`commit_sent` for each
    commit the client sends, :meth:`receive` for each parsed server event, and read
    :attr:`pending_items` to know whether finals are still owed.
    """

    def __init__(self, language: str | None = None) -> None:
        self.language = language
        self._items: OrderedDict[str, _Item] = OrderedDict()
        self._commit_spans: deque[tuple[float, float, str | None]] = deque()
        self._done: OrderedDict[str, None] = OrderedDict()
        self._committed_until_s = 0.0
        self._session_origin_s = 0.0
        self._speech_start_s: dict[str, float] = {}
        self._speech_end_s: dict[str, float] = {}
        self._held: OrderedDict[str, ev.TranscriptionCompleted | ev.TranscriptionFailed] = (
            OrderedDict()
        )

    # -- inputs from the client side ------------------------------------------------------

    def begin_session(self, audio_origin_s: float) -> None:
        """A new server session starts; its first audio is at ``audio_origin_s`` (stream clock).

        Commits sent on the previous socket and not acknowledged are forgotten (their audio
        is replayed and committed again by the stream); items committed but not finished stay
        owed until :meth:`abandon_unfinished` is called.
        """
        self._session_origin_s = audio_origin_s
        self._commit_spans.clear()
        # item ids are per server session (a new session may reuse ``item_001``), and no
        # event of an old socket can arrive on the new one
        self._done.clear()
        self._speech_start_s.clear()
        self._speech_end_s.clear()
        self._held.clear()
        self._committed_until_s = audio_origin_s
        self._items.pop(_OPEN, None)

    def commit_sent(
        self,
        audio_end_s: float,
        *,
        event_id: str | None = None,
        audio_start_s: float | None = None,
    ) -> None:
        """The client sent ``input_audio_buffer.commit`` covering audio up to ``audio_end_s``.

        ``audio_start_s`` defaults to the end of the previous commit; ``event_id`` is the
        commit's client event id, which a refusal (:meth:`commit_refused`) names.
        """
        if audio_start_s is None:
            audio_start_s = (
                self._commit_spans[-1][1] if self._commit_spans else self._committed_until_s
            )
        self._commit_spans.append((audio_start_s, audio_end_s, event_id))

    def commit_refused(self, event_id: str | None) -> float | None:
        """The server refused a commit (``input_audio_buffer_commit_empty``, docs/protocol.md §3).

        Forgets its span: the one sent with ``event_id``, else the newest (a refusal answers
        the commit just sent). Returns the refused span's end (seconds), or ``None`` if no
        commit was waiting. With server VAD this happens when the server had just committed the
        audio itself.
        """
        for index in range(len(self._commit_spans) - 1, -1, -1):
            if event_id is None or self._commit_spans[index][2] == event_id:
                end = self._commit_spans[index][1]
                del self._commit_spans[index]
                return end
        return None

    def abandon_unfinished(self) -> list[str]:
        """Forget committed items whose finals can no longer arrive (their socket died).

        Returns their ids. The stream replays their audio, so they come back as new items.
        """
        lost = [item_id for item_id, item in self._items.items() if item.committed]
        for item_id in lost:
            del self._items[item_id]
        return lost

    @property
    def pending_items(self) -> int:
        """Commits sent but not acknowledged, plus committed items with no final yet."""
        return len(self._commit_spans) + sum(1 for i in self._items.values() if i.committed)

    @property
    def committed_until_s(self) -> float:
        """End of the audio the server has acknowledged as committed (stream clock, seconds)."""
        return self._committed_until_s

    @property
    def retain_from_s(self) -> float:
        """Earliest audio (stream clock, seconds) some unfinished turn still needs: the start
        of the oldest unacknowledged commit or unfinished committed item, else the start of the
        uncommitted buffer. Audio before it can never need a replay."""
        starts = [item.span_start_s for item in self._items.values() if item.committed]
        if self._commit_spans:
            starts.append(self._commit_spans[0][0])
        return min(starts, default=self._committed_until_s)

    def expire(self, item_id: str, error: ev.ErrorInfo) -> list[Output]:
        """End item ``item_id`` without a final (its deadline passed); a late final is dropped."""
        item = self._items.pop(item_id, None)
        if item is None:
            return []
        self._mark_done(item_id)
        return [FailureOut(item_id, error, item.text, item.audio_start_s, item.audio_end_s)]

    def unfinished_item_ids(self) -> list[str]:
        """Committed items still waiting for their final, oldest first."""
        return [item_id for item_id, item in self._items.items() if item.committed]

    # -- server events -----------------------------------------------------------------

    def receive(self, event: ev.ServerEvent, now: float | None = None) -> list[Output]:
        """Feed one parsed server event; returns the outputs it causes (often none).

        With ``now`` (seconds, any monotonic clock), an item's interim transcripts are given at
        most every :data:`MIN_INTERIM_INTERVAL_S`; :meth:`due_interims` gives those held back.
        Without it, every text change gives one.
        """
        if isinstance(event, ev.TranscriptionDelta):
            return self._on_text(event.item_id, event.delta, event.logprobs, True, now)
        if isinstance(event, ev.PartialTranscription):
            return self._on_text(event.item_id, event.transcript, None, False, now)
        if isinstance(event, ev.AudioBufferCommitted):
            return self._on_committed(event.item_id)
        if isinstance(event, ev.TranscriptionCompleted):
            return self._on_completed(event)
        if isinstance(event, ev.TranscriptionFailed):
            return self._on_failed(event)
        if isinstance(event, ev.SpeechStarted):
            start = self._session_origin_s + event.audio_start_ms / 1000.0
            self._speech_start_s[event.item_id] = start
            return [SpeechStartedOut(event.item_id, start)]
        if isinstance(event, ev.ErrorEvent):
            if event.error.code == "input_audio_buffer_commit_empty":
                end = self.commit_refused(event.error.event_id)
                return [] if end is None else [CommitRefusedOut(end)]
            return []
        if isinstance(event, ev.SpeechStopped):
            end = self._session_origin_s + event.audio_end_ms / 1000.0
            self._speech_end_s[event.item_id] = end
            return [SpeechEndedOut(event.item_id, end)]
        return []

    def open_text(self) -> str:
        """The text of the newest item not yet committed (pre-commit deltas), or ``""``."""
        for item in reversed(self._items.values()):
            if not item.committed:
                return item.text
        return ""

    def due_interims(self, now: float) -> list[Output]:
        """Interim transcripts held back by the rate bound whose time has come."""
        out: list[Output] = []
        for key, item in self._items.items():
            if item.interim_owed and self._interim_due(item, now):
                out.append(self._interim(key, item, now))
        return out

    # -- internals ---------------------------------------------------------------------

    def _mark_done(self, item_id: str) -> None:
        self._done[item_id] = None
        while len(self._done) > _DONE_MEMORY:
            self._done.popitem(last=False)

    def _item_for_text(self, item_id: str | None) -> tuple[str, _Item] | None:
        if item_id is not None and item_id in self._done:
            return None  # late text for an ended item
        key = item_id if item_id is not None else _OPEN
        item = self._items.get(key)
        if item is None:
            if item_id is not None and _OPEN in self._items:
                # the open buffer's text now has its id
                item = self._items.pop(_OPEN)
            else:
                item = _Item()
            self._items[key] = item
        return key, item

    def _on_text(
        self,
        item_id: str | None,
        text: str,
        logprobs: tuple[ev.LogProb, ...] | None,
        append: bool,
        now: float | None,
    ) -> list[Output]:
        found = self._item_for_text(item_id)
        if found is None:
            return []
        key, item = found
        if not text and append:
            return []
        before = item.chars
        item.set_text(text, append=append)
        if logprobs and len(item.logprobs) < MAX_LOGPROBS_PER_ITEM:
            item.logprobs.extend(logprobs[: MAX_LOGPROBS_PER_ITEM - len(item.logprobs)])
        if append and item.chars == before:
            return []  # past MAX_ITEM_TEXT_CHARS: nothing new to show
        if now is not None and not self._interim_due(item, now):
            item.interim_owed = True
            return []
        return [self._interim(key, item, now)]

    @staticmethod
    def _interim_due(item: _Item, now: float) -> bool:
        return item.interim_at is None or now - item.interim_at >= MIN_INTERIM_INTERVAL_S

    @staticmethod
    def _interim(key: str, item: _Item, now: float | None) -> InterimOut:
        item.interim_at, item.interim_owed = now, False
        return InterimOut(key if key != _OPEN else "", item.text)

    def _on_committed(self, item_id: str) -> list[Output]:
        known = self._items.get(item_id)
        if item_id in self._done or (known is not None and known.committed):
            return []  # its final came first (the commit was taken then), or a repeat
        by_server = not self._commit_spans or item_id in self._speech_end_s
        if not by_server:
            start, end, _ = self._commit_spans.popleft()
        else:  # server VAD committed by itself (it reported the end of speech of this item)
            start = self._committed_until_s
            end = max(start, self._speech_end_s.get(item_id, start))
            # a commit of ours still in flight now covers only what follows: no audio is
            # counted in two items
            self._commit_spans = deque(
                (max(s, end), max(e, end), event_id) for s, e, event_id in self._commit_spans
            )
        self._committed_until_s = max(self._committed_until_s, end)
        item = self._items.get(item_id)
        if item is None:
            # pre-commit text under no id, or under an id the commit did not confirm
            # (docs/protocol.md §4: unconfirmed), belongs to this item
            key = (
                _OPEN
                if _OPEN in self._items
                else next((k for k, other in self._items.items() if not other.committed), None)
            )
            item = self._items.pop(key) if key is not None else _Item()
            self._items[item_id] = item
        item.committed = True
        item.audio_start_s = self._speech_start_s.pop(item_id, start)
        item.audio_end_s = self._speech_end_s.pop(item_id, end)
        item.audio_start_s = min(max(item.audio_start_s, start), item.audio_end_s)
        item.span_start_s = start
        item.committed_audio_s = max(0.0, end - start)
        out: list[Output] = [CommittedOut(item_id, start, end, by_server)]
        held = self._held.pop(item_id, None)  # its end came first: deliver it now
        if isinstance(held, ev.TranscriptionCompleted):
            out += self._on_completed(held)
        elif held is not None:
            out += self._on_failed(held)
        return out

    def _hold(
        self, item_id: str, event: ev.TranscriptionCompleted | ev.TranscriptionFailed
    ) -> bool:
        """Hold the end of an item not yet committed until its ``committed`` (docs/protocol.md
        §4: committed, then completed; a server may reorder). True when held. An item that is
        never committed gets no final: no turn owes one (a commit of ours still waiting is
        answered by its own item, or by the deadline and the replay)."""
        item = self._items.get(item_id)
        if item is not None and item.committed:
            return False
        self._held[item_id] = event
        while len(self._held) > _HELD_MEMORY:
            self._held.popitem(last=False)
        return True

    def _on_completed(self, event: ev.TranscriptionCompleted) -> list[Output]:
        if event.item_id in self._done or self._hold(event.item_id, event):
            return []
        self._mark_done(event.item_id)
        item = self._items.pop(event.item_id)
        logprobs = event.logprobs if event.logprobs else tuple(item.logprobs)
        language = event.languages[0] if event.languages else self.language
        # an empty transcript still ends its turn: LiveKit waits for a final after a flush
        out: list[Output] = [
            FinalOut(
                item_id=event.item_id,
                text=event.transcript,
                audio_start_s=item.audio_start_s,
                audio_end_s=item.audio_end_s,
                language=language,
                confidence=mean_token_probability(logprobs),
                languages=event.languages or None,
            ),
        ]
        audio_seconds = item.committed_audio_s
        usage = event.usage
        if isinstance(usage, ev.TokenUsage):
            out.append(
                UsageOut(
                    item_id=event.item_id,
                    audio_seconds=audio_seconds,
                    input_tokens=usage.input_tokens,
                    output_tokens=usage.output_tokens,
                    audio_input_tokens=usage.audio_tokens or usage.input_tokens - usage.text_tokens,
                    text_input_tokens=usage.text_tokens,
                )
            )
        else:
            billed = usage.seconds if isinstance(usage, ev.DurationUsage) else None
            out.append(UsageOut(event.item_id, audio_seconds, billed_seconds=billed))
        return out

    def _on_failed(self, event: ev.TranscriptionFailed) -> list[Output]:
        if event.item_id in self._done or self._hold(event.item_id, event):
            return []
        self._mark_done(event.item_id)
        item = self._items.pop(event.item_id)
        return [
            FailureOut(event.item_id, event.error, item.text, item.audio_start_s, item.audio_end_s)
        ]
