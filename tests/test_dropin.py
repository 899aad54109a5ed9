"""Drop-in for ``livekit.plugins.openai.STT`` 1.8.9 (issue 11, point 4).

- The wire table: both plugins are built with the same arguments and pointed at one small
  recording websocket server; the first ``session.update`` each sends (and its upgrade URL) is
  compared field by field. Equal unless the row names a difference made on purpose, which is
  then asserted as it is, with its reason.
- Every argument of the official constructor, ``with_azure``, ``with_ovhcloud`` and
  ``update_options`` is accepted here, with the same default (but the default model).
- ``client=``, ``with_azure`` (token provider on every connect, ``api-version``, 25-minute
  rollover), ``use_realtime=False`` / ``with_ovhcloud`` (``recognize()`` over HTTP with
  ``temperature``), and ``update_options`` clearing an option on an open stream.

The official plugin takes its websockets from LiveKit's job HTTP session, so its streams run
inside ``http_context.open()``.
"""

from __future__ import annotations

import contextlib
import inspect
import json
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import openai
import pytest
from aiohttp import web
from livekit.agents import stt as lk_stt
from livekit.agents.utils import http_context
from livekit.plugins import openai as official
from livekit.plugins import openai_stt
from websockets.asyncio.server import ServerConnection, serve

from livekit.plugins.openai_stt import transport
from livekit.plugins.openai_stt.models import DEFAULT_SERVER_VAD
from livekit.plugins.openai_stt.protocol.errors import Classified, ErrorAction
from livekit.plugins.openai_stt.server import LocalRealtimeServer
from tests.helpers import frames, recording_connect, until

ABSENT = "<absent>"
"""A field left out of the message (``None`` is a JSON ``null`` sent)."""

OFFICIAL_VAD = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 600,
                "silence_duration_ms": 350}  # fmt: skip
"""The official plugin's default turn detection (its ``stt.py``, ``__init__``)."""


# -- a recording websocket server -------------------------------------------------------------


@dataclass
class Upgrade:
    """One websocket the recording server accepted: its request and the ``session.update``\\ s
    it received, in order."""

    path: str
    headers: Mapping[str, str]
    updates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def route(self) -> str:
        return urlsplit(self.path).path

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(urlsplit(self.path).query))


class RecordingServer:
    """Answers ``session.created`` at once and ``session.updated`` (echoing the session) to
    each ``session.update``; ignores the audio. Records every upgrade."""

    def __init__(self) -> None:
        self.upgrades: list[Upgrade] = []
        self.port = 0

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        upgrade = Upgrade(path=request.path, headers=request.headers)
        self.upgrades.append(upgrade)
        created = {"type": "session.created", "event_id": "evt_0", "session": {"id": "sess_1"}}
        await ws.send(json.dumps(created))
        with contextlib.suppress(Exception):
            async for message in ws:
                event = json.loads(message)
                if event.get("type") == "session.update":
                    upgrade.updates.append(event)
                    echo = {"type": "session.updated", "session": event["session"]}
                    await ws.send(json.dumps(echo))


@contextlib.asynccontextmanager
async def recording_server() -> AsyncIterator[RecordingServer]:
    rec = RecordingServer()
    async with serve(rec._handle, "127.0.0.1", 0) as server:
        rec.port = server.sockets[0].getsockname()[1]
        async with http_context.open():  # the official plugin's websockets come from here
            yield rec


async def first_update(stt: lk_stt.STT, rec: RecordingServer) -> Upgrade:
    """Open a stream of ``stt``, push 0.2 s of a tone, and return the upgrade it made once
    its first ``session.update`` has arrived."""
    seen = len(rec.upgrades)
    stream = stt.stream()
    try:
        for frame in frames(0.2):
            stream.push_frame(frame)
        await until(lambda: len(rec.upgrades) > seen and bool(rec.upgrades[seen].updates))
    finally:
        await stream.aclose()
        await stt.aclose()
    return rec.upgrades[seen]


def wire(upgrade: Upgrade) -> dict[str, Any]:
    """What a plugin put on the wire, by field (``ABSENT`` for a field left out)."""
    update = upgrade.updates[0]
    session = update["session"]
    audio_input = session.get("audio", {}).get("input", {})
    return {
        "route": upgrade.route,
        "query": upgrade.query,
        "event type": update["type"],
        "session.type": session.get("type", ABSENT),
        "include": session.get("include", ABSENT),
        "format": audio_input.get("format", ABSENT),
        "transcription": audio_input.get("transcription", ABSENT),
        "turn_detection": audio_input.get("turn_detection", ABSENT),
        "noise_reduction": audio_input.get("noise_reduction", ABSENT),
    }


