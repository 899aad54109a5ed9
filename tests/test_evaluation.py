"""Table tests for the scoring, WAV and demo-clip helpers in ``examples/evaluation.py``."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from examples.evaluation import (
    DEMO_REFERENCE,
    load_reference,
    normalize_transcript,
    read_wav,
    wav_frames,
    word_error_rate,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # case and punctuation
        ("Hello, World!", "hello world"),
        ("And so, my fellow Americans,", "and so my fellow americans"),
        ("the other way - in short", "the other way in short"),
        ("the worst \u2014 of times\u2026", "the worst of times"),
        ('"Quoted" \u201ctext\u201d', "quoted text"),
        ("don't won\u2019t", "dont wont"),
        ("well-known", "well known"),
        ("U.S. policy", "us policy"),
        ("  many   spaces\tand\nlines ", "many spaces and lines"),
        ("...", ""),
        ("", ""),
        # numbers
        ("Go forward 10 meters.", "go forward ten meters"),
        ("0 7 13 19", "zero seven thirteen nineteen"),
        ("20 21 40 99", "twenty twenty one forty ninety nine"),
        ("twenty-one", "twenty one"),
        ("3.5", "three point five"),
        ("100 1961", "100 1961"),
        ("1,000 people", "1000 people"),
        ("50%", "fifty percent"),
    ],
)
def test_normalize_transcript_table(text: str, expected: str) -> None:
    assert normalize_transcript(text) == expected


def test_normalize_transcript_makes_whisper_style_and_reference_style_equal() -> None:
    assert normalize_transcript("Go forward, 10 meters!") == normalize_transcript(
        "go forward ten meters"
    )


@pytest.mark.parametrize(
    ("reference", "hypothesis", "expected"),
    [
        ("go forward ten meters", "go forward ten meters", 0.0),
        ("go forward ten meters", "Go forward 10 meters.", 0.0),
        ("go forward ten meters", "go backward ten meters", 0.25),  # one substitution of four
        ("go forward ten meters", "go forward meters", 0.25),  # one deletion
        ("go forward ten meters", "go go forward ten meters", 0.25),  # one insertion
        ("go forward ten meters", "", 1.0),
    ],
)
def test_word_error_rate_table(reference: str, hypothesis: str, expected: float) -> None:
    assert word_error_rate(reference, hypothesis) == pytest.approx(expected)


def test_word_error_rate_refuses_an_empty_reference() -> None:
    with pytest.raises(ValueError, match="reference"):
        word_error_rate("...", "anything")


def test_load_reference_finds_the_row_beside_the_clip(audio_dir: Path) -> None:
    assert load_reference(audio_dir / "goforward.wav") == "go forward ten meters"
    assert load_reference(audio_dir / "jfk.wav", audio_dir / "transcripts.tsv").startswith(
        "And so, my fellow Americans"
    )


def test_the_demo_clip_is_found_in_the_installed_wheel_and_has_its_reference(
    demo_clip: Path,
) -> None:
    assert demo_clip.name == "two_cities.wav" and demo_clip.is_absolute()
    assert load_reference(demo_clip) == DEMO_REFERENCE
    assert "moonshine_voice" not in __import__("sys").modules  # found without importing it


def test_a_copy_of_the_demo_clip_elsewhere_gets_no_reference_by_name(
    demo_clip: Path, tmp_path: Path
) -> None:
    copy = tmp_path / demo_clip.name
    copy.write_bytes(demo_clip.read_bytes())
    assert load_reference(copy) is None


def test_load_reference_is_none_without_a_row_or_a_table(tmp_path: Path, audio_dir: Path) -> None:
    assert load_reference(audio_dir / "no-such-clip.wav") is None
    assert load_reference(tmp_path / "jfk.wav") is None  # no transcripts.tsv in tmp_path


def test_load_reference_reads_a_given_table(tmp_path: Path) -> None:
    table = tmp_path / "refs.tsv"
    table.write_text("file\treference\na.wav\tfirst one\nb.wav\tsecond, one\n", encoding="utf-8")
    assert load_reference("b.wav", table) == "second, one"
    assert load_reference(tmp_path / "sub" / "a.wav", table) == "first one"


def test_load_reference_refuses_a_table_without_the_header(tmp_path: Path) -> None:
    table = tmp_path / "refs.tsv"
    table.write_text("a.wav\tfirst one\n", encoding="utf-8")
    with pytest.raises(ValueError, match="header"):
        load_reference("a.wav", table)


def test_read_wav_on_the_demo_clip(demo_clip: Path) -> None:
    samples, rate = read_wav(demo_clip)
    assert rate == 48_000
    assert samples.dtype == np.int16 and samples.shape[1] == 1
    assert samples.shape[0] / rate == pytest.approx(44.4, abs=0.1)
    assert np.abs(samples).max() > 1000  # speech, not silence


def test_read_wav_on_a_shared_mono_clip(audio_dir: Path) -> None:
    samples, rate = read_wav(audio_dir / "jfk.wav")
    assert rate == 16_000
    assert samples.dtype == np.int16
    assert samples.shape == (176_000, 1)
    assert samples.shape[0] / rate == pytest.approx(11.0)
    assert np.abs(samples).max() > 1000  # speech, not silence


def _write_wav(path: Path, samples: np.ndarray, rate: int, width: int = 2) -> None:
    """Write ``samples`` (shape ``(n, channels)``, already in the target integer dtype)."""
    with wave.open(str(path), "wb") as w:
        w.setnchannels(samples.shape[1])
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())


def test_read_wav_on_a_synthesized_stereo_file(tmp_path: Path) -> None:
    n, rate = 2_205, 22_050  # 0.1 s
    left = np.full(n, 1000, dtype=np.int16)
    right = np.full(n, -3000, dtype=np.int16)
    path = tmp_path / "stereo.wav"
    _write_wav(path, np.stack([left, right], axis=1), rate)

    samples, got_rate = read_wav(path)
    assert got_rate == rate
    assert samples.shape == (n, 2)
    assert (samples[:, 0] == 1000).all() and (samples[:, 1] == -3000).all()


def test_read_wav_converts_24_bit_to_16_bit(tmp_path: Path) -> None:
    values = np.array([0x123456, -0x123456, 0x7FFFFF, -0x800000], dtype=np.int32)
    raw = np.frombuffer(values.astype("<i4").tobytes(), dtype=np.uint8).reshape(-1, 4)[:, :3]
    path = tmp_path / "24bit.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(3)
        w.setframerate(8_000)
        w.writeframes(raw.tobytes())

    samples, _ = read_wav(path)
    assert samples[:, 0].tolist() == [0x1234, -0x1235, 0x7FFF, -0x8000]


def test_wav_frames_downmixes_stereo_to_mono_and_keeps_the_rate(tmp_path: Path) -> None:
    n, rate = 4_800 + 100, 48_000  # 0.1 s and a 100-sample remainder
    stereo = np.stack([np.full(n, 1000, dtype=np.int16), np.full(n, -3000, dtype=np.int16)], axis=1)
    path = tmp_path / "stereo.wav"
    _write_wav(path, stereo, rate)

    frames = list(wav_frames(path, frame_ms=10))
    assert [f.samples_per_channel for f in frames] == [480] * 10 + [100]
    assert all(f.num_channels == 1 and f.sample_rate == rate for f in frames)
    mono = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
    assert (mono == -1000).all()  # (1000 + -3000) / 2


def test_wav_frames_cover_the_whole_clip(audio_dir: Path) -> None:
    frames = list(wav_frames(audio_dir / "jfk.wav", frame_ms=20))
    assert all(f.sample_rate == 16_000 and f.num_channels == 1 for f in frames)
    assert sum(f.samples_per_channel for f in frames) == 176_000
    assert sum(f.duration for f in frames) == pytest.approx(11.0)
