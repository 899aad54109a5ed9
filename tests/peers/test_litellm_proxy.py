"""A real LiteLLM proxy (1.108.7) routes this plugin to the local server.

The proxy is LiteLLM's own CLI (``litellm --config litellm_config.yaml --port <free port>``) in a
subprocess, started once for the module and stopped at its end; it runs from its own virtual
environment (:func:`support.litellm_bin`: ``litellm[proxy]`` pins ``websockets<16``, this
project's venv has 17). Its model list routes ``gpt-realtime-whisper``, ``gpt-4o-transcribe``
and the alias ``my-stt`` to one upstream port, where each test starts the local server it needs
(the engine, the compat mode, the faults). The plugin connects as to any gateway:
``ws://127.0.0.1:<proxy>/v1/realtime?intent=transcription&model=<model>`` with the proxy's
master key.

What LiteLLM 1.108.7 does on this path (read in ``litellm/proxy/proxy_server.py``,
``litellm/llms/openai/realtime/handler.py`` and seen here):

- upstream URL ``<api_base>/realtime?model=<deployment model>&intent=transcription`` (the
  model is dropped only for api.openai.com hosts), ``Authorization: Bearer <api_key>``; of the
  client's headers only ``OpenAI-Beta`` is passed on;
- the ``session.update``'s transcription model is rewritten to the deployment's model;
- a bad key: the upgrade is refused with HTTP 403 and an empty body (the reason is only in the
  proxy's log); an unknown model: accepted, then an ``error`` event (type ``server_error``,
  LiteLLM's message) and close 1011;
- an upstream drop: an ``error`` event (type ``server_error``, "upstream websocket closed with
  code 1011: …") and a close, which the plugin retries like any drop;
- at start it asks each ``api_base`` for ``GET /v1/models`` (the local server answers 404).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Template
from typing import Any

import pytest
from livekit.agents import APIError, APIStatusError
from livekit.agents import stt as lk_stt
from livekit.plugins import openai_stt

from benchmarks.clips import clip_frames, turn_boundaries
from examples.evaluation import DEMO_REFERENCE, word_error_rate
from livekit.plugins.openai_stt import transport
from livekit.plugins.openai_stt.server import Faults, LocalRealtimeServer
from tests.helpers import collect, push_with_flushes, run_turns
from tests.peers.support import PINNED, free_ports, litellm_bin, peers_required

pytestmark = pytest.mark.peers

CONFIG_TEMPLATE = Path(__file__).with_name("litellm_config.yaml")
MASTER_KEY = "sk-peers-master-key"
UPSTREAM_KEY = "peers-upstream-key"
STARTUP_TIMEOUT_S = 90.0
FINAL = lk_stt.SpeechEventType.FINAL_TRANSCRIPT


@dataclass(frozen=True)
class Proxy:
    base_url: str
    upstream_port: int
    version: str
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/liveliness", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """The LiteLLM proxy, answering its health route; stopped (its process only) at the end."""
    exe = litellm_bin()
    if exe is None:
        reason = (
            "the litellm CLI is not installed: pip install 'litellm[proxy]==1.108.7' in its own "
            "venv at .venv/litellm (the Makefile does), or set LITELLM_BIN"
        )
        if peers_required():
            pytest.fail(reason)
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("litellm")
    upstream_port, port = free_ports(2)
    config = folder / "litellm.yaml"
    config.write_text(
        Template(CONFIG_TEMPLATE.read_text()).substitute(
            upstream=f"http://127.0.0.1:{upstream_port}/v1",
            upstream_key=UPSTREAM_KEY,
            master_key=MASTER_KEY,
        )
    )
    python = exe.parent / "python"  # the interpreter of LiteLLM's own venv
    version = "unknown"
    if python.exists():
        version = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "LITELLM_MASTER_KEY")}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # offline: the bundled cost map, no download
    log = folder / "litellm.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(exe), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=folder,
        )
    running = Proxy(f"http://127.0.0.1:{port}/v1", upstream_port, version, log)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _healthy(port):
            if process.poll() is not None:
                pytest.fail(f"litellm exited with {process.returncode}:\n{running.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"litellm not healthy after {STARTUP_TIMEOUT_S} s:\n{running.log_tail()}"
                )
            time.sleep(0.2)
        yield running
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class Wire:
    """A ``connect`` for ``STT(connect=...)`` over the real transport that counts the attempts
    and records what each side sent (JSON)."""

    def __init__(self) -> None:
        self.attempts = 0
        self.urls: list[str] = []
        self.sent: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []

    async def connect(
        self, url: str, headers: Mapping[str, str], timeout: float
    ) -> transport.Connection:
        self.attempts += 1
        self.urls.append(url)
        conn = await transport.connect(url, headers, timeout)
        wire = self

        class Conn:
            async def send(self, message: str | bytes) -> None:
                text = message.decode() if isinstance(message, bytes) else message
                wire.sent.append(json.loads(text))
                await conn.send(message)

            async def recv(self) -> str:
                text = await conn.recv()
                wire.received.append(json.loads(text))
                return text

            async def aclose(self) -> None:
                await conn.aclose()

        return Conn()

    def received_of(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.received if e.get("type") == type_]

    def sent_types(self) -> list[str]:
        return [e["type"] for e in self.sent]


def plugin(proxy: Proxy, model: str, wire: Wire | None = None, **options: Any) -> openai_stt.STT:
    connect = wire.connect if wire is not None else None
    return openai_stt.STT(
        base_url=proxy.base_url, api_key=MASTER_KEY, model=model, connect=connect, **options
    )


def upstream(proxy: Proxy, **options: Any) -> LocalRealtimeServer:
    return LocalRealtimeServer(port=proxy.upstream_port, api_key=UPSTREAM_KEY, **options)


def test_the_pinned_litellm_is_the_one_running(proxy: Proxy) -> None:
    assert proxy.version == PINNED["litellm"], "the findings above were made with this one"


@pytest.mark.parametrize("compat", ["lenient", "gateway"])
async def test_a_flush_gives_a_final_through_the_proxy(proxy: Proxy, compat: str) -> None:
    """Two flushed turns, each one final: the scripted engine names the seconds it got, so the
    audio crossed the proxy to the sample. ``gateway`` closes a socket without ``?model=``:
    LiteLLM passes the model on."""
    async with upstream(proxy, engine="scripted", compat=compat):
        events = await run_turns(plugin(proxy, "gpt-realtime-whisper"), [1.5, 2.25])
    finals = [e.alternatives[0].text for e in events if e.type == FINAL]
    assert finals == ["1.50 seconds of audio", "2.25 seconds of audio"]


async def test_an_alias_routes_to_its_deployment(proxy: Proxy) -> None:
    """``my-stt`` exists only in the proxy's model list: the proxy routes it, and rewrites the
    session's transcription model to the deployment's (a lenient server would echo any name)."""
    wire = Wire()
    async with upstream(proxy, engine="scripted"):
        events = await run_turns(plugin(proxy, "my-stt", wire), [1.5])
    assert [e.alternatives[0].text for e in events if e.type == FINAL] == ["1.50 seconds of audio"]
    assert wire.sent[0]["session"]["audio"]["input"]["transcription"]["model"] == "my-stt"
    (updated,) = wire.received_of("session.updated")
    assert updated["session"]["audio"]["input"]["transcription"]["model"] == "gpt-realtime-whisper"


async def test_server_vad_gives_finals_at_the_pauses_of_real_speech(
    proxy: Proxy, demo_clip: Path, record_property: pytest.RecordProperty
) -> None:
    """``gpt-4o-transcribe`` (server VAD, the plugin's default for it): the first ~10.5 s of the
    demo clip and a second of silence, pushed at once with no flush; the server's VAD commits
    at the speaker's pauses, through the proxy, and the finals carry the words."""
    speech_s = [
        b
        for b in turn_boundaries(demo_clip, min_pause_s=0.3, min_turn_s=1.0, seconds=12.0)
        if b < 11.0
    ][-1]
    reference = " ".join(DEMO_REFERENCE.split()[:30])  # "... it was the epoch of belief,"
    wire = Wire()
    finals: list[str] = []
    async with upstream(proxy, engine="whisper"):
        stream = plugin(proxy, "gpt-4o-transcribe", wire).stream()
        try:
            for frame in clip_frames(demo_clip, speech_s):
                stream.push_frame(frame)
            for frame in _silence(1.0):
                stream.push_frame(frame)

            async def read() -> None:
                async for event in stream:
                    if event.type == FINAL:
                        finals.append(event.alternatives[0].text)

            reader = asyncio.create_task(read())
            deadline = time.monotonic() + 30
            while word_error_rate(reference, " ".join(finals)) > 0.1:
                assert not reader.done(), reader.exception()
                assert time.monotonic() < deadline, finals
                await asyncio.sleep(0.05)
            commits_before_end = wire.sent_types().count("input_audio_buffer.commit")
            at_pauses = list(finals)
            stream.end_input()
            await asyncio.wait_for(reader, 20)
        finally:
            await stream.aclose()
    record_property("finals", finals)
    record_property("wer", round(word_error_rate(reference, " ".join(at_pauses)), 4))
    assert commits_before_end == 0  # the finals came from the server's VAD, not from the client
    assert len(wire.received_of("input_audio_buffer.speech_stopped")) >= 3, finals
    assert len(at_pauses) >= 3, finals
    td = wire.sent[0]["session"]["audio"]["input"]["turn_detection"]
    assert td["type"] == "server_vad"


def _silence(seconds: float) -> list[Any]:
    from livekit import rtc

    n = 480
    return [rtc.AudioFrame(bytes(2 * n), 48000, 1, n) for _ in range(round(seconds * 100))]


async def test_an_upstream_drop_loses_no_words(
    proxy: Proxy, demo_clip: Path, record_property: pytest.RecordProperty
) -> None:
    """The local server drops its socket to the proxy once 17 s of audio came in (mid-turn);
    the proxy reports it (``error`` ``server_error``) and closes; the plugin reconnects through
    the proxy and replays the turns without a final: every turn gets one final, and the words
    are all there."""
    turns = turn_boundaries(demo_clip)
    wire = Wire()
    async with upstream(
        proxy, engine="whisper", faults=Faults(drop_after_audio_ms=17000)
    ) as server:
        stream = plugin(proxy, "gpt-realtime-whisper", wire).stream()
        try:
            push_with_flushes(stream, clip_frames(demo_clip, frame_ms=100), turns[:-1])
            events = await asyncio.wait_for(collect(stream), 60)
        finally:
            await stream.aclose()
        counters = server.counters
    finals = [e.alternatives[0].text for e in events if e.type == FINAL]
    wer = word_error_rate(DEMO_REFERENCE, " ".join(finals))
    record_property("wer", round(wer, 4))
    assert counters.drops == 1 and counters.sessions_opened == 2, counters
    (error,) = wire.received_of("error")
    assert error["error"]["type"] == "server_error"
    assert "upstream websocket closed with code 1011" in error["error"]["message"]
    assert wire.attempts == 2
    assert len(finals) == len(turns), finals
    assert wer <= 0.05, (wer, finals)


async def test_a_bad_key_fails_at_once_and_for_good(proxy: Proxy) -> None:
    """LiteLLM refuses the upgrade with HTTP 403 and an empty body: the plugin fails on the
    first attempt (no retry, whatever ``max_retry``), non-retryably, naming the status."""
    wire = Wire()
    stt = openai_stt.STT(
        base_url=proxy.base_url,
        api_key="sk-not-the-key",
        model="gpt-realtime-whisper",
        connect=wire.connect,
    )
    started = time.monotonic()
    with pytest.raises(APIStatusError) as caught:
        await run_turns(stt, [1.0])
    assert time.monotonic() - started < 5
    assert wire.attempts == 1
    assert caught.value.status_code == 403
    assert caught.value.retryable is False
    assert "403" in caught.value.message


async def test_an_unknown_model_fails_at_once_with_the_proxys_message(proxy: Proxy) -> None:
    """A model the proxy does not list: the upgrade succeeds, then LiteLLM sends an ``error``
    (``server_error``) with its own message and closes 1011; the plugin fails at once with that
    message, non-retryably."""
    wire = Wire()
    with pytest.raises(APIError) as caught:
        await run_turns(plugin(proxy, "no-such-model", wire), [1.0])
    assert wire.attempts == 1
    assert caught.value.retryable is False
    assert "Invalid model name passed in model=no-such-model" in caught.value.message


async def test_behind_the_proxy_the_openai_compat_mode_refuses_the_model_on_the_url(
    proxy: Proxy,
) -> None:
    """LiteLLM keeps ``?model=`` on the upstream URL for every host but api.openai.com (it
    takes them for gateways), and ``--compat openai`` answers a URL model as OpenAI does:
    ``invalid_model``. So behind LiteLLM the local server must run ``lenient`` or
    ``gateway``."""
    async with upstream(proxy, engine="scripted", compat="openai"):
        with pytest.raises(APIError) as caught:
            await run_turns(plugin(proxy, "gpt-realtime-whisper"), [1.0])
    assert caught.value.retryable is False
    assert "invalid_model" in caught.value.message


async def test_without_the_model_on_the_url_the_proxy_serves_gpt_realtime_whisper(
    proxy: Proxy,
) -> None:
    """``include_model_in_url=False`` (as for OpenAI itself): LiteLLM routes
    ``intent=transcription`` to its ``gpt-realtime-whisper`` entry and rewrites the session's
    model to it, so a ``gpt-4o-transcribe`` session with server VAD reaches the server as
    ``gpt-realtime-whisper`` with server VAD, which is refused (``unsupported_turn_detection``,
    as OpenAI does; issue 12 saw it hang instead): the plugin fails at once."""
    wire = Wire()
    async with upstream(proxy, engine="scripted"):
        with pytest.raises(APIError) as caught:
            await run_turns(
                plugin(proxy, "gpt-4o-transcribe", wire, include_model_in_url=False), [1.0]
            )
    assert "model=" not in wire.urls[0]
    assert (
        wire.sent[0]["session"]["audio"]["input"]["transcription"]["model"] == "gpt-4o-transcribe"
    )
    assert caught.value.retryable is False
    assert "unsupported_turn_detection" in caught.value.message
    assert wire.attempts == 1