# -- the wire table -----------------------------------------------------------------------------

# The differences made on purpose, each with its reason, as (ours, official).
TD_NULL = (None, ABSENT)
"""Ours always sends ``turn_detection`` (``null`` when the model has no server VAD or the
client commits), so that a server default never turns VAD on for a model that rejects it
(types ``realtime_transcription_session_audio_input``: "For gpt-realtime-whisper transcription
sessions, turn detection must be set to null"); the official leaves the field out."""
NR_NULL = (None, ABSENT)
"""Ours always sends ``noise_reduction`` (``null``: off), so a later ``session.update`` can
turn it off again; the official sends it only when ``noise_reduction_type`` is set."""


@dataclass(frozen=True)
class Row:
    """Both plugins get ``kwargs`` (plus ``api_key``, ``base_url``, ``use_realtime=True`` so
    the official opens a socket for every model, and ``vad=None`` so it loads no Silero);
    ``differ`` maps a field of :func:`wire` to its (ours, official) values where they differ
    on purpose."""

    kwargs: dict[str, Any]
    differ: dict[str, tuple[Any, Any]] = field(default_factory=dict)


ROWS: dict[str, Row] = {
    # The default model differs on purpose: ours is gpt-realtime-whisper (realtime only,
    # the client commits: no Silero is loaded, an AgentSession flushes each turn); the
    # official's gpt-4o-mini-transcribe is announced for shutdown on 2027-02-26 (types
    # `audio_transcription.model`). Everything else here follows from the model.
    "default model": Row(
        {},
        differ={
            "query": (
                {"intent": "transcription", "model": "gpt-realtime-whisper"},
                {"intent": "transcription", "model": "gpt-4o-mini-transcribe"},
            ),
            "transcription": (
                {"model": "gpt-realtime-whisper", "language": "en"},
                {"model": "gpt-4o-mini-transcribe", "language": "en"},
            ),
            "turn_detection": (None, OFFICIAL_VAD),
            "noise_reduction": NR_NULL,
        },
    ),
    "explicit gpt-realtime-whisper": Row(
        {"model": "gpt-realtime-whisper"},
        differ={"turn_detection": TD_NULL, "noise_reduction": NR_NULL},
    ),
    # A prompt is not sent to gpt-realtime-whisper: the types say "Prompt is not supported
    # with gpt-realtime-whisper in GA Realtime sessions" (`audio_transcription.prompt`), and a
    # third party reports the model hard-rejects it; the official sends it anyway.
    "gpt-realtime-whisper with prompt": Row(
        {"model": "gpt-realtime-whisper", "prompt": "A cardiology consultation."},
        differ={
            "transcription": (
                {"model": "gpt-realtime-whisper", "language": "en"},
                {
                    "model": "gpt-realtime-whisper",
                    "language": "en",
                    "prompt": "A cardiology consultation.",
                },
            ),
            "turn_detection": TD_NULL,
            "noise_reduction": NR_NULL,
        },
    ),
    # turn_detection given to a model without server VAD: both leave it out (ours as null)
    "turn_detection given to gpt-realtime-whisper": Row(
        {"model": "gpt-realtime-whisper", "turn_detection": {"type": "server_vad"}},
        differ={"turn_detection": TD_NULL, "noise_reduction": NR_NULL},
    ),
    # gpt-live-transcribe takes `languages` and `keywords`, never `language` (both plugins)
    "gpt-live-transcribe, two languages and keywords": Row(
        {"model": "gpt-live-transcribe", "language": ["en", "fr"], "keywords": ["LiveKit"]},
        differ={"turn_detection": TD_NULL, "noise_reduction": NR_NULL},
    ),
    # One regional tag: both send it as a one-item `languages` of its ISO-639-1 code (the API
    # rejects regional tags, livekit/agents PR #6705). Both send `keywords: []` to these models
    # on every update, so that an update clears keywords set before.
    "gpt-live-transcribe, one regional language": Row(
        {"model": "gpt-live-transcribe", "language": "en-US"},
        differ={"turn_detection": TD_NULL, "noise_reduction": NR_NULL},
    ),
    "gpt-live-transcribe, detect_language": Row(
        {"model": "gpt-live-transcribe", "language": "fr", "detect_language": True},
        differ={"turn_detection": TD_NULL, "noise_reduction": NR_NULL},
    ),
    # gpt-transcribe takes `languages` and `keywords` too. Turn detection differs on purpose:
    # server VAD on gpt-transcribe is unconfirmed (OpenAI's examples all send null and commit
    # by hand; models.py), so ours has the client commit; the official turns server VAD on.
    "gpt-transcribe, language and keywords": Row(
        {"model": "gpt-transcribe", "language": "fr", "keywords": ["LiveKit"]},
        differ={"turn_detection": (None, OFFICIAL_VAD), "noise_reduction": NR_NULL},
    ),
    # gpt-4o-transcribe: `language`, free-text `prompt`, and the official's default server VAD
    # (ours too: a bare stream() gets its finals at the speaker's pauses)
    "gpt-4o-transcribe with prompt": Row(
        {"model": "gpt-4o-transcribe", "prompt": "A cardiology consultation."},
        differ={"noise_reduction": NR_NULL},
    ),
    "turn_detection not given": Row(
        {"model": "gpt-4o-mini-transcribe"}, differ={"noise_reduction": NR_NULL}
    ),
    "turn_detection server_vad": Row(
        {
            "model": "gpt-4o-mini-transcribe",
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.6,
                "prefix_padding_ms": 300,
                "silence_duration_ms": 500,
            },
        },
        differ={"noise_reduction": NR_NULL},
    ),
    "turn_detection semantic_vad": Row(
        {
            "model": "gpt-4o-mini-transcribe",
            "turn_detection": {"type": "semantic_vad", "eagerness": "low"},
        },
        differ={"noise_reduction": NR_NULL},
    ),
    # `type` is optional in the official's `SessionTurnDetection` TypedDict; it fills in
    # "server_vad" (its `_as_turn_detection`). The API's turn detection is a union tagged
    # on `type`: without it the update is refused (the local server: `invalid_value` on
    # `turn_detection.type`).
    "turn_detection without type": Row(
        {
            "model": "gpt-4o-mini-transcribe",
            "turn_detection": {"threshold": 0.7, "silence_duration_ms": 800},
        },
        differ={"noise_reduction": NR_NULL},
    ),
    "noise_reduction_type": Row(
        {"model": "gpt-4o-mini-transcribe", "noise_reduction_type": "near_field"}
    ),
    "detect_language": Row(
        {"model": "gpt-4o-mini-transcribe", "language": "fr", "detect_language": True},
        differ={"noise_reduction": NR_NULL},
    ),
    "language en-US": Row(  # ISO-639-1 for both (the API rejects regional tags)
        {"model": "gpt-4o-mini-transcribe", "language": "en-US"},
        differ={"noise_reduction": NR_NULL},
    ),
}


