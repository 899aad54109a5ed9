"""Audio conversion: wire bytes <-> engine samples (docs/protocol.md §2 formats).

Wire audio is pcm16 little-endian at its rate, or G.711 mu-law / A-law at 8 kHz (GA type names
``audio/pcm``, ``audio/pcmu``, ``audio/pcma``). Engines take float32 mono in [-1, 1) at their
``sample_rate_hz``; :func:`wire_to_float32` gets there, resampling with livekit's
``rtc.AudioResampler`` (imported lazily). :class:`StreamResampler` is the cheap streaming
resampler of the speech detector.
"""

from __future__ import annotations

import numpy as np

from ..protocol import g711
from ..protocol.session import WIRE_FORMATS

__all__ = ["StreamResampler", "decode_wire_audio", "resample_int16", "wire_to_float32"]

_PCM, _ULAW, _ALAW = (WIRE_FORMATS[name].ga_type for name in ("pcm16", "g711_ulaw", "g711_alaw"))


def decode_wire_audio(audio: bytes, format_type: str) -> np.ndarray:
    """Wire bytes -> int16 samples. ``audio/pcm``: little-endian 16-bit (a trailing odd byte is
    dropped); ``audio/pcmu`` / ``audio/pcma``: G.711 (:mod:`..protocol.g711`).

    Raises:
        ValueError: an unknown format.
    """
    if format_type == _PCM:
        n = len(audio) // 2
        return np.frombuffer(audio[: 2 * n], dtype="<i2").astype(np.int16)
    if format_type == _ULAW:
        return g711.decode_ulaw(audio)
    if format_type == _ALAW:
        return g711.decode_alaw(audio)
    raise ValueError(f"unknown audio format {format_type!r}")


def resample_int16(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """Resample int16 mono with livekit's ``rtc.AudioResampler`` (high quality); the whole
    buffer is pushed then flushed, so the output holds about ``len * to_hz / from_hz`` samples."""
    if from_hz == to_hz or len(samples) == 0:
        return samples
    from livekit import rtc

    resampler = rtc.AudioResampler(from_hz, to_hz, quality=rtc.AudioResamplerQuality.HIGH)
    data = np.ascontiguousarray(samples, dtype=np.int16)
    frames = resampler.push(rtc.AudioFrame(data.tobytes(), from_hz, 1, len(data)))
    frames += resampler.flush()
    if not frames:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])


def wire_to_float32(
    audio: bytes, format_type: str, rate: int, target_hz: int = 16000
) -> np.ndarray:
    """An item's wire bytes (``format_type`` at ``rate`` Hz) -> float32 mono in [-1, 1) at
    ``target_hz``."""
    pcm = resample_int16(decode_wire_audio(audio, format_type), rate, target_hz)
    return pcm.astype(np.float32) / 32768.0


class StreamResampler:
    """Streaming linear-interpolation resampler for mono chunks (for the speech detector only:
    cheap, no delay, no anti-aliasing filter, which the detector does not need).

    Output sample ``k`` sits at input position ``k * from_hz / to_hz`` of the whole stream,
    computed from integers each time, so the output does not depend on how the input is cut.
    """

    def __init__(self, from_hz: int, to_hz: int) -> None:
        self.from_hz, self.to_hz = from_hz, to_hz
        self._next = 0  # index of the next output sample
        self._tail = np.zeros(0, dtype=np.float32)  # the last input sample seen
        self._base = 0  # stream index of _tail[0]

    def push(self, samples: np.ndarray) -> np.ndarray:
        """The output samples the input so far allows (float32)."""
        x = np.asarray(samples, dtype=np.float32)
        if self.from_hz == self.to_hz or len(x) == 0:
            return x
        buf = np.concatenate([self._tail, x])
        last = self._base + len(buf) - 1  # stream index of the newest sample
        end = last * self.to_hz // self.from_hz + 1  # outputs at positions <= last
        ks = np.arange(self._next, end, dtype=np.int64)
        positions = (ks * self.from_hz) / self.to_hz - self._base
        out = np.interp(positions, np.arange(len(buf)), buf).astype(np.float32)
        self._next = max(self._next, end)
        self._tail, self._base = buf[-1:], last
        return out
