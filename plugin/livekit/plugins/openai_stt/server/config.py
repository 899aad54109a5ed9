"""Session configuration on the server side (pure): applying and validating ``session.update``
bodies with OpenAI's error codes per compat mode, and the ``session`` object the server echoes
(docs/protocol.md §2, §5).

The configuration is the protocol's one :class:`~..protocol.session.SessionConfig`. Updates
follow the GA semantics: a field left out keeps its value, ``null`` clears it. A value the
server does not accept raises :class:`ConfigError` (code, message, param), which the session
sends as a non-fatal ``error`` event.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal, get_args

from ..models import (
    DelayLevel,
    NoiseReductionType,
    SemanticVadEagerness,
    STTModels,
    TurnDetectionType,
    get_model_info,
)
from ..protocol.session import (
    LOGPROBS_INCLUDE,
    WIRE_FORMATS,
    SessionConfig,
    wire_format_of_ga_type,
)
from .turns import SEMANTIC_SILENCE_MS, TurnDetection

__all__ = [
    "COMPAT_MODES",
    "DEFAULT_MODEL",
    "LENIENT_PCM_RATES",
    "Compat",
    "ConfigError",
    "apply_beta_update",
    "apply_ga_update",
    "apply_update",
    "check_known_fields",
    "check_model_rules",
    "check_turn_detection",
    "initial_config",
    "model_runs_server_vad",
    "model_sends_deltas",
    "model_streams_before_commit",
    "parse_turn_detection",
    "session_body",
]

Compat = Literal["lenient", "openai", "gateway", "vllm"]
COMPAT_MODES: tuple[str, ...] = get_args(Compat)
#: The model of a session that names none (docs/protocol.md §2).
DEFAULT_MODEL = "gpt-realtime-whisper"
#: pcm16 sample rates a lenient server accepts (OpenAI: 24000 only, docs/protocol.md §2).
LENIENT_PCM_RATES = (8000, 16000, 24000, 44100, 48000)
#: The flat beta fields; in a ``session.update`` they mean speaches' shape (docs/protocol.md §7).
BETA_KEYS = ("input_audio_format", "input_audio_transcription", "input_audio_noise_reduction")

_GA_TYPES = tuple(f.ga_type for f in WIRE_FORMATS.values())
_PCM16 = WIRE_FORMATS["pcm16"]
_DELAYS: tuple[str, ...] = get_args(DelayLevel)
#: Options a model refuses in ``compat="openai"`` (``ModelInfo.rejected_options``): their
#: error code, message and the param under ``session.audio.input``.
_REJECTIONS = {
    "turn_detection": ("unsupported_turn_detection", "Turn detection", "turn_detection"),
    "prompt": ("unsupported_prompt", "Prompt", "transcription.prompt"),
    "delay": ("unsupported_delay", "Delay", "transcription.delay"),
}


class ConfigError(Exception):
    """A session update the server refuses: OpenAI's error ``code``, ``message`` and ``param``
    (the dotted path of the field, docs/protocol.md §5)."""

    def __init__(self, code: str, message: str, param: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


def _invalid(value: Any, allowed: tuple[Any, ...], param: str, quote: bool = True) -> ConfigError:
    shown = f"'{value}'" if quote else repr(value)
    supported = ", ".join(map(str, allowed))
    return ConfigError(
        "invalid_value", f"Invalid value: {shown}. Supported values are: {supported}.", param
    )


def _check_opt_str(value: Any, param: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigError("invalid_type", f"Invalid type for '{param}': expected a string.", param)
    return value


def _check_opt_strs(value: Any, param: str) -> tuple[str, ...] | None:
    if value is not None and (
        not isinstance(value, list) or not all(isinstance(x, str) for x in value)
    ):
        raise ConfigError(
            "invalid_type", f"Invalid type for '{param}': expected a list of strings.", param
        )
    return tuple(value) if value else None


def _check_opt_dict(value: Any, param: str) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise ConfigError("invalid_type", f"Invalid type for '{param}': expected an object.", param)
    return value


def initial_config(model: str) -> SessionConfig:
    """A new session's configuration: pcm16 at 24 kHz, ``model``, no language, no VAD."""
    return SessionConfig(model=model, language=None)


def model_streams_before_commit(model: str) -> bool:
    """Deltas while audio arrives, before the commit (``ModelInfo.deltas_before_commit``)."""
    return get_model_info(model or DEFAULT_MODEL).deltas_before_commit


