"""The official ``livekit-plugins-openai`` (1.8.9) streams real speech through the local server.

Its realtime STT (``use_realtime=True``, ``model="gpt-realtime-whisper"``) is pointed at the
local server (faster-whisper engine) with ``base_url`` and ``api_key``; it commits on its own
Silero VAD (``livekit.agents.inference.VAD(model="silero")``, offline), as it does for the
models that take no server VAD. The demo clip is pushed at four times real time (faster, and
the official VAD's END_OF_SPEECH commits land after later audio was sent, or on an empty
buffer, whose ``error`` the official plugin treats as fatal), followed by a second of silence
that ends the last turn. Its finals are scored against the clip's reference text.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks.clips import clip_frames
from examples.evaluation import DEMO_REFERENCE, word_error_rate
from livekit.plugins.openai_stt.server import LocalRealtimeServer
from tests.peers.support import PINNED, installed, peers_required

pytestmark = pytest.mark.peers

if installed("livekit-plugins-openai") is None and not peers_required():
    pytest.skip(
        "livekit-plugins-openai is not installed (the peers extra)", allow_module_level=True
    )

from livekit import rtc  # noqa: E402
from livekit.agents import inference  # noqa: E402
from livekit.agents import stt as lk_stt  # noqa: E402
from livekit.agents.utils import http_context  # noqa: E402
from livekit.plugins import openai as official  # noqa: E402

KEY = "official-peer-key"
SPEED = 4.0
"""How much faster than real time the clip is pushed."""
WER_BOUND = 0.15
T = lk_stt.SpeechEventType


def test_the_pinned_official_plugin_is_the_one_installed() -> None:
    assert installed("livekit-plugins-openai") == PINNED["livekit-plugins-openai"]


async def push_paced(stream: lk_stt.RecognizeStream, frames: list[rtc.AudioFrame]) -> None:
    """``frames`` pushed at :data:`SPEED` times real time."""
    start = time.perf_counter()
    sent_s = 0.0
    for frame in frames:
        stream.push_frame(frame)
        sent_s += frame.duration
        await asyncio.sleep(max(0.0, start + sent_s / SPEED - time.perf_counter()))


async def test_the_official_plugin_transcribes_the_demo_clip_through_the_local_server(
    demo_clip: Path, record_property: pytest.RecordProperty
) -> None:
    frames = clip_frames(demo_clip)
    rate = frames[0].sample_rate
    silence = [rtc.AudioFrame(np.zeros(rate // 100, np.int16).tobytes(), rate, 1, rate // 100)]
    events: list[lk_stt.SpeechEvent] = []

    def count(kind: lk_stt.SpeechEventType) -> int:
        return sum(1 for e in events if e.type == kind)

    # full-quality finals whatever the load (see tests/test_real_speech.py)
    server = LocalRealtimeServer(engine="whisper", api_key=KEY, fast_finals_under_load=False)
    async with server:
        async with http_context.open():  # the official plugin's websockets come from here
            stt = official.STT(
                base_url=server.base_url,
                api_key=KEY,
                model="gpt-realtime-whisper",
                use_realtime=True,
                language="en",
                vad=inference.VAD(model="silero"),
            )
            stream = stt.stream()

            async def read() -> None:
                async for event in stream:
                    events.append(event)

            reader = asyncio.create_task(read())
            try:
                await push_paced(stream, frames + silence * 100)
                # each END_OF_SPEECH is one commit; each `completed` gives one usage event
                deadline = time.perf_counter() + 30
                while not (
                    count(T.END_OF_SPEECH) >= 1
                    and count(T.END_OF_SPEECH) == count(T.START_OF_SPEECH)
                    and count(T.RECOGNITION_USAGE) >= count(T.END_OF_SPEECH)
                ):
                    assert not reader.done(), reader.exception()
                    assert time.perf_counter() < deadline, [e.type for e in events]
                    await asyncio.sleep(0.05)
                # (its stream does not end after end_input(): the socket stays open until aclose)
            finally:
                reader.cancel()
                await stream.aclose()
                await stt.aclose()

    finals = [e.alternatives[0].text for e in events if e.type == T.FINAL_TRANSCRIPT]
    wer = word_error_rate(DEMO_REFERENCE, " ".join(finals))
    record_property("official_plugin_wer", round(wer, 4))  # shown by --junitxml (xunit1)
    assert count(T.END_OF_SPEECH) >= 5, finals  # the VAD cut the clip at its pauses
    assert len(finals) == count(T.END_OF_SPEECH), finals  # one final per commit, none empty
    assert wer <= WER_BOUND, (wer, finals)
