"""Streaming pieces of the engines module: resampler, Silero VAD, repetition trimming."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from examples.evaluation import read_wav
from livekit.plugins.openai_stt.server.engines import (
    SileroVad,
    StreamResampler,
    resample_int16,
    trim_repetition,
)


@pytest.mark.parametrize(
    ("from_hz", "to_hz"),
    [(24000, 16000), (8000, 16000), (48000, 16000), (16000, 16000), (44100, 16000)],
)
def test_the_stream_resampler_gives_the_same_samples_whatever_the_chunking(
    from_hz: int, to_hz: int
) -> None:
    x = np.random.default_rng(1).standard_normal(10007).astype(np.float32)
    whole = StreamResampler(from_hz, to_hz).push(x)
    r, parts, i = StreamResampler(from_hz, to_hz), [], 0
    for size in np.random.default_rng(2).integers(1, 700, 1000):
        parts.append(r.push(x[i : i + size]))
        i += int(size)
        if i >= len(x):
            break
    assert np.array_equal(np.concatenate(parts), whole)
    assert abs(len(whole) - len(x) * to_hz / from_hz) <= 1


def test_silero_vad_pushed_in_chunks_matches_one_pass_and_finds_the_speech(
    audio_dir: Path,
) -> None:
    samples, rate = read_wav(audio_dir / "jfk.wav")
    pcm = resample_int16(samples[:, 0], rate, 24000).astype("<i2").tobytes()
    whole = SileroVad("audio/pcm", 24000).push(pcm)
    vad, chunked = SileroVad("audio/pcm", 24000), []
    for k in range(0, len(pcm), 4800):  # 100 ms appends
        chunked += vad.push(pcm[k : k + 4800])
    assert len(chunked) == len(whole) == int(11.0 / SileroVad.window_s)
    assert np.allclose(chunked, whole, atol=1e-5)
    speech = np.array(whole) >= 0.5
    t = np.arange(len(whole)) * SileroVad.window_s
    assert speech[(t > 0.6) & (t < 2.0)].mean() > 0.8  # "And so my fellow Americans"
    assert speech[(t > 2.5) & (t < 3.2)].mean() < 0.2  # the pause after it


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("a b c d", "a b c d"),
        ("go forward 10 meters, go forward 10 meters. go forward 10", "go forward 10 meters,"),
        ("And so and so and so and so and so", "And so"),
        ("ask not what you can do ask not what", "ask not what you can do ask not what"),
        ("no no no no no no", "no"),
    ],
)
def test_trim_repetition_cuts_a_hypothesis_at_a_repetition_loop(text: str, kept: str) -> None:
    assert " ".join(trim_repetition(text.split())) == kept