@pytest.mark.parametrize("name", list(ROWS))
async def test_both_plugins_put_the_same_session_on_the_wire(name: str) -> None:
    row = ROWS[name]
    async with recording_server() as rec:
        common = dict(
            api_key="k", base_url=f"{rec.http_url}/v1", use_realtime=True, vad=None, **row.kwargs
        )
        ours = wire(await first_update(openai_stt.STT(**common), rec))
        theirs = wire(await first_update(official.STT(**common), rec))

    assert ours.keys() == theirs.keys()
    for key in ours:
        if key in row.differ:
            assert (ours[key], theirs[key]) == row.differ[key], f"{name}: {key}"
        else:
            assert ours[key] == theirs[key], f"{name}: {key} differs"


async def test_our_own_options_go_on_the_wire_where_the_official_has_none() -> None:
    # delay (types: "Only supported with gpt-realtime-whisper"), logprobs (`include`) and
    # noise reduction `strength` (types `NoiseReduction.strength`) have no official argument
    for name in ("delay", "logprobs", "noise_reduction_strength"):
        assert name not in inspect.signature(official.STT.__init__).parameters
    async with recording_server() as rec:
        stt = openai_stt.STT(
            model="gpt-realtime-whisper",
            api_key="k",
            base_url=f"{rec.http_url}/v1",
            delay="low",
            logprobs=True,
            noise_reduction_type="far_field",
            noise_reduction_strength=0.5,
        )
        got = wire(await first_update(stt, rec))
    assert got["transcription"] == {
        "model": "gpt-realtime-whisper",
        "language": "en",
        "delay": "low",
    }
    assert got["include"] == ["item.input_audio_transcription.logprobs"]
    assert got["noise_reduction"] == {"type": "far_field", "strength": 0.5}


