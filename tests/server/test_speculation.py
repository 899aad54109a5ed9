"""Finals sooner (issue 13): where speech pauses (quiet.py), when a pause makes a partial due
(partials.py), the decode ahead that stands for the final (speculation.py), and the decode
queue with several workers (scheduler.py). Tables and fakes: no model."""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any

import numpy as np
import pytest

from livekit.plugins.openai_stt.protocol.g711 import encode_ulaw
from livekit.plugins.openai_stt.server import DecodeScheduler
from livekit.plugins.openai_stt.server.jobs import Recognition
from livekit.plugins.openai_stt.server.partials import OpenItemPartials
from livekit.plugins.openai_stt.server.quiet import (
    QUIET_TAIL_S,
    quiet_tail_s,
    speech_end_bytes,
)
from livekit.plugins.openai_stt.server.speculation import Speculator, same_but_quiet

RATE = 16000


def speech(seconds: float, rate: int = RATE, level: float = 0.3) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * 180 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(
        np.float32
    )


def quiet(seconds: float, rate: int = RATE, level: float = 0.001) -> np.ndarray:
    return (np.random.default_rng(1).standard_normal(round(seconds * rate)) * level).astype(
        np.float32
    )


# --------------------------------------------------------------------------- quiet.py


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([speech(1.0)], 0.0),
        ([speech(1.0), quiet(0.3)], 0.3),
        ([speech(1.0), quiet(0.3), speech(0.2)], 0.0),
        ([speech(0.5), quiet(3.0)], None),  # nothing loud in the last 2 s: no verdict
        ([quiet(1.0)], None),
        ([], None),
    ],
)
def test_the_quiet_run_at_the_end(parts: list[np.ndarray], expected: float | None) -> None:
    x = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    got = quiet_tail_s(x, RATE)
    assert got == expected if expected is None else got == pytest.approx(expected, abs=0.021)


@pytest.mark.parametrize("fmt", ["audio/pcm", "audio/pcmu"])
def test_where_speech_ends_in_wire_audio(fmt: str) -> None:
    rate = 24000 if fmt == "audio/pcm" else 8000
    pcm = (np.concatenate([speech(1.0, rate), quiet(0.4, rate)]) * 32767).astype(np.int16)
    wire = pcm.astype("<i2").tobytes() if fmt == "audio/pcm" else encode_ulaw(pcm)
    width = 2 if fmt == "audio/pcm" else 1
    end = speech_end_bytes(wire, fmt, rate, width)
    assert end is not None and abs(end / width / rate - 1.0) <= 0.021
    silence = np.zeros(len(pcm), np.int16)
    silent = silence.tobytes() if fmt == "audio/pcm" else encode_ulaw(silence)
    assert speech_end_bytes(silent, fmt, rate, width) is None
    assert speech_end_bytes(wire, "audio/unknown", rate, width) is None


# --------------------------------------------------------------------------- partials.py

BPS = 32000  # pcm16 at 16 kHz


def due(p: OpenItemPartials, nbytes: int, speech_end: int | None, backlog: int = 0) -> Any:
    return p.due_at(
        nbytes=nbytes,
        bytes_per_second=BPS,
        interval_s=1.0,
        backlog=backlog,
        max_partial_s=30.0,
        speech_end=speech_end,
    )


def test_a_pause_makes_a_partial_due_at_once_and_only_once() -> None:
    p = OpenItemPartials(opened_at=10.0)
    s = 2 * BPS
    assert due(p, s, s) == 11.0  # speaking: the interval
    assert due(p, s + 1600, s) == 11.0  # 50 ms of quiet: not a pause yet
    pause = s + int(QUIET_TAIL_S * BPS)
    assert due(p, pause, s) == 10.0  # a pause: due now
    assert due(p, pause, s, backlog=1) == 12.0  # not when decode jobs wait: the interval
    p.taken(object(), 10.5, pause)  # type: ignore[arg-type]
    p.pending = None
    assert due(p, pause + BPS, s) is None  # only quiet since: nothing new to hear
    assert due(p, pause + BPS, pause + BPS) == 11.5  # speech again: the interval
    assert due(p, pause, None) is None  # unknown speech end: grew too little (old rule)


def test_a_partial_taken_just_before_the_pause_does_not_count_as_hearing_it() -> None:
    p = OpenItemPartials(opened_at=0.0)
    s = 2 * BPS
    p.taken(object(), 1.0, s + 1600)  # type: ignore[arg-type]  # 50 ms after the speech end
    p.pending = None
    assert due(p, s + int(QUIET_TAIL_S * BPS), s) == 0.0


# --------------------------------------------------------------------------- speculation.py


