"""Conformance: the stream against the local server for every registry model, in both dialects
and with both audio formats: events, usage and cost (docs/protocol.md §2, §4)."""

from __future__ import annotations

import itertools
import typing

import pytest
from livekit.agents import stt as lk_stt
from livekit.plugins import openai_stt

from livekit.plugins.openai_stt.models import STTModels, get_model_info
from livekit.plugins.openai_stt.server import LocalRealtimeServer
from tests.helpers import Recorder, run_turns

T = lk_stt.SpeechEventType
MODELS = list(typing.get_args(STTModels))
CASES = list(itertools.product(MODELS, ["ga", "beta"], ["pcm16", "g711_ulaw"]))
CASES.append(("gpt-4o-transcribe", "speaches", "pcm16"))


@pytest.mark.parametrize(("model", "dialect", "audio_format"), CASES, ids=lambda v: str(v))
async def test_two_turns_give_two_finals_with_usage_and_cost(model, dialect, audio_format):
    info = get_model_info(model)
    recorder = Recorder()
    async with LocalRealtimeServer(engine="scripted") as server:
        stt = openai_stt.STT(
            model=model,
            base_url=server.base_url,
            api_key="t",
            dialect=dialect,
            audio_format=audio_format,
            prompt="names: Ada, Grace",
            logprobs=True,
            turn_detection=None,  # the client commits (server VAD on a tone is not the point)
            connect=recorder.connect,
        )
        events = await run_turns(stt, [0.5, 1.0])

    # what was sent honours the registry
    update = recorder.sent[0]
    if dialect == "ga":
        assert update["type"] == "session.update"
        transcription = update["session"]["audio"]["input"]["transcription"]
        assert update["session"]["audio"]["input"]["turn_detection"] is None
    else:
        expected = "transcription_session.update" if dialect == "beta" else "session.update"
        assert update["type"] == expected
        transcription = update["session"]["input_audio_transcription"]
    assert transcription["model"] == model
    assert ("prompt" in transcription) == info.accepts_prompt

    finals = [e for e in events if e.type == T.FINAL_TRANSCRIPT]
    assert [f.alternatives[0].text for f in finals] == [
        "0.50 seconds of audio",
        "1.00 seconds of audio",
    ]
    assert all(0.0 < f.alternatives[0].confidence <= 1.0 for f in finals)  # logprobs asked
    usage = [e.recognition_usage for e in events if e.type == T.RECOGNITION_USAGE]
    assert [round(u.audio_duration, 2) for u in usage] == [0.5, 1.0]
    if info.usage_kind == "tokens":
        assert all(u.input_tokens > 0 and u.output_tokens > 0 for u in usage)
        expected_cost = sum(
            u.input_tokens * info.usd_per_million_audio_input_tokens / 1e6
            + u.output_tokens * info.usd_per_million_output_tokens / 1e6
            for u in usage
        )
    else:  # priced per minute even when the server reports tokens (whisper-1, docs/protocol.md §2)
        expected_cost = 1.5 / 60 * info.usd_per_audio_minute
    assert stt.usage.cost_usd == pytest.approx(expected_cost)
    assert stt.usage.audio_seconds_committed == pytest.approx(1.5)
