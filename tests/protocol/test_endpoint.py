"""Tables for protocol/endpoint.py: URL, headers, redaction, loopback (docs/protocol.md §1).

The first URL cases mirror the agents-js ``buildRealtimeSttUrl`` test table
(livekit/agents-js plugins/openai/src/stt.test.ts).
"""

from __future__ import annotations

import pytest

from livekit.plugins.openai_stt.protocol.endpoint import (
    build_headers,
    build_realtime_stt_url,
    classify_endpoint,
    is_azure_host,
    is_loopback_host,
    is_openai_host,
    redact_url,
)

M = "gpt-realtime-whisper"
OPENAI_URL = "wss://api.openai.com/v1/realtime?intent=transcription"

URL_CASES = [
    # (base_url, model, kwargs, expected)
    pytest.param(None, M, {}, OPENAI_URL, id="no-base-url"),
    pytest.param("", M, {}, OPENAI_URL, id="empty-base-url"),
    pytest.param(
        "https://api.openai.com/v1",
        M,
        {},
        "wss://api.openai.com/v1/realtime?intent=transcription",
        id="openai-explicit",
    ),
    pytest.param(
        "https://gateway.example.com/v1",
        "gpt-4o-mini-transcribe",
        {},
        "wss://gateway.example.com/v1/realtime?intent=transcription&model=gpt-4o-mini-transcribe",
        id="gateway-v1",
    ),
    pytest.param(
        "wss://gateway.example.com/v1/realtime",
        M,
        {},
        f"wss://gateway.example.com/v1/realtime?intent=transcription&model={M}",
        id="gateway-already-realtime-not-doubled",
    ),
    pytest.param(
        "https://gateway.example.com/proxy/openai",
        M,
        {},
        f"wss://gateway.example.com/proxy/openai/realtime?intent=transcription&model={M}",
        id="gateway-non-v1-path",
    ),
    pytest.param(
        "http://gateway.example.com/v1",
        M,
        {},
        f"ws://gateway.example.com/v1/realtime?intent=transcription&model={M}",
        id="http-becomes-ws",
    ),
    pytest.param(
        "http://gateway.example.com/v1/",
        M,
        {},
        f"ws://gateway.example.com/v1/realtime?intent=transcription&model={M}",
        id="trailing-slash",
    ),
    pytest.param(
        "wss://gateway.example.com/v1/realtime/",
        M,
        {},
        f"wss://gateway.example.com/v1/realtime?intent=transcription&model={M}",
        id="trailing-slash-after-realtime",
    ),
    pytest.param(
        "https://gateway.example.com/v1?tenant=a%20b&x=1",
        M,
        {},
        f"wss://gateway.example.com/v1/realtime?tenant=a%20b&x=1&intent=transcription&model={M}",
        id="base-query-kept-first",
    ),
    pytest.param(
        "https://gateway.example.com/v1?model=my-alias",
        M,
        {},
        "wss://gateway.example.com/v1/realtime?model=my-alias&intent=transcription",
        id="gateway-own-model-alias-kept",
    ),
    pytest.param(
        "https://gateway.example.com/v1?intent=transcription",
        M,
        {},
        f"wss://gateway.example.com/v1/realtime?intent=transcription&model={M}",
        id="intent-not-repeated",
    ),
    pytest.param(
        "https://API.OPENAI.COM/v1",
        M,
        {},
        "wss://API.OPENAI.COM/v1/realtime?intent=transcription",
        id="upper-case-openai-host",
    ),
    pytest.param(
        "https://api.openai.com./v1",
        M,
        {},
        "wss://api.openai.com./v1/realtime?intent=transcription",
        id="trailing-dot-openai-host",
    ),
    pytest.param(
        "https://eu.api.openai.com/v1",
        M,
        {},
        "wss://eu.api.openai.com/v1/realtime?intent=transcription",
        id="regional-openai-host",
    ),
    pytest.param(
        "https://api.openai.com",
        M,
        {},
        "wss://api.openai.com/v1/realtime?intent=transcription",
        id="openai-no-path-gets-v1",
    ),
    pytest.param(
        "https://api.openai.com/v1?model=gpt-4o-transcribe",
        M,
        {},
        "wss://api.openai.com/v1/realtime?intent=transcription",
        id="openai-base-model-param-dropped",
    ),
    pytest.param(
        "https://myres.openai.azure.com",
        "my-deployment",
        {},
        "wss://myres.openai.azure.com/openai/v1/realtime?intent=transcription",
        id="azure-no-path",
    ),
    pytest.param(
        "https://myres.openai.azure.com/",
        "my-deployment",
        {},
        "wss://myres.openai.azure.com/openai/v1/realtime?intent=transcription",
        id="azure-root-path",
    ),
    pytest.param(
        "https://myres.cognitiveservices.azure.com/openai/v1",
        "my-deployment",
        {},
        "wss://myres.cognitiveservices.azure.com/openai/v1/realtime?intent=transcription",
        id="azure-cognitiveservices-openai-v1",
    ),
    pytest.param(
        "https://myres.services.ai.azure.com/openai/v1/",
        "my-deployment",
        {},
        "wss://myres.services.ai.azure.com/openai/v1/realtime?intent=transcription",
        id="azure-foundry-openai-v1",
    ),
    pytest.param(
        "https://api.openai.com.example.net/v1",
        M,
        {},
        f"wss://api.openai.com.example.net/v1/realtime?intent=transcription&model={M}",
        id="lookalike-host-is-gateway",
    ),
    pytest.param(
        "https://evilapi.openai.com/v1",
        M,
        {},
        f"wss://evilapi.openai.com/v1/realtime?intent=transcription&model={M}",
        id="label-prefix-host-is-gateway",
    ),
    pytest.param(
        "https://gateway.example.com/v1",
        "my model/v2+x",
        {},
        "wss://gateway.example.com/v1/realtime?intent=transcription&model=my%20model%2Fv2%2Bx",
        id="model-name-encoded",
    ),
    pytest.param(
        "https://api.openai.com/v1",
        M,
        {"include_model": True},
        f"wss://api.openai.com/v1/realtime?intent=transcription&model={M}",
        id="include-model-forced-on-openai",
    ),
    pytest.param(
        "https://gateway.example.com/v1",
        M,
        {"include_model": False},
        "wss://gateway.example.com/v1/realtime?intent=transcription",
        id="include-model-suppressed-on-gateway",
    ),
    pytest.param(
        "https://gateway.example.com/v1?region=us&tier=free",
        M,
        {"extra_query": {"tier": "pro", "trace": "1"}},
        f"wss://gateway.example.com/v1/realtime?region=us&intent=transcription&model={M}"
        "&tier=pro&trace=1",
        id="extra-query-merged-and-wins",
    ),
    pytest.param(
        "https://api.openai.com/v1",
        M,
        {"extra_query": {"intent": "transcription"}},
        "wss://api.openai.com/v1/realtime?intent=transcription",
        id="extra-query-intent-not-doubled",
    ),
    pytest.param(
        "http://127.0.0.1:8000/v1",
        "small.en",
        {},
        "ws://127.0.0.1:8000/v1/realtime?intent=transcription&model=small.en",
        id="local-server",
    ),
    pytest.param(
        "http://[::1]:8000/v1#frag",
        "small.en",
        {},
        "ws://[::1]:8000/v1/realtime?intent=transcription&model=small.en",
        id="ipv6-local-fragment-dropped",
    ),
    pytest.param(
        "https://gateway.ai.cloudflare.com/v1/acct/gw/openai",
        M,
        {},
        "wss://gateway.ai.cloudflare.com/v1/acct/gw/openai/realtime"
        f"?intent=transcription&model={M}",
        id="cloudflare-ai-gateway",
    ),
]