# -- every official argument is accepted --------------------------------------------------------

AZURE = "https://res.openai.azure.com"

VALUES: dict[str, Any] = {
    "language": "fr",
    "detect_language": True,
    "model": "gpt-4o-transcribe",
    "prompt": "A cardiology consultation.",
    "keywords": ["LiveKit"],
    "turn_detection": {"type": "server_vad", "threshold": 0.6},
    "noise_reduction_type": "near_field",
    "temperature": 0.2,
    "base_url": "http://127.0.0.1:9/v1",
    "api_key": "k",
    "client": lambda: openai.AsyncOpenAI(api_key="k", base_url="http://127.0.0.1:9/v1"),
    "use_realtime": False,
    "vad": None,
    "azure_endpoint": AZURE,
    "azure_deployment": "my-deployment",
    "api_version": "2025-04-01-preview",
    "azure_ad_token": "entra-token",
    "azure_ad_token_provider": lambda: lambda: "entra-token",
    "organization": "org_1",
    "project": "proj_1",
    "timeout": openai.Timeout(10.0),
}
"""A sensible value for each official parameter (a callable where a fresh object is needed)."""

BASE: dict[str, dict[str, Any]] = {
    "__init__": {},
    "with_azure": {"azure_endpoint": AZURE, "api_key": "k"},
    "with_ovhcloud": {"api_key": "k"},
    "update_options": {},
}
"""What each call needs besides the parameter under test."""

DEFAULTS_DIFFER = {("__init__", "model"), ("with_azure", "model")}
"""Default model: gpt-realtime-whisper here, gpt-4o-mini-transcribe there (see the table)."""


def _value(name: str) -> Any:
    value = VALUES[name]
    return value() if callable(value) else value


def _params(method: str) -> list[inspect.Parameter]:
    signature = inspect.signature(getattr(official.STT, method))
    return [p for p in signature.parameters.values() if p.name != "self"]


@pytest.mark.parametrize("method", list(BASE))
def test_every_official_argument_is_accepted_with_the_same_default(method: str) -> None:
    ours = inspect.signature(getattr(openai_stt.STT, method)).parameters
    for param in _params(method):
        assert param.name in ours, f"{method} has no {param.name}"
        assert ours[param.name].kind is inspect.Parameter.KEYWORD_ONLY
        if (method, param.name) not in DEFAULTS_DIFFER:
            assert ours[param.name].default == param.default, f"{method}({param.name}=) default"
        kwargs = {**BASE[method], param.name: _value(param.name)}
        if method == "update_options":
            openai_stt.STT(api_key="k").update_options(**kwargs)
        elif method == "__init__":
            openai_stt.STT(**kwargs)
        else:
            getattr(openai_stt.STT, method)(**kwargs)


def test_the_official_parameter_names_are_what_this_module_covers() -> None:
    # a new official parameter needs a value in VALUES (the test above would KeyError)
    names = {p.name for method in BASE for p in _params(method)}
    assert names <= VALUES.keys(), names - VALUES.keys()


# -- client=, with_azure -------------------------------------------------------------------------


