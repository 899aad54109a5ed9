"""In-process side-by-side scenarios: both plugins driven identically by the same code.

Each function runs ONE plugin through one scenario and returns plain numbers; ``run.py``
alternates the plugins (A, B, A, B, ...) and aggregates.

- :func:`latency_run`: the probe server streams deltas stamped with ``CLOCK_MONOTONIC`` while
  audio arrives; we time delta -> INTERIM_TRANSCRIPT, end-of-turn signal -> commit received by
  the server, and ``end_input()`` -> last FINAL and -> end of the stream.
- :func:`bytes_run`: websocket bytes the probe server received per second of audio.
- :func:`e2e_run`: a clip through the faster-whisper local server: end-of-turn -> FINAL, WER.
- :func:`drop_run`: audio lost when the local server drops the connection mid-turn.

How each plugin ends a turn: ours is flushed (``stream.flush()``: what ``AgentSession`` does
for an STT with ``manual_flush=True``) or, where stated, given the same VAD as the official
plugin. The official plugin ignores ``flush()`` for commits (it only commits on its VAD's
END_OF_SPEECH, for the client-committed ``gpt-realtime-whisper``), so it gets an
:class:`~_common.OracleVAD` that fires exactly at the turn boundary, at no cost: the most
favourable stand-in for the Silero VAD it loads by default.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _common as C

_TOKEN = re.compile(r"t=(\d+\.\d+)")
_SECONDS = re.compile(r"(\d+\.\d+) seconds of audio")


def _etype(ev: Any) -> str:
    return getattr(ev.type, "value", str(ev.type))


def _text(ev: Any) -> str:
    return ev.alternatives[0].text if ev.alternatives else ""


async def _wait(task: asyncio.Task[Any], timeout: float) -> bool:
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout)
        return True
    except (asyncio.TimeoutError, Exception):
        return task.done()


def _match_signals(signals: list[float], commits: list[float]) -> list[float | None]:
    """For each end-of-turn signal, the delay to the first commit at or after it (and before
    the next signal); None when no commit answered it."""
    out: list[float | None] = []
    commits = sorted(commits)
    for i, s in enumerate(signals):
        nxt = signals[i + 1] if i + 1 < len(signals) else float("inf")
        found = next((c for c in commits if s - 1e-4 <= c < nxt), None)
        out.append(None if found is None else found - s)
    return out


# --------------------------------------------------------------------------------------------
# 2 + 3: delta -> interim, end of turn -> commit, end_input -> last final / end of stream


async def latency_run(
    plugin: str,
    mode: str,
    server: C.ServerProcess,
    frames: list[Any],
    *,
    turns: int = 3,
    turn_s: float = 1.5,
    tail_s: float = 0.5,
    background: int = 0,
    end_timeout_s: float = 3.0,
    warm_s: float = 0.5,
) -> dict[str, Any]:
    """One measured stream (plus ``background`` streams of the same plugin, for load) fed
    ``turns`` turns of ``turn_s`` and a ``tail_s`` open turn ended by ``end_input()``.

    ``mode``: ``"flush"`` (``stream.flush()`` at each turn end; ours only: the official
    plugin does not commit on flush) or ``"vad"`` (the oracle VAD given to the STT).
    """
    from livekit.agents import stt as lkstt
    from livekit.agents import utils

    C.probe_reset(server)
    # the VAD's turn ends are exactly the flush points; the tail is ended by end_input()
    vad = (
        C.OracleVAD(boundaries_s=[turn_s * (k + 1) for k in range(turns)])
        if mode == "vad"
        else None
    )
    result: dict[str, Any] = {"plugin": plugin, "mode": mode, "background": background}
    async with utils.http_context.open():
        stt = C.make_stt(plugin, server.base_url, vad=vad)
        bg_stt = C.make_stt(plugin, server.base_url) if background else None
        st = stt.stream()
        bg = [bg_stt.stream() for _ in range(background)] if bg_stt else []
        bg_sinks = [asyncio.create_task(C.drain_events(s)) for s in bg]
        shown: set[str] = set()
        interim_lat: list[float] = []
        finals: list[tuple[float, str]] = []
        final_tokens: set[str] = set()

        async def reader() -> None:
            async for ev in st:
                t = time.monotonic()
                kind = ev.type
                if kind == lkstt.SpeechEventType.INTERIM_TRANSCRIPT:
                    for tok in _TOKEN.findall(_text(ev)):
                        if tok not in shown:
                            shown.add(tok)
                            interim_lat.append(t - float(tok))
                elif kind == lkstt.SpeechEventType.FINAL_TRANSCRIPT:
                    finals.append((t, _text(ev)))
                    final_tokens.update(_TOKEN.findall(_text(ev)))

        rd = asyncio.create_task(reader())
        # warm: the connection is open before the clock starts (both plugins connect lazily)
        await asyncio.sleep(warm_s)
        pacer = C.Pacer()
        turn_frames = int(round(turn_s * 100))
        n = turns * turn_frames + int(round(tail_s * 100))
        signals: list[float] = []
        nf = len(frames)
        for i in range(n):
            await pacer.tick()
            f = frames[i % nf]
            st.push_frame(f)
            for s in bg:
                s.push_frame(f)
            if mode == "flush" and (i + 1) % turn_frames == 0 and (i + 1) < n:
                signals.append(time.monotonic())
                st.flush()
        t_end = time.monotonic()
        st.end_input()  # (background streams are only closed: no commit of theirs)
        finals_before = len(finals)
        ended = await _wait(rd, end_timeout_s)
        t_stream_end = time.monotonic() if ended else None
        await st.aclose()
        await asyncio.gather(*(s.aclose() for s in bg), return_exceptions=True)
        for t in bg_sinks:
            t.cancel()
        rd.cancel()
        with contextlib.suppress(BaseException):
            await rd
        with contextlib.suppress(Exception):
            await stt.aclose()
        if bg_stt is not None:
            with contextlib.suppress(Exception):
                await bg_stt.aclose()

    records = C.probe_stats(server)
    commits = sorted(c for r in records for c in r["commits"])
    if mode == "vad":  # the VAD's own end-of-input END_OF_SPEECH comes after end_input()
        signals = [s for s in vad.eos_times if s < t_end]  # type: ignore[union-attr]
    turn_signals = list(signals)
    signals = signals + [t_end]
    commit_lat = _match_signals(signals, commits)
    pairs = list(zip(signals, commit_lat, strict=True))
    turn_commit = [d for s, d in pairs if s < t_end and d is not None]
    end_commit = [d for s, d in pairs if s >= t_end - 1e-6]
    last_final = finals[-1][0] if len(finals) > finals_before else None
    deltas_sent = sum(r["deltas_sent"] for r in records) if not background else None
    result.update(
        interim_latencies=interim_lat,
        tokens_shown=len(shown),
        tokens_total=len(shown | final_tokens),
        turn_signals=len(turn_signals),
        commit_latencies=turn_commit,
        commits_missing=sum(1 for _, d in pairs if d is None),
        end_input_to_commit=end_commit[0] if end_commit else None,
        end_input_to_last_final=(last_final - t_end) if last_final is not None else None,
        end_input_to_stream_end=(t_stream_end - t_end) if t_stream_end is not None else None,
        finals=len(finals),
        commits=len(commits),
        deltas_sent=deltas_sent,
        pacer_late_p95_ms=C.percentile(pacer.lateness, 95) * 1000,
    )
    return result


# --------------------------------------------------------------------------------------------
# 4: bytes on the wire


async def bytes_run(
    plugin: str,
    server: C.ServerProcess,
    frames: list[Any],
    *,
    audio_format: str = "pcm16",
    chunk_ms: int = 100,
    seconds: float = 10.0,
) -> dict[str, Any]:
    """Push ``seconds`` of 48 kHz audio (as fast as the stream takes it: chunking does not
    depend on timing), end, and read what the probe server received."""
    from livekit.agents import utils

    C.probe_reset(server)
    n = int(round(seconds * 100))
    async with utils.http_context.open():
        stt = C.make_stt(plugin, server.base_url, audio_format=audio_format, chunk_ms=chunk_ms)
        st = stt.stream()
        sink = asyncio.create_task(C.drain_events(st))
        await asyncio.sleep(0.3)
        for i in range(n):
            st.push_frame(frames[i % len(frames)])
            if i % 50 == 49:
                await asyncio.sleep(0)
        st.end_input()
        # wait until the server has all the audio (the official stream never ends by itself)
        bytes_per_s = 48000 if audio_format == "pcm16" else 8000
        expected = seconds * bytes_per_s * 0.995
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            recs = C.probe_stats(server)
            if sum(r["audio_bytes"] for r in recs) >= expected and sink.done():
                break
            if sum(r["audio_bytes"] for r in recs) >= expected and plugin == "official":
                await asyncio.sleep(0.2)
                break
        await st.aclose()
        sink.cancel()
        with contextlib.suppress(Exception):
            await stt.aclose()
    recs = C.probe_stats(server)
    frame_bytes = sum(r["frame_bytes"] for r in recs)
    append_bytes = sum(r["append_frame_bytes"] for r in recs)
    appends = sum(r["appends"] for r in recs)
    audio_bytes = sum(r["audio_bytes"] for r in recs)
    return {
        "plugin": plugin,
        "audio_format": audio_format,
        "chunk_ms": chunk_ms,
        "seconds": seconds,
        "ws_bytes_per_s": frame_bytes / seconds,
        "append_bytes_per_s": append_bytes / seconds,
        "appends_per_s": appends / seconds,
        "audio_bytes_per_s": audio_bytes / seconds,
        # one TLS record (~29 B: 5 header + 8 nonce + 16 tag) and one TCP/IPv4 segment
        # (~52 B with timestamps) per message, as on a real wss:// link, not loopback
        "est_link_bytes_per_s": (frame_bytes + (29 + 52) * sum(r["messages"] for r in recs))
        / seconds,
    }


# --------------------------------------------------------------------------------------------
# 6: end to end with faster-whisper


def turn_boundaries(
    path: Path, *, min_pause_s: float = 0.4, min_turn_s: float = 4.0
) -> list[float]:
    """End-of-turn times (s) for a clip: the middle of pauses of at least ``min_pause_s``
    (10 ms RMS below a level set from the clip) that leave turns of at least ``min_turn_s``;
    the clip's end is always the last boundary."""
    from examples.evaluation import read_wav

    samples, rate = read_wav(path)
    x = samples.astype(np.float32).mean(axis=1)
    win = rate // 100
    frames = x[: len(x) // win * win].reshape(-1, win)
    rms = np.sqrt((frames**2).mean(axis=1))
    duration = len(x) / rate
    level = max(float(np.percentile(rms, 20)) * 1.5, 200.0)
    quiet = rms < level
    bounds: list[float] = []
    start = None
    last = 0.0
    for i, q in enumerate(list(quiet) + [False]):
        if q and start is None:
            start = i
        elif not q and start is not None:
            if (i - start) / 100 >= min_pause_s:
                mid = (start + i) / 200
                if mid - last >= min_turn_s and duration - mid >= 1.0:
                    bounds.append(round(mid, 2))
                    last = mid
            start = None
    return bounds + [duration]


async def e2e_run(
    plugin: str,
    server: C.ServerProcess,
    clip: Path,
    reference: str,
    *,
    speed: float = 1.0,
    final_timeout_s: float = 30.0,
    quiet_s: float = 5.0,
) -> dict[str, Any]:
    """Stream a clip at ``speed`` x real time, end each turn at its boundary (ours: flush;
    official: the oracle VAD), and time each turn's last frame -> its FINAL."""
    from livekit.agents import stt as lkstt
    from livekit.agents import utils

    from examples.evaluation import wav_frames, word_error_rate

    frames = list(wav_frames(clip, C.FRAME_MS))
    rate = frames[0].sample_rate
    bounds = turn_boundaries(clip)
    # frame index (exclusive) where each turn ends
    ends = [min(len(frames), int(round(b * 100))) for b in bounds]
    ends[-1] = len(frames)
    vad = (
        C.OracleVAD(boundaries_s=[e * C.FRAME_MS / 1000 for e in ends[:-1]])
        if plugin == "official"
        else None
    )
    finals: dict[str, tuple[float, str]] = {}
    order: list[str] = []
    async with utils.http_context.open():
        stt = C.make_stt(plugin, server.base_url, vad=vad)
        st = stt.stream()
        got_all = asyncio.Event()

        async def reader() -> None:
            async for ev in st:
                if ev.type == lkstt.SpeechEventType.FINAL_TRANSCRIPT:
                    rid = ev.request_id or f"#{len(order)}"
                    if rid not in finals:
                        order.append(rid)
                    finals[rid] = (time.monotonic(), _text(ev))
                    if len(finals) >= len(ends):
                        got_all.set()

        rd = asyncio.create_task(reader())
        await asyncio.sleep(0.3)
        pacer = C.Pacer(speed=speed)
        eos: list[float] = []
        k = 0
        for i, f in enumerate(frames):
            await pacer.tick()
            st.push_frame(f)
            if k < len(ends) and i + 1 == ends[k]:
                eos.append(time.monotonic())
                k += 1
                if plugin == "ours" and k < len(ends):
                    st.flush()
        st.end_input()
        # every turn's final, or the stream's end (ours ends by itself; the official stream
        # never does), or quiet_s without a new final (an empty transcript gets no FINAL from
        # the official plugin), or final_timeout_s
        t_end = time.monotonic()
        while not got_all.is_set() and not rd.done():
            last = max([t_end] + [t for t, _ in finals.values()])
            now = time.monotonic()
            if now - last > quiet_s or now - t_end > final_timeout_s:
                break
            await asyncio.sleep(0.05)
        await _wait(rd, 2.0 if plugin == "ours" else 0.1)
        await st.aclose()
        rd.cancel()
        with contextlib.suppress(BaseException):
            await rd
        with contextlib.suppress(Exception):
            await stt.aclose()
    # item ids are item_001, item_002, ... in commit order on one session: turn k <-> item k
    lat: list[float] = []
    for j, t_eos in enumerate(eos):
        key = f"item_{j + 1:03d}"
        if key in finals:
            lat.append(finals[key][0] - t_eos)
    text = " ".join(finals[r][1].strip() for r in sorted(finals) if finals[r][1].strip())
    n_ref = len(reference.split())
    wer = word_error_rate(reference, text) if reference else float("nan")
    return {
        "plugin": plugin,
        "clip": clip.name,
        "turns": len(ends),
        "finals": len(finals),
        "eos_to_final": lat,
        "wer": wer,
        "ref_words": n_ref,
        "hypothesis": text,
        "audio_s": sum(f.samples_per_channel for f in frames) / rate,
    }


# --------------------------------------------------------------------------------------------
# 7: audio lost across injected drops


async def drop_run(
    plugin: str,
    *,
    seconds: float = 6.0,
    turn_s: float = 1.0,
    drop_after_ms: float = 1500.0,
    drops: int = 3,
    drop_mode: str = "close_1011",
    frames: list[Any],
    settle_s: float = 6.0,
) -> dict[str, Any]:
    """A fresh local server (scripted engine, its transcripts say how much audio each item
    held) dropping each of the first ``drops`` sessions after ``drop_after_ms`` of audio."""
    from livekit.agents import stt as lkstt
    from livekit.agents import utils

    fault_args = (
        [
            "--drop-after-audio-ms",
            str(drop_after_ms),
            "--drop-sessions",
            str(drops),
            "--drop-mode",
            drop_mode,
        ]
        if drops
        else []
    )
    server = C.start_local_server("scripted", [*fault_args, "--log-level", "INFO"])
    finals: list[str] = []
    errors: list[str] = []
    try:
        vad = C.OracleVAD(turn_s=turn_s) if plugin == "official" else None
        async with utils.http_context.open():
            stt = C.make_stt(plugin, server.base_url, vad=vad)
            stt.on("error", lambda e: errors.append(type(e.error).__name__))
            st = stt.stream()
            last_final = [time.monotonic()]

            async def reader() -> None:
                async for ev in st:
                    if ev.type == lkstt.SpeechEventType.FINAL_TRANSCRIPT:
                        finals.append(_text(ev))
                        last_final[0] = time.monotonic()

            rd = asyncio.create_task(reader())
            pacer = C.Pacer()
            turn_frames = int(round(turn_s * 100))
            n = int(round(seconds * 100))
            for i in range(n):
                await pacer.tick()
                st.push_frame(frames[i % len(frames)])
                if plugin == "ours" and (i + 1) % turn_frames == 0 and i + 1 < n:
                    st.flush()
            st.end_input()
            # ours ends by itself; the official one never does: wait for finals to settle
            deadline = time.monotonic() + settle_s + 6.0
            while time.monotonic() < deadline and not rd.done():
                await asyncio.sleep(0.1)
                if plugin == "official" and time.monotonic() - last_final[0] > settle_s:
                    break
            await st.aclose()
            rd.cancel()
            with contextlib.suppress(BaseException):
                await rd
            with contextlib.suppress(Exception):
                await stt.aclose()
    finally:
        server.stop()
    await asyncio.sleep(0.2)  # let the log reader catch up
    sessions = max(
        sum(1 for line in server.stderr_lines if key in line)
        for key in ("session opened", "session closed", "connection open")
    )
    transcribed = sum(float(m) for f in finals for m in _SECONDS.findall(f))
    happened = min(drops, max(0, sessions - 1))
    lost = seconds - transcribed
    return {
        "plugin": plugin,
        "drop_mode": drop_mode,
        "audio_s": seconds,
        "transcribed_s": transcribed,
        "lost_ms": max(0.0, lost) * 1000,
        "duplicated_ms": max(0.0, -lost) * 1000,
        "drops": happened,
        "sessions": sessions,
        "lost_ms_per_drop": max(0.0, lost) * 1000 / happened if happened else float("nan"),
        "finals": len(finals),
        "items_s": [float(m) for f in finals for m in _SECONDS.findall(f)],
        "turn_s": turn_s,
        "errors": errors,
    }
