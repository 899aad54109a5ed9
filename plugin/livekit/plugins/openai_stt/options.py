"""``STTOptions``: what an ``STT`` and its streams were asked for, frozen and validated.

A leaf module (it imports only :mod:`.models` and :mod:`.protocol`): ``stt.py`` and
``stream.py`` both import it and nothing here imports them. Options are compared by value: a
stream knows a session opened ahead is still right for it when its options are *equal* to
those the session was opened with.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from livekit.agents.utils import is_given

from .models import DEFAULT_SERVER_VAD, ModelInfo, get_model_info
from .protocol.client import ClientConfig
from .protocol.endpoint import EndpointKind, build_realtime_stt_url
from .protocol.session import (
    DIALECTS,
    VLLM_RATE_HZ,
    AudioFormat,
    Dialect,
    SessionConfig,
    SessionUpdate,
    build_session_update,
    wire_sample_rate_hz,
)

__all__ = ["MAX_CONTEXT_CHARS", "STTOptions", "language_fields", "option_changes", "string_tuple"]

MAX_CONTEXT_CHARS = 800
"""Most characters of conversation context sent in the prompt. OpenAI documents no limit for
realtime transcription prompts; a third party reports a refusal over 1,024 characters
(unconfirmed), so the context stays well under it."""

_LEAST_SECONDS = {
    "final_timeout_s": 0.1,
    "max_queued_audio_s": 0.1,
    "max_retained_audio_s": 1.0,
    "session_rollover_s": 1.0,  # each rollover opens a session: no storms of them
    "max_item_s": 2.0,
}
"""The least value of each time option, seconds (each must also be finite)."""


@dataclass(frozen=True)
class STTOptions:
    """Options of an :class:`~livekit.plugins.openai_stt.STT`; each stream holds its own copy
    (``dataclasses.replace``). The API key is deliberately not here, and the fields that may
    carry credentials are left out of the ``repr``.

    Raises:
        ValueError: on creation, naming the option: an unknown dialect or audio format, a
            ``chunk_ms`` that is not a whole number from 10 to 60000, a time that is not finite
            or under its least value (``session_rollover_s`` 1 s, ``max_item_s`` 2 s, the
            others 0.1 s).
    """

    model: str
    language: str | None
    base_url: str
    include_model_in_url: bool | None = None
    prompt: str | None = None
    delay: str | None = None
    noise_reduction: str | None = None
    turn_detection: Mapping[str, Any] | None = None
    """Explicit turn detection (``None``: the client commits), used when not
    :attr:`turn_detection_auto`."""
    turn_detection_auto: bool = False
    """Turn detection as the model's default (:data:`~.models.DEFAULT_SERVER_VAD` for models
    with server VAD, else none): what a bare ``stream()`` of the official plugin gets."""
    noise_reduction_strength: float | None = None
    logprobs: bool = False
    audio_format: AudioFormat = "pcm16"
    dialect: Dialect = "ga"
    extra_headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    extra_query: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    chunk_ms: int = 100
    transcription_model: str | None = None
    """The ``model`` sent in the session (an Azure deployment name); defaults to ``model``."""
    languages: tuple[str, ...] | None = None
    keywords: tuple[str, ...] | None = None
    final_timeout_s: float = 15.0
    max_retained_audio_s: float = 300.0
    max_queued_audio_s: float = 120.0
    session_rollover_s: float = 55 * 60.0
    max_item_s: float = 120.0
    temperature: float | None = None
    """Sampling temperature of the HTTP transcription path (``recognize()``); not sent on the
    realtime socket."""
    use_realtime: bool = True
    """``False``: the STT declares no streaming; an ``AgentSession`` then transcribes each turn
    with ``recognize()`` over HTTP (as the official plugin does)."""
    session_keyterms: tuple[str, ...] | None = None
    """Keyterms from LiveKit (``AgentSession(stt_context_options=...)``), sent with
    :attr:`keywords` to models that take keywords."""
    endpoint_kind: EndpointKind | None = None
    """The endpoint rules to apply whatever the host (``STT.with_azure``: ``"azure"``)."""
    context: str | None = None
    """Recent conversation (LiveKit's chat context), sent after :attr:`prompt` to models that
    take a prompt, bounded by :data:`MAX_CONTEXT_CHARS`."""

    def __post_init__(self) -> None:
        if self.dialect not in DIALECTS:
            raise ValueError(f"unknown dialect {self.dialect!r}: use ga, beta, speaches or vllm")
        if self.dialect == "vllm" and self.audio_format != "pcm16":
            raise ValueError("audio_format must be pcm16 for dialect vllm (it takes 16 kHz pcm16)")
        wire_sample_rate_hz(self.audio_format)  # ValueError names the formats
        chunk = self.chunk_ms
        if isinstance(chunk, bool) or not isinstance(chunk, int) or not 10 <= chunk <= 60_000:
            # 60 s of pcm16 is 2.9 MB, far under the 15 MiB an append may carry
            raise ValueError("chunk_ms must be a whole number of milliseconds from 10 to 60000")
        for name, least in _LEAST_SECONDS.items():
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (number and math.isfinite(value) and value >= least):
                raise ValueError(f"{name} must be a finite number of seconds, at least {least}")
        if self.turn_detection is not None:  # a private copy: the caller's dict may change
            object.__setattr__(self, "turn_detection", _with_type(self.turn_detection))

    def __hash__(self) -> int:  # turn_detection is a dict: hash the fields that are not
        return hash((self.model, self.language, self.base_url, self.audio_format))

    @property
    def sample_rate_hz(self) -> int:
        """Wire sample rate: 24000 for pcm16 (16000 for dialect ``vllm``), 8000 for G.711."""
        if self.dialect == "vllm":
            return VLLM_RATE_HZ
        return wire_sample_rate_hz(self.audio_format)

    @property
    def model_info(self) -> ModelInfo:
        """The registry entry of :attr:`model` (:mod:`.models`)."""
        return get_model_info(self.model)

    def session_config(self) -> SessionConfig:
        """What the session is asked for (:func:`build_session_update` decides what is sent)."""
        return SessionConfig(
            model=self.transcription_model or self.model,
            language=self.language,
            prompt=self.effective_prompt,
            delay=self.delay,
            noise_reduction=self.noise_reduction,
            noise_reduction_strength=self.noise_reduction_strength,
            turn_detection=self.effective_turn_detection,
            audio_format=self.audio_format,
            logprobs=self.logprobs,
            languages=self.languages,
            keywords=self.effective_keywords,
            pcm_rate_hz=self.sample_rate_hz if self.audio_format == "pcm16" else 24000,
        )

    @property
    def effective_turn_detection(self) -> dict[str, Any] | None:
        """What the session asks for: the model's default when :attr:`turn_detection_auto`."""
        if self.turn_detection_auto:
            return dict(DEFAULT_SERVER_VAD) if self.model_info.server_vad else None
        return dict(self.turn_detection) if self.turn_detection is not None else None

    @property
    def effective_keywords(self) -> tuple[str, ...] | None:
        """:attr:`keywords` then :attr:`session_keyterms`, without repeats."""
        merged = tuple(dict.fromkeys((*(self.keywords or ()), *(self.session_keyterms or ()))))
        return merged or None

    @property
    def effective_prompt(self) -> str | None:
        """:attr:`prompt`, then :attr:`context` (bounded); ``None`` when neither was ever set
        (``""`` clears a prompt set before: a field left out keeps its value)."""
        if self.prompt is None and not self.context:
            return None
        return "\n".join(p for p in (self.prompt, self.context) if p)

    def session_update(self) -> SessionUpdate:
        """The ``session.update`` of :attr:`dialect` for :attr:`model` (docs/protocol.md §2)."""
        return build_session_update(self.session_config(), self.model_info, self.dialect)

    def client_config(self) -> ClientConfig:
        """The numbers the stream's :class:`~.protocol.client.ClientSession` works with."""
        return ClientConfig(
            audio_format=self.audio_format,
            pcm_rate_hz=self.sample_rate_hz if self.audio_format == "pcm16" else 24000,
            dialect=self.dialect,
            chunk_ms=self.chunk_ms,
            final_timeout_s=self.final_timeout_s,
            max_item_s=self.max_item_s,
            max_retained_audio_s=self.max_retained_audio_s,
            session_rollover_s=self.session_rollover_s,
            language=self.language,
        )

    def url(self) -> str:
        """The websocket URL (docs/protocol.md §1); never holds the API key.

        Raises:
            ValueError: an unsupported scheme or no host in :attr:`base_url`.
        """
        return build_realtime_stt_url(
            self.base_url,
            self.transcription_model or self.model,
            include_model=self.include_model_in_url,
            extra_query=dict(self.extra_query) or None,
            kind=self.endpoint_kind,
        )


def _with_type(turn_detection: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with ``type`` defaulting to ``server_vad``, as the official plugin's
    ``SessionTurnDetection`` does (the API keys turn detection on ``type``)."""
    return {"type": "server_vad", **dict(turn_detection)}


def option_changes(**options: Any) -> dict[str, Any]:
    """The options given (not ``NOT_GIVEN``) to an ``update_options`` call, normalised: an
    empty language becomes ``None``, a turn-detection mapping a plain dict."""
    changes = {name: value for name, value in options.items() if is_given(value)}
    if "language" in changes:
        changes["language"] = changes["language"] or None
    if changes.get("turn_detection") is not None:
        changes["turn_detection"] = _with_type(changes["turn_detection"])
    return changes


def string_tuple(name: str, values: Sequence[str] | None) -> tuple[str, ...] | None:
    """A sequence of strings as a tuple (``None`` when empty).

    Raises:
        ValueError: a single string (it would be split into characters) or a non-string item.
    """
    if not values:
        return None
    if isinstance(values, str) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{name} must be a list of strings, e.g. {name}=[...]")
    return tuple(values)


def language_fields(
    language: str | Sequence[str] | None, languages: Sequence[str] | None, detect: bool
) -> dict[str, Any]:
    """``language`` as the official plugin takes it: a code, a list of codes (several
    possible languages), or ``None``/``detect_language=True`` to detect."""
    if detect:
        return {"language": None, "languages": None}
    if language is None or isinstance(language, str):
        return {"language": language or None, "languages": string_tuple("languages", languages)}
    listed = string_tuple("language", language) or ()
    merged = tuple(dict.fromkeys((*listed, *(string_tuple("languages", languages) or ()))))
    return {"language": None, "languages": merged or None}
