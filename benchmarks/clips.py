"""Where the speech clips of the tests and benchmarks are: the one place that knows.

- The demo clip, ``two_cities.wav``, installs with the ``demo`` extra (the moonshine-voice
  wheel ships it); :func:`examples.evaluation.demo_clip` finds it. Every setting has it.
- Further clips with reference texts live in the team's folder ``../shared/audio`` beside the
  project (our CI has it; a user's clone does not). Whatever uses them asks
  :func:`shared_audio_dir` and skips, saying so, when it is absent.

Also here: the clips as 10 ms frames (:func:`clip_frames`, :func:`speech_frames_48k`) and where
a clip's turns end (:func:`turn_boundaries`, at the speaker's pauses).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SHARED_AUDIO_DIR",
    "SHARED_AUDIO_MISSING",
    "clip_frames",
    "demo_clip",
    "reference_clips",
    "shared_audio_dir",
    "shared_clip",
    "speech_frames_48k",
    "turn_boundaries",
]

SHARED_AUDIO_DIR = Path(__file__).resolve().parents[2] / "shared" / "audio"
"""``../shared/audio`` relative to the project root: extra clips and ``transcripts.tsv``."""

SHARED_AUDIO_MISSING = (
    f"needs the team's clip folder ../shared/audio beside the project ({SHARED_AUDIO_DIR}); "
    "it is not there"
)
"""The reason given by whatever skips for want of :data:`SHARED_AUDIO_DIR`."""


def shared_audio_dir() -> Path | None:
    """:data:`SHARED_AUDIO_DIR` when it exists, else ``None``."""
    return SHARED_AUDIO_DIR if SHARED_AUDIO_DIR.is_dir() else None


def shared_clip(name: str) -> Path | None:
    """``SHARED_AUDIO_DIR / name`` when that file exists, else ``None``."""
    path = SHARED_AUDIO_DIR / name
    return path if path.is_file() else None


def demo_clip() -> Path:
    """``two_cities.wav`` from the installed ``demo`` extra.

    See :func:`examples.evaluation.demo_clip`.

    Raises:
        FileNotFoundError: the ``demo`` extra is not installed.
    """
    from examples.evaluation import demo_clip as find

    return find()


def reference_clips() -> list[Path]:
    """Every clip with a reference text: the demo clip, then the clips listed in
    ``../shared/audio/transcripts.tsv`` when that folder is present (its own copy of
    ``two_cities.wav`` left out)."""
    import csv

    clips = [demo_clip()]
    folder = shared_audio_dir()
    tsv = folder / "transcripts.tsv" if folder else None
    if tsv is not None and tsv.is_file():
        with tsv.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                name = (row.get("file") or "").strip()
                if name and name != clips[0].name and (tsv.parent / name).is_file():
                    clips.append(tsv.parent / name)
    return clips


def clip_frames(path: Path, seconds: float | None = None, frame_ms: int = 10) -> list[Any]:
    """The clip as ``rtc.AudioFrame`` s of ``frame_ms`` at its own rate; its first ``seconds``
    only, if given."""
    from examples.evaluation import wav_frames

    frames = list(wav_frames(path, frame_ms))
    return frames if seconds is None else frames[: round(seconds * 1000 / frame_ms)]


def speech_frames_48k(seconds: float = 20.0) -> list[Any]:
    """``seconds`` of 10 ms mono 48 kHz frames of real speech (the demo clip; deterministic
    noise when the ``demo`` extra is missing). Callers cycle them."""
    try:
        frames = [f for f in clip_frames(demo_clip(), seconds) if f.samples_per_channel == 480]
    except FileNotFoundError:
        frames = []
    if frames and frames[0].sample_rate == 48000:
        return frames
    from livekit import rtc

    rng = np.random.default_rng(7)
    noise = (rng.standard_normal((round(seconds * 100), 480)) * 2000).astype(np.int16)
    return [rtc.AudioFrame(row.tobytes(), 48000, 1, 480) for row in noise]


def turn_boundaries(
    path: Path, *, min_pause_s: float = 0.4, min_turn_s: float = 4.0, seconds: float | None = None
) -> list[float]:
    """Where a clip's turns end, seconds: the middle of pauses of at least ``min_pause_s`` (10 ms
    RMS below a level set from the clip) that leave turns of at least ``min_turn_s``; the clip's
    end (or ``seconds``, to use its start only) is always the last boundary."""
    from examples.evaluation import read_wav

    samples, rate = read_wav(path)
    x = samples.astype(np.float32).mean(axis=1)
    if seconds is not None:
        x = x[: round(seconds * rate)]
    win = rate // 100
    rms = np.sqrt((x[: len(x) // win * win].reshape(-1, win) ** 2).mean(axis=1))
    duration = len(x) / rate
    quiet = rms < max(float(np.percentile(rms, 20)) * 1.5, 200.0)
    bounds: list[float] = []
    start, last = None, 0.0
    for i, q in enumerate([*quiet, False]):
        if q and start is None:
            start = i
        elif not q and start is not None:
            mid = (start + i) / 200
            if (
                (i - start) / 100 >= min_pause_s
                and mid - last >= min_turn_s
                and duration - mid >= 1
            ):
                bounds.append(round(mid, 2))
                last = mid
            start = None
    return [*bounds, duration]
