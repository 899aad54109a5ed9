"""Opening configured sessions: the URL, the headers (the only path the API key takes), the
connect seam, and one session opened ahead of a rollover (make-before-break).

A session is *configured* when its socket is open and its ``session.update`` has been sent
(docs/protocol.md §2); the stream then only has to replay its unfinished audio. Opening one
ahead lets a rollover (docs/protocol.md §6) move without waiting for a handshake.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from livekit.agents.utils import aio

from . import transport
from .log import logger
from .options import STTOptions
from .protocol.endpoint import build_headers, redact_url
from .protocol.events import dumps_event
from .transport import Connection, TransportError

__all__ = ["DroppedOptionWarnings", "SessionOpener"]


class DroppedOptionWarnings:
    """Warns once per (option, model) that a model does not take an option, which is then not
    sent (docs/protocol.md §2). Shared by every stream of an STT."""

    def __init__(self) -> None:
        self._warned: set[tuple[str, str]] = set()

    def warn(self, dropped: Sequence[str], model: str) -> None:
        """Log a warning for each ``(option, model)`` pair not warned about yet."""
        for option in dropped:
            if (option, model) not in self._warned:
                self._warned.add((option, model))
                logger.warning(
                    "option not supported by the model; not sent",
                    extra={"option": option, "model": model},
                )


class SessionOpener:
    """Opens configured sessions for one stream.

    Args:
        connect: the transport seam, ``connect(url, headers, open_timeout_s)``
            (:func:`.transport.connect` in production, a fake in tests).
        api_key: sent as the endpoint wants it (:func:`.protocol.endpoint.build_headers`);
            never logged, never in a URL.
        open_timeout_s: bound on the handshake, seconds.
        warnings: where options a model does not take are reported.
    """

    def __init__(
        self,
        *,
        connect: transport.ConnectFn,
        api_key: str | None,
        open_timeout_s: float,
        warnings: DroppedOptionWarnings,
    ) -> None:
        self._connect = connect
        self._api_key = api_key
        self._open_timeout_s = open_timeout_s
        self._warnings = warnings
        self._ahead: asyncio.Task[tuple[Connection, float]] | None = None
        self._ahead_options: STTOptions | None = None
        self.sessions_opened = 0

    def session_update(self, options: STTOptions) -> str:
        """The ``session.update`` text for ``options`` (warning once about options dropped)."""
        update = options.session_update()
        self._warnings.warn(update.dropped, options.model)
        return dumps_event(update.payload)

    async def open(self, options: STTOptions) -> tuple[Connection, float]:
        """Connect and send the session's ``session.update``; no audio yet.

        Returns:
            The socket and the event-loop time its handshake completed (the server counts the
            session's age from then, docs/protocol.md §6).

        Raises:
            TransportError: the handshake or the first send failed (classified).
        """
        url = options.url()
        headers = build_headers(
            self._api_key, base_url=options.base_url, extra_headers=dict(options.extra_headers)
        )
        conn = await self._connect(url, headers, self._open_timeout_s)
        connected_at = asyncio.get_running_loop().time()
        self.sessions_opened += 1
        logger.debug(
            "connected",
            extra={
                "url": redact_url(url),
                "model": options.model,
                "session": self.sessions_opened,
            },
        )
        try:
            await conn.send(self.session_update(options))
        except BaseException:
            await conn.aclose()
            raise
        return conn, connected_at

    def open_ahead(self, options: STTOptions) -> None:
        """Start opening the next session in the background (no-op if one is under way)."""
        if self._ahead is None:
            self._ahead_options = options
            self._ahead = asyncio.create_task(self.open(options), name="openai_stt.next_session")

    async def take(self, options: STTOptions) -> tuple[Connection, float] | None:
        """The session opened ahead and its connect time, waiting for its handshake if it is
        still under way; ``None`` when there is none, its options differ from ``options``
        (it is closed), or its connect failed.

        The task stays held until its result is in hand, so a cancellation while waiting
        leaves it to :meth:`discard`.
        """
        task = self._ahead
        if task is None:
            return None
        if self._ahead_options != options:  # options changed since: not this one
            await self.discard()
            return None
        try:
            result = await task
        except TransportError as e:
            self._ahead = None
            logger.info("opening the next session ahead failed", extra={"reason": str(e)})
            return None
        self._ahead = None
        return result

    async def discard(self) -> None:
        """Cancel or close the session opened ahead, if any."""
        task, self._ahead = self._ahead, None
        if task is not None:
            await aio.cancel_and_wait(task)
            if not task.cancelled() and task.exception() is None:
                await task.result()[0].aclose()