@pytest.mark.parametrize(("base_url", "model", "kwargs", "expected"), URL_CASES)
def test_build_realtime_stt_url(base_url, model, kwargs, expected) -> None:
    assert build_realtime_stt_url(base_url, model, **kwargs) == expected


@pytest.mark.parametrize(
    "base_url",
    [
        pytest.param("ftp://gateway.example.com/v1", id="ftp"),
        pytest.param("file:///tmp/sock", id="file-no-host"),
        pytest.param("gateway.example.com/v1", id="no-scheme"),
        pytest.param("https:///v1", id="no-host"),
        pytest.param("https://gateway.example.com:notaport/v1", id="bad-port"),
    ],
)
def test_a_bad_base_url_raises_value_error(base_url) -> None:
    with pytest.raises(ValueError):
        build_realtime_stt_url(base_url, M)


def test_the_error_message_does_not_echo_a_secret() -> None:
    with pytest.raises(ValueError) as excinfo:
        build_realtime_stt_url("ftp://user:s3cret@gateway.example.com/v1?api_key=s3cret", M)
    assert "s3cret" not in str(excinfo.value)


@pytest.mark.parametrize(
    ("base_url", "kind"),
    [
        pytest.param(None, "openai", id="default"),
        pytest.param("https://api.openai.com/v1", "openai", id="openai"),
        pytest.param("https://Eu.Api.OpenAI.com./v1", "openai", id="regional-mixed-case-dot"),
        pytest.param("https://myres.openai.azure.com", "azure", id="azure-openai"),
        pytest.param("https://myres.cognitiveservices.azure.com", "azure", id="azure-cogsvc"),
        pytest.param("https://myres.services.ai.azure.com", "azure", id="azure-foundry"),
        pytest.param("https://openai.azure.com", "gateway", id="azure-suffix-without-resource"),
        pytest.param("https://api.openai.com.example.net", "gateway", id="lookalike"),
        pytest.param("http://localhost:8000/v1", "gateway", id="local"),
    ],
)
def test_classify_endpoint(base_url, kind) -> None:
    assert classify_endpoint(base_url) == kind


