"""Session configuration <-> the ``session.update`` payload of each dialect.

Pure. The rule that matters most: never send what the model rejects (docs/protocol.md §2, §5:
``gpt-realtime-whisper`` closes the session on ``turn_detection`` or ``prompt``). Options the
model does not accept are left out and reported in :attr:`SessionUpdate.dropped` so the adapter
can warn once, naming the option and the model.

:func:`parse_session_update` is the inverse of :func:`build_session_update` for each dialect.
The wire facts of §2 (audio formats, their rates and GA/beta names, the logprobs ``include``
string, the dialects) are written here once; both the client and the local server read them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from ..models import AudioFormat, ModelInfo
from .events import EventParseError

__all__ = [
    "DIALECTS",
    "Dialect",
    "AudioFormat",
    "WireFormat",
    "WIRE_FORMATS",
    "SessionConfig",
    "SessionUpdate",
    "build_session_update",
    "iso_639_1",
    "transcription_fields",
    "parse_session_update",
    "wire_format",
    "wire_format_of_ga_type",
    "wire_sample_rate_hz",
    "wire_bytes_per_sample",
    "LOGPROBS_INCLUDE",
    "VLLM_RATE_HZ",
]

Dialect = Literal["ga", "beta", "speaches", "vllm"]
"""``ga``: OpenAI and Azure GA (docs/protocol.md §2). ``beta``: ``transcription_session.update``
for older self-hosted servers. ``speaches``: the beta's flat fields inside ``session.update``.
``vllm``: vLLM's ``/v1/realtime`` (§7): ``{"type": "session.update", "model": ...}`` only,
16 kHz pcm16, a commit starts a turn's generation and ``final: true`` ends it."""

VLLM_RATE_HZ = 16000
"""vLLM's realtime audio: pcm16 at 16 kHz (docs/protocol.md §7)."""

DIALECTS: tuple[Dialect, ...] = get_args(Dialect)

LOGPROBS_INCLUDE = "item.input_audio_transcription.logprobs"
"""The ``include`` entry that asks for logprobs (docs/protocol.md §2)."""


@dataclass(frozen=True)
class WireFormat:
    """One input audio format of docs/protocol.md §2.

    ``name``: the beta/speaches ``input_audio_format`` and the client's ``audio_format``;
    ``ga_type``: the GA ``format.type``; ``rate_hz``: samples a second (for pcm16 the only rate
    OpenAI accepts); ``bytes_per_sample``: 2 (16-bit little-endian) or 1 (G.711).
    """

    name: AudioFormat
    ga_type: str
    rate_hz: int
    bytes_per_sample: int


WIRE_FORMATS: dict[str, WireFormat] = {
    "pcm16": WireFormat("pcm16", "audio/pcm", 24000, 2),
    "g711_ulaw": WireFormat("g711_ulaw", "audio/pcmu", 8000, 1),
    "g711_alaw": WireFormat("g711_alaw", "audio/pcma", 8000, 1),
}
"""Every input audio format, by its beta name (docs/protocol.md §2; G.711 rate: ITU-T G.711)."""

_BY_GA_TYPE = {f.ga_type: f for f in WIRE_FORMATS.values()}


def wire_format(audio_format: str) -> WireFormat:
    """The :class:`WireFormat` of a beta name (``pcm16``, ``g711_ulaw``, ``g711_alaw``).

    Raises:
        ValueError: an unknown format.
    """
    found = WIRE_FORMATS.get(audio_format)
    if found is None:
        raise ValueError(
            f"unknown audio_format {audio_format!r}: use pcm16, g711_ulaw or g711_alaw"
        )
    return found


def wire_format_of_ga_type(ga_type: str) -> WireFormat | None:
    """The :class:`WireFormat` whose GA ``format.type`` is ``ga_type`` (``audio/pcm``, …), or
    None."""
    return _BY_GA_TYPE.get(ga_type)


def wire_sample_rate_hz(audio_format: AudioFormat) -> int:
    """Sample rate on the wire: 24000 for pcm16, 8000 for G.711 (docs/protocol.md §2).

    Raises:
        ValueError: an unknown format.
    """
    return wire_format(audio_format).rate_hz


def wire_bytes_per_sample(audio_format: AudioFormat) -> int:
    """2 for pcm16 (16-bit little-endian), 1 for G.711 (docs/protocol.md §2).

    Raises:
        ValueError: an unknown format.
    """
    return wire_format(audio_format).bytes_per_sample


