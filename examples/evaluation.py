"""Score transcripts against reference text, read speech clips, and find the demo clip.

Used by the examples, the tests and the benchmarks (it is not part of the installed plugin):

- :func:`normalize_transcript` and :func:`word_error_rate` score a transcript (Whisper writes
  "10 meters" and punctuation where a reference says "ten meters", so both sides are
  normalised first; ``jiwer`` computes the rate);
- :func:`load_reference` finds a clip's reference text: :data:`DEMO_REFERENCE` for the demo
  clip, else a ``transcripts.tsv`` beside the clip;
- :func:`read_wav` and :func:`wav_frames` turn a WAV file into samples or ``rtc.AudioFrame``\\ s;
- :func:`demo_clip` finds ``two_cities.wav`` in the installed ``moonshine-voice`` wheel (the
  ``demo`` extra).

Only the standard library and numpy are imported at module level; ``jiwer`` is imported when a
word error rate is computed, and ``livekit.rtc`` when frames are made.
"""

from __future__ import annotations

import csv
import importlib.metadata
import re
import unicodedata
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from livekit import rtc

__all__ = [
    "DEMO_DISTRIBUTION",
    "DEMO_REFERENCE",
    "demo_clip",
    "normalize_transcript",
    "word_error_rate",
    "load_reference",
    "read_wav",
    "wav_frames",
]

DEMO_DISTRIBUTION = "moonshine-voice"
"""The PyPI distribution that ships the demo clip (MIT; the ``demo`` extra pins 0.1.5)."""

_DEMO_FILE = "moonshine_voice/assets/two_cities.wav"

DEMO_REFERENCE = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
    "age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the "
    "season of Light, it was the season of Darkness, it was the spring of hope, it was the winter "
    "of despair, we had everything before us, we had nothing before us, we were all going direct "
    "to Heaven, we were all going direct the other way - in short, the period was so far like "
    "the present period, that some of its noisiest authorities insisted on its being received, "
    "for good or for evil, in the superlative degree of comparison only."
)
"""What the demo clip says: the opening of Dickens' *A Tale of Two Cities* (public domain), in
the LibriVox reading that ``moonshine-voice`` ships (48 kHz mono, 44.4 s)."""


def demo_clip() -> Path:
    """The demo clip, ``two_cities.wav``, inside the installed ``moonshine-voice`` wheel.

    Found through the distribution's list of installed files (``importlib.metadata``), without
    importing the package: its ``__init__`` opens audio devices.

    Returns:
        The absolute path of the WAV file (48 kHz mono 16-bit, 44.4 s).

    Raises:
        FileNotFoundError: the distribution is not installed, or has no such file; the message
            says how to install it (``pip install "livekit-plugins-openai-stt[demo]"``).
    """
    hint = (
        f"the demo clip comes with the {DEMO_DISTRIBUTION} wheel: "
        'pip install "livekit-plugins-openai-stt[demo]" (or pip install moonshine-voice==0.1.5)'
    )
    try:
        dist = importlib.metadata.distribution(DEMO_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"{DEMO_DISTRIBUTION} is not installed; {hint}") from None
    for entry in dist.files or ():
        if entry.as_posix() == _DEMO_FILE:
            path = Path(str(dist.locate_file(entry))).resolve()
            if path.is_file():
                return path
    raise FileNotFoundError(f"{DEMO_DISTRIBUTION} has no {_DEMO_FILE}; {hint}")


_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen "
    "fourteen fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()

# Characters that join what is on either side of them ("don't" -> "dont").
_JOINERS = {"'", "\u2019", "\u2018", "\u02bc", "`"}
_SYMBOL_WORDS = {"%": " percent ", "&": " and ", "+": " plus ", "@": " at "}
_DIGITS_WITH_SEPARATOR = re.compile(r"(?<=\d),(?=\d{3}\b)")
_DECIMAL_POINT = re.compile(r"(?<=\d)\.(?=\d)")
_NUMBER_TOKEN = re.compile(r"^\d+$")
_ACRONYM = re.compile(r"\b(?:[^\W\d_]\.){2,}")  # "u.s." -> "us"