@pytest.mark.parametrize(
    ("host", "openai", "azure"),
    [
        ("api.openai.com", True, False),
        ("API.OpenAI.COM", True, False),
        ("api.openai.com.", True, False),
        ("eu.api.openai.com", True, False),
        ("evilapi.openai.com", False, False),
        ("api.openai.com.example.net", False, False),
        ("openai.com", False, False),
        (".api.openai.com", False, False),
        ("myres.openai.azure.com", False, True),
        ("MyRes.CognitiveServices.Azure.com.", False, True),
        ("myres.services.ai.azure.com", False, True),
        ("openai.azure.com", False, False),
        ("myres.openai.azure.com.evil.net", False, False),
        ("", False, False),
    ],
)
def test_host_predicates(host, openai, azure) -> None:
    assert is_openai_host(host) is openai
    assert is_azure_host(host) is azure


HEADER_CASES = [
    # (api_key, base_url, extra_headers, expected)
    pytest.param(
        "sk-test", None, None, {"Authorization": "Bearer sk-test"}, id="openai-default-bearer"
    ),
    pytest.param(
        "az-key", "https://myres.openai.azure.com", None, {"api-key": "az-key"}, id="azure-api-key"
    ),
    pytest.param(
        "lk-proxy",
        "http://litellm:4000/v1",
        None,
        {"Authorization": "Bearer lk-proxy"},
        id="gateway-bearer",
    ),
    pytest.param(None, "http://127.0.0.1:8000/v1", None, {}, id="no-key-no-auth"),
    pytest.param("", None, None, {}, id="empty-key-no-auth"),
    pytest.param(
        "sk-test",
        "https://api.openai.com/v1",
        {"OpenAI-Beta": "realtime=v1"},
        {"Authorization": "Bearer sk-test"},
        id="openai-beta-dropped-for-openai",
    ),
    pytest.param(
        "az-key",
        "https://myres.openai.azure.com",
        {"openai-beta": "realtime=v1"},
        {"api-key": "az-key"},
        id="openai-beta-dropped-for-azure",
    ),
    pytest.param(
        None,
        "http://speaches:8000/v1",
        {"OpenAI-Beta": "realtime=v1"},
        {"OpenAI-Beta": "realtime=v1"},
        id="openai-beta-kept-for-gateway",
    ),
    pytest.param(
        None,
        "https://myres.openai.azure.com",
        {"Authorization": "Bearer entra-token"},
        {"Authorization": "Bearer entra-token"},
        id="azure-entra-token-via-extra",
    ),
    pytest.param(
        "sk-test",
        "https://gateway.ai.cloudflare.com/v1/acct/gw/openai",
        {"cf-aig-authorization": "Bearer cf-token"},
        {"Authorization": "Bearer sk-test", "cf-aig-authorization": "Bearer cf-token"},
        id="cloudflare-extra-merged",
    ),
    pytest.param(
        "sk-test",
        None,
        {"authorization": "Bearer other"},
        {"authorization": "Bearer other"},
        id="extra-wins-case-insensitively",
    ),
]


