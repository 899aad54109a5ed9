"""Real speech through the stream and the local server's faster-whisper engine (slow)."""

from __future__ import annotations

import pytest

from livekit.agents import stt as lk_stt
from livekit.plugins import openai_stt
from livekit.plugins.openai_stt.evaluation import load_reference, wav_frames, word_error_rate
from livekit.plugins.openai_stt.server import LocalRealtimeServer

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("audio_format", ["pcm16", "g711_ulaw"])
async def test_jfk_through_the_stream_and_whisper_engine_has_wer_at_most_10_percent(
    audio_dir, audio_format
):
    clip = audio_dir / "jfk.wav"
    reference = load_reference(clip)
    assert reference
    async with LocalRealtimeServer(engine="whisper") as server:
        stt = openai_stt.STT(base_url=server.base_url, api_key="local", audio_format=audio_format)
        stream = stt.stream()
        # two turns, committed at the speaker's pause after "for you," (about 7.7 s)
        for index, frame in enumerate(wav_frames(clip, frame_ms=100)):
            stream.push_frame(frame)
            if index == 77:
                stream.flush()
        stream.end_input()
        events = [event async for event in stream]
        await stream.aclose()
    final = lk_stt.SpeechEventType.FINAL_TRANSCRIPT
    finals = [e.alternatives[0].text for e in events if e.type == final]
    hypothesis = " ".join(finals)
    wer = word_error_rate(reference, hypothesis)
    assert len(finals) == 2, finals
    assert wer <= 0.10, (wer, hypothesis)
    assert stt.usage.audio_seconds_committed == pytest.approx(11.0, abs=0.05)

