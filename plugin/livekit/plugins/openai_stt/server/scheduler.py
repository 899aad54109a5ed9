"""The shared decode queue: one recognizer, one worker thread, all sessions.

Finals (committed items) always run before partials (decodes of open buffers for pre-commit
deltas), first come first served. Each session has at most one partial waiting: a newer one
replaces it, and a commit drops it (:meth:`DecodeScheduler.drop_partial`). A dropped partial's
future resolves to ``None``. :attr:`DecodeScheduler.backlog` (jobs waiting) is what sessions use to
stretch their partial interval (``session.partial_interval``), so partials thin out under load
instead of falling behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["DecodeScheduler"]

_Job = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]


class DecodeScheduler:
    """Runs blocking decode calls one at a time in a worker thread; finals before partials.

    Use inside a running loop: :meth:`start`, then :meth:`submit_final` /
    :meth:`submit_partial` (each returns an ``asyncio.Future``), :meth:`aclose` at the end.
    """

    def __init__(self, thread_name_prefix: str = "openai-stt-decode") -> None:
        self._prefix = thread_name_prefix
        self._finals: deque[_Job] = deque()
        self._partials: OrderedDict[Hashable, _Job] = OrderedDict()
        self._wakeup: asyncio.Event | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._task: asyncio.Task[None] | None = None
        self.running = False
        self.finals_run = 0
        self.partials_run = 0
        self.partials_dropped = 0

    @property
    def backlog(self) -> int:
        """Jobs waiting (not counting the one running)."""
        return len(self._finals) + len(self._partials)

    @property
    def finals_waiting(self) -> int:
        return len(self._finals)

    async def start(self) -> None:
        if self._task is not None:
            return
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._prefix)
        self._task = asyncio.create_task(self._run(), name="openai-stt-decode-dispatch")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for _fn, _args, fut in [*self._finals, *self._partials.values()]:
            fut.cancel()
        self._finals.clear()
        self._partials.clear()
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)

    def submit_final(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Queue ``fn(*args)`` behind the other finals (ahead of every partial)."""
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._finals.append((fn, args, fut))
        self._poke()
        return fut

    def submit_partial(
        self, key: Hashable, fn: Callable[..., Any], *args: Any
    ) -> asyncio.Future[Any]:
        """Queue ``fn(*args)`` as ``key``'s partial; one waiting before it is dropped."""
        self.drop_partial(key)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._partials[key] = (fn, args, fut)
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

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wakeup is not None
        while True:
            if self._finals:
                fn, args, fut = self._finals.popleft()
                partial = False
            elif self._partials:
                _key, (fn, args, fut) = self._partials.popitem(last=False)
                partial = True
            else:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if fut.done():  # cancelled by its session
                continue
            assert self._executor is not None
            self.running = True
            try:
                result = await loop.run_in_executor(self._executor, fn, *args)
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
                self.running = False
            if partial:
                self.partials_run += 1
            else:
                self.finals_run += 1
