"""LiveKit's STT surface inside a real ``AgentSession`` (issue 11, point 3).

No room: the session's microphone is :class:`agent_file.WavAudioInput` (examples/agent_file.py)
playing the first seconds of the demo clip, its VAD is Silero, and its STT is this plugin on
the local server (scripted engine: each committed item is answered "<seconds> seconds of
audio"). Checked here:

- keyterms from ``AgentSession(stt_context_options=...)`` reach the wire as ``keywords``, and
  ``session.update_options(keyterms=[])`` takes them off again;
- connection and usage metrics reach the session's ``metrics_collected``;
- ``stt.FallbackAdapter([ours on a failing endpoint, ours on the local server])`` fails over
  within its own retry budget and recovers when the endpoint works again;
- ``prewarm()``: the first stream takes the prewarmed session (one socket, reported reused).
"""

from __future__ import annotations

import re
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from agent_file import ListeningAgent, WavAudioInput  # examples/ (see conftest.py)
from livekit.agents import AgentSession, MetricsCollectedEvent, inference
from livekit.agents import stt as lk_stt
from livekit.agents.metrics import STTMetrics
from livekit.agents.stt import AvailabilityChangedEvent
from livekit.agents.vad import VAD
from livekit.plugins import openai_stt

from examples.evaluation import read_wav
from livekit.plugins.openai_stt.server import Faults, LocalRealtimeServer
from tests.helpers import Recorder, recording_connect, until

CLIP_S = 4.0
"""Seconds of the demo clip played: speech throughout, one user turn."""
SPEED = 4.0
"""Playback speed of the clip (the endpointing delays stay in wall time)."""
TURN = re.compile(r"(\d+\.\d\d) seconds of audio")


