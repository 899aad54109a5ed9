"""Session configuration -> the ``session.update`` payload of each dialect.

Pure. The rule that matters most: never send what the model rejects (docs/protocol.md §2, §5:
``gpt-realtime-whisper`` closes the session on ``turn_detection`` or ``prompt``). Options the
model does not accept are left out and reported in :attr:`SessionUpdate.dropped` so the adapter
can warn once, naming the option and the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..models import ModelInfo

__all__ = [
    "Dialect",
    "AudioFormat",
    "SessionConfig",
    "SessionUpdate",
    "build_session_update",
    "wire_sample_rate_hz",
    "wire_bytes_per_sample",
    "LOGPROBS_INCLUDE",
]

Dialect = Literal["ga", "beta", "speaches"]
"""``ga``: OpenAI and Azure GA (docs/protocol.md §2). ``beta``: ``transcription_session.update``
for older self-hosted servers. ``speaches``: the beta's flat fields inside ``session.update``."""

AudioFormat = Literal["pcm16", "g711_ulaw", "g711_alaw"]

LOGPROBS_INCLUDE = "item.input_audio_transcription.logprobs"

_GA_FORMATS: dict[str, dict[str, Any]] = {
    "pcm16": {"type": "audio/pcm", "rate": 24000},
    "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
}


def wire_sample_rate_hz(audio_format: AudioFormat) -> int:
    """Sample rate on the wire: 24000 for pcm16, 8000 for G.711 (docs/protocol.md §2).

    Raises:
        ValueError: an unknown format.
    """
    if audio_format == "pcm16":
        return 24000
    if audio_format in ("g711_ulaw", "g711_alaw"):
        return 8000
    raise ValueError(f"unknown audio_format {audio_format!r}: use pcm16, g711_ulaw or g711_alaw")


def wire_bytes_per_sample(audio_format: AudioFormat) -> int:
    """2 for pcm16 (16-bit little-endian), 1 for G.711 (docs/protocol.md §2)."""
    wire_sample_rate_hz(audio_format)  # validates
    return 2 if audio_format == "pcm16" else 1


@dataclass(frozen=True)
class SessionConfig:
    """What the user asked for; :func:`build_session_update` decides what is sent.

    ``turn_detection``: ``None`` (the client commits) or a dict such as
    ``{"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
    "silence_duration_ms": 500}`` or ``{"type": "semantic_vad", "eagerness": "auto"}``.
    ``noise_reduction``: ``"near_field"``, ``"far_field"`` or ``None``. ``delay``: one of
    ``minimal|low|medium|high|xhigh`` (gpt-realtime-whisper only).
    """

    model: str
    language: str | None = "en"
    prompt: str | None = None
    delay: str | None = None
    noise_reduction: str | None = None
    turn_detection: dict[str, Any] | None = None
    audio_format: AudioFormat = "pcm16"
    logprobs: bool = False
    languages: tuple[str, ...] | None = None
    keywords: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SessionUpdate:
    """The client event to send (``payload``) and the options left out (``dropped``)."""

    payload: dict[str, Any]
    dropped: tuple[str, ...]
    server_vad: bool
    """True when the session asks the server to detect turns (it then commits by itself)."""


def _transcription(config: SessionConfig, model: ModelInfo, dropped: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"model": config.model}
    if config.language:
        if model.accepts_language:
            out["language"] = config.language
        else:
            dropped.append("language")
    if config.prompt:
        if model.accepts_prompt:
            out["prompt"] = config.prompt
        else:
            dropped.append("prompt")
    if config.delay:
        if model.accepts_delay:
            out["delay"] = config.delay
        else:
            dropped.append("delay")
    for name in ("languages", "keywords"):
        value = getattr(config, name)
        if value:
            if model.accepts_languages_and_keywords:
                out[name] = list(value)
            else:
                dropped.append(name)
    return out


def build_session_update(
    config: SessionConfig, model: ModelInfo, dialect: Dialect = "ga"
) -> SessionUpdate:
    """Build the session configuration event for ``dialect``.

    GA (docs/protocol.md §2)::

        {"type": "session.update", "session": {"type": "transcription",
         "audio": {"input": {"format": {...}, "transcription": {...},
                             "turn_detection": null | {...}, "noise_reduction": null | {...}}},
         "include": [...]}}

    Beta: ``{"type": "transcription_session.update", "session": {"input_audio_format",
    "input_audio_transcription", "turn_detection", "input_audio_noise_reduction", "include"}}``;
    speaches: the same flat session inside ``session.update`` (docs/protocol.md §2).

    ``turn_detection`` is always sent (``null`` when unused or rejected) so that a server
    default never turns server VAD on for a model that rejects it.

    Raises:
        ValueError: an unknown dialect or audio format.
    """
    wire_sample_rate_hz(config.audio_format)  # ValueError for an unknown format, any dialect
    dropped: list[str] = []
    transcription = _transcription(config, model, dropped)
    turn_detection = None
    if config.turn_detection is not None:
        if model.server_vad:
            turn_detection = dict(config.turn_detection)
        else:
            dropped.append("turn_detection")
    noise = {"type": config.noise_reduction} if config.noise_reduction else None
    include = [LOGPROBS_INCLUDE] if config.logprobs else []

    if dialect == "ga":
        audio_input: dict[str, Any] = {
            "format": dict(_GA_FORMATS[config.audio_format]),
            "transcription": transcription,
            "turn_detection": turn_detection,
            "noise_reduction": noise,
        }
        session: dict[str, Any] = {"type": "transcription", "audio": {"input": audio_input}}
        if include:
            session["include"] = include
        payload = {"type": "session.update", "session": session}
    elif dialect in ("beta", "speaches"):
        session = {
            "input_audio_format": config.audio_format,
            "input_audio_transcription": transcription,
            "turn_detection": turn_detection,
            "input_audio_noise_reduction": noise,
        }
        if include:
            session["include"] = include
        event_type = "transcription_session.update" if dialect == "beta" else "session.update"
        payload = {"type": event_type, "session": session}
    else:
        raise ValueError(f"unknown dialect {dialect!r}: use ga, beta or speaches")
    return SessionUpdate(
        payload=payload, dropped=tuple(dropped), server_vad=turn_detection is not None
    )
