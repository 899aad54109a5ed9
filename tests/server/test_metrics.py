"""``GET /metrics`` scraped over a real socket and parsed with ``prometheus_client.parser``;
``--max-sessions`` refusals; the one structured log line per session (issue 13)."""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from livekit.plugins.openai_stt.server import LocalRealtimeServer
from livekit.plugins.openai_stt.server.metrics import ExtrasFormatter, logfmt

from .test_app_models import AUTH, COMPLETED, append, open_session, recv, recv_until, tone, ws_url

P = "openai_stt_server_"


def http_get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - loopback only
            return reply.status, reply.headers.get("Content-Type", ""), reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


async def scrape(srv: LocalRealtimeServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name, sorted labels) -> value."""
    status, ctype, text = await asyncio.to_thread(http_get, f"http://127.0.0.1:{srv.port}/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples[(P + name, tuple(sorted(labels.items())))]


async def test_metrics_are_scraped_and_parsed_while_sessions_run() -> None:
    async with LocalRealtimeServer(engine="scripted", max_sessions=1, workers=2) as srv:
        before = await scrape(srv)
        assert value(before, "sessions_open") == 0 and value(before, "commits_total") == 0
        assert value(before, "decode_workers") == 2
        ws = await open_session(srv)
        async with ws:
            with pytest.raises(InvalidStatus) as refused:  # the one session is in use
                await connect(ws_url(srv), additional_headers=AUTH)
            assert refused.value.response.status_code == 503
            assert b"1 of 1 sessions in use" in refused.value.response.body
            for _ in range(2):
                await ws.send(append(tone(500)))
                await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
                await recv_until(ws, COMPLETED)
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))  # empty: an error
            assert (await recv(ws))["error"]["code"] == "input_audio_buffer_commit_empty"
            live = await scrape(srv)
        assert value(live, "sessions_open") == 1
        assert value(live, "sessions_total") == 1
        assert value(live, "sessions_refused_total", status="503") == 1
        assert value(live, "commits_total") == 2
        assert value(live, "audio_received_seconds_total") == pytest.approx(1.0)
        assert value(live, "commit_to_final_seconds_count") == 2
        assert value(live, "commit_to_final_seconds_bucket", le="+Inf") == 2
        assert value(live, "errors_total", code="input_audio_buffer_commit_empty") == 1
        assert value(live, "decode_queue_depth") == 0
        assert value(live, "partials_shed_total") == 0
        assert value(live, "final_queue_wait_seconds_count") == 2
        for _ in range(100):  # the server sees the close a moment after the client
            after = await scrape(srv)
            if value(after, "sessions_open") == 0:
                break
            await asyncio.sleep(0.01)
        assert value(after, "sessions_open") == 0
        assert value(after, "audio_received_seconds_total") == pytest.approx(1.0)
        status, _, body = await asyncio.to_thread(http_get, f"http://127.0.0.1:{srv.port}/health")
        assert (status, body) == (200, "ok\n")  # still cheap: no metrics work


async def test_one_structured_line_per_session_at_close(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="livekit.plugins.openai_stt.server")
    async with LocalRealtimeServer(engine="scripted") as srv:
        async with await open_session(srv) as ws:
            await ws.send(append(tone(300)))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            await recv_until(ws, COMPLETED)
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            await recv(ws)
        for _ in range(100):
            if any(r.getMessage() == "session closed" for r in caplog.records):
                break
            await asyncio.sleep(0.01)
    closed = [r for r in caplog.records if r.getMessage() == "session closed"]
    assert len(closed) == 1
    line = ExtrasFormatter("%(message)s").format(closed[0])
    assert line.startswith("session closed session_id=sess")
    for field in ("audio_s=0.3", "items=1", "finals=1", "errors=1", "close_code=1000"):
        assert f" {field}" in line


def test_logfmt_quotes_what_needs_it() -> None:
    assert logfmt({"a": 1, "b": "two words", "c": None, "d": 'x="y"'}) == (
        'a=1 b="two words" c="" d="x=\\"y\\""'
    )
