"""The plugin's loggers.

Messages are fixed strings; data goes in ``extra=``; an API key never appears in a record.
websockets logs every handshake header at DEBUG, ``Authorization`` included, so the sockets
this package opens (client and local server) log through :func:`websockets_logger`, which
masks credential headers.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("livekit.plugins.openai_stt")

SECRET_HEADERS = frozenset(
    {"authorization", "api-key", "x-api-key", "cf-aig-authorization", "proxy-authorization"}
)


class RedactSecretHeaders(logging.Filter):
    """Masks the value of credential headers in websockets' ``"> %s: %s"`` header records."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and isinstance(args[0], str):
            if args[0].lower() in SECRET_HEADERS:
                record.args = (args[0], "[REDACTED]")
        return True


def websockets_logger(name: str) -> logging.Logger:
    """A child logger of :data:`logger` for websockets, with :class:`RedactSecretHeaders`."""
    log = logging.getLogger(f"{logger.name}.{name}")
    if not any(isinstance(f, RedactSecretHeaders) for f in log.filters):
        log.addFilter(RedactSecretHeaders())
    return log
