"""protocol/g711.py against the stdlib reference (``audioop``, deprecated but present in 3.11):
every int16 sample and every code, both laws (docs/protocol.md §2 ``audio/pcmu`` /
``audio/pcma``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from livekit.plugins.openai_stt.protocol import g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    audioop = pytest.importorskip("audioop")

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))

LAWS = [
    # (encode, decode, audioop encode, audioop decode, format name)
    pytest.param(
        g711.encode_ulaw,
        g711.decode_ulaw,
        audioop.lin2ulaw,
        audioop.ulaw2lin,
        "g711_ulaw",
        id="mu-law",
    ),
    pytest.param(
        g711.encode_alaw,
        g711.decode_alaw,
        audioop.lin2alaw,
        audioop.alaw2lin,
        "g711_alaw",
        id="a-law",
    ),
]


@pytest.mark.parametrize("encode, decode, ref_encode, ref_decode, fmt", LAWS)
def test_encode_equals_audioop_for_all_65536_samples(encode, decode, ref_encode, ref_decode, fmt):
    out = encode(ALL_SAMPLES)
    assert out.dtype == np.uint8
    assert out.shape == ALL_SAMPLES.shape
    expected = np.frombuffer(ref_encode(ALL_SAMPLES.astype("<i2").tobytes(), 2), dtype=np.uint8)
    mismatch = np.flatnonzero(out != expected)
    assert mismatch.size == 0, (
        f"{mismatch.size} samples differ, first {ALL_SAMPLES[mismatch[:5]].tolist()}"
    )


@pytest.mark.parametrize("encode, decode, ref_encode, ref_decode, fmt", LAWS)
def test_decode_equals_audioop_for_all_256_codes(encode, decode, ref_encode, ref_decode, fmt):
    expected = np.frombuffer(ref_decode(ALL_CODES, 2), dtype="<i2")
    for data in (ALL_CODES, np.frombuffer(ALL_CODES, dtype=np.uint8)):
        out = decode(data)
        assert out.dtype == np.int16
        assert out.shape == (256,)
        mismatch = np.flatnonzero(out != expected)
        assert mismatch.size == 0, f"codes {mismatch[:5].tolist()} differ"


@pytest.mark.parametrize("encode, decode, ref_encode, ref_decode, fmt", LAWS)
def test_dispatch_by_format_name(encode, decode, ref_encode, ref_decode, fmt):
    samples = np.array([0, 1, -1, 1000, -1000, 32767, -32768], dtype=np.int16)
    assert np.array_equal(g711.encode(fmt, samples), encode(samples))
    codes = encode(samples)
    assert np.array_equal(g711.decode(fmt, codes.tobytes()), decode(codes))


@pytest.mark.parametrize("fmt", ["pcm16", "ulaw", "", "G711_ULAW"])
def test_dispatch_rejects_other_formats(fmt):
    with pytest.raises(ValueError):
        g711.encode(fmt, np.zeros(4, dtype=np.int16))
    with pytest.raises(ValueError):
        g711.decode(fmt, b"\x00" * 4)


@pytest.mark.parametrize("encode, decode, ref_encode, ref_decode, fmt", LAWS)
def test_round_trip_error_is_within_half_a_step(encode, decode, ref_encode, ref_decode, fmt):
    # G.711 keeps 4 mantissa bits per segment: the error of decode(encode(x)) is at most
    # |x| / 32 (half a step of the top segments) plus 8 (half the smallest step, 16 LSB),
    # including mu-law's clipping at +-32124.
    x = ALL_SAMPLES.astype(np.int64)
    err = np.abs(decode(encode(ALL_SAMPLES)).astype(np.int64) - x)
    worst = int(np.argmax(err - np.abs(x) / 32))
    assert np.all(err <= np.abs(x) / 32 + 8), f"sample {x[worst]} -> error {err[worst]}"
    assert int(err.max()) <= 644


@pytest.mark.parametrize("encode, decode, ref_encode, ref_decode, fmt", LAWS)
def test_decoded_values_are_fixed_points(encode, decode, ref_encode, ref_decode, fmt):
    levels = decode(ALL_CODES)
    assert np.array_equal(decode(encode(levels)), levels)


@pytest.mark.parametrize("encode, decode, ref_encode, ref_decode, fmt", LAWS)
def test_encoding_is_monotonic_in_the_decoded_level(encode, decode, ref_encode, ref_decode, fmt):
    levels = decode(encode(ALL_SAMPLES)).astype(np.int64)
    assert np.all(np.diff(levels) >= 0)


def test_empty_input_gives_empty_output():
    empty = np.zeros(0, dtype=np.int16)
    assert g711.encode_ulaw(empty).shape == (0,)
    assert g711.encode_alaw(empty).shape == (0,)
    assert g711.decode_ulaw(b"").shape == (0,)
    assert g711.decode_alaw(b"").shape == (0,)


def test_silence_codes():
    zero = np.zeros(3, dtype=np.int16)
    assert g711.encode_ulaw(zero).tolist() == [0xFF] * 3
    assert g711.encode_alaw(zero).tolist() == [0xD5] * 3
