"""Where the credentials and the endpoint come from: an ``openai`` client, Azure OpenAI,
OVHcloud AI Endpoints. Pure helpers for :class:`~.stt.STT`'s constructor and its
``with_azure`` / ``with_ovhcloud`` (the same arguments as ``livekit-plugins-openai`` 1.8.9).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .opener import TokenProvider

__all__ = [
    "AZURE_ROLLOVER_S",
    "OVHCLOUD_BASE_URL",
    "ClientEndpoint",
    "azure_endpoint",
    "from_openai_client",
]

AZURE_ROLLOVER_S = 25 * 60.0
"""``session_rollover_s`` for Azure OpenAI: its realtime sessions are reported to end at 30
minutes (Microsoft Q&A, 2026-01-26; Azure OpenAI realtime docs), so move at 25."""

OVHCLOUD_BASE_URL = "https://oai.endpoints.kepler.ai.cloud.ovh.net/v1"
"""OVHcloud AI Endpoints, OpenAI-compatible (the official plugin's ``with_ovhcloud`` default)."""

_SKIPPED_HEADERS = ("authorization", "api-key", "user-agent", "content-type", "accept")


@dataclass(frozen=True)
class ClientEndpoint:
    """What an ``openai.AsyncClient`` says about where and how to connect."""

    base_url: str
    api_key: str | None
    headers: dict[str, str]
    azure_ad_token_provider: TokenProvider | None = None


def from_openai_client(client: Any) -> ClientEndpoint:
    """The key, base URL and headers of an ``openai.AsyncOpenAI`` (or ``AsyncAzureOpenAI``).

    Headers: the client's default headers except auth, ``User-Agent``, content negotiation
    and the SDK's ``X-Stainless-*`` telemetry (so ``OpenAI-Organization``, ``OpenAI-Project``
    and custom headers carry over). An Azure client's token provider is kept, to be called on
    every connect.
    """
    headers = {
        str(k): str(v)
        for k, v in dict(getattr(client, "default_headers", {}) or {}).items()
        if str(k).lower() not in _SKIPPED_HEADERS
        and not str(k).lower().startswith("x-stainless")
        and v is not None
        and not _omitted(v)
    }
    key = getattr(client, "api_key", None)
    provider = getattr(client, "_azure_ad_token_provider", None)
    if key == "<missing API key>":  # the SDK's placeholder when a token provider is used
        key = None
    return ClientEndpoint(
        base_url=str(client.base_url).rstrip("/"),
        api_key=key or None,
        headers=headers,
        azure_ad_token_provider=provider,
    )


def _omitted(value: Any) -> bool:
    return type(value).__name__ in ("Omit", "NotGiven")


def azure_endpoint(
    azure_endpoint: str | None, base_url: str | None, azure_deployment: str | None
) -> str:
    """The base URL for Azure OpenAI GA: ``base_url`` when given, else the resource endpoint
    (``$AZURE_OPENAI_ENDPOINT``). The realtime path ``/openai/v1/realtime`` is added by the URL
    rule (docs/protocol.md §1); the deployment goes in the session, not on the URL.

    Raises:
        ValueError: neither an endpoint nor a base URL, given or in the environment.
    """
    endpoint = base_url or azure_endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
    if not endpoint:
        raise ValueError("azure_endpoint is required (or set AZURE_OPENAI_ENDPOINT)")
    return endpoint
