"""Real speech through the stream and the local server's faster-whisper engine (slow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from livekit.agents import stt as lk_stt
from livekit.plugins import openai_stt

from benchmarks.clips import turn_boundaries
from examples.evaluation import DEMO_REFERENCE, load_reference, wav_frames, word_error_rate
from livekit.plugins.openai_stt.server import LocalRealtimeServer
from tests.helpers import push_with_flushes

pytestmark = pytest.mark.slow
FINAL = lk_stt.SpeechEventType.FINAL_TRANSCRIPT
# Full-quality finals whatever the load: these tests score the stream path's transcripts, and
# with every turn pushed at once (or other tests busy on the cores) the server would otherwise
# decode finals fast (``fast_finals_under_load``, a few points of WER worse; the benchmarks
# measure that trade).
WHISPER = {"engine": "whisper", "fast_finals_under_load": False}


async def _transcribe(
    server: LocalRealtimeServer, clip: Path, flush_after_s: list[float], **options: Any
) -> tuple[list[str], openai_stt.STT]:
    """Push ``clip`` in 100 ms frames as fast as possible, flushing once the audio pushed
    reaches each time of ``flush_after_s``; returns the finals."""
    stt = openai_stt.STT(base_url=server.base_url, api_key="local", **options)
    stream = stt.stream()
    push_with_flushes(stream, wav_frames(clip, frame_ms=100), flush_after_s)
    events = [event async for event in stream]
    await stream.aclose()
    return [e.alternatives[0].text for e in events if e.type == FINAL], stt


async def test_the_demo_clip_through_the_stream_and_whisper_engine_has_wer_at_most_5_percent(
    demo_clip: Path,
) -> None:
    """Runs in every setting: the clip comes with the ``demo`` extra, not from ../shared."""
    turns = turn_boundaries(demo_clip)
    async with LocalRealtimeServer(**WHISPER) as server:
        finals, stt = await _transcribe(server, demo_clip, turns[:-1])
    wer = word_error_rate(DEMO_REFERENCE, " ".join(finals))
    assert len(finals) == len(turns), finals
    assert wer <= 0.05, (wer, finals)
    assert stt.usage.audio_seconds_committed == pytest.approx(turns[-1], abs=0.05)


@pytest.mark.parametrize("audio_format", ["pcm16", "g711_ulaw"])
async def test_jfk_through_the_stream_and_whisper_engine_has_wer_at_most_10_percent(
    audio_dir: Path, audio_format: str
) -> None:
    clip = audio_dir / "jfk.wav"
    reference = load_reference(clip)
    assert reference
    async with LocalRealtimeServer(**WHISPER) as server:
        # two turns, committed at the speaker's pause after "for you," (about 7.7 s)
        finals, stt = await _transcribe(server, clip, [7.8], audio_format=audio_format)
    wer = word_error_rate(reference, " ".join(finals))
    assert len(finals) == 2, finals
    assert wer <= 0.10, (wer, finals)
    assert stt.usage.audio_seconds_committed == pytest.approx(11.0, abs=0.05)
