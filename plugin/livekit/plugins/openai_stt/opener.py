"""Opening configured sessions: the URL, the headers (the only path the API key takes), the
connect seam, and one session opened ahead of a rollover (make-before-break).

A session is *configured* when its socket is open and its ``session.update`` has been sent
(docs/protocol.md §2); the stream then only has to replay its unfinished audio. Opening one
ahead lets a rollover (docs/protocol.md §6) move without waiting for a handshake.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from livekit.agents.utils import aio

from . import transport
from .log import logger
from .models import ModelInfo, shutdown_notice
from .options import STTOptions
from .protocol.client import SESSION_UPDATE_ID_PREFIX
from .protocol.encode import dumps_event
from .protocol.endpoint import build_headers, redact_url
from .transport import Connection, TransportError

__all__ = [
    "Credentials",
    "DroppedOptionWarnings",
    "SessionOpener",
    "TokenProvider",
    "warn_shutdown_once",
]

_warned_shutdown: set[str] = set()

TokenProvider = Callable[[], "str | Awaitable[str]"]
"""An Entra ID (Azure AD) token provider, sync or async, as ``openai.AsyncAzureOpenAI`` takes."""


@dataclass(frozen=True)
class Credentials:
    """How a session authenticates; never shown in a ``repr``, a log or an error.

    ``api_key``: ``Authorization: Bearer`` (``api-key`` for Azure hosts). ``azure_ad_token`` or
    ``azure_ad_token_provider`` (called on every connect, awaited when it returns an
    awaitable): ``Authorization: Bearer <token>`` instead of the key (docs/protocol.md §1).
    """

    api_key: str | None = field(default=None, repr=False)
    azure_ad_token: str | None = field(default=None, repr=False)
    azure_ad_token_provider: TokenProvider | None = field(default=None, repr=False)

    async def headers(self, options: STTOptions) -> dict[str, str]:
        """The handshake headers for ``options`` (``extra_headers`` win on a clash).

        Raises:
            ValueError: a header with a line break (see ``build_headers``).
        """
        token = self.azure_ad_token
        if self.azure_ad_token_provider is not None:
            provided = self.azure_ad_token_provider()
            token = await provided if inspect.isawaitable(provided) else provided
        extra = dict(options.extra_headers)
        if token:
            extra = {"Authorization": f"Bearer {token}", **extra}
            return build_headers(
                None, base_url=options.base_url, extra_headers=extra, kind=options.endpoint_kind
            )
        return build_headers(
            self.api_key, base_url=options.base_url, extra_headers=extra, kind=options.endpoint_kind
        )


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


async def _close_when_done(task: asyncio.Task[tuple[Connection, float]]) -> None:
    """Cancel a session being opened, or close it if it is open."""
    await aio.cancel_and_wait(task)
    if not task.cancelled() and task.exception() is None:
        await task.result()[0].aclose()


class SessionOpener:
    """Opens configured sessions for one stream.

    Args:
        connect: the transport seam, ``connect(url, headers, open_timeout_s)``
            (:func:`.transport.connect` in production, a fake in tests).
        credentials: how each connect authenticates (:class:`Credentials`); never logged,
            never in a URL.
        open_timeout_s: bound on the handshake, seconds.
        warnings: where options a model does not take are reported.
    """

    def __init__(
        self,
        *,
        connect: transport.ConnectFn,
        credentials: Credentials,
        open_timeout_s: float,
        warnings: DroppedOptionWarnings,
    ) -> None:
        self._connect = connect
        self._credentials = credentials
        self._open_timeout_s = open_timeout_s
        self._warnings = warnings
        self._ahead: asyncio.Task[tuple[Connection, float]] | None = None
        self._ahead_options: STTOptions | None = None
        self.sessions_opened = 0
        self._updates = 0

    def session_update(self, options: STTOptions) -> str:
        """The ``session.update`` text for ``options`` (warning once about options dropped),
        with an ``event_id`` of :data:`~.protocol.client.SESSION_UPDATE_ID_PREFIX` so that an
        error answering it is recognised."""
        update = options.session_update()
        self._warnings.warn(update.dropped, options.model)
        self._updates += 1
        event_id = f"{SESSION_UPDATE_ID_PREFIX}{self._updates}"
        return dumps_event({**update.payload, "event_id": event_id})

    async def open(self, options: STTOptions) -> tuple[Connection, float]:
        """Connect and send the session's ``session.update``; no audio yet.

        Returns:
            The socket and the event-loop time its handshake completed (the server counts the
            session's age from then, docs/protocol.md §6).

        Raises:
            TransportError: the handshake or the first send failed (classified).
        """
        url = options.url()
        headers = await self._credentials.headers(options)
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

    def take_over(self, other: SessionOpener) -> None:
        """Take the session ``other`` opened ahead (``STT.prewarm``) as this opener's own."""
        if other._ahead is not None and self._ahead is None:
            self._ahead, self._ahead_options = other._ahead, other._ahead_options
            other._ahead = None

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
            await _close_when_done(task)


def warn_shutdown_once(info: ModelInfo) -> None:
    """One warning per process and model announced for shutdown (``models.shutdown_notice``),
    naming the date and the replacement."""
    notice = shutdown_notice(info)
    if notice and info.name not in _warned_shutdown:
        _warned_shutdown.add(info.name)
        logger.warning(
            "model announced for shutdown",
            extra={
                "model": info.name,
                "shutdown_date": info.shutdown_date,
                "replacement": info.replacement,
                "notice": notice,
            },
        )
