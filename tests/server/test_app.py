"""The local server over a real socket: a raw ``websockets`` client, port 0, scripted engine."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from livekit.plugins.openai_stt.server import Faults, LocalRealtimeServer, ScriptedEngine
from livekit.plugins.openai_stt.server.engines import decode_wire_audio, wire_to_float32

AUTH = {"Authorization": "Bearer test-key"}
TIMEOUT = 5.0


def pcm(ms: float, rate: int = 24000) -> bytes:
    n = int(rate * ms / 1000)
    t = np.arange(n) / rate
    return (np.sin(2 * np.pi * 220 * t) * 8000).astype("<i2").tobytes()


def append_event(audio: bytes) -> str:
    encoded = base64.b64encode(audio).decode()
    return json.dumps({"type": "input_audio_buffer.append", "audio": encoded})


async def recv(ws: ClientConnection) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def recv_until(ws: ClientConnection, type_: str) -> list[dict[str, Any]]:
    events = []
    while True:
        events.append(await recv(ws))
        if events[-1]["type"] == type_:
            return events


async def closed(ws: ClientConnection) -> ConnectionClosed:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
    return info.value


@pytest.fixture
async def server() -> AsyncIterator[LocalRealtimeServer]:
    async with LocalRealtimeServer(engine="scripted") as srv:
        yield srv


def ws_url(srv: LocalRealtimeServer, query: str = "?intent=transcription") -> str:
    return srv.base_url.replace("http://", "ws://") + "/realtime" + query


async def test_base_url_is_http_v1_on_the_bound_port(server: LocalRealtimeServer) -> None:
    assert server.port > 0
    assert server.base_url == f"http://127.0.0.1:{server.port}/v1"


async def test_session_created_then_update_answers_updated_with_the_effective_config(
    server: LocalRealtimeServer,
) -> None:
    async with connect(ws_url(server), additional_headers=AUTH) as ws:
        created = await recv(ws)
        assert created["type"] == "session.created"
        await ws.send(
            json.dumps(
                {
                    "type": "session.update",
                    "session": {
                        "type": "transcription",
                        "audio": {
                            "input": {
                                "transcription": {"model": "gpt-4o-transcribe", "language": "en"}
                            }
                        },
                    },
                }
            )
        )
        updated = await recv(ws)
        assert updated["type"] == "session.updated"
        tr = updated["session"]["audio"]["input"]["transcription"]
        assert tr == {"model": "gpt-4o-transcribe", "language": "en", "prompt": None}
        fmt = updated["session"]["audio"]["input"]["format"]
        assert fmt == {"type": "audio/pcm", "rate": 24000}


async def test_append_and_commit_give_committed_then_deltas_then_completed() -> None:
    async with LocalRealtimeServer(engine=ScriptedEngine(["And so my fellow Americans"])) as srv:
        async with connect(ws_url(srv), additional_headers=AUTH) as ws:
            await recv(ws)
            for _ in range(5):
                await ws.send(append_event(pcm(200)))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            events = await recv_until(ws, "conversation.item.input_audio_transcription.completed")
    kinds = [e["type"] for e in events]
    assert kinds[0] == "input_audio_buffer.committed"
    assert kinds[1:-1] == ["conversation.item.input_audio_transcription.delta"] * 5
    item_id = events[0]["item_id"]
    assert all(e["item_id"] == item_id for e in events)
    assert "".join(e["delta"] for e in events[1:-1]) == "And so my fellow Americans"
    assert events[-1]["transcript"] == "And so my fellow Americans"
    assert events[-1]["usage"] == {"type": "duration", "seconds": 1.0}


async def test_default_scripted_text_describes_the_item_length(server: LocalRealtimeServer) -> None:
    async with connect(ws_url(server), additional_headers=AUTH) as ws:
        await recv(ws)
        await ws.send(append_event(pcm(1500)))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        events = await recv_until(ws, "conversation.item.input_audio_transcription.completed")
    assert events[-1]["transcript"] == "1.50 seconds of audio"


async def test_items_of_one_session_complete_in_commit_order(server: LocalRealtimeServer) -> None:
    async with connect(ws_url(server), additional_headers=AUTH) as ws:
        await recv(ws)
        for ms in (300, 600, 900):
            await ws.send(append_event(pcm(ms)))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        completed, committed = [], []
        while len(completed) < 3:
            event = await recv(ws)
            if event["type"].endswith(".completed"):
                completed.append(event)
            elif event["type"] == "input_audio_buffer.committed":
                committed.append(event["item_id"])
    assert [c["item_id"] for c in completed] == committed and len(set(committed)) == 3
    assert [c["transcript"] for c in completed] == [
        "0.30 seconds of audio",
        "0.60 seconds of audio",
        "0.90 seconds of audio",
    ]


async def test_commit_with_under_100ms_is_a_nonfatal_commit_empty_error(
    server: LocalRealtimeServer,
) -> None:
    async with connect(ws_url(server), additional_headers=AUTH) as ws:
        await recv(ws)
        await ws.send(append_event(pcm(50)))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit", "event_id": "evt_c"}))
        error = await recv(ws)
        assert error["error"]["code"] == "input_audio_buffer_commit_empty"
        assert error["error"]["event_id"] == "evt_c"
        await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
        assert (await recv(ws))["type"] == "input_audio_buffer.cleared"


async def test_malformed_json_gets_an_error_and_the_session_goes_on(
    server: LocalRealtimeServer,
) -> None:
    async with connect(ws_url(server), additional_headers=AUTH) as ws:
        await recv(ws)
        await ws.send("{oops")
        assert (await recv(ws))["error"]["type"] == "invalid_request_error"
        await ws.send(json.dumps({"type": "input_audio_buffer.clear"}))
        assert (await recv(ws))["type"] == "input_audio_buffer.cleared"


async def test_missing_or_wrong_credentials_get_http_401() -> None:
    async with LocalRealtimeServer(engine="scripted", api_key="sk-right") as srv:
        for headers in ({}, {"Authorization": "Bearer sk-wrong"}):
            with pytest.raises(InvalidStatus) as info:
                async with connect(ws_url(srv), additional_headers=headers):
                    pass
            assert info.value.response.status_code == 401
        async with connect(ws_url(srv), additional_headers={"api-key": "sk-right"}) as ws:
            assert (await recv(ws))["type"] == "session.created"


async def test_health_answers_200_ok(server: LocalRealtimeServer) -> None:
    url = f"http://127.0.0.1:{server.port}/health"
    status, body = await asyncio.to_thread(
        lambda: (lambda r: (r.status, r.read()))(urllib.request.urlopen(url, timeout=TIMEOUT))
    )
    assert status == 200 and body.strip() == b"ok"


async def test_path_without_v1_is_accepted_too(server: LocalRealtimeServer) -> None:
    async with connect(f"ws://127.0.0.1:{server.port}/realtime", additional_headers=AUTH) as ws:
        assert (await recv(ws))["type"] == "session.created"


async def test_openai_compat_model_query_gives_invalid_model_then_close_4000() -> None:
    async with LocalRealtimeServer(engine="scripted", compat="openai") as srv:
        url = ws_url(srv, "?intent=transcription&model=gpt-realtime-whisper")
        async with connect(url, additional_headers=AUTH) as ws:
            await recv(ws)
            await ws.send(
                json.dumps({"type": "session.update", "session": {"type": "transcription"}})
            )
            error = await recv(ws)
            assert error["error"]["code"] == "invalid_model"
            exc = await closed(ws)
    assert exc.rcvd is not None and exc.rcvd.code == 4000


async def test_openai_compat_beta_header_closes_4000_beta_api_shape_disabled() -> None:
    async with LocalRealtimeServer(engine="scripted", compat="openai") as srv:
        headers = {**AUTH, "OpenAI-Beta": "realtime=v1"}
        async with connect(ws_url(srv), additional_headers=headers) as ws:
            exc = await closed(ws)
    assert exc.rcvd is not None
    assert (exc.rcvd.code, exc.rcvd.reason) == (4000, "beta_api_shape_disabled")


async def test_gateway_compat_without_model_query_closes_1008() -> None:
    async with LocalRealtimeServer(engine="scripted", compat="gateway") as srv:
        async with connect(ws_url(srv), additional_headers=AUTH) as ws:
            exc = await closed(ws)
        assert exc.rcvd is not None
        assert (exc.rcvd.code, exc.rcvd.reason) == (1008, "model query parameter is required")
        url = ws_url(srv, "?model=gpt-realtime-whisper")
        async with connect(url, additional_headers=AUTH) as ws:
            assert (await recv(ws))["type"] == "session.created"


async def test_drop_fault_closes_1011_once_then_a_reconnect_succeeds() -> None:
    async with LocalRealtimeServer(
        engine="scripted", faults=Faults(drop_after_audio_ms=300)
    ) as srv:
        async with connect(ws_url(srv), additional_headers=AUTH) as ws:
            await recv(ws)
            for _ in range(4):
                await ws.send(append_event(pcm(100)))
            exc = await closed(ws)
        assert exc.rcvd is not None and exc.rcvd.code == 1011
        async with connect(ws_url(srv), additional_headers=AUTH) as ws:
            await recv(ws)
            await ws.send(append_event(pcm(500)))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            events = await recv_until(ws, "conversation.item.input_audio_transcription.completed")
            assert events[0]["type"] == "input_audio_buffer.committed"


async def test_drop_fault_in_reset_mode_ends_without_a_close_frame() -> None:
    faults = Faults(drop_after_audio_ms=100, drop_mode="reset")
    async with LocalRealtimeServer(engine="scripted", faults=faults) as srv:
        async with connect(ws_url(srv), additional_headers=AUTH) as ws:
            await recv(ws)
            await ws.send(append_event(pcm(200)))
            exc = await closed(ws)
    assert exc.rcvd is None


async def test_fail_items_fault_sends_failed_instead_of_completed() -> None:
    async with LocalRealtimeServer(
        engine="scripted", faults=Faults(fail_items=frozenset({1}))
    ) as srv:
        async with connect(ws_url(srv), additional_headers=AUTH) as ws:
            await recv(ws)
            await ws.send(append_event(pcm(300)))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            committed, failed = await recv(ws), await recv(ws)
            assert failed["type"] == "conversation.item.input_audio_transcription.failed"
            assert failed["item_id"] == committed["item_id"]
            item = committed["item_id"]
            assert failed["error"]["message"] == f"Input transcription failed for item '{item}'."
            await ws.send(append_event(pcm(300)))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            events = await recv_until(ws, "conversation.item.input_audio_transcription.completed")
            assert events[0]["previous_item_id"] == item and events[-1]["item_id"] not in (item,)


async def test_reject_handshake_fault_answers_429_then_accepts() -> None:
    faults = Faults(reject_handshake_status=429, reject_handshakes=1)
    async with LocalRealtimeServer(engine="scripted", faults=faults) as srv:
        with pytest.raises(InvalidStatus) as info:
            async with connect(ws_url(srv), additional_headers=AUTH):
                pass
        assert info.value.response.status_code == 429
        async with connect(ws_url(srv), additional_headers=AUTH) as ws:
            assert (await recv(ws))["type"] == "session.created"


async def test_session_cap_sends_session_expired_and_closes_1001() -> None:
    async with LocalRealtimeServer(engine="scripted", max_session_s=0.3) as srv:
        async with connect(ws_url(srv), additional_headers=AUTH) as ws:
            await recv(ws)
            error = await recv(ws)
            assert error["error"]["code"] == "session_expired"
            exc = await closed(ws)
    assert exc.rcvd is not None and exc.rcvd.code == 1001


async def test_g711_ulaw_audio_is_transcribed_with_its_8khz_duration(
    server: LocalRealtimeServer,
) -> None:
    async with connect(ws_url(server), additional_headers=AUTH) as ws:
        await recv(ws)
        await ws.send(
            json.dumps(
                {
                    "type": "session.update",
                    "session": {
                        "type": "transcription",
                        "audio": {"input": {"format": {"type": "audio/pcmu"}}},
                    },
                }
            )
        )
        await recv(ws)
        await ws.send(append_event(bytes(range(256)) * 25))  # 6400 bytes = 0.8 s
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        events = await recv_until(ws, "conversation.item.input_audio_transcription.completed")
    assert events[-1]["usage"] == {"type": "duration", "seconds": 0.8}
    assert events[-1]["transcript"] == "0.80 seconds of audio"


async def test_stopping_the_server_closes_open_sessions_with_1001() -> None:
    srv = LocalRealtimeServer(engine="scripted")
    await srv.start()
    async with connect(ws_url(srv), additional_headers=AUTH) as ws:
        await recv(ws)
        await srv.aclose()
        exc = await closed(ws)
    assert exc.rcvd is not None and exc.rcvd.code == 1001
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert leftover == []


def test_wire_audio_decodes_pcm16_and_g711_silence_and_extremes() -> None:
    assert decode_wire_audio(b"\x01\x00\xff\xff", "audio/pcm").tolist() == [1, -1]
    assert decode_wire_audio(b"\xff\x00\x80", "audio/pcmu").tolist() == [0, -32124, 32124]
    assert decode_wire_audio(b"\xd5\x55\xaa", "audio/pcma").tolist() == [8, -8, 32256]


def test_wire_audio_is_resampled_to_16khz_float32() -> None:
    out = wire_to_float32(pcm(1000), "audio/pcm", 24000, 16000)
    assert out.dtype == np.float32 and abs(len(out) - 16000) <= 16
    assert 0.2 < float(np.abs(out).max()) < 0.3


class _BrokenEngine:
    sample_rate_hz = 16000

    def __init__(self) -> None:
        self.calls = 0

    def transcribe(self, samples: np.ndarray, *, language: str | None, prompt: str | None) -> str:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("decoder exploded")
        return "fine again"


async def test_an_engine_exception_becomes_a_failed_item_and_the_session_goes_on() -> None:
    async with LocalRealtimeServer(engine=_BrokenEngine()) as srv:
        async with connect(ws_url(srv), additional_headers=AUTH) as ws:
            await recv(ws)
            for _ in range(2):
                await ws.send(append_event(pcm(300)))
                await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            first = await recv_until(ws, "conversation.item.input_audio_transcription.failed")
            second = await recv_until(ws, "conversation.item.input_audio_transcription.completed")
    committed = [e["item_id"] for e in first + second if e["type"].endswith("committed")]
    assert first[-1]["item_id"] == committed[0]
    assert second[-1]["item_id"] == committed[1] and second[-1]["transcript"] == "fine again"


async def test_completed_delay_fault_holds_completed_back() -> None:
    faults = Faults(completed_delay_ms=300)
    async with LocalRealtimeServer(engine="scripted", faults=faults) as srv:
        async with connect(ws_url(srv), additional_headers=AUTH) as ws:
            await recv(ws)
            await ws.send(append_event(pcm(300)))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            await recv_until(ws, "conversation.item.input_audio_transcription.delta")
            loop = asyncio.get_running_loop()
            last_delta_at = loop.time()
            await recv_until(ws, "conversation.item.input_audio_transcription.completed")
            assert loop.time() - last_delta_at >= 0.2


def test_cli_fault_flags_build_the_faults() -> None:
    from livekit.plugins.openai_stt.server.__main__ import build_parser, faults_from_args

    args = build_parser().parse_args(
        [
            "--engine",
            "scripted",
            "--port",
            "0",
            "--compat",
            "gateway",
            "--drop-after-audio-ms",
            "1500",
            "--drop-mode",
            "reset",
            "--drop-sessions",
            "2",
            "--fail-items",
            "2,5",
            "--error-code-after-audio-ms",
            "rate_limit_exceeded:800",
            "--completed-delay-ms",
            "50",
            "--reject-handshake-status",
            "429",
            "--reject-handshakes",
            "3",
        ]
    )
    assert (args.engine, args.port, args.compat) == ("scripted", 0, "gateway")
    assert faults_from_args(args) == Faults(
        drop_after_audio_ms=1500,
        drop_mode="reset",
        drop_sessions=2,
        fail_items=frozenset({2, 5}),
        error_code_after_audio_ms=("rate_limit_exceeded", 800.0),
        completed_delay_ms=50,
        reject_handshake_status=429,
        reject_handshakes=3,
    )


async def test_a_drop_finishes_the_close_handshake_at_once_despite_unread_client_messages() -> None:
    async with LocalRealtimeServer(
        engine="scripted", faults=Faults(drop_after_audio_ms=300)
    ) as srv:
        async with connect(ws_url(srv), additional_headers=AUTH, close_timeout=5) as ws:
            await recv(ws)
            for _ in range(40):  # far more than the server's receive queue holds
                await ws.send(append_event(pcm(100)))
            loop = asyncio.get_running_loop()
            started = loop.time()
            exc = await closed(ws)
            await ws.wait_closed()
            assert loop.time() - started < 2.0
    assert exc.rcvd is not None and exc.rcvd.code == 1011


async def test_the_api_key_never_appears_in_server_logs(caplog: pytest.LogCaptureFixture) -> None:
    secret = "sk-local-DO-NOT-LOG-42"
    caplog.set_level(logging.DEBUG)
    async with LocalRealtimeServer(engine="scripted", api_key=secret) as srv:
        headers = {"Authorization": f"Bearer {secret}"}
        async with connect(ws_url(srv), additional_headers=headers) as ws:
            await recv(ws)
        with pytest.raises(InvalidStatus):
            async with connect(ws_url(srv), additional_headers={"api-key": secret + "x"}):
                pass
    server_records = [r for r in caplog.records if "client" not in r.name]
    assert server_records
    assert not [r for r in server_records if secret in f"{r.getMessage()} {r.__dict__}"]