class CountingEngine:
    sample_rate_hz = RATE

    def __init__(self) -> None:
        self.finals: list[int] = []
        self.partials: list[int] = []
        self.gate: threading.Event | None = None

    def recognize(self, samples: np.ndarray, *, language: Any, prompt: Any) -> Recognition:
        if self.gate is not None:
            self.gate.wait(5)
        self.finals.append(len(samples))
        return Recognition(f"final of {len(samples)}")

    def recognize_partial(self, samples: np.ndarray, *, language: Any, prompt: Any) -> Recognition:
        self.partials.append(len(samples))
        return Recognition(f"partial of {len(samples)}")


AT_PAUSE = np.concatenate([speech(2.0), quiet(0.2)])


@pytest.mark.parametrize(
    ("final_audio", "hit"),
    [
        (np.concatenate([AT_PAUSE, quiet(0.3)]), True),  # only quiet came after
        (AT_PAUSE, True),
        (AT_PAUSE[: -round(0.1 * RATE)], True),  # cut inside the quiet end (server VAD)
        (np.concatenate([AT_PAUSE, quiet(0.1), speech(0.5)]), False),  # speech came back
        (np.concatenate([speech(2.0, level=0.2), quiet(0.3)]), False),  # other audio
    ],
)
def test_a_pause_decoded_ahead_answers_the_final_when_only_quiet_follows(
    final_audio: np.ndarray, hit: bool
) -> None:
    engine = CountingEngine()
    spec = Speculator(engine, lambda: True)
    session = spec.session("s1")
    ahead = session.recognize_partial(AT_PAUSE, language="en", prompt="p")
    assert ahead.text == f"final of {len(AT_PAUSE)}" and engine.partials == []
    final = session.recognize(final_audio, language="en", prompt="p")
    assert (spec.hits, spec.misses) == ((1, 0) if hit else (0, 1))
    assert final.text == (ahead.text if hit else f"final of {len(final_audio)}")
    assert same_but_quiet(AT_PAUSE, final_audio, RATE) is hit


def test_no_reuse_across_prompts_languages_or_sessions_and_none_while_busy() -> None:
    engine = CountingEngine()
    busy = [False]
    spec = Speculator(engine, lambda: not busy[0])
    a, b = spec.session("a"), spec.session("b")
    later = np.concatenate([AT_PAUSE, quiet(0.2)])
    a.recognize_partial(AT_PAUSE, language="en", prompt="p")
    b.recognize(later, language="en", prompt="p")  # another session: its own decode
    a.recognize(later, language="en", prompt="other")  # the prompt changed meanwhile
    assert (spec.speculations, spec.hits, spec.misses, len(engine.finals)) == (1, 0, 1, 3)
    a.recognize_partial(AT_PAUSE, language="en", prompt="p")
    a.recognize(later, language="fr", prompt="p")
    assert spec.misses == 2
    busy[0] = True
    a.recognize_partial(AT_PAUSE, language="en", prompt="p")  # past capacity: cheap partial
    a.recognize_partial(speech(2.0), language="en", prompt="p")  # no pause: cheap partial
    assert len(engine.partials) == 2 and spec.speculations == 2
    spec.forget("a")


def test_logprobs_are_passed_on_to_an_engine_that_takes_them() -> None:
    class WithLogprobs(CountingEngine):
        def recognize(self, samples: np.ndarray, **kw: Any) -> Recognition:
            self.kw = kw
            return super().recognize(samples, language=kw["language"], prompt=kw["prompt"])

    engine = WithLogprobs()
    spec = Speculator(engine, lambda: True)
    s = spec.session("s")
    s.recognize_partial(AT_PAUSE, language=None, prompt=None)  # a decode ahead, no logprobs
    s.recognize(AT_PAUSE, language=None, prompt=None, logprobs=True)
    assert engine.kw["logprobs"] is True and len(engine.finals) == 2 and spec.hits == 0
    assert not Speculator(CountingEngine()).engine_logprobs


def test_past_capacity_a_final_is_decoded_fast() -> None:
    engine = CountingEngine()
    load = [False]
    spec = Speculator(engine, under_load=lambda: load[0])
    s = spec.session("s")
    assert s.recognize_partial(AT_PAUSE, language=None, prompt=None).text.startswith("partial")
    assert s.recognize(AT_PAUSE, language=None, prompt=None).text.startswith("final")
    load[0] = True
    assert s.recognize(AT_PAUSE, language=None, prompt=None).text.startswith("partial")
    assert (spec.speculations, spec.fast_finals) == (0, 1)


def test_a_final_waits_for_the_decode_ahead_still_running() -> None:
    engine = CountingEngine()
    engine.gate = threading.Event()
    spec = Speculator(engine, lambda: True)
    s = spec.session("s")
    ahead = threading.Thread(
        target=s.recognize_partial, args=(AT_PAUSE,), kwargs={"language": None, "prompt": None}
    )
    ahead.start()
    while "s" not in spec._by_session:
        pass
    engine.gate.set()
    final = s.recognize(np.concatenate([AT_PAUSE, quiet(0.2)]), language=None, prompt=None)
    ahead.join()
    assert final.text == f"final of {len(AT_PAUSE)}" and len(engine.finals) == 1


