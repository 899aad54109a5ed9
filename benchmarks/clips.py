"""Where the speech clips of the tests and benchmarks are: the one place that knows.

- The demo clip, ``two_cities.wav``, installs with the ``demo`` extra (the moonshine-voice
  wheel ships it); :func:`examples.evaluation.demo_clip` finds it. Every setting has it.
- Further clips with reference texts live in the team's folder ``../shared/audio`` beside the
  project (our CI has it; a user's clone does not). Whatever uses them asks
  :func:`shared_audio_dir` and skips, saying so, when it is absent.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "SHARED_AUDIO_DIR",
    "SHARED_AUDIO_MISSING",
    "demo_clip",
    "reference_clips",
    "shared_audio_dir",
    "shared_clip",
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