@pytest.mark.parametrize(("api_key", "base_url", "extra", "expected"), HEADER_CASES)
def test_build_headers(api_key, base_url, extra, expected) -> None:
    assert build_headers(api_key, base_url=base_url, extra_headers=extra) == expected


def test_a_header_with_a_line_break_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError) as excinfo:
        build_headers("sk-secret\r\nX-Evil: 1", base_url=None)
    assert "sk-secret" not in str(excinfo.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(
            "wss://api.openai.com/v1/realtime?intent=transcription",
            "wss://api.openai.com/v1/realtime?intent=transcription",
            id="nothing-secret",
        ),
        pytest.param(
            "ws://speaches:8000/v1/realtime?intent=transcription&model=m&api_key=sk-1",
            "ws://speaches:8000/v1/realtime?intent=transcription&model=m&api_key=REDACTED",
            id="api_key",
        ),
        pytest.param(
            "wss://h/x?key=a&token=b&access_token=c&sig=d&X-Api-Key=e&keep=f",
            "wss://h/x?key=REDACTED&token=REDACTED&access_token=REDACTED&sig=REDACTED"
            "&X-Api-Key=REDACTED&keep=f",
            id="many-secret-names",
        ),
        pytest.param("wss://user:pa55@h/x", "wss://REDACTED@h/x", id="userinfo-password"),
        pytest.param("wss://tok3n@h/x", "wss://REDACTED@h/x", id="userinfo-lone-token"),
        pytest.param(
            "/v1/realtime?key=k3y&intent=t", "/v1/realtime?key=REDACTED&intent=t", id="a-bare-path"
        ),
        pytest.param("not a url", "not a url", id="not-a-url-unchanged"),
        pytest.param("http://[::1", "<unparseable URL>", id="unparseable"),
    ],
)
def test_redact_url(url, expected) -> None:
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("localhost", True),
        ("LOCALHOST.", True),
        ("127.0.0.1", True),
        ("127.5.6.7", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.1", True),
        ("0.0.0.0", False),
        ("10.0.0.1", False),
        ("128.0.0.1", False),
        ("foo.localhost", False),
        ("localhost.example.com", False),
        ("api.openai.com", False),
        ("", False),
    ],
)
def test_is_loopback_host(host, expected) -> None:
    assert is_loopback_host(host) is expected


def test_endpoint_module_stays_pure() -> None:
    import livekit.plugins.openai_stt.protocol.endpoint as mod

    source = open(mod.__file__, encoding="utf-8").read()
    for banned in ("import asyncio", "websockets", "from livekit.agents", "import time"):
        assert banned not in source