async def test_client_gives_its_key_base_url_and_headers() -> None:
    async with recording_server() as rec:
        client = openai.AsyncOpenAI(
            api_key="k",
            base_url=f"{rec.http_url}/v1",
            default_headers={"X-Custom": "1"},
            organization="org_1",
            project="proj_1",
        )
        upgrade = await first_update(openai_stt.STT(client=client), rec)
    assert upgrade.route == "/v1/realtime"
    assert upgrade.headers["Authorization"] == "Bearer k"
    assert upgrade.headers["X-Custom"] == "1"
    assert upgrade.headers["OpenAI-Organization"] == "org_1"
    assert upgrade.headers["OpenAI-Project"] == "proj_1"
    # the SDK's own telemetry headers stay behind
    assert not [k for k in upgrade.headers if k.lower().startswith("x-stainless")]


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_with_azure_calls_the_token_provider_on_every_connect(kind: str) -> None:
    calls: list[int] = []

    def sync_provider() -> str:
        calls.append(1)
        return f"entra-{len(calls)}"

    async def async_provider() -> str:
        return sync_provider()

    async with recording_server() as rec:
        stt = openai_stt.STT.with_azure(
            model="gpt-4o-transcribe",
            azure_deployment="my-deployment",
            azure_ad_token_provider=sync_provider if kind == "sync" else async_provider,
            api_version="2025-04-01-preview",
            base_url=f"{rec.http_url}/openai/v1",
        )
        assert stt._opts.session_rollover_s == 1500  # Azure ends sessions at 30 minutes
        first = await first_update(stt, rec)
        second = await first_update(stt, rec)

    assert len(calls) == 2  # once per connect, not once per STT
    assert first.headers["Authorization"] == "Bearer entra-1"
    assert second.headers["Authorization"] == "Bearer entra-2"
    assert "api-key" not in first.headers
    assert first.route == "/openai/v1/realtime"
    assert first.query["api-version"] == "2025-04-01-preview"
    assert first.query["intent"] == "transcription"
    # the deployment names the model in the session
    assert wire(first)["transcription"]["model"] == "my-deployment"


async def test_with_azure_on_an_azure_host_sends_the_api_key_header_and_no_model() -> None:
    # the real host cannot be reached here: the transport seam records the upgrade
    seen: list[tuple[str, dict[str, str]]] = []

    async def connect(url: str, headers: Mapping[str, str], timeout: float) -> Any:
        seen.append((url, dict(headers)))
        raise transport.TransportError(Classified(ErrorAction.FATAL, "recorded"))

    stt = openai_stt.STT.with_azure(
        azure_endpoint=AZURE,
        azure_deployment="my-deployment",
        api_key="azure-key",
        api_version="2025-04-01-preview",
        connect=connect,
    )
    stream = stt.stream()
    with contextlib.suppress(Exception):
        async for _ in stream:
            pass
    await stt.aclose()
    url, headers = seen[0]
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("wss", "res.openai.azure.com",
                                                       "/openai/v1/realtime")  # fmt: skip
    assert dict(parse_qsl(parts.query)) == {
        "intent": "transcription",
        "api-version": "2025-04-01-preview",
    }
    assert headers["api-key"] == "azure-key"
    assert "Authorization" not in headers


async def test_with_azure_keeps_azure_rules_on_a_custom_endpoint_host() -> None:
    # An Azure resource behind a custom domain (API Management, a private DNS name): with_azure
    # says the endpoint is Azure, and its docstring promises the `api-key` header for a key.
    # Azure answers `?model=` on /openai/v1/realtime with HTTP 400 (docs/protocol.md §1).
    async with recording_server() as rec:
        stt = openai_stt.STT.with_azure(
            azure_endpoint=rec.http_url,
            azure_deployment="my-deployment",
            api_key="azure-key",
            api_version="2025-04-01-preview",
        )
        upgrade = await first_update(stt, rec)
    assert (upgrade.route, upgrade.query, upgrade.headers.get("api-key")) == (
        "/openai/v1/realtime",
        {"intent": "transcription", "api-version": "2025-04-01-preview"},
        "azure-key",
    )


# -- HTTP transcription: use_realtime=False, with_ovhcloud ---------------------------------------


@dataclass
class HttpRequest:
    path: str
    headers: Mapping[str, str]
    form: dict[str, str]
    file: bytes


@contextlib.asynccontextmanager
async def transcription_server(text: str) -> AsyncIterator[tuple[str, list[HttpRequest]]]:
    """``POST /v1/audio/transcriptions`` answering ``{"text": text}``; yields the base URL
    and the requests received (multipart fields as text, the file's bytes)."""
    got: list[HttpRequest] = []

    async def transcribe(request: web.Request) -> web.Response:
        form = await request.post()
        fields = {k: str(v) for k, v in form.items() if not isinstance(v, web.FileField)}
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        got.append(HttpRequest(request.path, dict(request.headers), fields, upload.file.read()))
        return web.json_response({"text": text})

    app = web.Application()
    app.router.add_post("/v1/audio/transcriptions", transcribe)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/v1", got
    finally:
        await runner.cleanup()


