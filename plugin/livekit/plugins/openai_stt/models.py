"""Model registry: what each transcription model accepts on the wire and what it costs.

The capability facts are docs/protocol.md §2 ("Models"). Where that page says "unconfirmed" the
entry takes the safe choice, *don't send what might be rejected*, and its ``source`` says so.
Prices are OpenAI's published list prices in USD, each with its page in ``source``.

Names not in the registry (an Azure deployment name, a gateway alias, a self-hosted model) get
conservative defaults; describe them with :func:`register_model`, for example::

    register_model(dataclasses.replace(get_model_info("gpt-4o-transcribe"), name="my-deployment"))

Pure module: no I/O, no clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

__all__ = [
    "REJECTABLE_OPTIONS",
    "AudioFormat",
    "DelayLevel",
    "ModelInfo",
    "NoiseReductionType",
    "STTModels",
    "SemanticVadEagerness",
    "TurnDetectionType",
    "UsageKind",
    "estimate_cost_usd",
    "get_model_info",
    "register_model",
    "shutdown_notice",
    "DEFAULT_SERVER_VAD",
]

STTModels = Literal[
    "gpt-realtime-whisper",
    "gpt-live-transcribe",
    "gpt-transcribe",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "whisper-1",
]
"""The transcription models this registry knows (docs/protocol.md §2); any other name works too."""

DelayLevel = Literal["minimal", "low", "medium", "high", "xhigh"]
"""Latency/accuracy trade-off for models with ``accepts_delay`` (docs/protocol.md §2)."""

AudioFormat = Literal["pcm16", "g711_ulaw", "g711_alaw"]
"""Input audio formats (docs/protocol.md §2): 16-bit little-endian mono PCM at 24 kHz, or G.711
mu-law / A-law at 8 kHz (one byte a sample).
GA names: ``audio/pcm``, ``audio/pcmu``, ``audio/pcma``."""

TurnDetectionType = Literal["server_vad", "semantic_vad"]
"""Server-side turn detection kinds (docs/protocol.md §2); only for models with ``server_vad``."""

SemanticVadEagerness = Literal["low", "medium", "high", "auto"]
"""``semantic_vad`` eagerness (docs/protocol.md §2)."""

NoiseReductionType = Literal["near_field", "far_field"]
"""Input noise reduction kinds (docs/protocol.md §2); ``None`` turns it off."""

DEFAULT_SERVER_VAD: dict[str, object] = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 600,
    "silence_duration_ms": 350,
}
"""The turn detection a model with server VAD gets unless told otherwise: the official
``livekit-plugins-openai`` 1.8.9 default (its ``stt.py``), so that a bare ``stream()`` gets its
finals at the speaker's pauses (OpenAI's VAD guide: models with VAD default to server_vad)."""

REJECTABLE_OPTIONS: tuple[str, ...] = ("turn_detection", "prompt", "delay")
"""Session options a model may refuse with an ``error`` (:attr:`ModelInfo.rejected_options`)."""

UsageKind = Literal["duration", "tokens"]
"""Shape of the ``usage`` object of a ``...transcription.completed`` event (docs/protocol.md §4):
``{"type": "duration", "seconds": ...}`` or ``{"type": "tokens", "input_tokens": ..., ...}``."""


@dataclass(frozen=True)
class ModelInfo:
    """What one transcription model accepts and costs (docs/protocol.md §2).

    Attributes:
        name: model name as sent in ``audio.input.transcription.model``.
        server_vad: ``turn_detection`` (server_vad / semantic_vad) is allowed. When ``False``
            the session sends ``turn_detection: null`` and the client commits each turn.
        deltas_before_commit: transcript deltas stream while audio arrives, before the commit
            (``False``: deltas, if any, come only after the commit).
        accepts_prompt: ``transcription.prompt`` may be sent.
        accepts_language: ``transcription.language`` (one ISO-639-1 code) may be sent.
        accepts_languages_and_keywords: ``transcription.languages`` (a list) and ``keywords``
            may be sent.
        accepts_delay: a :data:`DelayLevel` may be sent.
        usage_kind: the usage shape the model reports, ``"duration"`` or ``"tokens"``.
        usd_per_audio_minute: USD per minute of audio, for duration-priced models.
        usd_per_million_audio_input_tokens: USD per 1,000,000 audio input tokens.
        usd_per_million_text_input_tokens: USD per 1,000,000 text input (prompt) tokens.
        usd_per_million_output_tokens: USD per 1,000,000 output (transcript) tokens.
        source: where these facts come from, and which ones are assumptions.
        known: the facts come from the registry (a listed model, its dated snapshot, or a
            :func:`register_model` entry); ``False`` for the safe defaults of an unknown name.
        sends_deltas: the service sends transcript deltas at all (``False``: ``completed``
            only, whisper-1).
        usage_shape: the shape of ``usage`` in ``completed`` events when it differs from the
            billing basis ``usage_kind`` (whisper-1 reports tokens, is priced per minute);
            ``None``: the same as ``usage_kind``. See :attr:`reported_usage_kind`.
        returns_languages: ``completed`` events carry ``languages`` (gpt-transcribe).
        rejected_options: options the service answers with an ``error`` (not merely "not
            sent"): any of :data:`REJECTABLE_OPTIONS`. The ``accepts_*`` flags say what the
            client sends (unconfirmed options are left out); this says what is known to be
            refused (docs/protocol.md §2, §5). The local server's ``compat="openai"`` copies it.
        shutdown_date: the shutdown OpenAI announced (ISO date), or ``None``.
        replacement: the model to move to before :attr:`shutdown_date`.
        snapshot_of: for a dated snapshot (``<model>-YYYY-MM-DD``), the model it is a snapshot
            of; ``None`` otherwise.
        http_transcription: the model also serves ``POST /v1/audio/transcriptions``, which
            ``recognize()`` then uses (as the official plugin does); ``False``: realtime only
            (the model pages of gpt-realtime-whisper and gpt-live-transcribe list only the
            realtime endpoint), and ``recognize()`` runs a stream.

    When a model takes ``languages`` but not ``language`` (``accepts_language=False``,
    ``accepts_languages_and_keywords=True``), a single language goes as a one-item
    ``languages``: never both fields (docs/protocol.md §2).
    The fields after ``source`` have defaults, so entries written before they existed work.
    A price of ``None`` means unknown (no cost estimate), not free.
    Raises ``ValueError`` for an empty name, an unknown ``usage_kind`` or a negative price.
    """

    name: str
    server_vad: bool
    deltas_before_commit: bool
    accepts_prompt: bool
    accepts_language: bool
    accepts_languages_and_keywords: bool
    accepts_delay: bool
    usage_kind: UsageKind
    usd_per_audio_minute: float | None = None
    usd_per_million_audio_input_tokens: float | None = None
    usd_per_million_text_input_tokens: float | None = None
    usd_per_million_output_tokens: float | None = None
    source: str = ""
    known: bool = True
    sends_deltas: bool = True
    usage_shape: UsageKind | None = None
    returns_languages: bool = False
    rejected_options: frozenset[str] = frozenset()
    shutdown_date: str | None = None
    replacement: str | None = None
    snapshot_of: str | None = None
    http_transcription: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("ModelInfo.name must not be empty")
        for kind in (self.usage_kind, self.usage_shape or self.usage_kind):
            if kind not in ("duration", "tokens"):
                raise ValueError(
                    "ModelInfo.usage_kind and usage_shape must be 'duration' or 'tokens', "
                    f"not {kind!r}"
                )
        if not isinstance(self.rejected_options, frozenset):
            object.__setattr__(self, "rejected_options", frozenset(self.rejected_options))
        unknown = self.rejected_options - set(REJECTABLE_OPTIONS)
        if unknown:
            raise ValueError(
                f"ModelInfo.rejected_options must be among {REJECTABLE_OPTIONS}, "
                f"not {sorted(unknown)}"
            )
        for field in (
            "usd_per_audio_minute",
            "usd_per_million_audio_input_tokens",
            "usd_per_million_text_input_tokens",
            "usd_per_million_output_tokens",
        ):
            price = getattr(self, field)
            if price is not None and price < 0:
                raise ValueError(f"ModelInfo.{field} must not be negative")

    @property
    def reported_usage_kind(self) -> UsageKind:
        """The shape of ``usage`` in this model's ``completed`` events (docs/protocol.md §4)."""
        return self.usage_shape or self.usage_kind


_PROTOCOL = "docs/protocol.md §2"
_SHUTDOWN = "2027-02-26"
"""Announced shutdown of whisper-1 and the gpt-4o-*-transcribe models (types
`audio_transcription.model`: 'Announced shutdown date: 2027-02-26'; the cookbook names
gpt-live-transcribe for live audio)."""
_PRICE_PAGE = "https://developers.openai.com/api/docs/models/"

_KNOWN: tuple[ModelInfo, ...] = (
    ModelInfo(
        name="gpt-realtime-whisper",
        server_vad=False,  # turn_detection must be null: the client commits each turn
        deltas_before_commit=True,
        accepts_prompt=False,  # rejected
        accepts_language=True,
        accepts_languages_and_keywords=False,
        accepts_delay=True,
        usage_kind="duration",
        usd_per_audio_minute=0.017,
        source=(
            f"{_PROTOCOL}; price {_PRICE_PAGE}gpt-realtime-whisper "
            "($0.017/min, realtime audio duration)"
        ),
        # types `realtime_transcription_session_audio_input` (turn detection must be null) and
        # `audio_transcription` (prompt not supported)
        rejected_options=frozenset({"turn_detection", "prompt"}),
    ),
    ModelInfo(
        name="gpt-live-transcribe",
        server_vad=False,  # turn detection omitted or null (VAD guide; livekit/agents #6705)
        deltas_before_commit=True,
        accepts_prompt=True,
        accepts_language=False,  # only `languages`: "Do not send both" (cookbook)
        accepts_languages_and_keywords=True,
        accepts_delay=False,  # unconfirmed: the cookbook sends it, the types say whisper only
        usage_kind="duration",
        usd_per_audio_minute=0.017,
        source=(
            f"{_PROTOCOL}; types `audio_transcription` (languages and keywords: gpt-transcribe "
            "and gpt-live-transcribe; delay: gpt-realtime-whisper only); OpenAI cookbook "
            "'Migrate from Whisper to GPT-Transcribe and GPT-Live-Transcribe' (2026-07-28: "
            "prompt, keywords, languages; 'Do not send both language and languages'; no "
            "detected languages returned) and the model page ('unstructured context, keyword "
            "hints, multiple language hints'); delay unconfirmed (cookbook and types disagree), "
            f"so not sent; price {_PRICE_PAGE}gpt-live-transcribe ($0.017/min, realtime audio "
            "duration)"
        ),
        rejected_options=frozenset({"turn_detection"}),
    ),
    ModelInfo(
        name="gpt-transcribe",
        http_transcription=True,
        server_vad=False,  # unconfirmed: no turn_detection sent, the client commits turns
        deltas_before_commit=False,  # unconfirmed: not relied on
        accepts_prompt=True,
        accepts_language=False,  # only `languages` (transcription guide, cookbook)
        accepts_languages_and_keywords=True,  # completed events carry `languages`
        accepts_delay=False,
        usage_kind="duration",
        usd_per_audio_minute=0.0045,
        source=(
            f"{_PROTOCOL}; server VAD and pre-commit deltas unconfirmed there, so the client "
            "commits turns and deltas are not relied on; "
            f"price {_PRICE_PAGE}gpt-transcribe ($0.0045/min, transcription audio duration)"
        ),
        # types `conversation_item_input_audio_transcription_completed_event`: `languages`
        # "returned by gpt-transcribe"; `audio_transcription`: delay only for gpt-realtime-whisper
        returns_languages=True,
        rejected_options=frozenset({"delay"}),
    ),
    ModelInfo(
        name="gpt-4o-transcribe",
        http_transcription=True,
        shutdown_date=_SHUTDOWN,
        replacement="gpt-live-transcribe",
        server_vad=True,
        deltas_before_commit=False,
        accepts_prompt=True,
        accepts_language=True,
        accepts_languages_and_keywords=False,
        accepts_delay=False,
        usage_kind="tokens",
        usd_per_million_audio_input_tokens=6.00,
        usd_per_million_text_input_tokens=2.50,
        usd_per_million_output_tokens=10.00,
        source=(
            f"{_PROTOCOL}; per 1M tokens: in $2.50 / out $10.00 from {_PRICE_PAGE}"
            "gpt-4o-transcribe (the page labels that row 'Audio tokens'); audio in $6.00 and "
            "the $2.50 as text in: OpenAI pricing as quoted by openai/openai-cookbook "
            "(realtime transcription notebook) and truefoundry/models "
            "providers/openai/gpt-4o-transcribe.yaml"
        ),
        rejected_options=frozenset({"delay"}),  # types `audio_transcription`
    ),
    ModelInfo(
        name="gpt-4o-mini-transcribe",
        http_transcription=True,
        shutdown_date=_SHUTDOWN,
        replacement="gpt-live-transcribe",
        server_vad=True,
        deltas_before_commit=False,
        accepts_prompt=True,
        accepts_language=True,
        accepts_languages_and_keywords=False,
        accepts_delay=False,
        usage_kind="tokens",
        usd_per_million_audio_input_tokens=3.00,
        usd_per_million_text_input_tokens=1.25,
        usd_per_million_output_tokens=5.00,
        source=(
            f"{_PROTOCOL}; per 1M tokens: in $1.25 / out $5.00 from {_PRICE_PAGE}"
            "compare?model=gpt-4o-mini-transcribe (labelled 'Audio tokens' there); audio in "
            "$3.00 and the $1.25 as text in: OpenAI pricing as quoted by truefoundry/models "
            "providers/openai/gpt-4o-mini-transcribe.yaml"
        ),
        rejected_options=frozenset({"delay"}),  # types `audio_transcription`
    ),
    ModelInfo(
        name="whisper-1",
        http_transcription=True,
        shutdown_date=_SHUTDOWN,
        replacement="gpt-live-transcribe",
        server_vad=True,
        deltas_before_commit=False,  # completed only
        accepts_prompt=True,
        accepts_language=True,
        accepts_languages_and_keywords=False,
        accepts_delay=False,
        usage_kind="duration",
        usd_per_audio_minute=0.006,
        source=(
            f"{_PROTOCOL} (usage may come as tokens or duration; it is priced per minute); "
            f"price {_PRICE_PAGE}whisper-1 ($0.006/min, transcription)"
        ),
        # docs/protocol.md §2: `completed` only; usage "tokens or duration" (priced per minute)
        sends_deltas=False,
        usage_shape="tokens",
        rejected_options=frozenset({"delay"}),  # types `audio_transcription`
    ),
)

_REGISTRY: dict[str, ModelInfo] = {info.name: info for info in _KNOWN}

_SNAPSHOT = re.compile(r"(?P<base>.+)-\d{4}-\d{2}-\d{2}")


def _unknown(name: str) -> ModelInfo:
    return ModelInfo(
        name=name,
        server_vad=False,
        deltas_before_commit=False,
        accepts_prompt=False,
        accepts_language=True,
        accepts_languages_and_keywords=False,
        accepts_delay=False,
        usage_kind="duration",
        known=False,
        source=(
            "unknown model: safe defaults (client commits, only `language` sent, no price); "
            "describe it with register_model()"
        ),
    )


def get_model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` for a model name; its ``name`` is always ``name`` as given.

    Lookup: exact match; else, for a dated snapshot ``<model>-YYYY-MM-DD`` (e.g.
    ``gpt-4o-mini-transcribe-2025-12-15``), the entry of ``<model>`` (the registered prefix left
    once the date is cut off) with ``snapshot_of`` set; else safe defaults: no server VAD,
    ``language`` only (no prompt, languages, keywords or delay), ``"duration"`` usage and no
    price (``None``).
    Only a date is cut off, so a variant such as ``gpt-4o-transcribe-diarize`` (or its
    snapshots) gets the safe defaults, not the options of ``gpt-4o-transcribe``.
    """
    info = _REGISTRY.get(name)
    if info is not None:
        return info
    snapshot = _SNAPSHOT.fullmatch(name)
    if snapshot and snapshot["base"] in _REGISTRY:
        return replace(_REGISTRY[snapshot["base"]], name=name, snapshot_of=snapshot["base"])
    return _unknown(name)


def shutdown_notice(info: ModelInfo) -> str | None:
    """A one-line warning for a model with an announced shutdown, naming its replacement, or
    ``None`` (docs/protocol.md §2)."""
    if info.shutdown_date is None:
        return None
    instead = f"; move to {info.replacement}" if info.replacement else ""
    return f"{info.name} is announced to shut down on {info.shutdown_date}{instead}"


def register_model(info: ModelInfo) -> None:
    """Add a model to the registry, or replace the entry of the same name.

    Affects later :func:`get_model_info` calls in this process, including dated snapshots of
    ``info.name``.
    """
    _REGISTRY[info.name] = info


def estimate_cost_usd(
    info: ModelInfo,
    *,
    audio_seconds: float,
    audio_input_tokens: int = 0,
    text_input_tokens: int = 0,
    output_tokens: int = 0,
) -> float | None:
    """Estimated list-price cost in USD (docs/protocol.md §2, prices in :class:`ModelInfo`).

    - ``"duration"`` models: ``audio_seconds / 60 * usd_per_audio_minute``; tokens ignored.
    - ``"tokens"`` models: each token count times its price per 1,000,000 tokens.

    Args:
        audio_seconds: seconds of audio billed (for token models only used to tell "no
            usage reported yet" from "nothing sent").
        audio_input_tokens, text_input_tokens, output_tokens: token counts from the
            ``usage`` object (``input_token_details.audio_tokens`` / ``text_tokens``,
            ``output_tokens``).

    Returns ``None`` when the cost is unknown: a needed price is ``None``, or a token model has
    audio but no token counts. Raises ``ValueError`` for a negative argument.
    """
    counts = (audio_seconds, audio_input_tokens, text_input_tokens, output_tokens)
    if any(c < 0 for c in counts):
        raise ValueError("audio_seconds and token counts must not be negative")
    if info.usage_kind == "duration":
        if info.usd_per_audio_minute is None:
            return None
        return audio_seconds / 60.0 * info.usd_per_audio_minute
    priced = (
        (audio_input_tokens, info.usd_per_million_audio_input_tokens),
        (text_input_tokens, info.usd_per_million_text_input_tokens),
        (output_tokens, info.usd_per_million_output_tokens),
    )
    if not any(tokens for tokens, _ in priced):
        return 0.0 if audio_seconds == 0 else None
    total = 0.0
    for tokens, price in priced:
        if tokens:
            if price is None:
                return None
            total += tokens * price / 1_000_000
    return total
