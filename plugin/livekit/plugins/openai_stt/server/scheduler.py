"""The shared decode queue: one recognizer, ``workers`` decode threads, all sessions.

Finals (committed items) always start before partials (decodes of open buffers for pre-commit
deltas), first come first served. Each session has at most one partial waiting: a newer one
replaces it, and a commit drops it (:meth:`DecodeScheduler.drop_partial`). A dropped partial's
future resolves to ``None`` and counts as *shed* (:attr:`DecodeScheduler.partials_shed`).

With two workers or more, partials never hold every worker: one is kept for finals, so a
commit never waits behind a partial in flight (a final "jumps the queue" and the partial goes on
beside it). With one worker a partial only starts when no final waits. :attr:`backlog` (jobs
waiting) is what sessions use to stretch their partial interval (``partials.partial_interval``),
so partials thin out under load, and past capacity they are shed first: a partial due to start
while the workers were busy more than :data:`SHED_PARTIALS_ABOVE` of the last few seconds
(:meth:`DecodeScheduler.utilization`) is dropped instead; a final is never shed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["DecodeScheduler"]

_Job = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]", float]

#: Utilization (busy share of the workers, recent seconds) above which waiting partials are
#: shed rather than started.
SHED_PARTIALS_ABOVE = 0.8
#: Time constant of :meth:`DecodeScheduler.utilization`, seconds.
UTILIZATION_TAU_S = 2.0


class DecodeScheduler:
    """Runs blocking decode calls on ``workers`` threads; finals before partials.

    Use inside a running loop: :meth:`start`, then :meth:`submit_final` /
    :meth:`submit_partial` (each returns an ``asyncio.Future``), :meth:`aclose` at the end.
    ``on_final_wait(seconds)`` is told how long each final waited for a worker (metrics).
    """

    def __init__(
        self,
        thread_name_prefix: str = "openai-stt-decode",
        *,
        workers: int = 1,
        on_final_wait: Callable[[float], None] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self._prefix = thread_name_prefix
        self.workers = workers
        self._on_final_wait = on_final_wait
        self._finals: deque[_Job] = deque()
        self._partials: OrderedDict[Hashable, _Job] = OrderedDict()
        self._wakeup: asyncio.Event | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self.finals_running = 0
        self.partials_running = 0
        self.finals_run = 0
        self.partials_run = 0
        self.partials_dropped = 0
        self._local = threading.local()
        self._busy = 0.0
        self._busy_at = time.monotonic()

    @property
    def running(self) -> bool:
        """A decode is in progress."""
        return bool(self.finals_running or self.partials_running)

    @property
    def backlog(self) -> int:
        """Jobs waiting (not counting those running)."""
        return len(self._finals) + len(self._partials)

    @property
    def finals_waiting(self) -> int:
        return len(self._finals)

    @property
    def idle_workers(self) -> int:
        return self.workers - self.finals_running - self.partials_running

    def utilization(self, now: float | None = None) -> float:
        """The share of worker time spent decoding, averaged over the last seconds
        (exponentially, time constant :data:`UTILIZATION_TAU_S`): 0 idle, 1 saturated."""
        now = time.monotonic() if now is None else now
        level = (self.finals_running + self.partials_running) / self.workers
        decay = math.exp(-max(0.0, now - self._busy_at) / UTILIZATION_TAU_S)
        return self._busy * decay + level * (1 - decay)

    def _mark(self) -> None:
        """Fold the time since the last change into :meth:`utilization` (call before a change)."""
        now = time.monotonic()
        self._busy, self._busy_at = self.utilization(now), now

    def current_wait_s(self) -> float:
        """On a worker thread: how long the job it runs waited for a worker (0 elsewhere)."""
        return float(getattr(self._local, "wait_s", 0.0))

    def _call(self, wait_s: float, fn: Callable[..., Any], *args: Any) -> Any:
        self._local.wait_s = wait_s
        try:
            return fn(*args)
        finally:
            self._local.wait_s = 0.0

    @property
    def partials_shed(self) -> int:
        """Partials dropped before they ran (replaced by a newer one, overtaken by a commit,
        or left waiting at shutdown): the decodes load cost the sessions."""
        return self.partials_dropped

    @property
    def partial_slots(self) -> int:
        """Partials allowed to run at once: all workers but one (one with a single worker)."""
        return max(1, self.workers - 1)

    async def start(self) -> None:
        if self._task is not None:
            return
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix=self._prefix
        )
        self._task = asyncio.create_task(self._run(), name="openai-stt-decode-dispatch")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for running in list(self._running):
            running.cancel()
        for running in list(self._running):
            with contextlib.suppress(asyncio.CancelledError):
                await running
        for _fn, _args, fut, _t in [*self._finals, *self._partials.values()]:
            fut.cancel()
        self._finals.clear()
        self._partials.clear()
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)

    def submit_final(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Queue ``fn(*args)`` behind the other finals (ahead of every partial)."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._finals.append((fn, args, fut, time.monotonic()))
        self._poke()
        return fut

    def submit_partial(
        self, key: Hashable, fn: Callable[..., Any], *args: Any
    ) -> asyncio.Future[Any]:
        """Queue ``fn(*args)`` as ``key``'s partial; one waiting before it is dropped."""
        self.drop_partial(key)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._partials[key] = (fn, args, fut, time.monotonic())
        self._poke()
        return fut

    def drop_partial(self, key: Hashable) -> None:
        """Drop ``key``'s waiting partial (its future resolves to None)."""
        job = self._partials.pop(key, None)
        if job is not None:
            self.partials_dropped += 1
            if not job[2].done():
                job[2].set_result(None)

    def _poke(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    def _next(self) -> tuple[_Job, bool] | None:
        """The job to start now, and whether it is a partial; None: none may start."""
        if self.idle_workers <= 0:
            return None
        while self._finals:
            job = self._finals.popleft()
            if not job[2].done():  # not cancelled by its session
                return job, False
        while self._partials and self.partials_running < self.partial_slots:
            _key, job = self._partials.popitem(last=False)
            if job[2].done():
                continue
            if self.utilization() > SHED_PARTIALS_ABOVE:  # past capacity: shed, not started
                self.partials_dropped += 1
                job[2].set_result(None)
                continue
            return job, True
        return None

    async def _run(self) -> None:
        assert self._wakeup is not None
        while True:
            picked = self._next()
            if picked is None:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            job, partial = picked
            wait_s = time.monotonic() - job[3]
            self._mark()
            if partial:
                self.partials_running += 1
            else:
                self.finals_running += 1
                if self._on_final_wait is not None:
                    self._on_final_wait(wait_s)
            task = asyncio.create_task(self._execute(job, partial, wait_s))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _execute(self, job: _Job, partial: bool, wait_s: float) -> None:
        fn, args, fut, _t = job
        loop = asyncio.get_running_loop()
        assert self._executor is not None
        try:
            result = await loop.run_in_executor(self._executor, self._call, wait_s, fn, *args)
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the waiting session
            if not fut.done():
                fut.set_exception(exc)
        else:
            if not fut.done():
                fut.set_result(result)
        finally:
            self._mark()
            if partial:
                self.partials_running -= 1
                self.partials_run += 1
            else:
                self.finals_running -= 1
                self.finals_run += 1
            self._poke()
