"""Room audio to wire audio: downmix, blocks of ``chunk_ms``, resampling, G.711.

The per-frame path of a stream. Frames of one sample rate are gathered into blocks of
``chunk_ms`` before they are resampled, so the native resampler (LiveKit's
``rtc.AudioResampler``) runs once a chunk rather than once a 10 ms frame; a change of sample rate
mid-stream flushes the old rate's block and resampler tail first. Output is wire bytes:
16-bit little-endian PCM at 24 kHz, or G.711 at 8 kHz (docs/protocol.md §2).
"""

from __future__ import annotations

import numpy as np
from livekit import rtc

from .protocol import g711
from .protocol.session import AudioFormat, wire_sample_rate_hz

__all__ = ["AudioInput", "downmix"]


def downmix(frame: rtc.AudioFrame) -> rtc.AudioFrame:
    """A mono frame: the mean of the channels of ``frame`` (returned as is when mono)."""
    if frame.num_channels == 1:
        return frame
    samples = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)
    mono = samples.mean(axis=1).astype(np.int16)
    return rtc.AudioFrame(
        data=mono.tobytes(),
        sample_rate=frame.sample_rate,
        num_channels=1,
        samples_per_channel=frame.samples_per_channel,
    )


class AudioInput:
    """Frames in (any rate, any channel count), wire-format blocks out.

    Args:
        audio_format: the wire format; decides the rate (24 kHz pcm16, 8 kHz G.711).
        sample_rate_hz: another wire rate (vLLM's 16 kHz pcm16).
        chunk_ms: block length, milliseconds of input audio.

    Each method returns the wire blocks now ready (``bytes``; often none).
    """

    def __init__(
        self, audio_format: AudioFormat, chunk_ms: int, sample_rate_hz: int | None = None
    ) -> None:
        self.audio_format = audio_format
        self.sample_rate_hz = sample_rate_hz or wire_sample_rate_hz(audio_format)
        self.chunk_ms = chunk_ms
        self._block = bytearray()
        self._block_rate = 0
        self._block_samples = 0
        self._block_target = 0
        self._resampler: rtc.AudioResampler | None = None
        self._resampler_rate = 0

    def push(self, frame: rtc.AudioFrame) -> list[bytes]:
        """Add one mono frame (see :func:`downmix`); returns the blocks completed."""
        out: list[bytes] = []
        if frame.sample_rate != self._block_rate:
            out += self.flush(resampler=True)
            self._block_rate = frame.sample_rate
            self._block_target = frame.sample_rate * self.chunk_ms // 1000
        self._block += frame.data
        self._block_samples += frame.samples_per_channel
        if self._block_samples >= self._block_target:
            out += self.flush(resampler=False)
        return out

    def flush(self, *, resampler: bool) -> list[bytes]:
        """The partial block now, and with ``resampler=True`` the resampler's tail too (a turn
        ends: every sample pushed must reach the wire before its commit)."""
        out: list[bytes] = []
        if self._block_samples:
            block = rtc.AudioFrame(bytes(self._block), self._block_rate, 1, self._block_samples)
            self._block.clear()
            self._block_samples = 0
            if self._block_rate == self.sample_rate_hz:
                out.append(self._wire(block))
            else:
                if self._resampler is None or self._resampler_rate != self._block_rate:
                    out += self._drain_resampler()
                    self._resampler = rtc.AudioResampler(
                        self._block_rate,
                        self.sample_rate_hz,
                        quality=rtc.AudioResamplerQuality.HIGH,
                    )
                    self._resampler_rate = self._block_rate
                out += [self._wire(f) for f in self._resampler.push(block)]
        if resampler:
            out += self._drain_resampler(keep=True)
        return out

    def _drain_resampler(self, keep: bool = False) -> list[bytes]:
        if self._resampler is None:
            return []
        out = [self._wire(f) for f in self._resampler.flush()]
        if not keep:
            self._resampler = None
            self._resampler_rate = 0
        return out

    def _wire(self, frame: rtc.AudioFrame) -> bytes:
        if self.audio_format == "pcm16":
            return bytes(frame.data)
        pcm = np.frombuffer(frame.data, dtype=np.int16)
        return g711.encode(self.audio_format, pcm).tobytes()
