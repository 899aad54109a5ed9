"""Where speech pauses (pure): the quiet run at the end of some audio.

A decode of an open buffer that ends in a pause can stand for the final of that buffer when
only quiet audio follows before the commit (``speculation.py``); the partial schedule starts
such a decode as soon as a pause begins (``partials.OpenItemPartials.due_at``).

"Quiet" is relative to the speaker: 20 ms frames whose RMS is under a tenth of the loud frames'
level (90th percentile over the last :data:`LOOKBACK_S`), and under an absolute floor of
-50 dBFS in any case. Audio with no frame above -40 dBFS has no speech to end: no verdict.
"""

from __future__ import annotations

import numpy as np

from ..protocol import g711
from ..protocol.session import WIRE_FORMATS

__all__ = [
    "FRAME_S",
    "LOOKBACK_S",
    "QUIET_TAIL_S",
    "quiet_tail_s",
    "speech_end_bytes",
    "wire_tail_samples",
]

FRAME_S = 0.02
#: How much of the end of the audio sets the speaker's level.
LOOKBACK_S = 2.0
#: A quiet run this long after speech counts as a pause.
QUIET_TAIL_S = 0.1
_REL = 0.1
_FLOOR = 10 ** (-50 / 20)
_SPEECH = 10 ** (-40 / 20)

_PCM, _ULAW, _ALAW = (WIRE_FORMATS[name].ga_type for name in ("pcm16", "g711_ulaw", "g711_alaw"))


def quiet_tail_s(samples: np.ndarray, rate: int) -> float | None:
    """Seconds of quiet at the end of ``samples`` (float in [-1, 1], or int16, mono, at
    ``rate``), in whole frames; None when the last :data:`LOOKBACK_S` hold no speech."""
    x = np.asarray(samples)
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    frame = max(1, round(rate * FRAME_S))
    x = x[-round(LOOKBACK_S * rate) :]
    n = len(x) // frame
    if n == 0:
        return None
    tail = x[len(x) - n * frame :].astype(np.float32).reshape(n, frame)
    rms = np.sqrt((tail * tail).mean(axis=1))
    level = float(np.percentile(rms, 90))
    if level < _SPEECH:
        return None
    loud = np.flatnonzero(rms >= max(_FLOOR, _REL * level))
    quiet_frames = n - 1 - int(loud[-1]) if len(loud) else n
    return quiet_frames * frame / rate


def wire_tail_samples(
    audio: bytes | bytearray, format_type: str, seconds: float, rate: int
) -> np.ndarray:
    """The last ``seconds`` of wire audio as int16 samples (pcm16 or G.711; empty for an
    unknown format)."""
    if format_type == _PCM:
        nbytes = round(seconds * rate) * 2
        tail = bytes(audio[-nbytes:]) if nbytes else b""
        tail = tail[len(tail) % 2 :]
        return np.frombuffer(tail, dtype="<i2")
    if format_type in (_ULAW, _ALAW):
        tail = bytes(audio[-round(seconds * rate) :])
        return g711.decode_ulaw(tail) if format_type == _ULAW else g711.decode_alaw(tail)
    return np.zeros(0, dtype=np.int16)


def speech_end_bytes(
    audio: bytes | bytearray, format_type: str, rate: int, bytes_per_sample: int
) -> int | None:
    """Where the last speech in wire ``audio`` ends, as a byte offset (the quiet run after it is
    ``len(audio) - offset``); None when the end of the audio holds no speech."""
    quiet = quiet_tail_s(wire_tail_samples(audio, format_type, LOOKBACK_S, rate), rate)
    if quiet is None:
        return None
    return max(0, len(audio) - round(quiet * rate) * bytes_per_sample)