# --------------------------------------------------------------------------- scheduler.py


async def test_two_workers_decode_two_finals_at_once_and_keep_one_for_finals() -> None:
    waits: list[float] = []
    scheduler = DecodeScheduler(workers=2, on_final_wait=waits.append)
    await scheduler.start()
    gates = {name: threading.Event() for name in ("p1", "p2", "f1", "f2")}
    started: list[str] = []

    def job(name: str) -> str:
        started.append(name)
        gates[name].wait(5)
        return name

    try:
        p1 = scheduler.submit_partial("a", job, "p1")
        p2 = scheduler.submit_partial("b", job, "p2")
        await asyncio.sleep(0.05)
        assert started == ["p1"]  # one worker is kept for finals
        f1 = scheduler.submit_final(job, "f1")
        await asyncio.sleep(0.05)
        assert started == ["p1", "f1"] and scheduler.backlog == 1  # f1 did not wait for p1
        gates["p1"].set()
        await asyncio.sleep(0.05)
        assert started == ["p1", "f1", "p2"]
        f2 = scheduler.submit_final(job, "f2")
        await asyncio.sleep(0.05)
        assert "f2" not in started and scheduler.finals_waiting == 1  # both workers busy
        for g in gates.values():
            g.set()
        assert await asyncio.gather(p1, p2, f1, f2) == ["p1", "p2", "f1", "f2"]
    finally:
        await scheduler.aclose()
    assert len(waits) == 2 and scheduler.partials_shed == 0


async def test_waiting_partials_are_shed_first() -> None:
    scheduler = DecodeScheduler(workers=1)
    await scheduler.start()
    gate = threading.Event()
    try:
        blocker = scheduler.submit_final(lambda: gate.wait(5))
        await asyncio.sleep(0.02)
        old = scheduler.submit_partial("a", lambda: "old")
        new = scheduler.submit_partial("a", lambda: "new")
        gone = scheduler.submit_partial("b", lambda: "b")
        scheduler.drop_partial("b")
        final = scheduler.submit_final(lambda: "final")
        gate.set()
        assert await asyncio.gather(blocker, old, new, gone, final) == [
            True,
            None,
            "new",
            None,
            "final",
        ]
    finally:
        await scheduler.aclose()
    assert scheduler.partials_shed == 2
    with pytest.raises(ValueError):
        DecodeScheduler(workers=0)


async def test_past_capacity_partials_are_shed_at_start_and_finals_still_run() -> None:
    scheduler = DecodeScheduler(workers=1)
    assert scheduler.utilization() == 0.0
    busy = [0.9]
    scheduler.utilization = lambda now=None: busy[0]  # type: ignore[method-assign]
    await scheduler.start()
    try:
        assert await scheduler.submit_partial("a", lambda: "p") is None
        assert await scheduler.submit_final(lambda: "f") == "f"
        busy[0] = 0.5
        assert await scheduler.submit_partial("a", lambda: "p") == "p"
    finally:
        await scheduler.aclose()
    assert (scheduler.partials_shed, scheduler.partials_run, scheduler.finals_run) == (1, 1, 1)


def test_utilization_follows_the_busy_share_of_the_workers() -> None:
    scheduler = DecodeScheduler(workers=2)
    scheduler._busy_at = 0.0
    scheduler.finals_running = 2
    assert scheduler.utilization(now=0.0) == 0.0
    assert scheduler.utilization(now=2.0) == pytest.approx(1 - math.exp(-1))
    assert scheduler.utilization(now=60.0) == pytest.approx(1.0)
    scheduler.finals_running = 1
    assert scheduler.utilization(now=60.0) == pytest.approx(0.5)


# --------------------------------------------------------------------------- wired in the server


async def test_the_server_decodes_the_pause_ahead_and_answers_the_commit_with_it() -> None:
    import json

    from livekit.plugins.openai_stt.server import LocalRealtimeServer

    from .test_app_models import COMPLETED, append, open_session, recv_until

    engine = CountingEngine()
    async with LocalRealtimeServer(engine=engine, speculate=True, port=0) as srv:
        assert srv._speculator is not None
        async with await open_session(srv, transcription={"model": "gpt-realtime-whisper"}) as ws:
            pcm = (np.concatenate([speech(1.0, 24000), quiet(0.3, 24000)]) * 32767).astype("<i2")
            for k in range(0, len(pcm), 2400):  # 100 ms appends
                await ws.send(append(pcm[k : k + 2400].tobytes()))
            for _ in range(200):
                if srv._speculator.speculations:
                    break
                await asyncio.sleep(0.01)
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            events = await recv_until(ws, COMPLETED)
    assert (srv._speculator.speculations, srv._speculator.hits) == (1, 1)
    assert len(engine.finals) == 1  # the commit's final was the decode ahead
    assert events[-1]["transcript"] == f"final of {engine.finals[0]}"