@dataclass(frozen=True)
class SessionConfig:
    """A transcription session's configuration: what the client asks for (and
    :func:`build_session_update` decides what is sent), or the effective configuration the
    local server holds (docs/protocol.md §2).

    ``turn_detection``: ``None`` (the client commits) or a dict such as
    ``{"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
    "silence_duration_ms": 500}`` or ``{"type": "semantic_vad", "eagerness": "auto"}``.
    ``noise_reduction``: ``"near_field"``, ``"far_field"`` or ``None``. ``delay``: one of
    ``minimal|low|medium|high|xhigh`` (gpt-realtime-whisper only).
    ``pcm_rate_hz``: the sample rate of ``pcm16`` audio; OpenAI accepts only 24000, a lenient
    local server also others (ignored for G.711, which is always 8000).
    ``transcription_enabled``: ``False`` is a ``transcription`` of ``null``: the session
    commits audio but transcribes nothing.
    ``noise_reduction_strength``: higher suppresses more; the server's default is 1 when noise
    reduction is first enabled, and leaving it out keeps the current value (types
    ``NoiseReduction.strength``; GA only).
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
    pcm_rate_hz: int = 24000
    transcription_enabled: bool = True
    noise_reduction_strength: float | None = None

    @property
    def wire_format(self) -> WireFormat:
        """The :class:`WireFormat` of ``audio_format`` (ValueError if unknown)."""
        return wire_format(self.audio_format)

    @property
    def format_type(self) -> str:
        """The GA ``format.type``: ``audio/pcm``, ``audio/pcmu`` or ``audio/pcma``."""
        return self.wire_format.ga_type

    @property
    def sample_rate_hz(self) -> int:
        """Samples a second on the wire: ``pcm_rate_hz`` for pcm16, 8000 for G.711."""
        fmt = self.wire_format
        return self.pcm_rate_hz if fmt.name == "pcm16" else fmt.rate_hz

    @property
    def bytes_per_second(self) -> int:
        """Wire bytes a second of audio."""
        return self.sample_rate_hz * self.wire_format.bytes_per_sample


@dataclass(frozen=True)
class SessionUpdate:
    """The client event to send (``payload``) and the options left out (``dropped``)."""

    payload: dict[str, Any]
    dropped: tuple[str, ...]
    server_vad: bool
    """True when the session asks the server to detect turns (it then commits by itself)."""


_DROPPED_LANGUAGES = "\x00languages dropped"


def iso_639_1(code: str) -> str:
    """The base language of a tag, lower-case: ``"en-US"`` and ``"en_us"`` -> ``"en"``
    (OpenAI rejects regional tags; livekit/agents PR #6705)."""
    return code.strip().replace("_", "-").split("-", 1)[0].lower()


def _languages(
    config: SessionConfig, model: ModelInfo, dropped: list[str], out: dict[str, Any]
) -> None:
    """``language`` or ``languages``, never both (docs/protocol.md §2; OpenAI cookbook: "Do not
    send both"). A model that takes only ``languages`` gets a single language as a one-item
    list; one that takes only ``language`` gets ``language`` and ``languages`` is left out."""
    single = iso_639_1(config.language) if config.language else None
    several = list(dict.fromkeys(iso_639_1(c) for c in config.languages or () if c.strip()))
    takes_list = model.accepts_languages_and_keywords
    if takes_list and (several or not model.accepts_language):
        merged = list(dict.fromkeys([single, *several] if single else several))
        if merged:
            out["languages"] = merged
        return
    if single:
        if model.accepts_language:
            out["language"] = single
        else:
            dropped.append("language")
    if several:
        out[_DROPPED_LANGUAGES] = True  # reported after prompt and delay


def _transcription(config: SessionConfig, model: ModelInfo, dropped: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"model": config.model}
    _languages(config, model, dropped, out)
    if config.prompt is not None:  # "" clears a prompt set before (a field left out is kept)
        if model.accepts_prompt:
            out["prompt"] = config.prompt
        elif config.prompt:
            dropped.append("prompt")
    if config.delay:
        if model.accepts_delay:
            out["delay"] = config.delay
        else:
            dropped.append("delay")
    if out.pop(_DROPPED_LANGUAGES, False):
        dropped.append("languages")
    if model.accepts_languages_and_keywords:  # always: [] clears keywords set before
        out["keywords"] = list(config.keywords or ())
    elif config.keywords:
        dropped.append("keywords")
    return out


def transcription_fields(
    config: SessionConfig, model: ModelInfo
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The ``transcription`` object for ``model`` (``model``, ``language`` or ``languages``,
    ``prompt``, ``delay``, ``keywords``: only what the model takes) and the options left out.
    Also the form fields of an HTTP transcription request (docs/protocol.md §2)."""
    dropped: list[str] = []
    return _transcription(config, model, dropped), tuple(dropped)


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
    default never turns server VAD on for a model that rejects it. A config with
    ``transcription_enabled=False`` sends ``transcription: null``.

    Raises:
        ValueError: an unknown dialect or audio format.
    """
    fmt = config.wire_format  # ValueError for an unknown format, any dialect
    if dialect == "vllm":
        return _vllm_update(config)
    dropped: list[str] = []
    transcription = _transcription(config, model, dropped) if config.transcription_enabled else None
    turn_detection = None
    if config.turn_detection is not None:
        if model.server_vad:
            turn_detection = dict(config.turn_detection)
        else:
            dropped.append("turn_detection")
    noise: dict[str, Any] | None = None
    if config.noise_reduction:
        noise = {"type": config.noise_reduction}
        if config.noise_reduction_strength is not None:
            if dialect == "ga":  # types `NoiseReduction.strength` (GA only)
                noise["strength"] = config.noise_reduction_strength
            else:
                dropped.append("noise_reduction_strength")
    include = [LOGPROBS_INCLUDE] if config.logprobs else []

    if dialect == "ga":
        ga_format: dict[str, Any] = {"type": fmt.ga_type}
        if fmt.name == "pcm16":
            ga_format["rate"] = config.sample_rate_hz
        audio_input: dict[str, Any] = {
            "format": ga_format,
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
        raise ValueError(f"unknown dialect {dialect!r}: use ga, beta, speaches or vllm")
    return SessionUpdate(
        payload=payload, dropped=tuple(dropped), server_vad=turn_detection is not None
    )


def _vllm_update(config: SessionConfig) -> SessionUpdate:
    """vLLM takes only the served model, as a top-level field (docs/protocol.md §7); every
    other option is left out (it would be ignored)."""
    if config.audio_format != "pcm16":
        raise ValueError("vLLM takes pcm16 audio only (16 kHz): use audio_format='pcm16'")
    unsent = {
        "language": config.language,
        "languages": config.languages,
        "prompt": config.prompt,
        "delay": config.delay,
        "keywords": config.keywords,
        "turn_detection": config.turn_detection,
        "noise_reduction": config.noise_reduction,
        "logprobs": config.logprobs,
    }
    dropped = tuple(name for name, value in unsent.items() if value)
    payload = {"type": "session.update", "model": config.model}
    return SessionUpdate(payload=payload, dropped=dropped, server_vad=False)


# -- the inverse ---------------------------------------------------------------------------


def _bad(etype: str, path: str) -> EventParseError:
    return EventParseError(
        f"session update {etype!r} lacks field {path!r} or has it of the wrong type or value",
        event_type=etype,
        field=path,
    )


def _dict(obj: dict[str, Any], key: str, etype: str, path: str) -> dict[str, Any]:
    value = obj.get(key)
    if not isinstance(value, dict):
        raise _bad(etype, path)
    return value


def _opt_dict(obj: dict[str, Any], key: str, etype: str, path: str) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, dict):
        raise _bad(etype, path)
    return value


def _opt_str(obj: dict[str, Any], key: str, etype: str, path: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise _bad(etype, path)
    return value


def _opt_strs(obj: dict[str, Any], key: str, etype: str, path: str) -> tuple[str, ...] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(etype, path)
    return tuple(value)


def _parse_transcription(raw: dict[str, Any] | None, etype: str, path: str) -> dict[str, Any]:
    if raw is None:
        return {"model": "", "language": None, "transcription_enabled": False}
    model = raw.get("model")
    if not isinstance(model, str):
        raise _bad(etype, f"{path}.model")
    return {
        "model": model,
        "language": _opt_str(raw, "language", etype, f"{path}.language"),
        "prompt": _opt_str(raw, "prompt", etype, f"{path}.prompt"),
        "delay": _opt_str(raw, "delay", etype, f"{path}.delay"),
        "languages": _opt_strs(raw, "languages", etype, f"{path}.languages"),
        "keywords": _opt_strs(raw, "keywords", etype, f"{path}.keywords") or None,
    }


def _parse_noise(
    raw: dict[str, Any] | None, etype: str, path: str
) -> tuple[str | None, float | None]:
    if raw is None:
        return None, None
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise _bad(etype, f"{path}.type")
    strength = raw.get("strength")
    if strength is not None and (
        isinstance(strength, bool) or not isinstance(strength, (int, float))
    ):
        raise _bad(etype, f"{path}.strength")
    return kind, None if strength is None else float(strength)


def parse_session_update(payload: dict[str, Any], dialect: Dialect = "ga") -> SessionConfig:
    """The :class:`SessionConfig` a session configuration event describes: the inverse of
    ``build_session_update(config, model, dialect).payload`` (docs/protocol.md §2).

    ``parse_session_update(build_session_update(c, m, d).payload, d) == c`` for every config
    ``c`` whose options model ``m`` accepts (nothing in ``dropped``), whose ``language`` is
    set or None, and, outside GA, whose ``pcm_rate_hz`` is 24000. A field left out gives its
    "not set" value (``language=None``, ``logprobs=False``, …); ``transcription: null`` gives
    ``transcription_enabled=False`` with ``model=""``.

    Raises:
        EventParseError: the ``type`` does not match ``dialect``, or a field is missing or of
            the wrong type, or names an unknown audio format (``field`` is its dotted path).
        ValueError: an unknown dialect.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown dialect {dialect!r}: use ga, beta, speaches or vllm")
    if dialect == "vllm":
        model = payload.get("model")
        if payload.get("type") != "session.update" or not isinstance(model, str):
            raise _bad(str(payload.get("type")), "model")
        return SessionConfig(model=model, language=None, pcm_rate_hz=VLLM_RATE_HZ)
    expected = "transcription_session.update" if dialect == "beta" else "session.update"
    etype = payload.get("type")
    if etype != expected:
        raise EventParseError(
            f"a {dialect} session update has type {expected!r}", event_type=None, field="type"
        )
    session = _dict(payload, "session", etype, "session")
    include = _opt_strs(session, "include", etype, "session.include") or ()
    fields: dict[str, Any] = {"logprobs": LOGPROBS_INCLUDE in include}
    if dialect == "ga":
        if session.get("type") != "transcription":
            raise _bad(etype, "session.type")
        audio = _dict(session, "audio", etype, "session.audio")
        inp = _dict(audio, "input", etype, "session.audio.input")
        base = "session.audio.input"
        fmt = _dict(inp, "format", etype, f"{base}.format")
        found = wire_format_of_ga_type(str(fmt.get("type")))
        if found is None:
            raise _bad(etype, f"{base}.format.type")
        fields["audio_format"] = found.name
        if found.name == "pcm16":
            rate = fmt.get("rate", found.rate_hz)
            if not isinstance(rate, int) or isinstance(rate, bool):
                raise _bad(etype, f"{base}.format.rate")
            fields["pcm_rate_hz"] = rate
        tr_key, td_key, nr_key = "transcription", "turn_detection", "noise_reduction"
        container, prefix = inp, base
    else:
        name = session.get("input_audio_format")
        if not isinstance(name, str) or name not in WIRE_FORMATS:
            raise _bad(etype, "session.input_audio_format")
        fields["audio_format"] = name
        tr_key, td_key = "input_audio_transcription", "turn_detection"
        nr_key = "input_audio_noise_reduction"
        container, prefix = session, "session"
    tr = _opt_dict(container, tr_key, etype, f"{prefix}.{tr_key}")
    fields.update(_parse_transcription(tr, etype, f"{prefix}.{tr_key}"))
    td = _opt_dict(container, td_key, etype, f"{prefix}.{td_key}")
    fields["turn_detection"] = None if td is None else dict(td)
    nr = _opt_dict(container, nr_key, etype, f"{prefix}.{nr_key}")
    noise, strength = _parse_noise(nr, etype, f"{prefix}.{nr_key}")
    fields["noise_reduction"], fields["noise_reduction_strength"] = noise, strength
    return SessionConfig(**fields)
