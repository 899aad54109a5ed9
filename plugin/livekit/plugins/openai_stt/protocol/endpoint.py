"""Where to connect and how to authenticate: the realtime transcription URL and headers.

Pure functions (no I/O, no clock). The wire facts are in ``docs/protocol.md`` §1:

- OpenAI (``api.openai.com`` and regional ``*.api.openai.com``):
  ``wss://api.openai.com/v1/realtime?intent=transcription``, ``Authorization: Bearer``, and
  **never** ``?model=`` (with it OpenAI opens a conversation session, rejects the transcription
  ``session.update`` with ``invalid_model`` and closes 4000).
- Azure OpenAI GA (``*.openai.azure.com``, ``*.cognitiveservices.azure.com``, and Foundry's
  ``*.services.ai.azure.com``):
  ``wss://<res>.openai.azure.com/openai/v1/realtime?intent=transcription``, ``api-key: <key>``,
  no ``api-version`` and never ``?model=`` (HTTP 400 at the handshake).
- Everything else (LiteLLM, Cloudflare AI Gateway, speaches, the local server): Bearer auth and
  ``?model=`` on the URL, because a gateway routes on it before any frame is sent.
- Never ``OpenAI-Beta: realtime=v1`` to OpenAI or Azure: the beta API is retired and such a
  socket is closed 4000 ``beta_api_shape_disabled``.

The URL rules follow the agents-js ``buildRealtimeSttUrl`` function and its test table
(livekit/agents-js ``plugins/openai/src/stt.ts``), built by parsing rather than concatenation.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Literal
from urllib.parse import quote, unquote_plus, urlsplit, urlunsplit

__all__ = [
    "DEFAULT_BASE_URL",
    "EndpointKind",
    "build_headers",
    "build_realtime_stt_url",
    "carries_credentials",
    "is_secret_header",
    "classify_endpoint",
    "is_azure_host",
    "is_loopback_host",
    "is_openai_host",
    "redact_url",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
"""Used when no base URL is given (docs/protocol.md §1)."""

EndpointKind = Literal["openai", "azure", "gateway"]
"""``"openai"``: OpenAI-operated host; ``"azure"``: Azure OpenAI; ``"gateway"``: anything else."""

_SCHEMES = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}
_OPENAI_HOST = "api.openai.com"
# Azure OpenAI resource endpoints (docs/protocol.md §1); the third is Azure AI Foundry's unified
# endpoint, which serves the same OpenAI v1 API at https://<res>.services.ai.azure.com/openai/v1.
_AZURE_SUFFIXES = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")
_AZURE_REALTIME_PATH = "/openai/v1/realtime"
_BETA_HEADER = "openai-beta"

# Query parameter names treated as secrets by redact_url (compared lower-case, "-" as "_").
_SECRET_PARAMS = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "token",
        "access_token",
        "auth",
        "authorization",
        "sig",
        "signature",
        "secret",
        "client_secret",
        "password",
        "pwd",
        "code",
    }
)
_SECRET_SUFFIXES = ("_key", "_token", "_secret", "_signature", "_password")
_REDACTED = "REDACTED"


def _normalize_host(host: str) -> str:
    """Lower-case, without IPv6 brackets and without one trailing dot (a fully qualified name)."""
    h = host.strip().lower()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if h.endswith("."):
        h = h[:-1]
    return h


def _labels_ok(host: str) -> bool:
    return bool(host) and all(host.split("."))


def is_openai_host(host: str) -> bool:
    """True for ``api.openai.com`` and any ``*.api.openai.com`` (regional: ``eu.api.openai.com``).

    Case-insensitive, ignores a trailing dot, matches whole labels only:
    ``api.openai.com.example.net`` and ``evilapi.openai.com`` are not OpenAI. docs/protocol.md §1.
    """
    h = _normalize_host(host)
    if not _labels_ok(h):
        return False
    return h == _OPENAI_HOST or h.endswith("." + _OPENAI_HOST)


def is_azure_host(host: str) -> bool:
    """True for an Azure OpenAI resource host: ``<res>.openai.azure.com``,
    ``<res>.cognitiveservices.azure.com`` or ``<res>.services.ai.azure.com``.

    Same normalization as :func:`is_openai_host` (case, trailing dot, whole labels).
    docs/protocol.md §1.
    """
    h = _normalize_host(host)
    if not _labels_ok(h):
        return False
    return any(h.endswith(suffix) and len(h) > len(suffix) for suffix in _AZURE_SUFFIXES)


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, any address in ``127.0.0.0/8``, ``::1`` (bracketed or not) and
    IPv4-mapped loopback (``::ffff:127.0.0.1``).

    Used to refuse sending a credential over plaintext ``ws://`` to any other host. Other names
    (``foo.localhost`` included) are not trusted to resolve to loopback.
    """
    h = _normalize_host(host)
    if h == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(h)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def _split(base_url: str | None) -> tuple[str, str, str, str, str]:
    """Parse and validate a base URL; returns ``(ws_scheme, netloc, host, path, query)``."""
    url = (base_url or "").strip() or DEFAULT_BASE_URL
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError("the realtime endpoint base URL contains a space or a control character")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        shown = f"{scheme!r}" if scheme else "none"
        raise ValueError(
            f"unsupported URL scheme {shown} for the realtime endpoint: use https, http, wss or ws"
        )
    host = parts.hostname or ""
    if not host:
        raise ValueError("the realtime endpoint base URL has no host")
    _ = parts.port  # raises ValueError for an invalid port
    return _SCHEMES[scheme], parts.netloc, host, parts.path, parts.query


