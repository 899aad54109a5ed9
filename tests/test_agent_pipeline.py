"""The AgentSession path of ``examples/agent_file.py`` against the local server.

A WAV file plays into an ``AgentSession`` (no room, no LLM) whose STT is this plugin pointed
at ``LocalRealtimeServer``: the session's VAD ends the turns, the framework flushes the stream
and the server's transcripts become the user turns.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from agent_file import WavAudioInput, run_agent_on_file  # examples/ (see conftest.py)
from livekit.agents import APIStatusError, inference
from livekit.plugins import openai_stt

from examples.evaluation import load_reference, word_error_rate
from livekit.plugins.openai_stt.server import LocalRealtimeServer, ScriptedEngine


async def test_wav_audio_input_paces_the_file_then_silence_then_stops(audio_dir: Path) -> None:
    speed = 20.0
    audio = WavAudioInput(audio_dir / "goforward.wav", speed=speed, trailing_silence_s=0.5)
    assert audio.sample_rate == 16_000

    start = time.monotonic()
    frames = [frame async for frame in audio]
    elapsed = time.monotonic() - start

    total = sum(f.duration for f in frames)
    assert total == pytest.approx(2.79 + 0.5, abs=0.02)  # the clip, then 0.5 s of silence
    assert audio.done.is_set()
    assert audio.audio_pos == pytest.approx(total)
    assert total / speed - 0.01 <= elapsed < total / speed + 0.25  # paced, not dumped
    silence = frames[-50:]  # the last 0.5 s, in 10 ms frames
    assert all(not any(f.data) for f in silence)
    assert all(f.num_channels == 1 and f.sample_rate == 16_000 for f in frames)


async def test_agent_session_turns_end_and_carry_the_final_transcripts(audio_dir: Path) -> None:
    # the scripted engine answers each committed item with "<seconds> seconds of audio"
    async with LocalRealtimeServer(engine=ScriptedEngine()) as server:
        stt = openai_stt.STT(base_url=server.base_url, api_key="test")
        try:
            heard: list[str] = []
            turns = await asyncio.wait_for(
                run_agent_on_file(
                    audio_dir / "jfk.wav",
                    stt,
                    vad=inference.VAD(model="silero"),
                    speed=2.0,  # the pauses between sentences stay longer than the endpointing
                    on_turn=heard.append,
                ),
                timeout=60,
            )
        finally:
            await stt.aclose()

    assert len(turns) >= 2, turns  # four sentences with pauses: more than one turn
    assert heard == turns
    durations = []
    for turn in turns:
        parts = re.findall(r"(\d+\.\d\d) seconds of audio", turn)
        assert parts and re.fullmatch(r"(\d+\.\d\d seconds of audio\s*)+", turn), turn
        durations += [float(p) for p in parts]
    # the items cover the speech (11 s clip), and no item is an empty commit
    assert all(d >= 0.1 for d in durations)
    assert 5.0 < sum(durations) <= 11.0 + 1.5 + 0.1


async def test_a_rejected_key_ends_the_run_with_the_api_error(audio_dir: Path) -> None:
    async with LocalRealtimeServer(engine=ScriptedEngine(), api_key="right-key") as server:
        stt = openai_stt.STT(base_url=server.base_url, api_key="wrong-key")
        try:
            with pytest.raises(APIStatusError) as info:
                await asyncio.wait_for(
                    run_agent_on_file(audio_dir / "goforward.wav", stt, speed=4.0), timeout=60
                )
        finally:
            await stt.aclose()
    assert info.value.status_code == 401
    assert "wrong-key" not in str(info.value)


@pytest.mark.slow
@pytest.mark.parametrize("clip_name", ["goforward.wav", "librivox-0930.wav"])
async def test_agent_session_transcribes_real_speech_with_the_whisper_engine(
    audio_dir: Path, clip_name: str
) -> None:
    # (librivox-0880.wav is not used: Whisper tiny.en hears "ill disposed" as "old-sposed")
    clip = audio_dir / clip_name
    reference = load_reference(clip)
    assert reference

    # full-quality finals whatever the load (see tests/test_real_speech.py)
    async with LocalRealtimeServer(engine="whisper", fast_finals_under_load=False) as server:
        stt = openai_stt.STT(base_url=server.base_url, api_key="test")
        try:
            turns = await asyncio.wait_for(
                run_agent_on_file(clip, stt, vad=inference.VAD(model="silero"), speed=2.0),
                timeout=90,
            )
        finally:
            await stt.aclose()

    assert turns, "no user turn was committed"
    assert word_error_rate(reference, " ".join(turns)) <= 0.20, turns