def _spell_number(n: int) -> str:
    """Spell out ``0 <= n <= 99`` in words ("21" -> "twenty one")."""
    if n < 20:
        return _ONES[n]
    tens, ones = divmod(n, 10)
    return _TENS[tens] if ones == 0 else f"{_TENS[tens]} {_ONES[ones]}"


def normalize_transcript(text: str) -> str:
    """Normalise a transcript for scoring.

    Lower-cases, spells out whole numbers from 0 to 99 ("10" -> "ten", "21" -> "twenty one";
    larger numbers stay digits, without thousands separators), turns a decimal point between
    digits into "point", joins dotted acronyms ("U.S." -> "us"), drops apostrophes
    ("don't" -> "dont") and turns other punctuation, dashes and quotes included, into spaces
    ("well-known" -> "well known"), maps "%" and "&" to words, and collapses
    whitespace. Applied to both reference and hypothesis, so "Go forward 10 meters." and
    "go forward ten meters" compare equal.

    Args:
        text: any transcript.

    Returns:
        Words separated by single spaces; ``""`` when nothing but punctuation is left.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    text = _DIGITS_WITH_SEPARATOR.sub("", text)
    text = _DECIMAL_POINT.sub(" point ", text)
    text = _ACRONYM.sub(lambda m: m.group(0).replace(".", ""), text)

    chars: list[str] = []
    for ch in text:
        if ch in _JOINERS:
            continue
        if ch in _SYMBOL_WORDS:
            chars.append(_SYMBOL_WORDS[ch])
        elif unicodedata.category(ch)[0] in "PSZC":  # punctuation, symbols, separators, controls
            chars.append(" ")
        else:
            chars.append(ch)

    words: list[str] = []
    for word in "".join(chars).split():
        if _NUMBER_TOKEN.match(word) and int(word) < 100:
            words.append(_spell_number(int(word)))
        else:
            words.append(word)
    return " ".join(words)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word error rate of ``hypothesis`` against ``reference``, after normalising both.

    (substitutions + deletions + insertions) / number of reference words, computed by
    ``jiwer`` on :func:`normalize_transcript` of each side: 0.0 is a perfect match, and the
    rate can exceed 1.0 when the hypothesis has many extra words.

    Args:
        reference: the correct text.
        hypothesis: the transcript to score.

    Returns:
        The rate as a fraction (0.25 = one word wrong in four).

    Raises:
        ValueError: if the reference has no words after normalisation.
        ImportError: if ``jiwer`` is not installed (it comes with the ``demo`` extra:
            ``pip install "livekit-plugins-openai-stt[demo]"``).
    """
    try:
        import jiwer
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "word_error_rate() needs jiwer: "
            'pip install "livekit-plugins-openai-stt[demo]" (or pip install jiwer)'
        ) from e

    ref = normalize_transcript(reference)
    hyp = normalize_transcript(hypothesis)
    if not ref:
        raise ValueError("the reference has no words after normalisation")
    if not hyp:
        return 1.0  # every reference word deleted (jiwer refuses an empty hypothesis)
    return float(jiwer.wer(ref, hyp))