def _kind_of(host: str) -> EndpointKind:
    if is_openai_host(host):
        return "openai"
    if is_azure_host(host):
        return "azure"
    return "gateway"


def classify_endpoint(base_url: str | None) -> EndpointKind:
    """Classify a base URL by host: ``"openai"``, ``"azure"`` or ``"gateway"``.

    Per docs/protocol.md §1.

    ``None`` or ``""`` means the default (:data:`DEFAULT_BASE_URL`, so ``"openai"``).
    Raises ``ValueError`` for an unsupported scheme or a missing host.
    """
    return _kind_of(_split(base_url)[2])


def _query_pieces(query: str) -> list[tuple[str, str]]:
    """``"a=1&b=%20"`` -> ``[("a", "a=1"), ("b", "b=%20")]``: decoded name, raw piece."""
    pieces = []
    for raw in query.split("&"):
        if raw:
            pieces.append((unquote_plus(raw.split("=", 1)[0]), raw))
    return pieces


def _encode(name: str, value: str) -> str:
    return f"{quote(name, safe='')}={quote(value, safe='')}"


def _realtime_path(path: str, kind: EndpointKind) -> str:
    trimmed = path.rstrip("/")
    if trimmed.endswith("/realtime"):
        return trimmed
    if kind == "azure" and trimmed in ("", "/openai"):
        return _AZURE_REALTIME_PATH
    if kind == "openai" and trimmed == "":
        return "/v1/realtime"
    return trimmed + "/realtime"


def build_realtime_stt_url(
    base_url: str | None,
    model: str,
    *,
    include_model: bool | None = None,
    extra_query: Mapping[str, str] | None = None,
    kind: EndpointKind | None = None,
) -> str:
    """Build the websocket URL of a realtime transcription session (docs/protocol.md §1).

    Args:
        base_url: an HTTP(S) or WS(S) base URL such as ``https://api.openai.com/v1``; ``None``
            or ``""`` means :data:`DEFAULT_BASE_URL`.
        model: the transcription model (or Azure deployment / gateway alias) name.
        include_model: ``None`` (default) puts ``model=<model>`` on the URL only for a gateway
            (neither OpenAI nor Azure); ``True`` forces it (e.g. a gateway on an OpenAI-looking
            host); ``False`` suppresses it (e.g. a transparent reverse proxy in front of OpenAI).
        extra_query: more query parameters; each wins over a parameter of the same name in
            the base URL, and over ``intent``/``model``.
        kind: the endpoint's rules to apply whatever the host (``"azure"`` for an Azure
            resource behind a custom domain or API Management); ``None``: by host.

    Returns:
        ``ws://`` or ``wss://`` URL (``https``->``wss``, ``http``->``ws``, ``ws``/``wss`` kept),
        path ending in ``/realtime`` (added unless already there; an Azure base URL with no path
        or ``/openai`` gets ``/openai/v1/realtime``, an OpenAI one with no path ``/v1/realtime``),
        no fragment. Query order: the base URL's own parameters (verbatim, as encoded), then
        ``intent=transcription`` (unless present), then ``model`` (when included and not
        already present), then ``extra_query``. When the model is not included, a ``model``
        parameter of the base URL is dropped too: on OpenAI it causes ``invalid_model`` and a
        4000 close.

    Raises:
        ValueError: unsupported scheme, missing host or invalid port. The message never
            contains the URL (it may carry a credential).
    """
    scheme, netloc, host, path, query = _split(base_url)
    kind = kind or _kind_of(host)
    with_model = include_model if include_model is not None else kind == "gateway"
    extra = dict(extra_query or {})

    pieces = [
        (name, raw)
        for name, raw in _query_pieces(query)
        if name not in extra and (with_model or name != "model")
    ]
    present = {name for name, _ in pieces} | set(extra)
    out = [raw for _, raw in pieces]
    if "intent" not in present:
        out.append(_encode("intent", "transcription"))
    if with_model and "model" not in present:
        out.append(_encode("model", model))
    out.extend(_encode(name, value) for name, value in extra.items())

    return urlunsplit((scheme, netloc, _realtime_path(path, kind), "&".join(out), ""))