def model_runs_server_vad(model: str) -> bool:
    """Whether ``turn_detection`` makes this model's session detect turns by itself: the
    registry's ``server_vad`` for known models (and their snapshots); any other name (a gateway
    alias, a self-hosted model) honours what the client asked for."""
    info = get_model_info(model or DEFAULT_MODEL)
    return info.server_vad or not info.known


def model_sends_deltas(model: str) -> bool:
    """False for models that send ``completed`` only (``ModelInfo.sends_deltas``: whisper-1)."""
    return get_model_info(model or DEFAULT_MODEL).sends_deltas


def parse_turn_detection(
    td: dict[str, Any] | None, param: str = "turn_detection"
) -> TurnDetection | None:
    """A ``turn_detection`` object -> :class:`TurnDetection` (None for null).

    ``server_vad`` takes ``threshold`` (0..1, default 0.5), ``prefix_padding_ms`` (default 300)
    and ``silence_duration_ms`` (default 500); a null field means its default. ``semantic_vad``
    takes ``eagerness`` (``low``/``medium``/``high``/``auto``), mapped to a silence of
    1500/800/400/800 ms. Other fields are ignored.

    Raises:
        ConfigError: a wrong type or value, naming ``param`` + the field.
    """
    if td is None:
        return None
    ttype = td.get("type")
    if ttype not in get_args(TurnDetectionType):
        raise _invalid(ttype, get_args(TurnDetectionType), f"{param}.type")
    if ttype == "semantic_vad":
        eagerness = td.get("eagerness")
        eagerness = "auto" if eagerness is None else eagerness
        if eagerness not in get_args(SemanticVadEagerness):
            raise _invalid(eagerness, get_args(SemanticVadEagerness), f"{param}.eagerness")
        return TurnDetection("semantic_vad", silence_duration_ms=SEMANTIC_SILENCE_MS[eagerness])
    values: dict[str, Any] = {}
    threshold = td.get("threshold")
    if threshold is not None:
        if not _is_number(threshold) or not 0.0 <= threshold <= 1.0:
            raise ConfigError(
                "invalid_value",
                f"Invalid value: {threshold!r}. Expected a number from 0 to 1.",
                f"{param}.threshold",
            )
        values["threshold"] = float(threshold)
    for key in ("prefix_padding_ms", "silence_duration_ms"):
        value = td.get(key)
        if value is None:
            continue
        if not _is_number(value) or value < 0:
            raise ConfigError(
                "invalid_value",
                f"Invalid value: {value!r}. Expected a number of milliseconds (0 or more).",
                f"{param}.{key}",
            )
        values[key] = int(value)
    return TurnDetection("server_vad", **values)