def load_reference(clip: str | Path, transcripts_tsv: Path | None = None) -> str | None:
    """Reference text of a clip.

    The demo clip (:func:`demo_clip`) gives :data:`DEMO_REFERENCE`. Any other clip is looked
    up in a ``transcripts.tsv``: tab-separated UTF-8 with a header row ``file<TAB>reference``,
    where ``file`` is a file name such as ``jfk.wav``, matched against the clip's file name.

    Args:
        clip: a clip path.
        transcripts_tsv: the table to read; by default ``transcripts.tsv`` in the clip's own
            folder (so a clip elsewhere never picks up a same-named clip's reference).

    Returns:
        The reference text, or ``None`` when there is no table or no row for the clip.

    Raises:
        ValueError: if the table exists but has no ``file`` and ``reference`` columns.
    """
    clip_path = Path(clip)
    if transcripts_tsv is None:
        try:
            if clip_path.resolve() == demo_clip():
                return DEMO_REFERENCE
        except FileNotFoundError:
            pass
        transcripts_tsv = clip_path.parent / "transcripts.tsv"
    if not transcripts_tsv.is_file():
        return None

    with transcripts_tsv.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if reader.fieldnames is None or not {"file", "reference"} <= set(reader.fieldnames):
            raise ValueError(f"{transcripts_tsv} needs a header row: file<TAB>reference")
        for row in reader:
            if (row.get("file") or "").strip() == clip_path.name:
                return (row.get("reference") or "").strip()
    return None


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Read a PCM WAV file with the standard ``wave`` module.

    Any sample rate and channel count; 8-, 16-, 24- and 32-bit integer PCM are converted to
    16-bit (8-bit WAV is unsigned, the others signed little-endian).

    Args:
        path: the WAV file.

    Returns:
        ``(samples, sample_rate_hz)``: ``samples`` is an ``np.int16`` array of shape
        ``(n_frames, channels)`` (one row per sampling instant, interleaving undone);
        ``sample_rate_hz`` is e.g. 16000 or 48000.

    Raises:
        FileNotFoundError: if the file does not exist.
        wave.Error: if it is not a RIFF/WAVE file or not integer PCM (float and
            WAVE_FORMAT_EXTENSIBLE files are refused by ``wave`` before Python 3.12).
        ValueError: for an unsupported sample width.
    """
    with wave.open(str(path), "rb") as w:
        channels = w.getnchannels()
        width = w.getsampwidth()
        rate = w.getframerate()
        raw = w.readframes(w.getnframes())

    if width == 2:
        samples = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    elif width == 1:
        samples = ((np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(
            np.int16
        )
    elif width == 3:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        # the top two bytes of each little-endian 24-bit sample are its 16 high bits
        samples = (b[:, 1].astype(np.uint16) | (b[:, 2].astype(np.uint16) << 8)).view(np.int16)
    elif width == 4:
        samples = (np.frombuffer(raw, dtype="<i4") >> 16).astype(np.int16)
    else:
        raise ValueError(f"unsupported WAV sample width: {width} bytes")

    n_frames = len(samples) // channels
    return samples[: n_frames * channels].reshape(n_frames, channels), rate


def wav_frames(path: str | Path, frame_ms: int = 10) -> Iterator[rtc.AudioFrame]:
    """Cut a WAV file into mono ``rtc.AudioFrame``\\ s at the file's own sample rate.

    Stereo (or more channels) is downmixed to mono here, by averaging the channels with numpy,
    so that every consumer gets the single channel an STT stream transcribes. The sample rate
    is kept as in the file (the STT stream resamples to its wire rate).

    Args:
        path: a WAV file (see :func:`read_wav`).
        frame_ms: frame duration in milliseconds (10 ms at 48 kHz = 480 samples a frame).

    Yields:
        ``rtc.AudioFrame`` with ``num_channels=1``, ``sample_rate`` of the file and
        ``sample_rate * frame_ms / 1000`` samples; the last frame holds the remainder and may be
        shorter (the file's duration is kept exactly, nothing is padded).

    Raises:
        ValueError: if ``frame_ms`` is not positive, or the file cannot be read (see
            :func:`read_wav`).
    """
    from livekit import rtc

    if frame_ms <= 0:
        raise ValueError("frame_ms must be positive")
    samples, rate = read_wav(path)
    if samples.shape[1] == 1:
        mono = samples[:, 0]
    else:
        mono = samples.astype(np.int32).mean(axis=1).round().astype(np.int16)
    mono = np.ascontiguousarray(mono)

    step = max(1, rate * frame_ms // 1000)
    for start in range(0, len(mono), step):
        chunk = mono[start : start + step]
        yield rtc.AudioFrame(
            data=chunk.tobytes(),
            sample_rate=rate,
            num_channels=1,
            samples_per_channel=len(chunk),
        )
