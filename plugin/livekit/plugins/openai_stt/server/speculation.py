"""Finals decoded ahead: a pause's decode stands for the final when only quiet follows it.

Whisper's encoder sees the whole 30 s window at once (every frame attends to every other), so
its output cannot be reused once any audio changes; shorter windows cost 3-7 points of WER on
tiny.en (issue 13). What can be reused is a whole *result*: when the open buffer falls quiet
(``quiet.py``), the partial schedule starts a decode at once (``partials.py``), and
:class:`SessionEngine` runs that decode at final quality (``Engine.recognize``) instead of a
cheap partial, if the decode queue has room (``may_speculate``). When the commit comes and
its audio is the speculated audio plus nothing but quiet (or the speculated audio minus a quiet
end: server VAD cuts at the speech stop), with the same language and prompt, the final is that
result: no decode after the commit. Otherwise the final is decoded as usual. A final that finds
the session's speculation still running waits for it when it would match.

Past capacity (``under_load()``: another final waits behind this one, or this one waited for
a worker already), a final that no speculation answers is decoded *fast*, as a partial is
(``Engine.recognize_partial``: for Whisper a 10 s window and greedy search, about five times
cheaper, a few points of WER worse): the queue drains instead of growing without bound.

One :class:`Speculator` per server (thread-safe: engines run on worker threads); one
:class:`SessionEngine` per session (an :class:`~.engines.Engine`, so the session's shell needs
no change). Counters: ``speculations`` (full decodes ahead), ``hits`` (finals answered by one),
``misses`` (finals that found one that did not fit), ``fast_finals`` (finals decoded fast).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .engines import Engine, accepts_logprobs
from .jobs import Recognition
from .quiet import QUIET_TAIL_S, quiet_tail_s

__all__ = ["SessionEngine", "Speculator", "same_but_quiet"]

_EDGE_S = 0.05
"""The end of the shorter audio not compared sample by sample (a resampler's tail), but required
quiet like what follows it."""
_ATOL = 2e-3
_WAIT_S = 10.0


def same_but_quiet(a: np.ndarray, b: np.ndarray, rate: int) -> bool:
    """Whether float audio ``a`` and ``b`` are the same audio but for a quiet end: the shorter
    is a prefix of the longer (to :data:`_ATOL`, but its last :data:`_EDGE_S`), and everything
    of the longer after that is within its quiet tail (``quiet.quiet_tail_s``)."""
    short, long = (a, b) if len(a) <= len(b) else (b, a)
    edge = min(len(short), round(_EDGE_S * rate))
    n = len(short) - edge
    if n <= 0 or not np.allclose(short[:n], long[:n], atol=_ATOL, rtol=0):
        return False
    quiet = quiet_tail_s(long, rate)
    return quiet is not None and quiet * rate >= len(long) - n - 1


@dataclass
class _Speculation:
    samples: np.ndarray
    language: str | None
    prompt: str | None
    result: Recognition | None = None
    done: threading.Event = field(default_factory=threading.Event)


class Speculator:
    """Server-wide state of the speculative finals of every session (see the module doc).

    ``may_speculate()`` is asked, on the worker thread, before each full decode ahead (the
    server passes "no decode job is waiting"; None: never speculate): past capacity a pause
    gets a cheap partial. ``under_load()`` is asked before each final that no speculation
    answers (None: never): True decodes it fast.
    """

    def __init__(
        self,
        engine: Engine,
        may_speculate: Callable[[], bool] | None = None,
        under_load: Callable[[], bool] | None = None,
    ) -> None:
        self.engine = engine
        self.engine_logprobs = accepts_logprobs(engine)
        self.may_speculate = may_speculate or (lambda: False)
        self.under_load = under_load or (lambda: False)
        self._lock = threading.Lock()
        self._by_session: dict[str, _Speculation] = {}
        self.speculations = 0
        self.hits = 0
        self.misses = 0
        self.fast_finals = 0

    def session(self, session_id: str) -> SessionEngine:
        """The engine one session's decodes go through."""
        return SessionEngine(self, session_id)

    def forget(self, session_id: str) -> None:
        """The session is over: drop what it speculated."""
        with self._lock:
            self._by_session.pop(session_id, None)

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)


class SessionEngine:
    """One session's view of the engine: finals may be answered by a speculation, partials at
    a pause are decoded at final quality (see the module doc)."""

    def __init__(self, speculator: Speculator, session_id: str) -> None:
        self.speculator = speculator
        self.session_id = session_id
        self.sample_rate_hz = speculator.engine.sample_rate_hz

    def recognize_partial(
        self, samples: np.ndarray, *, language: str | None, prompt: str | None
    ) -> Recognition:
        spec, engine = self.speculator, self.speculator.engine
        quiet = quiet_tail_s(samples, self.sample_rate_hz)
        if quiet is None or quiet < QUIET_TAIL_S - 0.021 or not spec.may_speculate():
            return engine.recognize_partial(samples, language=language, prompt=prompt)
        entry = _Speculation(samples, language, prompt)
        with spec._lock:
            spec._by_session[self.session_id] = entry
        try:
            entry.result = engine.recognize(samples, language=language, prompt=prompt)
        finally:
            entry.done.set()
        spec._count("speculations")
        return entry.result

    def recognize(
        self,
        samples: np.ndarray,
        *,
        language: str | None,
        prompt: str | None,
        logprobs: bool = False,
    ) -> Recognition:
        """A final. ``logprobs``: the engine's per-token log probabilities are wanted (passed
        on when the engine takes them; a decode ahead, made without, is not reused then)."""
        spec, engine = self.speculator, self.speculator.engine
        with spec._lock:
            entry = spec._by_session.pop(self.session_id, None)
        if logprobs and spec.engine_logprobs:
            recognize: Any = engine.recognize
            result: Recognition = recognize(
                samples, language=language, prompt=prompt, logprobs=True
            )
            return result
        if entry is not None:
            fits = (
                entry.language == language
                and entry.prompt == prompt
                and same_but_quiet(entry.samples, samples, self.sample_rate_hz)
            )
            if fits and entry.done.wait(_WAIT_S) and entry.result is not None:
                spec._count("hits")
                return entry.result
            spec._count("misses")
        if spec.under_load():
            spec._count("fast_finals")
            return engine.recognize_partial(samples, language=language, prompt=prompt)
        return engine.recognize(samples, language=language, prompt=prompt)
