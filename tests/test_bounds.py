"""Every wait is bounded: silent, never-acknowledging and non-reading servers end the stream
with a non-retryable error after ``conn_options.max_retry`` fruitless attempts, whatever the
relation between our deadlines and ``conn_options.timeout`` (LiveKit's own count restarts
after any attempt longer than that timeout). Options are validated on construction, and no
credential leaks into ``url``, ``repr``, errors or a DEBUG log."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from typing import Any

import pytest
from livekit.agents import APIConnectOptions, APIError
from livekit.plugins import openai_stt

from livekit.plugins.openai_stt import transport
from livekit.plugins.openai_stt.server import Faults, LocalRealtimeServer
from tests.helpers import collect, frames

# attempts last longer than `timeout`, so LiveKit's own retry count restarts after each
SHORT = APIConnectOptions(max_retry=3, retry_interval=0.01, timeout=0.1)


class Silent:
    """The transport seam: a server that accepts, reads, and never answers; with
    ``stop_reading_after``, it stops reading after that many messages (sends then hang)."""

    def __init__(self, stop_reading_after: int | None = None) -> None:
        self.connects = 0
        self.stop_reading_after = stop_reading_after

    async def connect(
        self, url: str, headers: Mapping[str, str], timeout: float
    ) -> transport.Connection:
        self.connects += 1
        limit = self.stop_reading_after
        received = [0]

        class Conn:
            async def send(self, message: str | bytes) -> None:
                received[0] += 1
                if limit is not None and received[0] > limit:
                    await asyncio.Event().wait()  # the server stopped reading

            async def recv(self) -> str:
                await asyncio.Event().wait()
                raise AssertionError("unreachable")

            async def aclose(self) -> None:
                pass

        return Conn()


async def _stream_until_it_fails(stt: openai_stt.STT, seconds_of_audio: float) -> APIError:
    stream = stt.stream(conn_options=SHORT)
    try:
        for frame in frames(seconds_of_audio):
            stream.push_frame(frame)
        stream.flush()
        with pytest.raises(APIError) as info:
            await asyncio.wait_for(collect(stream), 30)
        return info.value
    finally:
        await stream.aclose()


async def test_a_server_that_never_acknowledges_a_commit_ends_the_stream() -> None:
    silent = Silent()
    stt = openai_stt.STT(
        base_url="http://127.0.0.1:9/v1", api_key="t", final_timeout_s=0.2, connect=silent.connect
    )
    error = await _stream_until_it_fails(stt, 0.3)
    assert not error.retryable and "no progress after 4 attempts" in str(error)
    assert silent.connects == SHORT.max_retry + 1


async def test_a_server_that_stops_reading_ends_the_stream() -> None:
    silent = Silent(stop_reading_after=2)  # the session.update and one append, then nothing
    stt = openai_stt.STT(base_url="http://127.0.0.1:9/v1", api_key="t", connect=silent.connect)
    error = await _stream_until_it_fails(stt, 1.0)
    assert not error.retryable and "stopped reading" in str(error)
    assert silent.connects == SHORT.max_retry + 1


async def test_a_handshake_that_never_completes_ends_the_stream() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(30)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        stt = openai_stt.STT(base_url=f"http://127.0.0.1:{port}/v1", api_key="t")
        error = await _stream_until_it_fails(stt, 0.3)
    finally:
        server.close()
    assert not error.retryable and "timed out" in str(error)


async def test_progress_resets_the_count_of_fruitless_attempts() -> None:
    # a server dropping each session after some audio: every attempt acknowledges a commit
    faults = Faults(drop_after_audio_ms=600, drop_sessions=6)
    async with LocalRealtimeServer(engine="scripted", faults=faults, port=0) as server:
        stt = openai_stt.STT(base_url=server.base_url, api_key="t")
        stream = stt.stream(conn_options=SHORT)
        for _ in range(8):  # in real time: each session outlives SHORT.timeout
            for frame in frames(0.3):
                stream.push_frame(frame)
            stream.flush()
            await asyncio.sleep(0.3)
        stream.end_input()
        events = await asyncio.wait_for(collect(stream), 30)
        await stream.aclose()
    assert server.counters.drops == 6  # more drops than max_retry, and no failure
    assert len([e for e in events if e.type.value == "final_transcript"]) == 8


# -- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("session_rollover_s", math.nan),
        ("session_rollover_s", 0.001),
        ("final_timeout_s", math.nan),
        ("final_timeout_s", math.inf),
        ("chunk_ms", 10.5),
        ("chunk_ms", True),
        ("max_item_s", math.nan),
        ("max_item_s", math.inf),
        ("max_queued_audio_s", math.nan),
        ("max_queued_audio_s", math.inf),
        ("keywords", "hello"),
        ("languages", "en"),
        ("languages", ["en", 3]),
        ("base_url", "http://gateway example.com/v1"),
        ("base_url", "http://gateway.example.com/v\x001"),
    ],
)
def test_options_are_validated_on_construction_naming_the_option(option: str, value: Any) -> None:
    with pytest.raises(ValueError) as info:
        openai_stt.STT(api_key="k", **{option: value})
    name = "base URL" if option == "base_url" else option
    assert name in str(info.value)


# -- credentials -------------------------------------------------------------------------------

SECRETS = ["sk-KEY-0001", "HDR-SECRET-0002", "QRY-SECRET-0003", "URLQ-SECRET-0004"]


def _with_every_credential(base_url: str) -> openai_stt.STT:
    host = base_url.replace("http://", "")
    return openai_stt.STT(
        base_url=f"http://{host}?key={SECRETS[3]}",
        api_key=SECRETS[0],
        extra_headers={"Ocp-Apim-Subscription-Key": SECRETS[1], "x-goog-api-key": SECRETS[1]},
        extra_query={"api_key": SECRETS[2]},
    )


def test_no_credential_in_url_or_repr() -> None:
    stt = _with_every_credential("http://127.0.0.1:8000/v1")
    for secret in SECRETS:
        assert secret not in stt.url and secret not in repr(stt)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base_url": "http://user:pw@gateway.example.com/v1"},
        {"base_url": "http://gateway.example.com/v1?api_key=s"},
        {"base_url": "http://gateway.example.com/v1", "extra_headers": {"x-goog-api-key": "s"}},
        {"base_url": "http://gateway.example.com/v1", "extra_query": {"token": "s"}},
        {"base_url": "http://gateway.example.com/v1", "api_key": "s"},
    ],
)
def test_every_credential_is_refused_over_remote_plaintext(kwargs: dict[str, Any]) -> None:
    kwargs.setdefault("api_key", "")
    with pytest.raises(ValueError, match="allow_insecure"):
        openai_stt.STT(**kwargs)
    openai_stt.STT(**kwargs, allow_insecure=True)


def test_credentials_in_the_url_and_an_api_key_are_not_both_sent() -> None:
    with pytest.raises(ValueError, match="not both"):
        openai_stt.STT(base_url="https://user:pw@gateway.example.com/v1", api_key="k")


async def test_an_invalid_uri_is_classified_without_showing_the_url() -> None:
    with pytest.raises(transport.TransportError) as info:
        await transport.connect("ws://user:SECRET@[::1/realtime?key=SECRET", {}, 1.0)
    assert "SECRET" not in str(info.value) and not info.value.classified.retryable


async def test_a_debug_capture_of_a_failing_session_holds_no_credential(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    faults = Faults(drop_after_audio_ms=200, drop_sessions=10)
    async with LocalRealtimeServer(engine="scripted", faults=faults, port=0) as server:
        stt = _with_every_credential(server.base_url)
        stream = stt.stream(conn_options=APIConnectOptions(max_retry=1, retry_interval=0.01))
        for frame in frames(0.5):
            stream.push_frame(frame)
        stream.end_input()
        with pytest.raises(APIError) as info:
            await asyncio.wait_for(collect(stream), 20)
        await stream.aclose()
    assert caplog.records
    for secret in SECRETS:
        leaks = [r for r in caplog.records if secret in f"{r.getMessage()} {r.__dict__}"]
        assert not leaks, (secret, [(r.name, r.getMessage()) for r in leaks])
        assert secret not in str(info.value) and secret not in repr(info.value)


@pytest.mark.parametrize(
    ("pause_s", "final_timeout_s", "connects"),
    [
        (0.3, 5.0, 1),  # a short stall: the finals come late, on the same socket
        (1.5, 0.5, 2),  # longer than final_timeout_s: a new socket, the turns replayed
    ],
)
async def test_a_server_that_pauses_reading_loses_no_turn(
    pause_s: float, final_timeout_s: float, connects: int
) -> None:
    from tests.helpers import Recorder, finals, memory_connect, run_turns

    faults = Faults(pause_reading_after_audio_ms=300, pause_reading_s=pause_s)
    recorder = Recorder()
    async with LocalRealtimeServer(engine="scripted", faults=faults, port=None) as server:
        recorder.inner = memory_connect(server)
        stt = openai_stt.STT(
            base_url="http://127.0.0.1:9/v1",
            api_key="t",
            final_timeout_s=final_timeout_s,
            connect=recorder.connect,
        )
        events = await run_turns(stt, [0.5, 0.5, 0.5])
        assert server.counters.read_pauses == 1
    assert finals(events) == ["0.50 seconds of audio"] * 3
    assert recorder.connects == connects