async def test_use_realtime_false_recognizes_over_http_with_temperature() -> None:
    kwargs = dict(
        model="gpt-4o-transcribe",
        language="fr",
        prompt="A cardiology consultation.",
        temperature=0.3,
        use_realtime=False,
        api_key="k",
    )
    async with transcription_server("bonjour tout le monde") as (url, got):
        ours = openai_stt.STT(base_url=url, **kwargs)
        theirs = official.STT(base_url=url, **kwargs)
        assert ours.capabilities.streaming is False
        assert ours.capabilities.interim_results is False
        assert theirs.capabilities.streaming is False
        event = await ours.recognize(frames(0.5))
        await theirs.recognize(frames(0.5))
        await ours.aclose()
        await theirs.aclose()

    assert event.type is lk_stt.SpeechEventType.FINAL_TRANSCRIPT
    assert event.alternatives[0].text == "bonjour tout le monde"
    assert event.alternatives[0].language == "fr"
    ours_request, theirs_request = got
    assert ours_request.path == "/v1/audio/transcriptions"
    assert ours_request.headers["Authorization"] == "Bearer k"
    assert ours_request.form == {
        "model": "gpt-4o-transcribe",
        "language": "fr",
        "prompt": "A cardiology consultation.",
        "temperature": "0.3",
        "response_format": "json",
    }
    assert ours_request.form == theirs_request.form  # the same request as the official's
    assert ours_request.file[:4] == b"RIFF"


async def test_with_ovhcloud_recognizes_over_http() -> None:
    async with transcription_server("hello") as (url, got):
        stt = openai_stt.STT.with_ovhcloud(api_key="ovh-key", base_url=url)
        assert stt.capabilities.streaming is False
        event = await stt.recognize(frames(0.3))
        await stt.aclose()
    assert event.alternatives[0].text == "hello"
    assert got[0].headers["Authorization"] == "Bearer ovh-key"
    assert got[0].form["model"] == "whisper-large-v3-turbo"
    assert got[0].form["language"] == "en"


# -- update_options on an open stream clears what it clears in the official plugin --------------


CLEARS: dict[str, tuple[dict[str, Any], dict[str, Any], Callable[[dict[str, Any]], Any]]] = {
    # the official sends `keywords: []` (it always sends keywords to these models)
    "keywords=[]": (
        {"model": "gpt-live-transcribe", "keywords": ["LiveKit"]},
        {"keywords": []},
        lambda tr: tr.get("keywords"),
    ),
    # the official sends `prompt: ""`
    'prompt=""': (
        {"model": "gpt-4o-transcribe", "prompt": "A cardiology consultation."},
        {"prompt": ""},
        lambda tr: tr.get("prompt"),
    ),
    # the official reconnects: "a session.update can set a language but never clear one"
    "detect_language=True": (
        {"model": "gpt-4o-transcribe", "language": "fr"},
        {"detect_language": True},
        lambda tr: tr.get("language"),
    ),
}


@pytest.mark.parametrize("name", list(CLEARS))
async def test_update_options_clears_the_option_on_an_open_stream(name: str) -> None:
    # A field left out of a session.update keeps its value (GA semantics; the local server and
    # the official plugin's comments agree), so clearing must send the cleared value or
    # reconnect. The server's session.updated shows the effective session.
    kwargs, change, read = CLEARS[name]
    received: list[dict[str, Any]] = []
    server = LocalRealtimeServer(engine="scripted", port=None)
    async with server:
        stt = openai_stt.STT(
            base_url="http://127.0.0.1:9/v1",
            api_key="k",
            connect=recording_connect(server, received),
            **kwargs,
        )
        stream = stt.stream()

        def effective() -> dict[str, Any]:
            updated = [e for e in received if e["type"] == "session.updated"]
            return updated[-1]["session"]["audio"]["input"]["transcription"]

        try:
            for frame in frames(0.2):
                stream.push_frame(frame)
            await until(lambda: any(e["type"] == "session.updated" for e in received))
            assert read(effective())  # set at first
            before = len(received)
            stt.update_options(**change)
            for frame in frames(0.2):
                stream.push_frame(frame)
            await until(lambda: any(e["type"] == "session.updated" for e in received[before:]), 3)
        finally:
            await stream.aclose()
            await stt.aclose()
    assert not read(effective()), f"update_options({name}) left {effective()} on the server"


def test_the_default_server_vad_is_the_official_one() -> None:
    assert DEFAULT_SERVER_VAD == OFFICIAL_VAD