def _check_header(name: str, value: str) -> None:
    if any(c in name or c in value for c in "\r\n\0"):
        raise ValueError(f"header {name.strip()[:40]!r} contains a line break or NUL")


def build_headers(
    api_key: str | None,
    *,
    base_url: str | None,
    extra_headers: Mapping[str, str] | None = None,
    kind: EndpointKind | None = None,
) -> dict[str, str]:
    """Handshake headers for the realtime socket (docs/protocol.md §1).

    - Azure host: ``api-key: <api_key>``; every other host: ``Authorization: Bearer <api_key>``.
      No (or empty) key: no auth header (e.g. a local server, or an Azure Entra token passed as
      ``extra_headers={"Authorization": "Bearer <token>"}``).
    - ``extra_headers`` are merged last and win, matching names case-insensitively. For OpenAI
      and Azure an ``OpenAI-Beta`` header is dropped: the beta API is retired and such a socket
      is closed 4000 ``beta_api_shape_disabled``. Gateways get it as given.

    Returns a new ``dict`` of header name -> value.
    Raises ``ValueError`` for a bad base URL (see :func:`classify_endpoint`) or a header name or
    value containing CR, LF or NUL (the message names the header, never the value).
    """
    kind = kind or classify_endpoint(base_url)
    headers: dict[str, str] = {}
    if api_key:
        if kind == "azure":
            headers["api-key"] = api_key
        else:
            headers["Authorization"] = f"Bearer {api_key}"
    for name, value in (extra_headers or {}).items():
        if kind != "gateway" and name.strip().lower() == _BETA_HEADER:
            continue
        for existing in [k for k in headers if k.lower() == name.lower()]:
            del headers[existing]
        headers[name] = value
    for name, value in headers.items():
        _check_header(name, value)
    return headers


def _is_secret_param(name: str) -> bool:
    n = name.strip().lower().replace("-", "_")
    return n in _SECRET_PARAMS or n.endswith(_SECRET_SUFFIXES)


_SECRET_HEADER_WORDS = ("auth", "key", "token", "secret", "signature", "password", "cookie")


def is_secret_header(name: str) -> bool:
    """True for a header that may carry a credential: ``Authorization``, ``api-key``,
    ``cf-aig-authorization``, ``Ocp-Apim-Subscription-Key``, ``x-goog-api-key``, ``Cookie`` and
    any name containing auth, key, token, secret, signature or password (case-insensitive)."""
    n = name.strip().lower()
    return any(word in n for word in _SECRET_HEADER_WORDS)


def carries_credentials(
    url: str, headers: Mapping[str, str] | None = None, extra_query: Mapping[str, str] | None = None
) -> bool:
    """True when the URL has userinfo or a secret-looking query parameter, or a header or
    extra query parameter may carry a credential (see :func:`is_secret_header` and
    :func:`redact_url`). Used to refuse plaintext ``ws://`` to a remote host.

    Raises ``ValueError`` for an unparseable URL.
    """
    parts = urlsplit(url)
    if "@" in parts.netloc:
        return True
    if any(_is_secret_param(name) for name, _ in _query_pieces(parts.query)):
        return True
    if any(_is_secret_param(name) for name in extra_query or {}):
        return True
    return any(is_secret_header(name) for name in headers or {})


def redact_url(url: str) -> str:
    """A URL fit for a log line: the values of secret-looking query parameters (``api_key``,
    ``key``, ``token``, ``access_token``, ``sig``, ``*_key``, ``*_token``...) and the whole
    userinfo are replaced by ``REDACTED``; everything else is kept as written. A bare path
    with a query (``/v1/realtime?key=...``) works too.

    Never raises: a string that cannot be parsed comes back as ``"<unparseable URL>"``.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:  # user:password, or a lone token: all of it may be secret
            netloc = f"{_REDACTED}@{netloc.rsplit('@', 1)[1]}"
        query = "&".join(
            f"{raw.split('=', 1)[0]}={_REDACTED}" if _is_secret_param(name) else raw
            for name, raw in _query_pieces(parts.query)
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "<unparseable URL>"
