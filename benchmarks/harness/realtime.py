"""Raw real-time sessions against the local server (no plugin in the way), for its own figures.

- :func:`pause_turns`: a clip cut at its pauses (the demo clip: 17 turns, one every 2.6 s,
  issue 13), as pcm16 at 24 kHz;
- :func:`realtime_session`: one session speaking turns in real time, 100 ms appends on an
  absolute schedule (as the plugin sends with ``chunk_ms=100``), a commit at each turn's end
  (as ``flush()`` does); latency = commit sent -> ``completed`` received;
- :func:`sessions_at_once`: ``n`` of them, starts spread over a turn, with the server's CPU;
- :func:`clip_items`: each clip as one item, sent at once (WER of short clips);
- :func:`scrape`: ``/metrics`` parsed with ``prometheus_client.parser``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.harness.drive import Pacer
from benchmarks.harness.stats import percentile

CHUNK_S, RATE = 0.1, 24000
HEADERS = {"Authorization": "Bearer bench"}


def clip_pcm(path: Path, rate: int = RATE) -> Any:
    """A clip's first channel as int16 at ``rate``."""
    from examples.evaluation import read_wav
    from livekit.plugins.openai_stt.server.engines import resample_int16

    samples, r = read_wav(path)
    return resample_int16(samples[:, 0], r, rate)


def pause_turns(path: Path, seconds: float | None = None) -> list[bytes]:
    """``path`` cut in the middle of each pause of 0.3 s or more that leaves turns of 1 s or
    more (``clips.turn_boundaries``), as pcm16 24 kHz bytes; its first ``seconds`` only."""
    from benchmarks.clips import turn_boundaries

    pcm = clip_pcm(path)
    ends = turn_boundaries(path, min_pause_s=0.3, min_turn_s=1.0, seconds=seconds)
    cuts = [0, *(round(t * RATE) for t in ends)]
    return [pcm[a:b].astype("<i2").tobytes() for a, b in zip(cuts, cuts[1:], strict=False)]


def _session_update(model: str, language: str | None) -> str:
    audio_in = {
        "format": {"type": "audio/pcm", "rate": RATE},
        "transcription": {"model": model, "language": language},
        "turn_detection": None,
    }
    session = {"type": "transcription", "audio": {"input": audio_in}}
    return json.dumps({"type": "session.update", "session": session})


async def realtime_session(
    ws_url: str,
    turns: Sequence[bytes],
    model: str,
    delay_s: float = 0.0,
    language: str | None = "en",
    timeout_s: float = 60.0,
) -> dict[str, Any]:
    """Speak ``turns`` in real time, a commit after each; see the module doc. Returns
    ``audio_s``, ``latencies`` (s, per turn, in order), ``texts`` (each turn's final),
    ``pre_commit_deltas`` and ``refused`` (the HTTP status when the server refused it)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    await asyncio.sleep(delay_s)
    loop = asyncio.get_running_loop()
    commits: list[float] = []
    done: dict[int, float] = {}
    texts: dict[int, str] = {}
    index: dict[str, int] = {}
    pre_commit = [0]
    all_done = asyncio.Event()
    audio_s = sum(len(t) for t in turns) / (2 * RATE)
    try:
        ws = await connect(f"{ws_url}?intent=transcription", additional_headers=HEADERS)
    except InvalidStatus as exc:
        return {"audio_s": 0.0, "latencies": [], "texts": [], "pre_commit_deltas": 0,
                "refused": exc.response.status_code}  # fmt: skip
    async with ws:
        await ws.recv()
        await ws.send(_session_update(model, language))
        await ws.recv()

        async def reader() -> None:
            async for message in ws:
                event = json.loads(message)
                kind = event["type"]
                if kind == "input_audio_buffer.committed":
                    index[event["item_id"]] = len(index)
                elif kind.endswith("transcription.delta") and event["item_id"] not in index:
                    pre_commit[0] += 1
                elif kind.endswith("transcription.completed"):
                    k = index[event["item_id"]]
                    done[k], texts[k] = loop.time(), event["transcript"]
                    if len(done) == len(turns):
                        all_done.set()
                elif kind == "error":
                    raise RuntimeError(event["error"])

        read = asyncio.create_task(reader())
        pacer, chunk = Pacer(CHUNK_S), round(RATE * CHUNK_S) * 2
        for turn in turns:
            for k in range(0, len(turn), chunk):
                await pacer.tick()
                audio = base64.b64encode(turn[k : k + chunk]).decode()
                await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            commits.append(loop.time())
        try:
            await asyncio.wait_for(all_done.wait(), timeout_s)
        finally:
            read.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await read
    return {
        "audio_s": audio_s,
        "latencies": [done[i] - commits[i] for i in sorted(done)],
        "texts": [texts[i] for i in sorted(texts)],
        "pre_commit_deltas": pre_commit[0],
        "refused": None,
    }


async def sessions_at_once(
    server: Any, turns: Sequence[bytes], n: int, model: str, spread_s: float = 2.6
) -> dict[str, Any]:
    """``n`` real-time sessions at once, starts spread at random over ``spread_s`` (one turn):
    latency percentiles over every turn, the server's CPU per audio minute and its share of
    the machine, load average at the end."""
    rng = random.Random(n)
    delays = [0.0] + [rng.uniform(0, spread_s) for _ in range(n - 1)]
    cpu0, wall0 = server.cpu_s(), time.monotonic()
    runs = await asyncio.gather(*(realtime_session(server.ws_url, turns, model, d) for d in delays))
    cpu, wall = server.cpu_s() - cpu0, time.monotonic() - wall0
    lat = [x for r in runs for x in r["latencies"]]
    audio_min = sum(r["audio_s"] for r in runs) / 60
    return {
        "sessions": n,
        "p50_s": percentile(lat, 50),
        "p95_s": percentile(lat, 95),
        "max_s": max(lat, default=float("nan")),
        "turns": len(lat),
        "cpu_s_per_audio_min": cpu / audio_min if audio_min else float("nan"),
        "cpu_util": cpu / wall / (os.cpu_count() or 1),
        "pre_commit_deltas": sum(r["pre_commit_deltas"] for r in runs),
        "refused": sum(r["refused"] is not None for r in runs),
        "texts": runs[0]["texts"],
        "all_texts": [r["texts"] for r in runs],
        "loadavg": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
    }


async def clip_items(ws_url: str, clips: Sequence[Path], model: str) -> dict[str, str]:
    """Each clip as one item (all its audio at once, then a commit) -> its final text."""
    out = {}
    for clip in clips:
        turn = clip_pcm(clip).astype("<i2").tobytes()
        run = await realtime_session_fast(ws_url, turn, model)
        out[clip.name] = run
    return out


async def realtime_session_fast(ws_url: str, audio: bytes, model: str) -> str:
    """One item, its audio sent at once in 1 s appends; its final text."""
    from websockets.asyncio.client import connect

    async with connect(f"{ws_url}?intent=transcription", additional_headers=HEADERS) as ws:
        await ws.recv()
        await ws.send(_session_update(model, "en"))
        await ws.recv()
        step = RATE * 2
        for k in range(0, len(audio), step):
            chunk = base64.b64encode(audio[k : k + step]).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
        await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 60))
            if event["type"].endswith("transcription.completed"):
                return str(event["transcript"])


async def scrape(port: int) -> dict[str, float]:
    """``/metrics`` of the server on ``port``: ``name{labels}`` -> value."""
    import aiohttp
    from prometheus_client.parser import text_string_to_metric_families

    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as reply,
    ):
        text = await reply.text()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out
