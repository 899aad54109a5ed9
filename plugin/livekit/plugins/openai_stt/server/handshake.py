"""The HTTP answer to an upgrade request (docs/protocol.md §1), pure: :func:`check_handshake`.

Both the websockets path and ``LocalRealtimeServer.serve_channel`` ask it before a session opens.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from .faults import FaultCounters, Faults

__all__ = ["HandshakeReply", "check_handshake", "header", "parse_query"]


@dataclass(frozen=True)
class HandshakeReply:
    """An HTTP answer instead of a websocket upgrade: ``status`` code and plain-text ``body``."""

    status: int
    body: str


def header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` (compared without case), or None."""
    lname = name.lower()
    for key, value in headers.items():
        if key.lower() == lname:
            return value
    return None


def parse_query(path: str) -> dict[str, str]:
    """The query parameters of a request target (first value of each)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(path).query).items() if v}


def check_handshake(
    *,
    path: str,
    headers: Mapping[str, str],
    api_key: str | None,
    faults: Faults | None = None,
    counters: FaultCounters | None = None,
    active_sessions: int = 0,
    max_sessions: int | None = None,
    compat: str = "lenient",
) -> HandshakeReply | None:
    """Decide the HTTP answer to one request (docs/protocol.md §1); ``None`` means "upgrade".

    ``path`` is the request target with its query (``/v1/realtime?intent=transcription``);
    ``headers`` any case. Rules, in order:

    - ``GET /health`` -> 200 ``ok``.
    - a path other than ``/v1/realtime`` or ``/realtime`` (any prefix ending in ``/realtime``
      is accepted, e.g. Azure's ``/openai/v1/realtime``) -> 404.
    - the ``reject_handshake_status`` fault -> that status (counts in ``counters``).
    - no ``Authorization: Bearer <token>`` and no ``api-key: <key>`` header -> 401; with
      ``api_key`` set, a token that differs -> 401 (compared in constant time,
      ``hmac.compare_digest``). The key never appears in the answer.
    - ``active_sessions`` already at ``max_sessions`` (None: no limit) -> 503 with a body
      saying the server is full (a client retries 5xx with backoff, docs/protocol.md §5).

    ``compat="vllm"`` answers as vLLM's server does (docs/protocol.md §7): the websocket route
    is exactly ``/v1/realtime`` (any other path: 403, uvicorn's answer to a websocket with no
    route); without ``api_key`` no credential is needed; with one, only ``Authorization:
    Bearer <key>`` passes (``api-key`` is not read), else 401 ``{"error":"Unauthorized"}``.
    """
    if compat == "vllm":
        return _check_vllm(path, headers, api_key, faults, counters, active_sessions, max_sessions)
    route = urlsplit(path).path.rstrip("/") or "/"
    if route == "/health":
        return HandshakeReply(200, "ok\n")
    if not (route == "/realtime" or route.endswith("/realtime")):
        return HandshakeReply(404, "not found: use /v1/realtime\n")
    rejected = _fault_reply(faults, counters)
    if rejected is not None:
        return rejected
    token: str | None = None
    auth = header(headers, "authorization")
    if auth is not None and auth[:7].lower() == "bearer " and auth[7:].strip():
        token = auth[7:].strip()
    elif (azure := header(headers, "api-key")) is not None and azure.strip():
        token = azure.strip()
    if token is None:
        return HandshakeReply(401, "missing credentials: send Authorization: Bearer <key>\n")
    if api_key is not None and not hmac.compare_digest(token.encode(), api_key.encode()):
        return HandshakeReply(401, "invalid credentials\n")
    return _busy_reply(active_sessions, max_sessions)


def _fault_reply(faults: Faults | None, counters: FaultCounters | None) -> HandshakeReply | None:
    if faults is None or faults.reject_handshake_status is None:
        return None
    used = counters.handshakes_rejected if counters is not None else 0
    if faults.reject_handshakes is not None and used >= faults.reject_handshakes:
        return None
    if counters is not None:
        counters.handshakes_rejected += 1
    return HandshakeReply(faults.reject_handshake_status, "rejected by fault injection\n")


def _busy_reply(active_sessions: int, max_sessions: int | None) -> HandshakeReply | None:
    if max_sessions is not None and active_sessions >= max_sessions:
        return HandshakeReply(
            503,
            f"server busy: {active_sessions} of {max_sessions} sessions in use "
            f"(max_sessions={max_sessions}); try again later\n",
        )
    return None


def _check_vllm(
    path: str,
    headers: Mapping[str, str],
    api_key: str | None,
    faults: Faults | None,
    counters: FaultCounters | None,
    active_sessions: int,
    max_sessions: int | None,
) -> HandshakeReply | None:
    """vLLM's answers (``api_router.py`` route; ``AuthenticationMiddleware``, docs/protocol.md
    §7): the key compared in constant time, like vLLM's ``secrets.compare_digest``."""
    route = urlsplit(path).path
    if route == "/health":
        return HandshakeReply(200, "")
    if route != "/v1/realtime":
        return HandshakeReply(403, "Forbidden\n")
    rejected = _fault_reply(faults, counters)
    if rejected is not None:
        return rejected
    if api_key is not None:
        scheme, _, token = (header(headers, "authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), api_key.encode()):
            return HandshakeReply(401, '{"error":"Unauthorized"}')
    return _busy_reply(active_sessions, max_sessions)
