"""G.711 μ-law and A-law on numpy arrays (ITU-T G.711; docs/protocol.md §2 ``audio/pcmu|pcma``).

Pure. Encoding is one table look-up per sample: the 65,536-entry tables are built once,
vectorised, from the reference algorithm (Sun Microsystems' public ``g711.c``), so the
per-frame cost is a single ``numpy.take``. 8 kHz, one byte a sample.
"""

from __future__ import annotations

import numpy as np

__all__ = ["encode_ulaw", "encode_alaw", "decode_ulaw", "decode_alaw", "encode", "decode"]

_SEG_UEND = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)
_SEG_AEND = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def _linear_to_ulaw(pcm: np.ndarray) -> np.ndarray:
    x = pcm.astype(np.int32) >> 2
    mask = np.where(x < 0, 0x7F, 0xFF)
    x = np.minimum(np.abs(x), 8159) + (0x84 >> 2)
    seg = np.searchsorted(_SEG_UEND, x, side="left")
    uval = (seg << 4) | ((x >> np.minimum(seg + 1, 31)) & 0xF)
    out = np.where(seg >= 8, 0x7F ^ mask, uval ^ mask)
    return out.astype(np.uint8)


def _linear_to_alaw(pcm: np.ndarray) -> np.ndarray:
    x = pcm.astype(np.int32) >> 3
    negative = x < 0
    mask = np.where(negative, 0x55, 0xD5)
    x = np.where(negative, -x - 1, x)
    seg = np.searchsorted(_SEG_AEND, x, side="left")
    shift = np.where(seg < 2, 1, np.minimum(seg, 31))
    aval = (seg << 4) | ((x >> shift) & 0xF)
    out = np.where(seg >= 8, 0x7F ^ mask, aval ^ mask)
    return out.astype(np.uint8)


def _ulaw_to_linear(code: np.ndarray) -> np.ndarray:
    u = ~code.astype(np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, 0x84 - t, t - 0x84).astype(np.int16)


def _alaw_to_linear(code: np.ndarray) -> np.ndarray:
    a = code.astype(np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.int16)


_ALL_INT16 = np.arange(-32768, 32768, dtype=np.int32)
# indexed by the sample's bit pattern as uint16
_ULAW_ENC = np.roll(_linear_to_ulaw(_ALL_INT16), -32768)
_ALAW_ENC = np.roll(_linear_to_alaw(_ALL_INT16), -32768)
_ALL_CODES = np.arange(256, dtype=np.int32)
_ULAW_DEC = _ulaw_to_linear(_ALL_CODES)
_ALAW_DEC = _alaw_to_linear(_ALL_CODES)
del _ALL_INT16, _ALL_CODES


def _codes(data: bytes | np.ndarray) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data
    return np.frombuffer(data, dtype=np.uint8)


def encode_ulaw(pcm16: np.ndarray) -> np.ndarray:
    """int16 samples, shape (n,) -> μ-law bytes, uint8 shape (n,)."""
    return _ULAW_ENC.take(pcm16.view(np.uint16))


def encode_alaw(pcm16: np.ndarray) -> np.ndarray:
    """int16 samples, shape (n,) -> A-law bytes, uint8 shape (n,)."""
    return _ALAW_ENC.take(pcm16.view(np.uint16))


def decode_ulaw(data: bytes | np.ndarray) -> np.ndarray:
    """μ-law bytes -> int16 samples, shape (n,)."""
    return _ULAW_DEC.take(_codes(data))


def decode_alaw(data: bytes | np.ndarray) -> np.ndarray:
    """A-law bytes -> int16 samples, shape (n,)."""
    return _ALAW_DEC.take(_codes(data))


def encode(audio_format: str, pcm16: np.ndarray) -> np.ndarray:
    """Encode int16 samples for ``g711_ulaw`` or ``g711_alaw``.

    Raises:
        ValueError: another format.
    """
    if audio_format == "g711_ulaw":
        return encode_ulaw(pcm16)
    if audio_format == "g711_alaw":
        return encode_alaw(pcm16)
    raise ValueError(f"not a G.711 format: {audio_format!r}")


def decode(audio_format: str, data: bytes | np.ndarray) -> np.ndarray:
    """Decode ``g711_ulaw`` or ``g711_alaw`` bytes to int16 samples.

    Raises:
        ValueError: another format.
    """
    if audio_format == "g711_ulaw":
        return decode_ulaw(data)
    if audio_format == "g711_alaw":
        return decode_alaw(data)
    raise ValueError(f"not a G.711 format: {audio_format!r}")