def _is_number(value: Any) -> bool:
    """A finite JSON number (``1e999``, ``NaN`` and ``Infinity`` parse as non-finite floats)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isfinite(value)


def _apply_transcription(
    cfg: SessionConfig, tr: Any, param: str, keys: tuple[str, ...]
) -> SessionConfig:
    if tr is None:
        return dataclasses.replace(cfg, transcription_enabled=False)
    if not isinstance(tr, dict):
        raise ConfigError("invalid_type", f"Invalid type for '{param}': expected an object.", param)
    changes: dict[str, Any] = {"transcription_enabled": True}
    if not cfg.transcription_enabled:  # start again from the defaults
        changes.update(
            model=DEFAULT_MODEL,
            language=None,
            prompt=None,
            delay=None,
            languages=None,
            keywords=None,
        )
    for key in keys:
        if key in tr:
            check = _check_opt_strs if key in ("languages", "keywords") else _check_opt_str
            changes[key] = check(tr[key], f"{param}.{key}")
    if "model" in changes and changes["model"] is None:
        changes["model"] = ""  # no model: the session transcribes with the default one
    if changes.get("delay") is not None and changes["delay"] not in _DELAYS:
        raise _invalid(changes["delay"], _DELAYS, f"{param}.delay")
    return dataclasses.replace(cfg, **changes)


def _apply_include(cfg: SessionConfig, body: dict[str, Any], param: str) -> SessionConfig:
    if "include" not in body:
        return cfg
    inc = body["include"]
    if inc is not None and (not isinstance(inc, list) or not all(isinstance(x, str) for x in inc)):
        raise ConfigError(
            "invalid_type", f"Invalid type for '{param}': expected a list of strings.", param
        )
    return dataclasses.replace(cfg, logprobs=LOGPROBS_INCLUDE in (inc or ()))


def _apply_noise(cfg: SessionConfig, nr: Any, param: str) -> SessionConfig:
    nr = _check_opt_dict(nr, param)
    kind = None if nr is None else nr.get("type")
    if nr is not None and not isinstance(kind, str):
        raise _invalid(kind, get_args(NoiseReductionType), f"{param}.type")
    if nr is None:
        return dataclasses.replace(cfg, noise_reduction=None, noise_reduction_strength=None)
    strength = cfg.noise_reduction_strength  # left out: kept (types `NoiseReduction.strength`)
    if "strength" in nr:
        value = nr["strength"]
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise ConfigError(
                "invalid_type",
                f"Invalid type for '{param}.strength': expected a number.",
                f"{param}.strength",
            )
        strength = float(value)
    return dataclasses.replace(cfg, noise_reduction=kind, noise_reduction_strength=strength)


def _with_format(cfg: SessionConfig, name: str, pcm_rate_hz: int | None = None) -> SessionConfig:
    """``cfg`` with wire format ``name`` (a pcm16 rate other than the GA one only if given)."""
    rate = pcm_rate_hz or _PCM16.rate_hz
    return dataclasses.replace(cfg, audio_format=WIRE_FORMATS[name].name, pcm_rate_hz=rate)


def _apply_format(cfg: SessionConfig, fmt: Any, compat: str, param: str) -> SessionConfig:
    if fmt is None:
        return _with_format(cfg, _PCM16.name)
    if isinstance(fmt, str) and compat == "lenient" and fmt in WIRE_FORMATS:
        return _with_format(cfg, fmt)
    if not isinstance(fmt, dict):
        raise ConfigError("invalid_type", f"Invalid type for '{param}': expected an object.", param)
    found = wire_format_of_ga_type(fmt["type"]) if isinstance(fmt.get("type"), str) else None
    if found is None:
        raise _invalid(fmt.get("type"), _GA_TYPES, f"{param}.type")
    if found is not _PCM16:
        return _with_format(cfg, found.name)
    rate = fmt.get("rate", found.rate_hz)
    allowed = (found.rate_hz,) if compat == "openai" else LENIENT_PCM_RATES
    if not isinstance(rate, int) or isinstance(rate, bool) or rate not in allowed:
        raise _invalid(rate, allowed, f"{param}.rate", quote=False)
    return _with_format(cfg, found.name, rate)


def _apply_turn_detection(cfg: SessionConfig, td: Any, param: str) -> SessionConfig:
    td = _check_opt_dict(td, param)
    parse_turn_detection(td, param)  # validate
    if td is not None:  # keep (and echo) only the known fields, as plain values
        td = {k: v for k, v in td.items() if k in _TD_KEYS and _is_scalar(v)}
    return dataclasses.replace(cfg, turn_detection=td)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool)) or _is_number(value)


def apply_ga_update(cfg: SessionConfig, session: dict[str, Any], compat: str) -> SessionConfig:
    """Apply a GA ``session.update`` body (docs/protocol.md §2): absent keeps, null clears.

    Raises:
        ConfigError: a value the server does not accept (``session.type`` is required in
            ``compat="openai"``).
    """
    stype = session.get("type")
    if stype is None and compat == "openai":
        raise ConfigError(
            "missing_required_parameter",
            "Missing required parameter: 'session.type'.",
            "session.type",
        )
    if stype is not None and stype != "transcription":
        raise ConfigError(
            "invalid_value",
            f"Invalid value: '{stype}'. This server only supports 'transcription' sessions.",
            "session.type",
        )
    audio = _check_opt_dict(session.get("audio"), "session.audio") or {}
    inp = _check_opt_dict(audio.get("input"), "session.audio.input") or {}
    base = "session.audio.input"
    if "format" in inp:
        cfg = _apply_format(cfg, inp["format"], compat, f"{base}.format")
    if "transcription" in inp:
        keys = ("model", "language", "prompt", "delay", "languages", "keywords")
        cfg = _apply_transcription(cfg, inp["transcription"], f"{base}.transcription", keys)
    if "turn_detection" in inp:
        cfg = _apply_turn_detection(cfg, inp["turn_detection"], f"{base}.turn_detection")
    if "noise_reduction" in inp:
        cfg = _apply_noise(cfg, inp["noise_reduction"], f"{base}.noise_reduction")
    return _apply_include(cfg, session, "session.include")


def apply_beta_update(cfg: SessionConfig, session: dict[str, Any], compat: str) -> SessionConfig:
    """Apply a beta flat ``transcription_session.update`` body (docs/protocol.md §2, beta; also
    speaches' flat fields inside ``session.update``, §7).

    Raises:
        ConfigError: a value the server does not accept.
    """
    if "input_audio_format" in session:
        fmt = session["input_audio_format"]
        if fmt is None:
            cfg = _with_format(cfg, _PCM16.name)
        elif isinstance(fmt, str) and fmt in WIRE_FORMATS:
            cfg = _with_format(cfg, fmt)
        else:
            raise _invalid(fmt, tuple(WIRE_FORMATS), "session.input_audio_format")
    if "input_audio_transcription" in session:
        cfg = _apply_transcription(
            cfg,
            session["input_audio_transcription"],
            "session.input_audio_transcription",
            ("model", "language", "prompt", "languages", "keywords"),
        )
    if "turn_detection" in session:
        cfg = _apply_turn_detection(cfg, session["turn_detection"], "session.turn_detection")
    if "input_audio_noise_reduction" in session:
        param = "session.input_audio_noise_reduction"
        cfg = _apply_noise(cfg, session["input_audio_noise_reduction"], param)
    return _apply_include(cfg, session, "session.include")


#: The fields of a GA transcription ``session`` (types
#: ``realtime_transcription_session_create_request``, ``…_audio_input``, ``audio_transcription``,
#: ``…_audio_input_turn_detection``, ``realtime_audio_formats``), by dotted path.
_KNOWN_FIELDS: dict[str, frozenset[str]] = {
    "session": frozenset({"type", "audio", "include"}),
    "session.audio": frozenset({"input"}),
    "session.audio.input": frozenset(
        {"format", "transcription", "turn_detection", "noise_reduction"}
    ),
    "session.audio.input.format": frozenset({"type", "rate"}),
    "session.audio.input.transcription": frozenset(
        {"model", "language", "prompt", "delay", "languages", "keywords"}
    ),
    "session.audio.input.noise_reduction": frozenset({"type", "strength"}),
}
_TD_COMMON = frozenset({"type", "create_response", "interrupt_response"})
_TD_FIELDS = {
    "server_vad": _TD_COMMON
    | {"threshold", "prefix_padding_ms", "silence_duration_ms", "idle_timeout_ms"},
    "semantic_vad": _TD_COMMON | {"eagerness"},
}
_TD_KEYS = frozenset().union(*_TD_FIELDS.values())


def check_known_fields(session: dict[str, Any], compat: str) -> None:
    """``compat="openai"``: a field OpenAI does not know gets ``unknown_parameter``, as OpenAI
    answers it (``{"code": "unknown_parameter", "message": "Unknown parameter: 'session'.",
    "param": "session"}``: OpenAI community thread 1028638, docs/protocol.md §5). Other modes
    ignore unknown fields. Call it before applying the update (values are checked there).

    Raises:
        ConfigError: the first unknown field, by its dotted path.
    """
    if compat != "openai":
        return
    stack: list[tuple[str, Any]] = [("session", session)]
    while stack:
        path, obj = stack.pop()
        if not isinstance(obj, dict):
            continue
        known = _KNOWN_FIELDS.get(path)
        if path.endswith(".turn_detection"):
            ttype = obj.get("type")
            known = _TD_FIELDS.get(ttype, _TD_KEYS) if isinstance(ttype, str) else _TD_KEYS
        if known is None:
            continue
        for key in sorted(obj, key=str):
            if key not in known:
                name = f"{path}.{key}"
                raise ConfigError("unknown_parameter", f"Unknown parameter: '{name}'.", name)
            stack.append((f"{path}.{key}", obj[key]))


def check_turn_detection(cfg: SessionConfig, param: str) -> None:
    """Every mode: a session runs the turn detection it confirms or refuses it
    (issue 12). A model without server VAD (``ModelInfo.server_vad`` False, e.g.
    ``gpt-realtime-whisper``: "turn detection must be set to ``null``; VAD is not supported",
    types ``realtime_transcription_session_audio_input``) gets ``unsupported_turn_detection``
    for any ``turn_detection``; unknown model names run what the client asked for.

    Raises:
        ConfigError: ``turn_detection`` set for a model that cannot run it.
    """
    if cfg.turn_detection is None or not cfg.transcription_enabled:
        return
    if not model_runs_server_vad(cfg.model):
        code, what, _ = _REJECTIONS["turn_detection"]
        raise ConfigError(code, f"{what} is not supported for this transcription model", param)


def apply_update(
    cfg: SessionConfig, body: dict[str, Any], compat: str, beta: bool
) -> tuple[SessionConfig, bool]:
    """One ``session.update`` (or, ``beta``, ``transcription_session.update``) body applied to
    ``cfg`` with every rule of ``compat``: the new configuration, and whether the body was
    flat (the beta shape; in lenient mode also speaches' flat fields in a ``session.update``,
    docs/protocol.md §7), which decides the shape of the echo.

    Raises:
        ConfigError: the first rule broken (the configuration is unchanged).
    """
    flat = beta or (compat == "lenient" and any(k in body for k in BETA_KEYS))
    if flat:
        new = apply_beta_update(cfg, body, compat)
        check_turn_detection(new, "session.turn_detection")
    else:
        check_known_fields(body, compat)
        new = apply_ga_update(cfg, body, compat)
        check_model_rules(new, compat)
        check_turn_detection(new, "session.audio.input.turn_detection")
    return new, flat


def check_model_rules(cfg: SessionConfig, compat: str) -> None:
    """The model rules of ``compat="openai"`` (docs/protocol.md §2 Models, §5): the model must
    be one OpenAI lists (``models.STTModels``), and an option it refuses
    (``ModelInfo.rejected_options``) gets its ``unsupported_*`` error.

    Raises:
        ConfigError: the first rule broken.
    """
    if compat != "openai" or not cfg.transcription_enabled:
        return
    base = "session.audio.input"
    names = tuple(sorted(get_args(STTModels)))
    if cfg.model not in names:
        raise _invalid(cfg.model, names, f"{base}.transcription.model")
    if cfg.language and cfg.languages:  # the cookbook: "Do not send both"
        raise ConfigError(
            "invalid_value",
            "'language' and 'languages' cannot both be set; use 'languages'.",
            f"{base}.transcription.languages",
        )
    rejected = get_model_info(cfg.model).rejected_options
    present = {
        "turn_detection": cfg.turn_detection is not None,
        "prompt": bool(cfg.prompt),
        "delay": cfg.delay is not None,
    }
    for option, (code, what, param) in _REJECTIONS.items():
        if option in rejected and present[option]:
            message = f"{what} is not supported for this transcription model"
            raise ConfigError(code, message, f"{base}.{param}")


def session_body(cfg: SessionConfig, session_id: str, dialect: str) -> dict[str, Any]:
    """The ``session`` object of ``session.created`` / ``session.updated``: the whole effective
    configuration (docs/protocol.md §2), GA-shaped, or flat for ``dialect`` ``beta``."""
    transcription: dict[str, Any] | None = None
    if cfg.transcription_enabled:
        transcription = {"model": cfg.model, "language": cfg.language, "prompt": cfg.prompt}
        if cfg.delay is not None and dialect == "ga":
            transcription["delay"] = cfg.delay
        for key in ("languages", "keywords"):
            if getattr(cfg, key):
                transcription[key] = list(getattr(cfg, key))
    noise: dict[str, Any] | None = None
    if cfg.noise_reduction is not None:
        noise = {"type": cfg.noise_reduction}
        if cfg.noise_reduction_strength is not None and dialect != "beta":
            noise["strength"] = cfg.noise_reduction_strength
    include = [LOGPROBS_INCLUDE] if cfg.logprobs else None
    if dialect == "beta":
        return {
            "id": session_id,
            "object": "realtime.transcription_session",
            "input_audio_format": cfg.audio_format,
            "input_audio_transcription": transcription,
            "turn_detection": cfg.turn_detection,
            "input_audio_noise_reduction": noise,
            "include": include,
        }
    fmt: dict[str, Any] = {"type": cfg.format_type}
    if cfg.wire_format is _PCM16:
        fmt["rate"] = cfg.sample_rate_hz
    return {
        "type": "transcription",
        "object": "realtime.transcription_session",
        "id": session_id,
        "audio": {
            "input": {
                "format": fmt,
                "transcription": transcription,
                "turn_detection": cfg.turn_detection,
                "noise_reduction": noise,
            }
        },
        "include": include,
    }
