"""Every failure the protocol can show, classified once (docs/protocol.md §5).

Pure. The adapter maps an :class:`ErrorAction` to LiveKit's ``APIError`` family in one place;
nothing else decides whether a failure is fatal.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from .events import ErrorInfo

__all__ = [
    "ErrorAction",
    "Classified",
    "classify_error_event",
    "classify_close",
    "classify_handshake_status",
    "INVALID_MODEL_HINT",
    "names_permanent_failure",
]


class ErrorAction(enum.Enum):
    """What to do about a failure."""

    IGNORE = "ignore"
    """Harmless (``input_audio_buffer_commit_empty``): log and carry on."""
    REPORT = "report"
    """An ``error`` event with no close: the session is still usable; tell the app, go on."""
    RECONNECT = "reconnect"
    """The session ended normally (``session_expired``, close 1001): reconnect at once."""
    RETRY = "retry"
    """Transient (drops, 429, 5xx): retry with backoff."""
    FATAL = "fatal"
    """Configuration or auth: retrying cannot help."""


@dataclass(frozen=True)
class Classified:
    """A failure and its verdict. ``message`` is for users; it never holds a secret."""

    action: ErrorAction
    message: str
    code: str | None = None
    status: int | None = None

    @property
    def retryable(self) -> bool:
        return self.action in (ErrorAction.RETRY, ErrorAction.RECONNECT)


INVALID_MODEL_HINT = (
    "The server opened a conversation session instead of a transcription session. On OpenAI "
    "and Azure this happens when the URL carries ?model= (docs/protocol.md §1): leave "
    "include_model_in_url unset (or False) for OpenAI-operated and Azure hosts; set it to True "
    "only for gateways that route on the model (LiteLLM, Cloudflare AI Gateway, speaches)."
)

_CONFIG_CODES = {
    "invalid_model",
    "beta_api_shape_disabled",
    "model_not_found",
    "unsupported_turn_detection",
    "unsupported_prompt",
    "invalid_api_key",
    "insufficient_quota",
}


_PERMANENT = re.compile(
    r"\b(401|403|unauthori[sz]ed|forbidden|invalid[ _-]?api[ _-]?key|incorrect api key"
    r"|(api[ _-]?key|key)\b.{0,40}\b(rejected|invalid|not valid|expired)"
    r"|(unknown|invalid|unsupported)\b.{0,20}\bmodel|model\b.{0,60}\b(not found|does not exist"
    r"|is not supported|not allowed|unknown))",
    re.IGNORECASE,
)


def names_permanent_failure(info: ErrorInfo) -> bool:
    """True when an error names a rejected key or an unknown model (what a gateway such as
    LiteLLM sends as ``server_error`` before it closes, docs/protocol.md §5): retrying cannot
    help."""
    return (info.code or "") in _CONFIG_CODES or bool(_PERMANENT.search(info.message or ""))


def _describe(info: ErrorInfo) -> str:
    parts = [info.message or "(no message)"]
    if info.code:
        parts.append(f"code={info.code}")
    if info.param:
        parts.append(f"param={info.param}")
    return " ".join(parts)


def classify_error_event(info: ErrorInfo) -> Classified:
    """Classify the ``error`` of an ``error`` event (docs/protocol.md §5).

    ``invalid_model`` is fatal with :data:`INVALID_MODEL_HINT`; ``commit_empty`` is ignored;
    ``session_expired`` reconnects; a rejected turn detection or prompt is fatal (a config
    error); ``rate_limit_exceeded`` and ``server_error`` retry; anything else is reported and
    the session goes on (an error with no close leaves it usable).
    """
    code = info.code or ""
    message = info.message or ""
    described = _describe(info)
    if code == "input_audio_buffer_commit_empty":
        return Classified(ErrorAction.IGNORE, described, code)
    if code == "invalid_model":
        return Classified(ErrorAction.FATAL, f"{described}. {INVALID_MODEL_HINT}", code)
    if code == "session_expired" or "maximum duration" in message.lower():
        return Classified(ErrorAction.RECONNECT, described, code or "session_expired")
    lowered = message.lower()
    if (
        code in _CONFIG_CODES
        or "not supported for this transcription model" in lowered
        or ("prompt" in lowered and "not supported" in lowered)
        or names_permanent_failure(info)
    ):
        return Classified(ErrorAction.FATAL, described, code or None)
    if code == "rate_limit_exceeded" or info.type == "server_error":
        return Classified(ErrorAction.RETRY, described, code or None)
    return Classified(ErrorAction.REPORT, described, code or None)


def classify_close(code: int | None, reason: str | None) -> Classified:
    """Classify a websocket close from the server (docs/protocol.md §5, §6).

    4000: fatal (``invalid_model`` or ``beta_api_shape_disabled``); 4001 and 4003
    (unauthorized, forbidden): fatal; 1001 (``session_expired``
    / maximum duration): reconnect; 1008 (policy, e.g. a gateway's "model query parameter is
    required"): fatal; 1000 without a request from us, 1006, 1011 and others: retry.
    """
    reason = reason or ""
    text = f"websocket closed by the server (code {code}{': ' + reason if reason else ''})"
    if code == 4000:
        hint = "" if "beta_api_shape_disabled" in reason else f". {INVALID_MODEL_HINT}"
        return Classified(ErrorAction.FATAL, text + hint, reason or None, code)
    if code in (1008, 4001, 4003):  # policy, unauthorized, forbidden: retrying cannot help
        hint = ""
        if "model query parameter" in reason.lower():
            hint = ". This gateway routes on ?model=: set include_model_in_url=True."
        return Classified(ErrorAction.FATAL, text + hint, reason or None, code)
    if code == 1001:
        return Classified(ErrorAction.RECONNECT, text, "session_expired", code)
    return Classified(ErrorAction.RETRY, text, None, code)


def classify_handshake_status(status: int, insufficient_quota: bool = False) -> Classified:
    """Classify an HTTP status that refused the websocket upgrade (docs/protocol.md §5).

    401/403 and other 4xx: fatal (400 on Azure usually means ``?model=`` on the URL);
    429: retry unless the body says ``insufficient_quota``; 408 and 5xx: retry.
    """
    text = f"websocket handshake rejected with HTTP {status}"
    if status in (401, 403):
        return Classified(ErrorAction.FATAL, text + ": check the API key", None, status)
    if status == 429 and insufficient_quota:
        return Classified(
            ErrorAction.FATAL, text + ": insufficient_quota", "insufficient_quota", status
        )
    if status in (408, 429) or status >= 500:
        return Classified(ErrorAction.RETRY, text, None, status)
    if status == 400:
        return Classified(ErrorAction.FATAL, f"{text}. {INVALID_MODEL_HINT}", None, status)
    return Classified(ErrorAction.FATAL, text, None, status)