@pytest.fixture(scope="module")
def clip(demo_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first :data:`CLIP_S` seconds of the demo clip, mono, as a WAV file."""
    samples, rate = read_wav(demo_clip)
    mono = samples.mean(axis=1).astype(np.int16) if samples.ndim == 2 else samples
    path = tmp_path_factory.mktemp("clip") / "speech.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(mono[: int(CLIP_S * rate)].tobytes())
    return path


@pytest.fixture(scope="module")
def vad() -> VAD:
    return inference.VAD(model="silero")


async def run_session(
    stt: lk_stt.STT,
    clip: Path,
    vad: VAD,
    *,
    done: Callable[[list[str]], bool] = bool,
    on_session: Callable[[AgentSession], None] | None = None,
    timeout_s: float = 12.0,
    **session_kwargs: Any,
) -> list[str]:
    """Play ``clip`` into an ``AgentSession`` with ``stt`` until the clip has played and
    ``done(turns)`` holds (default: a user turn was committed; it is polled every 10 ms from
    the start); returns the non-empty user turns. ``on_session`` is called with the session
    before it starts. ``stt`` is not closed."""
    turns: list[str] = []
    session: AgentSession = AgentSession(
        stt=stt,
        vad=vad,
        user_away_timeout=None,
        aec_warmup_duration=None,
        # quick turns: VAD endpointing with short delays, and no 2 s wait at close for a
        # transcript that cannot come (the clip has ended)
        turn_handling={
            "turn_detection": "vad",
            "endpointing": {"min_delay": 0.2, "max_delay": 1.0},
        },
        session_close_transcript_timeout=0.2,
        **session_kwargs,
    )
    if on_session is not None:
        on_session(session)
    audio = WavAudioInput(clip, speed=SPEED, trailing_silence_s=1.0)
    session.input.audio = audio
    await session.start(ListeningAgent(lambda text: turns.append(text.strip())), record=False)
    try:
        await until(
            lambda: done(turns) and audio.done.is_set() and session.user_state != "speaking",
            timeout_s,
        )
    finally:
        await session.aclose()
    return [t for t in turns if t]


def scripted_seconds(turns: list[str]) -> list[float]:
    """The item durations the scripted engine reported in ``turns``."""
    assert turns and all(re.fullmatch(rf"({TURN.pattern}\s*)+", t) for t in turns), turns
    return [float(s) for t in turns for s in TURN.findall(t)]


def updates(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``transcription`` object of each ``session.update`` in ``sent``."""
    return [
        e["session"]["audio"]["input"]["transcription"]
        for e in sent
        if e["type"] == "session.update"
    ]


# -- keyterms --------------------------------------------------------------------------------------


async def test_keyterms_from_stt_context_options_reach_the_wire(clip: Path, vad: VAD) -> None:
    rec = Recorder()

    def configured_with_keyterms() -> bool:
        # the socket that carries the audio was configured with both keyterms
        for sent in rec.sent_by.values():
            if any(e["type"] == "input_audio_buffer.append" for e in sent):
                return any(
                    {"LiveKit", "Siobhan"} <= set(tr.get("keywords", ())) for tr in updates(sent)
                )
        return False

    # compat="openai": the server holds the update to OpenAI's rules (an error would end the
    # session); OpenAI's own URL rule, no ?model=
    async with LocalRealtimeServer(engine="scripted", compat="openai") as server:
        stt = openai_stt.STT(
            model="gpt-live-transcribe",  # takes keywords
            base_url=server.base_url,
            api_key="t",
            include_model_in_url=False,
            connect=rec.connect,
        )
        assert stt.capabilities.keyterms is True
        try:
            turns = await run_session(
                stt,
                clip,
                vad,
                done=lambda turns: configured_with_keyterms() and bool(turns),
                stt_context_options={"keyterms": ["LiveKit", "Siobhan"]},
            )
        finally:
            await stt.aclose()

    assert configured_with_keyterms(), [updates(s) for s in rec.sent_by.values()]
    assert scripted_seconds(turns)  # the server took the update and transcribed the turn
    for tr in updates(rec.sent):
        assert "language" not in tr  # gpt-live-transcribe: `languages` only
        if "keywords" in tr:
            assert tr["languages"] == ["en"]


async def test_keyterms_cleared_by_the_session_leave_the_wire(clip: Path, vad: VAD) -> None:
    # AgentSession.update_options(keyterms=[]) -> STT._update_session_keyterms([]). A field
    # left out of a session.update keeps its value (GA semantics, as the local server
    # applies them), so the cleared keywords must be sent (as the official plugin does:
    # `keywords` always goes to the models that take it) or the session reopened.
    received: list[dict[str, Any]] = []

    def effective_keywords() -> list[str] | None:
        updated = [e for e in received if e["type"] == "session.updated"]
        if not updated:
            return None
        return updated[-1]["session"]["audio"]["input"]["transcription"].get("keywords") or []

    sessions: list[AgentSession] = []
    cleared_at: list[int] = []

    def cleared(_: list[str]) -> bool:
        """Once the session is configured with the keyterm, clear them; done once the server
        has answered the session.update that followed."""
        if not cleared_at:
            if effective_keywords():
                sessions[0].update_options(keyterms=[])
                cleared_at.append(len(received))
            return False
        return any(e["type"] == "session.updated" for e in received[cleared_at[0] :])

    server = LocalRealtimeServer(engine="scripted", port=None)
    async with server:
        stt = openai_stt.STT(
            model="gpt-live-transcribe",
            base_url="http://127.0.0.1:9/v1",
            api_key="t",
            connect=recording_connect(server, received),
        )
        try:
            await run_session(
                stt,
                clip,
                vad,
                on_session=sessions.append,
                done=cleared,
                stt_context_options={"keyterms": ["LiveKit"]},
            )
        finally:
            await stt.aclose()
    assert stt._opts.effective_keywords is None  # the STT itself dropped them
    assert effective_keywords() == [], "the server still holds the cleared keyterms"


# -- metrics ---------------------------------------------------------------------------------------


async def test_connection_and_usage_metrics_reach_metrics_collected(clip: Path, vad: VAD) -> None:
    collected: list[STTMetrics] = []

    def on_session(session: AgentSession) -> None:
        @session.on("metrics_collected")
        def _collect(ev: MetricsCollectedEvent) -> None:
            if isinstance(ev.metrics, STTMetrics):
                collected.append(ev.metrics)

    async with LocalRealtimeServer(engine="scripted") as server:
        stt = openai_stt.STT(base_url=server.base_url, api_key="t")
        try:
            turns = await run_session(
                stt,
                clip,
                vad,
                on_session=on_session,
                done=lambda t: bool(t) and any(m.audio_duration > 0 for m in collected),
            )
        finally:
            await stt.aclose()

    # _report_connection_acquired: request_id "", no audio, acquire time and reuse set
    acquired = [m for m in collected if m.request_id == "" and m.audio_duration == 0]
    assert acquired, collected
    for m in acquired:
        assert m.streamed is True
        assert isinstance(m.connection_reused, bool)
        assert isinstance(m.acquire_time, float) and m.acquire_time >= 0
        assert m.metadata is not None
        assert (m.metadata.model_name, m.metadata.model_provider) == (
            "gpt-realtime-whisper",
            "127.0.0.1",
        )
    # a socket opened for the stream (or by the session's prewarm) took a handshake
    assert any(m.acquire_time > 0 for m in acquired), acquired
    # usage: one per item, its audio what the server transcribed
    usage = [m for m in collected if m.audio_duration > 0]
    assert usage
    assert all(m.request_id for m in usage)
    assert sum(m.audio_duration for m in usage) == pytest.approx(
        sum(scripted_seconds(turns)), abs=0.02
    )


# -- FallbackAdapter -------------------------------------------------------------------------------


async def test_fallback_adapter_fails_over_and_recovers(clip: Path, vad: VAD) -> None:
    max_retry_per_stt = 1
    changes: list[tuple[str, bool]] = []
    failing = LocalRealtimeServer(engine="scripted", faults=Faults(reject_handshake_status=503))
    working = LocalRealtimeServer(engine="scripted")
    async with failing, working:
        primary = openai_stt.STT(base_url=failing.base_url, api_key="t")
        secondary = openai_stt.STT(base_url=working.base_url, api_key="t")
        adapter = lk_stt.FallbackAdapter(
            [primary, secondary],
            attempt_timeout=5.0,
            max_retry_per_stt=max_retry_per_stt,
            retry_interval=0.2,
        )
        names = {id(primary): "primary", id(secondary): "secondary"}

        @adapter.on("stt_availability_changed")
        def _changed(ev: AvailabilityChangedEvent) -> None:
            changes.append((names[id(ev.stt)], ev.available))
            if not ev.available:
                # the endpoint works again before the adapter's recovery stream connects
                # (the adapter starts it right after this event)
                failing.faults = Faults()

        try:
            turns = await run_session(
                adapter, clip, vad, done=lambda t: bool(t) and ("primary", True) in changes
            )
        finally:
            await adapter.aclose()
            await primary.aclose()
            await secondary.aclose()
        rejected = failing.counters.handshakes_rejected

    assert changes == [("primary", False), ("primary", True)]
    assert scripted_seconds(turns)  # the user turn came through the secondary
    # the adapter's own budget, not the session's stt_conn_options (max_retry=3): the
    # primary's stream tried 1 + max_retry_per_stt times; one more is the session's prewarm
    # (FallbackAdapter.prewarm opens the primary ahead)
    assert rejected == 1 + (1 + max_retry_per_stt)


# -- prewarm ---------------------------------------------------------------------------------------


async def test_prewarm_opens_the_session_the_first_stream_takes(clip: Path, vad: VAD) -> None:
    rec = Recorder()
    acquired: list[STTMetrics] = []
    async with LocalRealtimeServer(engine="scripted") as server:
        stt = openai_stt.STT(base_url=server.base_url, api_key="t", connect=rec.connect)

        @stt.on("metrics_collected")
        def _collect(m: STTMetrics) -> None:
            if m.request_id == "" and m.audio_duration == 0:
                acquired.append(m)

        try:
            stt.prewarm()
            await until(lambda: rec.connects == 1 and rec.types() == ["session.update"])
            turns = await run_session(stt, clip, vad)  # the session's own prewarm: a no-op
        finally:
            await stt.aclose()

    assert scripted_seconds(turns)
    assert rec.connects == 1  # the prewarmed socket carried the whole session
    assert "input_audio_buffer.append" in [e["type"] for e in rec.sent_by[1]]
    assert [m.connection_reused for m in acquired] == [True]
    assert acquired[0].acquire_time < 0.25  # no handshake left to wait for
