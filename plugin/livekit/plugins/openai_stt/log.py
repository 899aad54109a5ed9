"""The plugin's loggers.

Messages are fixed strings; data goes in ``extra=``; an API key never appears in a record.
websockets logs every handshake header at DEBUG, ``Authorization`` included, so the sockets
this package opens (client and local server) log through :func:`websockets_logger`, which
masks credential headers.
"""

from __future__ import annotations

import logging

from .protocol.endpoint import is_secret_header, redact_url

logger = logging.getLogger("livekit.plugins.openai_stt")


class RedactSecretHeaders(logging.Filter):
    """Masks credentials in websockets' handshake records: the value of each header that may
    carry one (``"> %s: %s"``, :func:`~.protocol.endpoint.is_secret_header`), and secret query
    parameters and userinfo in any URL or path argument, such as the request line
    (``"> GET %s HTTP/1.1"``, the server's ``"< %s %s %s"``;
    :func:`~.protocol.endpoint.redact_url`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or not args:
            return True
        if len(args) == 2 and isinstance(args[0], str) and is_secret_header(args[0]):
            record.args = (args[0], "[REDACTED]")
        else:
            record.args = tuple(
                redact_url(a) if isinstance(a, str) and ("?" in a or "@" in a) else a for a in args
            )
        return True


def websockets_logger(name: str) -> logging.Logger:
    """A child logger of :data:`logger` for websockets, with :class:`RedactSecretHeaders`."""
    log = logging.getLogger(f"{logger.name}.{name}")
    if not any(isinstance(f, RedactSecretHeaders) for f in log.filters):
        log.addFilter(RedactSecretHeaders())
    return log
