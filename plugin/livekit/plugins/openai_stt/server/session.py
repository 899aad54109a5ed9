"""The pure server side of one Realtime transcription session (sans-I/O).

Nothing here imports asyncio, websockets or livekit, or reads a clock: time comes in as
``now: float`` (seconds, any monotonic origin). The I/O shell (``app.py``) feeds client text in
and performs what comes out:

- :func:`check_handshake` decides the HTTP answer to an upgrade request (docs/protocol.md §1).
- :class:`ServerSession` turns one client event (JSON text) into :class:`Actions`: server
  event dicts to send (with optional :class:`Pause` markers), :class:`TranscriptionJob` s for the
  recognizer, and at most one :class:`Close`.
- After the recognizer has run a job, :meth:`ServerSession.transcribed` (or
  :meth:`ServerSession.transcription_failed`) gives the delta/completed (or failed) events.
- Models that stream before the commit (``gpt-realtime-whisper``, ``gpt-live-transcribe``): the
  session says when a partial decode of the open buffer is due (:meth:`ServerSession.take_partial`
  given ``now`` and the decode backlog) and turns each partial hypothesis into deltas of the
  stable prefix (:meth:`ServerSession.partial_transcribed`, :func:`stable_delta`).
- Server VAD (``turn_detection`` with a VAD model): each append asks the shell to run a speech
  detector (:class:`VadInput`); the probabilities go back in through
  :meth:`ServerSession.speech_probabilities`, which starts, stops and commits turns.

Wire rules cited by section refer to ``docs/protocol.md``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from ..models import get_model_info
from ..protocol.events import MAX_APPEND_BYTES, MIN_COMMIT_MS

__all__ = [
    "DEFAULT_DELTA_INTERVAL_S",
    "DEFAULT_MAX_BUFFER_S",
    "DURATION_BILLED_MODELS",
    "KNOWN_MODELS",
    "MAX_APPEND_BYTES",
    "MIN_COMMIT_S",
    "TOKEN_BILLED_MODELS",
    "Actions",
    "Close",
    "Compat",
    "FaultCounters",
    "Faults",
    "HandshakeReply",
    "PartialJob",
    "Pause",
    "Recognition",
    "ServerSession",
    "SessionConfig",
    "TranscriptionJob",
    "TurnDetection",
    "VadInput",
    "check_handshake",
    "continuation",
    "parse_turn_detection",
    "partial_interval",
    "split_pieces",
    "stable_delta",
    "stable_prefix",
    "usage_for",
]

Compat = Literal["lenient", "openai", "gateway"]
COMPAT_MODES: tuple[str, ...] = ("lenient", "openai", "gateway")

DURATION_BILLED_MODELS = frozenset(
    {"gpt-realtime-whisper", "gpt-live-transcribe", "gpt-transcribe"}
)
TOKEN_BILLED_MODELS = frozenset({"gpt-4o-transcribe", "gpt-4o-mini-transcribe", "whisper-1"})
KNOWN_MODELS = DURATION_BILLED_MODELS | TOKEN_BILLED_MODELS
DEFAULT_MODEL = "gpt-realtime-whisper"

#: Least audio a commit needs (docs/protocol.md §3), in seconds.
MIN_COMMIT_S = MIN_COMMIT_MS / 1000
#: Values accepted for ``transcription.delay`` (docs/protocol.md §2, gpt-realtime-whisper).
DELAY_VALUES = ("minimal", "low", "medium", "high", "xhigh")
LOGPROBS_INCLUDE = "item.input_audio_transcription.logprobs"

#: Default seconds between partial decodes of the open buffer (models with pre-commit deltas).
DEFAULT_DELTA_INTERVAL_S = 1.0
#: Least open audio worth a partial decode, and least new audio since the previous one.
MIN_PARTIAL_S = 0.5
MIN_PARTIAL_GROWTH_S = 0.25
#: No partial decodes of an open buffer longer than one Whisper window (the final still comes).
DEFAULT_MAX_PARTIAL_S = 30.0
#: Default cap on uncommitted audio per session, in seconds (bounded memory).
DEFAULT_MAX_BUFFER_S = 600.0
#: Speech-probability window of the detector the shell runs (Silero: 512 samples at 16 kHz).
DEFAULT_VAD_WINDOW_S = 0.032
#: ``semantic_vad`` eagerness -> silence that ends a turn (ms); ``auto`` is ``medium``.
SEMANTIC_SILENCE_MS = {"low": 1500, "medium": 800, "high": 400, "auto": 800}
#: Models that send only ``completed``, no deltas (docs/protocol.md §2, whisper-1).
COMPLETED_ONLY_MODELS = frozenset({"whisper-1"})
_SNAPSHOT = re.compile(r"(?P<base>.+)-\d{4}-\d{2}-\d{2}")

_WIRE_FORMATS = ("audio/pcm", "audio/pcmu", "audio/pcma")
_BETA_FORMATS = {
    "pcm16": ("audio/pcm", 24000),
    "g711_ulaw": ("audio/pcmu", 8000),
    "g711_alaw": ("audio/pcma", 8000),
}
_LENIENT_PCM_RATES = (8000, 16000, 24000, 44100, 48000)
_BETA_KEYS = ("input_audio_format", "input_audio_transcription", "input_audio_noise_reduction")


# --------------------------------------------------------------------------------------------
# Faults


@dataclass(frozen=True)
class Faults:
    """Injected failures, for testing clients against a misbehaving server.

    All counters are per server (shared by its sessions through :class:`FaultCounters`).

    - ``drop_after_audio_ms``: once a session has received this much audio (milliseconds of
      appended audio, in the session's wire format), drop the connection: ``drop_mode``
      ``"close_1011"`` sends a close frame 1011, ``"reset"`` aborts the TCP connection without a
      close frame. At most ``drop_sessions`` sessions are dropped (default 1, so a reconnect
      then succeeds).
    - ``drop_after_s``: drop each session (within the same ``drop_sessions`` budget) this many
      seconds after it opened, whatever audio it has: a drop at a given time.
    - ``fail_items``: 1-based item indexes (per session) answered with
      ``conversation.item.input_audio_transcription.failed`` instead of deltas/completed
      (docs/protocol.md §4).
    - ``error_code_after_audio_ms``: ``(code, ms)``: send one ``error`` event with that code once a
      session has received ``ms`` of audio; once per server.
    - ``completed_delay_ms``: wait this long between the last delta and ``completed``.
    - ``reject_handshake_status``: answer the HTTP upgrade with this status (401, 429, 500, ...)
      instead of switching protocols, for the first ``reject_handshakes`` attempts (``None``:
      all of them).
    """

    drop_after_audio_ms: float | None = None
    drop_after_s: float | None = None
    drop_mode: Literal["close_1011", "reset"] = "close_1011"
    drop_sessions: int = 1
    fail_items: frozenset[int] = frozenset()
    error_code_after_audio_ms: tuple[str, float] | None = None
    completed_delay_ms: float = 0.0
    reject_handshake_status: int | None = None
    reject_handshakes: int | None = None

    def __post_init__(self) -> None:
        if self.drop_mode not in ("close_1011", "reset"):
            raise ValueError(f"drop_mode must be 'close_1011' or 'reset', not {self.drop_mode!r}")
        if not isinstance(self.fail_items, frozenset):
            object.__setattr__(self, "fail_items", frozenset(self.fail_items))


@dataclass
class FaultCounters:
    """Per-server fault budget: how many drops, error events and rejections were used.

    Mutable but pure: the server creates one and hands it to every session.
    """

    sessions_opened: int = 0
    drops: int = 0
    error_events: int = 0
    handshakes_rejected: int = 0


# --------------------------------------------------------------------------------------------
# Handshake


@dataclass(frozen=True)
class HandshakeReply:
    """An HTTP answer instead of a websocket upgrade: ``status`` code and plain-text ``body``."""

    status: int
    body: str


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lname = name.lower()
    for key, value in headers.items():
        if key.lower() == lname:
            return value
    return None


def check_handshake(
    *,
    path: str,
    headers: Mapping[str, str],
    api_key: str | None,
    faults: Faults | None = None,
    counters: FaultCounters | None = None,
    active_sessions: int = 0,
    max_sessions: int | None = None,
) -> HandshakeReply | None:
    """Decide the HTTP answer to one request (docs/protocol.md §1); ``None`` means "upgrade".

    ``path`` is the request target with its query (``/v1/realtime?intent=transcription``);
    ``headers`` any case. Rules, in order:

    - ``GET /health`` -> 200 ``ok``.
    - a path other than ``/v1/realtime`` or ``/realtime`` (any prefix ending in ``/realtime``
      is accepted, e.g. Azure's ``/openai/v1/realtime``) -> 404.
    - the ``reject_handshake_status`` fault -> that status (counts in ``counters``).
    - no ``Authorization: Bearer <token>`` and no ``api-key: <key>`` header -> 401; with
      ``api_key`` set, a token that differs -> 401. The key never appears in the answer.
    - ``active_sessions`` already at ``max_sessions`` (None: no limit) -> 503 with a body
      saying the server is full (a client retries 5xx with backoff, docs/protocol.md §5).
    """
    route = urlsplit(path).path.rstrip("/") or "/"
    if route == "/health":
        return HandshakeReply(200, "ok\n")
    if not (route == "/realtime" or route.endswith("/realtime")):
        return HandshakeReply(404, "not found: use /v1/realtime\n")
    if faults is not None and faults.reject_handshake_status is not None:
        used = counters.handshakes_rejected if counters is not None else 0
        if faults.reject_handshakes is None or used < faults.reject_handshakes:
            if counters is not None:
                counters.handshakes_rejected += 1
            return HandshakeReply(faults.reject_handshake_status, "rejected by fault injection\n")
    token: str | None = None
    auth = _header(headers, "authorization")
    if auth is not None and auth[:7].lower() == "bearer " and auth[7:].strip():
        token = auth[7:].strip()
    elif (azure := _header(headers, "api-key")) is not None and azure.strip():
        token = azure.strip()
    if token is None:
        return HandshakeReply(401, "missing credentials: send Authorization: Bearer <key>\n")
    if api_key is not None and token != api_key:
        return HandshakeReply(401, "invalid credentials\n")
    if max_sessions is not None and active_sessions >= max_sessions:
        return HandshakeReply(
            503,
            f"server busy: {active_sessions} of {max_sessions} sessions in use "
            f"(max_sessions={max_sessions}); try again later\n",
        )
    return None


# --------------------------------------------------------------------------------------------
# Session config


@dataclass(frozen=True)
class SessionConfig:
    """The effective configuration of a transcription session (docs/protocol.md §2).

    ``format_type`` is ``audio/pcm`` (16-bit LE mono at ``rate`` Hz), ``audio/pcmu`` or
    ``audio/pcma`` (G.711 at 8000 Hz, one byte a sample). ``transcription_enabled`` False means
    the client set ``transcription`` to null: commits then produce no transcription events.
    """

    format_type: str = "audio/pcm"
    rate: int = 24000
    transcription_enabled: bool = True
    model: str | None = DEFAULT_MODEL
    language: str | None = None
    prompt: str | None = None
    delay: str | None = None
    turn_detection: dict[str, Any] | None = None
    noise_reduction: dict[str, Any] | None = None
    include: tuple[str, ...] | None = None

    @property
    def bytes_per_second(self) -> int:
        """Wire bytes per second of audio: 2 per sample for pcm, 1 for G.711."""
        return self.rate * (2 if self.format_type == "audio/pcm" else 1)

    @property
    def logprobs(self) -> bool:
        return self.include is not None and LOGPROBS_INCLUDE in self.include

    def to_ga(self, session_id: str) -> dict[str, Any]:
        """The GA ``session`` object (docs/protocol.md §2)."""
        fmt: dict[str, Any] = {"type": self.format_type}
        if self.format_type == "audio/pcm":
            fmt["rate"] = self.rate
        transcription: dict[str, Any] | None = None
        if self.transcription_enabled:
            transcription = {"model": self.model, "language": self.language, "prompt": self.prompt}
            if self.delay is not None:
                transcription["delay"] = self.delay
        return {
            "type": "transcription",
            "object": "realtime.transcription_session",
            "id": session_id,
            "audio": {
                "input": {
                    "format": fmt,
                    "transcription": transcription,
                    "turn_detection": self.turn_detection,
                    "noise_reduction": self.noise_reduction,
                }
            },
            "include": list(self.include) if self.include is not None else None,
        }

    def to_beta(self, session_id: str) -> dict[str, Any]:
        """The beta flat ``session`` object (docs/protocol.md §2, beta dialect)."""
        beta_format = {v[0]: k for k, v in _BETA_FORMATS.items()}[self.format_type]
        return {
            "id": session_id,
            "object": "realtime.transcription_session",
            "input_audio_format": beta_format,
            "input_audio_transcription": (
                {"model": self.model, "language": self.language, "prompt": self.prompt}
                if self.transcription_enabled
                else None
            ),
            "turn_detection": self.turn_detection,
            "input_audio_noise_reduction": self.noise_reduction,
            "include": list(self.include) if self.include is not None else None,
        }


class _ConfigError(Exception):
    def __init__(self, code: str, message: str, param: str | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


def _check_opt_str(value: Any, param: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _ConfigError("invalid_type", f"Invalid type for '{param}': expected a string.", param)
    return value


def _check_opt_dict(value: Any, param: str) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, dict):
        raise _ConfigError(
            "invalid_type", f"Invalid type for '{param}': expected an object.", param
        )
    return value


def _apply_transcription(
    cfg: SessionConfig, tr: Any, param: str, keys: tuple[str, ...]
) -> SessionConfig:
    if tr is None:
        return dataclasses.replace(cfg, transcription_enabled=False)
    if not isinstance(tr, dict):
        raise _ConfigError(
            "invalid_type", f"Invalid type for '{param}': expected an object.", param
        )
    changes: dict[str, Any] = {"transcription_enabled": True}
    if not cfg.transcription_enabled:  # start again from the defaults
        changes.update(model=DEFAULT_MODEL, language=None, prompt=None, delay=None)
    for key in keys:
        if key in tr:
            changes[key] = _check_opt_str(tr[key], f"{param}.{key}")
    if changes.get("delay") is not None and changes["delay"] not in DELAY_VALUES:
        raise _ConfigError(
            "invalid_value",
            f"Invalid value: '{changes['delay']}'. "
            f"Supported values are: {', '.join(DELAY_VALUES)}.",
            f"{param}.delay",
        )
    return dataclasses.replace(cfg, **changes)


def _apply_include(cfg: SessionConfig, body: dict[str, Any], param: str) -> SessionConfig:
    if "include" not in body:
        return cfg
    inc = body["include"]
    if inc is None:
        return dataclasses.replace(cfg, include=None)
    if not isinstance(inc, list) or not all(isinstance(x, str) for x in inc):
        raise _ConfigError(
            "invalid_type", f"Invalid type for '{param}': expected a list of strings.", param
        )
    return dataclasses.replace(cfg, include=tuple(inc))


def _apply_format(cfg: SessionConfig, fmt: Any, compat: str, param: str) -> SessionConfig:
    if fmt is None:
        return dataclasses.replace(cfg, format_type="audio/pcm", rate=24000)
    if isinstance(fmt, str) and compat == "lenient" and fmt in _BETA_FORMATS:
        ftype, rate = _BETA_FORMATS[fmt]
        return dataclasses.replace(cfg, format_type=ftype, rate=rate)
    if not isinstance(fmt, dict):
        raise _ConfigError(
            "invalid_type", f"Invalid type for '{param}': expected an object.", param
        )
    wire_type = fmt.get("type")
    if not isinstance(wire_type, str) or wire_type not in _WIRE_FORMATS:
        raise _ConfigError(
            "invalid_value",
            f"Invalid value: '{wire_type}'. Supported values are: {', '.join(_WIRE_FORMATS)}.",
            f"{param}.type",
        )
    if wire_type != "audio/pcm":
        return dataclasses.replace(cfg, format_type=wire_type, rate=8000)
    rate = fmt.get("rate", 24000)
    allowed = (24000,) if compat == "openai" else _LENIENT_PCM_RATES
    if not isinstance(rate, int) or isinstance(rate, bool) or rate not in allowed:
        raise _ConfigError(
            "invalid_value",
            f"Invalid value: {rate!r}. Supported values are: {', '.join(map(str, allowed))}.",
            f"{param}.rate",
        )
    return dataclasses.replace(cfg, format_type="audio/pcm", rate=rate)


@dataclass(frozen=True)
class TurnDetection:
    """Effective server VAD settings (docs/protocol.md §2 ``turn_detection``).

    A speech probability at or above ``threshold`` starts a turn (its audio begins
    ``prefix_padding_ms`` earlier); probabilities below ``max(threshold - 0.15, 0.01)`` for
    ``silence_duration_ms`` end it (Silero's hysteresis, as in ``faster_whisper.vad``).
    """

    type: str = "server_vad"
    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500

    @property
    def neg_threshold(self) -> float:
        return max(self.threshold - 0.15, 0.01)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_turn_detection(
    td: dict[str, Any] | None, param: str = "turn_detection"
) -> TurnDetection | None:
    """A ``turn_detection`` object -> :class:`TurnDetection` (None for null).

    ``server_vad`` takes ``threshold`` (0..1, default 0.5), ``prefix_padding_ms`` (default 300)
    and ``silence_duration_ms`` (default 500); a null field means its default. ``semantic_vad``
    takes ``eagerness`` (``low``/``medium``/``high``/``auto``), mapped to a silence of
    1500/800/400/800 ms. Other fields are ignored. Raises ``_ConfigError`` (code, message,
    param) for a wrong type or value.
    """
    if td is None:
        return None
    ttype = td.get("type")
    if ttype not in ("server_vad", "semantic_vad"):
        raise _ConfigError(
            "invalid_value",
            f"Invalid value: '{ttype}'. Supported values are: server_vad, semantic_vad.",
            f"{param}.type",
        )
    if ttype == "semantic_vad":
        eagerness = td.get("eagerness") or "auto"
        if eagerness not in SEMANTIC_SILENCE_MS:
            raise _ConfigError(
                "invalid_value",
                f"Invalid value: '{eagerness}'. "
                f"Supported values are: {', '.join(SEMANTIC_SILENCE_MS)}.",
                f"{param}.eagerness",
            )
        return TurnDetection("semantic_vad", silence_duration_ms=SEMANTIC_SILENCE_MS[eagerness])
    values: dict[str, Any] = {}
    threshold = td.get("threshold")
    if threshold is not None:
        if not _number(threshold) or not 0.0 <= threshold <= 1.0:
            raise _ConfigError(
                "invalid_value",
                f"Invalid value: {threshold!r}. Expected a number from 0 to 1.",
                f"{param}.threshold",
            )
        values["threshold"] = float(threshold)
    for key in ("prefix_padding_ms", "silence_duration_ms"):
        value = td.get(key)
        if value is None:
            continue
        if not _number(value) or value < 0:
            raise _ConfigError(
                "invalid_value",
                f"Invalid value: {value!r}. Expected a number of milliseconds (0 or more).",
                f"{param}.{key}",
            )
        values[key] = int(value)
    return TurnDetection("server_vad", **values)


def _apply_turn_detection(cfg: SessionConfig, td: Any, param: str) -> SessionConfig:
    td = _check_opt_dict(td, param)
    parse_turn_detection(td, param)  # validate
    return dataclasses.replace(cfg, turn_detection=td)


def apply_ga_update(cfg: SessionConfig, session: dict[str, Any], compat: str) -> SessionConfig:
    """Apply a GA ``session.update`` body (docs/protocol.md §2): absent keeps, null clears.

    Raises ``_ConfigError`` (code, message, param) for a value the server does not accept.
    """
    stype = session.get("type")
    if stype is None and compat == "openai":
        raise _ConfigError(
            "missing_required_parameter",
            "Missing required parameter: 'session.type'.",
            "session.type",
        )
    if stype is not None and stype != "transcription":
        raise _ConfigError(
            "invalid_value",
            f"Invalid value: '{stype}'. This server only supports 'transcription' sessions.",
            "session.type",
        )
    audio = _check_opt_dict(session.get("audio"), "session.audio") or {}
    inp = _check_opt_dict(audio.get("input"), "session.audio.input") or {}
    if "format" in inp:
        cfg = _apply_format(cfg, inp["format"], compat, "session.audio.input.format")
    if "transcription" in inp:
        cfg = _apply_transcription(
            cfg,
            inp["transcription"],
            "session.audio.input.transcription",
            ("model", "language", "prompt", "delay"),
        )
    if "turn_detection" in inp:
        cfg = _apply_turn_detection(
            cfg, inp["turn_detection"], "session.audio.input.turn_detection"
        )
    if "noise_reduction" in inp:
        nr = _check_opt_dict(inp["noise_reduction"], "session.audio.input.noise_reduction")
        cfg = dataclasses.replace(cfg, noise_reduction=nr)
    return _apply_include(cfg, session, "session.include")


def apply_beta_update(cfg: SessionConfig, session: dict[str, Any], compat: str) -> SessionConfig:
    """Apply a beta flat ``transcription_session.update`` body (docs/protocol.md §2, beta)."""
    if "input_audio_format" in session:
        fmt = session["input_audio_format"]
        if fmt is None:
            cfg = dataclasses.replace(cfg, format_type="audio/pcm", rate=24000)
        elif fmt in _BETA_FORMATS:
            ftype, rate = _BETA_FORMATS[fmt]
            cfg = dataclasses.replace(cfg, format_type=ftype, rate=rate)
        else:
            raise _ConfigError(
                "invalid_value",
                f"Invalid value: '{fmt}'. Supported values are: {', '.join(_BETA_FORMATS)}.",
                "session.input_audio_format",
            )
    if "input_audio_transcription" in session:
        cfg = _apply_transcription(
            cfg,
            session["input_audio_transcription"],
            "session.input_audio_transcription",
            ("model", "language", "prompt"),
        )
    if "turn_detection" in session:
        cfg = _apply_turn_detection(cfg, session["turn_detection"], "session.turn_detection")
    if "input_audio_noise_reduction" in session:
        nr = _check_opt_dict(
            session["input_audio_noise_reduction"], "session.input_audio_noise_reduction"
        )
        cfg = dataclasses.replace(cfg, noise_reduction=nr)
    return _apply_include(cfg, session, "session.include")


def _check_model_rules(cfg: SessionConfig, compat: str, param_prefix: str) -> None:
    """Model rules of ``compat="openai"`` (docs/protocol.md §2 Models, §5)."""
    if compat != "openai" or not cfg.transcription_enabled:
        return
    if cfg.model not in KNOWN_MODELS:
        raise _ConfigError(
            "invalid_value",
            f"Invalid value: '{cfg.model}'. "
            f"Supported values are: {', '.join(sorted(KNOWN_MODELS))}.",
            f"{param_prefix}.model",
        )
    if cfg.model == "gpt-realtime-whisper":
        if cfg.turn_detection is not None:
            raise _ConfigError(
                "unsupported_turn_detection",
                "Turn detection is not supported for this transcription model",
                "session.audio.input.turn_detection",
            )
        if cfg.prompt:
            raise _ConfigError(
                "unsupported_prompt",
                "Prompt is not supported for this transcription model",
                f"{param_prefix}.prompt",
            )
    elif cfg.delay is not None and cfg.model != "gpt-live-transcribe":  # unconfirmed there
        raise _ConfigError(
            "unsupported_delay",
            "Delay is not supported for this transcription model",
            f"{param_prefix}.delay",
        )


# --------------------------------------------------------------------------------------------
# Outputs


@dataclass(frozen=True)
class Pause:
    """Wait ``seconds`` before sending the events that follow (``completed_delay_ms`` fault)."""

    seconds: float


@dataclass(frozen=True)
class Close:
    """End the connection: close frame ``code``/``reason``, or with ``abort`` a TCP reset."""

    code: int
    reason: str
    abort: bool = False


@dataclass(frozen=True)
class Recognition:
    """What an engine heard: ``text`` (no leading/trailing space) and an optional mean log
    probability per token (natural log, <= 0) used for ``logprobs`` (docs/protocol.md §4)."""

    text: str
    logprob: float | None = None


@dataclass(frozen=True)
class TranscriptionJob:
    """One committed item for the recognizer.

    ``audio`` holds the item's wire bytes in ``format_type`` at ``rate`` Hz; ``duration_s`` is
    computed from the byte count. ``index`` is 1-based within the session. ``fail`` means the
    ``fail_items`` fault applies: do not run the engine, call
    :meth:`ServerSession.transcription_failed`.
    """

    session_id: str
    item_id: str
    index: int
    previous_item_id: str | None
    audio: bytes
    format_type: str
    rate: int
    duration_s: float
    model: str
    language: str | None
    prompt: str | None
    logprobs: bool
    fail: bool = False


@dataclass(frozen=True)
class PartialJob:
    """A partial decode of the open (uncommitted) buffer, for pre-commit deltas.

    ``item_id`` is the id the next commit will give this audio. Run it on the decode worker
    (finals first), then call :meth:`ServerSession.partial_transcribed` (or
    :meth:`ServerSession.partial_failed`); a result for a buffer that was committed or cleared
    meanwhile is ignored there.
    """

    session_id: str
    item_id: str
    previous_item_id: str | None
    audio: bytes
    format_type: str
    rate: int
    duration_s: float
    model: str
    language: str | None
    prompt: str | None
    logprobs: bool


@dataclass(frozen=True)
class VadInput:
    """Run the speech detector on ``audio`` (wire bytes in ``format_type`` at ``rate`` Hz,
    continuing the stream of earlier inputs of the same ``epoch``; a new epoch means a fresh
    detector), then feed its probabilities to :meth:`ServerSession.speech_probabilities`."""

    audio: bytes
    format_type: str
    rate: int
    epoch: int


@dataclass
class Actions:
    """What the I/O shell must do, in order: send ``events`` (dicts; a :class:`Pause` means
    sleep), queue ``jobs``, run the speech detector on ``vad`` if set, then perform ``close``
    if set."""

    events: list[dict[str, Any] | Pause] = field(default_factory=list)
    jobs: list[TranscriptionJob] = field(default_factory=list)
    close: Close | None = None
    vad: VadInput | None = None

    def extend(self, other: Actions) -> None:
        self.events.extend(other.events)
        self.jobs.extend(other.jobs)
        if self.close is None:
            self.close = other.close
        if self.vad is None:
            self.vad = other.vad

    @property
    def sent(self) -> list[dict[str, Any]]:
        """The events without pauses (handy in tests)."""
        return [e for e in self.events if isinstance(e, dict)]


_PIECE = re.compile(r"\s*\S+")


def split_pieces(transcript: str) -> list[str]:
    """Split a transcript into delta pieces: each word with its leading whitespace, so that
    ``"".join(split_pieces(t)) == t`` (trailing whitespace rides on the last piece)."""
    pieces = _PIECE.findall(transcript)
    rest = transcript[sum(map(len, pieces)) :]
    if rest:
        if pieces:
            pieces[-1] += rest
        else:
            pieces.append(rest)
    return pieces


def _word_key(word: str) -> str:
    """A word as hypotheses are compared: lower case, letters and digits only."""
    return "".join(ch for ch in word.lower() if ch.isalnum())


def stable_prefix(
    previous: list[str] | tuple[str, ...] | None, current: list[str] | tuple[str, ...]
) -> list[str]:
    """The words two consecutive hypotheses agree on: their longest common prefix, compared
    word by word without case and punctuation ("Americans." = "americans"), in the spelling of
    ``current`` (``previous`` None: nothing is stable yet)."""
    if previous is None:
        return []
    n = 0
    for a, b in zip(previous, current, strict=False):
        if _word_key(a) != _word_key(b):
            break
        n += 1
    return list(current[:n])


def continuation(streamed: str, words: list[str] | tuple[str, ...]) -> str:
    """The part of ``words`` that comes after the text already ``streamed``, as a delta
    (``""``: nothing new; a leading space unless nothing was streamed).

    ``streamed`` is aligned to ``words`` (without case and punctuation): normally it is their
    prefix and the rest follows. When they disagree (an earlier hypothesis said "asked", now
    "ask"), deltas cannot be taken back: the alignment (``difflib``) finds where the streamed
    text ends in ``words``, counting an unmatched streamed tail as one word for one, and the
    words after that follow. The final transcript, sent whole in ``completed``, is
    authoritative.
    """
    have = streamed.split()
    k = len(have)
    if not words:
        return ""
    if k == 0:
        return " ".join(words)
    have_keys = [_word_key(w) for w in have]
    keys = [_word_key(w) for w in words]
    if keys[:k] == have_keys:
        j = k
    else:
        blocks = [
            b
            for b in SequenceMatcher(None, have_keys, keys, autojunk=False).get_matching_blocks()
            if b.size
        ]
        if blocks:
            last = blocks[-1]
            j = last.b + last.size + (k - (last.a + last.size))
        else:
            j = k
    if j >= len(words):
        return ""
    return " " + " ".join(words[j:])


def stable_delta(
    streamed: str,
    previous: list[str] | tuple[str, ...] | None,
    current: list[str] | tuple[str, ...],
) -> str:
    """The delta to send now that hypothesis ``current`` follows ``previous``, given the text
    already ``streamed`` for the item: the :func:`continuation` of the streamed text in their
    :func:`stable_prefix`, or ``""``. Deltas only ever append."""
    return continuation(streamed, stable_prefix(previous, current))


def partial_interval(base_s: float, backlog: int) -> float:
    """Seconds between partial decodes of one session when ``backlog`` decode jobs wait in the
    shared queue: ``base_s * (1 + backlog)``, so partials thin out as the worker falls behind
    (finals are queued ahead of partials anyway)."""
    return base_s * (1 + max(0, backlog))


def _base_model(model: str) -> str:
    snapshot = _SNAPSHOT.fullmatch(model)
    if snapshot and snapshot["base"] in KNOWN_MODELS:
        return snapshot["base"]
    return model


def model_streams_before_commit(model: str | None) -> bool:
    """Deltas while audio arrives, before the commit (registry ``deltas_before_commit``)."""
    return get_model_info(model or DEFAULT_MODEL).deltas_before_commit


def model_runs_server_vad(model: str | None) -> bool:
    """Whether ``turn_detection`` makes this model's session detect turns by itself: the
    registry's ``server_vad`` for known models; any other name (a gateway alias, a self-hosted
    model) honours what the client asked for."""
    model = model or DEFAULT_MODEL
    return _base_model(model) not in KNOWN_MODELS or get_model_info(model).server_vad


def model_sends_deltas(model: str | None) -> bool:
    """False for models that send ``completed`` only (whisper-1, docs/protocol.md §2)."""
    return _base_model(model or DEFAULT_MODEL) not in COMPLETED_ONLY_MODELS


def usage_for(model: str | None, duration_s: float, transcript: str) -> dict[str, Any]:
    """The ``usage`` object of a completed item (docs/protocol.md §4, Models table of §2).

    Duration-billed models (and unknown ones) -> ``{"type":"duration","seconds":s}`` with ``s``
    the item's committed audio in seconds (3 decimals). Token-billed models -> a token usage
    whose figures are *estimates*: input (audio) tokens N = round(10 * seconds) and output tokens
    M = ceil(len(transcript) / 4) (about four characters a text token).
    """
    if model in TOKEN_BILLED_MODELS:
        n = round(10 * duration_s)
        m = -(-len(transcript) // 4)
        return {
            "type": "tokens",
            "input_tokens": n,
            "output_tokens": m,
            "total_tokens": n + m,
            "input_token_details": {"audio_tokens": n, "text_tokens": 0},
        }
    return {"type": "duration", "seconds": round(duration_s, 3)}


# --------------------------------------------------------------------------------------------
# The session


class ServerSession:
    """One websocket's worth of protocol state, server side (docs/protocol.md §2-§6).

    Construct with what the handshake told: ``query_model`` (``?model=``, or None),
    ``openai_beta`` (an ``OpenAI-Beta`` header was sent), ``compat``, ``faults`` and the
    server's shared ``counters``. Then call :meth:`opened` once, :meth:`receive` per client
    text message, :meth:`tick` when the shell's timer fires (``expires_at``), and
    :meth:`transcribed` / :meth:`transcription_failed` per finished job. Each returns
    :class:`Actions`. After a :class:`Close` was returned, further calls return nothing.

    Compat modes (docs/protocol.md §1, §5):

    - ``lenient`` (default): both URL forms, any model name, both dialects.
    - ``openai``: ``?model=`` makes the first ``session.update`` fail with ``invalid_model`` and
      close 4000; an ``OpenAI-Beta`` header closes 4000 ``beta_api_shape_disabled``;
      gpt-realtime-whisper rejects non-null ``turn_detection`` and ``prompt``; unknown models
      are rejected; the beta ``transcription_session.update`` is an unknown event.
    - ``gateway``: a missing ``?model=`` closes 1008 "model query parameter is required".

    Models behave as their class does (docs/protocol.md §2, §4; ``models.get_model_info``):

    - *Pre-commit deltas* (``deltas_before_commit``: gpt-realtime-whisper,
      gpt-live-transcribe): every ``delta_interval_s`` (stretched by the decode backlog, see
      :func:`partial_interval`) :meth:`take_partial` hands out a :class:`PartialJob` of the open
      buffer; :meth:`partial_transcribed` streams the words two consecutive hypotheses agree on
      (:func:`stable_delta`) under the id the next commit will get. The commit then gives
      ``committed``, the rest of the final text as deltas (aligned to what was streamed when
      they disagree: deltas never retract) and ``completed``, whose ``transcript`` is
      authoritative. None (or 0)
      for ``delta_interval_s`` turns partial decodes off. No partials past ``max_partial_s``
      of open audio.
    - *Server VAD* (models with ``server_vad``, or unknown names, when ``turn_detection`` is
      set): each append returns a :class:`VadInput`; :meth:`speech_probabilities` sends
      ``speech_started`` / ``speech_stopped`` (ms since the session's first audio) and commits
      each turn by itself (``committed``, then a job). While no one speaks, only
      ``prefix_padding_ms`` of audio is kept. Client commits still work.
    - Deltas after the commit for the others; whisper-1 sends ``completed`` only.

    Uncommitted audio is capped at ``max_buffer_s``: an append past it is dropped with an
    ``error`` ``input_audio_buffer_full`` (once until the next commit or clear).
    """

    def __init__(
        self,
        *,
        session_id: str = "sess_001",
        compat: str = "lenient",
        query_model: str | None = None,
        openai_beta: bool = False,
        faults: Faults | None = None,
        counters: FaultCounters | None = None,
        max_session_s: float = 3600.0,
        delta_interval_s: float | None = DEFAULT_DELTA_INTERVAL_S,
        max_partial_s: float = DEFAULT_MAX_PARTIAL_S,
        max_buffer_s: float = DEFAULT_MAX_BUFFER_S,
        vad_window_s: float = DEFAULT_VAD_WINDOW_S,
    ) -> None:
        if compat not in COMPAT_MODES:
            raise ValueError(f"compat must be one of {COMPAT_MODES}, not {compat!r}")
        if delta_interval_s is not None and delta_interval_s < 0:
            raise ValueError("delta_interval_s must not be negative")
        if max_buffer_s <= 0 or vad_window_s <= 0:
            raise ValueError("max_buffer_s and vad_window_s must be positive")
        self.session_id = session_id
        self.compat = compat
        self.query_model = query_model
        self.openai_beta = openai_beta
        self.faults = faults or Faults()
        self.counters = counters if counters is not None else FaultCounters()
        self.max_session_s = max_session_s
        self.delta_interval_s = delta_interval_s or None
        self.max_partial_s = max_partial_s
        self.max_buffer_s = max_buffer_s
        self.vad_window_s = vad_window_s
        self.config = SessionConfig(
            model=query_model if (query_model and compat != "openai") else DEFAULT_MODEL
        )
        beta = openai_beta and compat == "lenient"
        self.dialect: Literal["ga", "beta"] = "beta" if beta else "ga"
        self.opened_at: float | None = None
        self.closed = False
        self._now = 0.0
        self._buffer = bytearray()
        self._event_seq = 0
        self._item_seq = 0
        self._last_item_id: str | None = None
        self._audio_received_s = 0.0
        self._updates_seen = 0
        self._transcripts: dict[str, str] = {}
        self._error_fault_sent = False
        self._overflowed = False
        # the open item (the uncommitted buffer): id already shown to the client?
        self._open_id_used = False
        # pre-commit deltas
        self._open_started_at: float | None = None
        self._partial_pending: PartialJob | None = None
        self._partial_last_at: float | None = None
        self._partial_bytes = 0
        self._hypothesis: list[str] | None = None
        self._streamed = ""
        self._streamed_by_item: dict[str, str] = {}
        # server VAD
        self._turn_detection: TurnDetection | None = None
        self._vad_epoch = 0
        self._vad_pos_s = 0.0
        self._speaking = False
        self._silence_since_s: float | None = None
        self.turns_committed = 0
        self.partials_run = 0

    # -- helpers ------------------------------------------------------------------------------

    @property
    def expires_at(self) -> float | None:
        """When :meth:`tick` must be called to enforce the session cap (None before opening)."""
        return None if self.opened_at is None else self.opened_at + self.max_session_s

    @property
    def next_tick_at(self) -> float | None:
        """When :meth:`tick` must next be called: the session cap, or an earlier timed drop
        (``Faults.drop_after_s``). None before opening."""
        if self.opened_at is None:
            return None
        due = self.opened_at + self.max_session_s
        drop = self.faults.drop_after_s
        if drop is not None and self.counters.drops < self.faults.drop_sessions:
            due = min(due, self.opened_at + drop)
        return due

    @property
    def buffered_s(self) -> float:
        """Seconds of audio appended and not yet committed or cleared."""
        return len(self._buffer) / self.config.bytes_per_second

    @property
    def audio_received_s(self) -> float:
        """Seconds of audio appended in this session, in total."""
        return self._audio_received_s

    @property
    def vad_active(self) -> bool:
        """Server VAD runs: ``turn_detection`` is set and the model detects turns."""
        return self._turn_detection is not None

    @property
    def streams_partials(self) -> bool:
        """Partial decodes run: the model streams deltas before the commit."""
        cfg = self.config
        return (
            self.delta_interval_s is not None
            and cfg.transcription_enabled
            and model_streams_before_commit(cfg.model)
        )

    @property
    def _next_item_id(self) -> str:
        return f"item_{self._item_seq + 1:03d}"

    @property
    def _buffer_start_s(self) -> float:
        return self._audio_received_s - self.buffered_s

    def _event(self, etype: str, **fields: Any) -> dict[str, Any]:
        self._event_seq += 1
        return {"type": etype, "event_id": f"event_{self._event_seq:04d}", **fields}

    def _error(
        self,
        code: str | None,
        message: str,
        *,
        param: str | None = None,
        client_event_id: str | None = None,
        etype: str = "invalid_request_error",
    ) -> dict[str, Any]:
        return self._event(
            "error",
            error={
                "type": etype,
                "code": code,
                "message": message,
                "param": param,
                "event_id": client_event_id,
            },
        )

    def _close(self, actions: Actions, code: int, reason: str, abort: bool = False) -> Actions:
        actions.close = Close(code, reason, abort)
        self.closed = True
        return actions

    def _session_body(self) -> dict[str, Any]:
        if self.dialect == "beta":
            return self.config.to_beta(self.session_id)
        return self.config.to_ga(self.session_id)

    # -- inputs -------------------------------------------------------------------------------

    def opened(self, now: float) -> Actions:
        """The websocket is open: ``session.created`` (docs/protocol.md §4), or a compat close."""
        self.opened_at = now
        self._now = now
        self.counters.sessions_opened += 1
        actions = Actions()
        if self.compat == "openai" and self.openai_beta:
            return self._close(actions, 4000, "beta_api_shape_disabled")
        if self.compat == "gateway" and not self.query_model:
            return self._close(actions, 1008, "model query parameter is required")
        etype = "transcription_session.created" if self.dialect == "beta" else "session.created"
        actions.events.append(self._event(etype, session=self._session_body()))
        self._sync_turn_detection()
        return actions

    def tick(self, now: float) -> Actions:
        """Enforce the session cap (docs/protocol.md §6): past ``max_session_s`` since opening,
        an ``error`` ``session_expired`` then close 1001; and a timed drop
        (``Faults.drop_after_s``) when one is due."""
        actions = Actions()
        if self.closed or self.opened_at is None:
            return actions
        drop = self.faults.drop_after_s
        if (
            drop is not None
            and now >= self.opened_at + drop
            and self.counters.drops < self.faults.drop_sessions
        ):
            self.counters.drops += 1
            if self.faults.drop_mode == "reset":
                return self._close(actions, 1006, "reset", abort=True)
            return self._close(actions, 1011, "internal error (fault injection)")
        if self.expires_at is None or now < self.expires_at:
            return actions
        minutes = self.max_session_s / 60
        actions.events.append(
            self._error(
                "session_expired",
                f"Your session hit the maximum duration of {minutes:g} minutes.",
            )
        )
        return self._close(actions, 1001, "maximum duration reached")

    def receive(self, text: str, now: float) -> Actions:
        """One client text message -> :class:`Actions` (docs/protocol.md §3).

        Malformed JSON, a non-object, a missing or unknown ``type`` -> an ``error`` event
        (``invalid_request_error``); the session goes on.
        """
        if self.closed:
            return Actions()
        self._now = now
        expired = self.tick(now)
        if expired.close is not None:
            return expired
        try:
            event = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return Actions([self._error("invalid_json", "The message is not valid JSON.")])
        if not isinstance(event, dict):
            return Actions([self._error("invalid_json", "The message must be a JSON object.")])
        client_id = event.get("event_id")
        if not isinstance(client_id, str):
            client_id = None
        etype = event.get("type")
        handler = (
            {
                "session.update": self._on_session_update,
                "transcription_session.update": self._on_beta_update,
                "input_audio_buffer.append": self._on_append,
                "input_audio_buffer.commit": self._on_commit,
                "input_audio_buffer.clear": self._on_clear,
            }.get(etype)
            if isinstance(etype, str)
            else None
        )
        if etype is None:
            return Actions(
                [
                    self._error(
                        "missing_required_parameter",
                        "Missing required parameter: 'type'.",
                        param="type",
                        client_event_id=client_id,
                    )
                ]
            )
        if handler is None or (self.compat == "openai" and etype == "transcription_session.update"):
            return Actions(
                [
                    self._error(
                        "invalid_value",
                        f"Invalid value: '{etype}'. Unsupported client event type.",
                        param="type",
                        client_event_id=client_id,
                    )
                ]
            )
        return handler(event, client_id)

    def binary_received(self) -> Actions:
        """A binary websocket message: not part of the protocol -> ``error``, session goes on."""
        if self.closed:
            return Actions()
        return Actions(
            [
                self._error(
                    "invalid_value",
                    "Binary messages are not supported; send audio with input_audio_buffer.append.",
                )
            ]
        )

    def server_error(self, code: str, message: str) -> Actions:
        """An ``error`` event of type ``server_error`` the shell needs to tell the client
        about (e.g. the speech detector could not be loaded); the session goes on."""
        if self.closed:
            return Actions()
        return Actions([self._error(code, message, etype="server_error")])

    def _on_session_update(self, event: dict[str, Any], client_id: str | None) -> Actions:
        body = event.get("session")
        if not isinstance(body, dict):
            return Actions(
                [
                    self._error(
                        "missing_required_parameter",
                        "Missing required parameter: 'session'.",
                        param="session",
                        client_event_id=client_id,
                    )
                ]
            )
        self._updates_seen += 1
        if self.compat == "openai" and self.query_model and self._updates_seen == 1:
            actions = Actions(
                [
                    self._error(
                        "invalid_model",
                        f'Model "{self.query_model}" is not supported in transcription mode.',
                        param="session.audio.input.transcription.model",
                        client_event_id=client_id,
                    )
                ]
            )
            return self._close(actions, 4000, "invalid_model")
        flat = self.compat == "lenient" and any(k in body for k in _BETA_KEYS)
        try:
            if flat:  # speaches' shape: beta fields inside a session.update (docs/protocol.md §2)
                new = apply_beta_update(self.config, body, self.compat)
            else:
                new = apply_ga_update(self.config, body, self.compat)
            _check_model_rules(new, self.compat, "session.audio.input.transcription")
        except _ConfigError as exc:
            return Actions(
                [self._error(exc.code, exc.message, param=exc.param, client_event_id=client_id)]
            )
        self._set_config(new)
        session = new.to_beta(self.session_id) if flat else new.to_ga(self.session_id)
        return Actions([self._event("session.updated", session=session)])

    def _on_beta_update(self, event: dict[str, Any], client_id: str | None) -> Actions:
        body = event.get("session")
        if not isinstance(body, dict):
            return Actions(
                [
                    self._error(
                        "missing_required_parameter",
                        "Missing required parameter: 'session'.",
                        param="session",
                        client_event_id=client_id,
                    )
                ]
            )
        try:
            new = apply_beta_update(self.config, body, self.compat)
        except _ConfigError as exc:
            return Actions(
                [self._error(exc.code, exc.message, param=exc.param, client_event_id=client_id)]
            )
        self._set_config(new)
        return Actions(
            [self._event("transcription_session.updated", session=new.to_beta(self.session_id))]
        )

    def _set_config(self, new: SessionConfig) -> None:
        old = self.config
        self.config = new
        if (new.format_type, new.rate) != (old.format_type, old.rate):
            self._reset_open_item(clear=True)  # bytes of another format cannot be mixed
            self._restart_vad()
        elif new.model != old.model or new.transcription_enabled != old.transcription_enabled:
            self._hypothesis, self._partial_pending = None, None  # start partials afresh
        self._sync_turn_detection()

    def _sync_turn_detection(self) -> None:
        cfg = self.config
        td = None
        if cfg.turn_detection is not None and model_runs_server_vad(cfg.model):
            try:
                td = parse_turn_detection(cfg.turn_detection)
            except _ConfigError:  # validated when set; keep the server alive regardless
                td = None
        if td != self._turn_detection:
            was_active = self._turn_detection is not None
            self._turn_detection = td
            if td is not None and not was_active:
                self._restart_vad()

    def _restart_vad(self) -> None:
        """A fresh detector from the current audio position (new epoch), nobody speaking."""
        self._vad_epoch += 1
        self._vad_pos_s = self._audio_received_s
        self._speaking = False
        self._silence_since_s = None

    def _reset_open_item(self, *, clear: bool) -> None:
        """The open item ends without a commit (clear, format change): a fresh one follows.
        If its id was already shown (deltas, speech_started), the next item gets a new id."""
        if clear:
            self._buffer.clear()
        if self._open_id_used:
            self._item_seq += 1  # burn the id: the client may hold text under it
        self._open_id_used = False
        self._speaking = False
        self._silence_since_s = None
        self._start_open_item()

    def _start_open_item(self) -> None:
        self._streamed = ""
        self._hypothesis = None
        self._partial_pending = None
        self._partial_last_at = None
        self._partial_bytes = 0
        self._overflowed = False
        self._open_started_at = self._now if self._buffer else None

    def _on_append(self, event: dict[str, Any], client_id: str | None) -> Actions:
        audio_b64 = event.get("audio")
        if not isinstance(audio_b64, str):
            return Actions(
                [
                    self._error(
                        "missing_required_parameter",
                        "Missing required parameter: 'audio'.",
                        param="audio",
                        client_event_id=client_id,
                    )
                ]
            )
        if len(audio_b64) > (MAX_APPEND_BYTES * 4) // 3 + 4:
            return Actions(
                [
                    self._error(
                        "input_audio_buffer_append_too_large",
                        f"Audio data of an append must be at most {MAX_APPEND_BYTES} bytes.",
                        param="audio",
                        client_event_id=client_id,
                    )
                ]
            )
        try:
            audio = base64.b64decode(audio_b64, validate=True)
        except (binascii.Error, ValueError):
            return Actions(
                [
                    self._error(
                        "invalid_value",
                        "Invalid base64 in 'audio'.",
                        param="audio",
                        client_event_id=client_id,
                    )
                ]
            )
        if len(audio) > MAX_APPEND_BYTES:
            return Actions(
                [
                    self._error(
                        "input_audio_buffer_append_too_large",
                        f"Audio data of an append must be at most {MAX_APPEND_BYTES} bytes.",
                        param="audio",
                        client_event_id=client_id,
                    )
                ]
            )
        bps = self.config.bytes_per_second
        if (len(self._buffer) + len(audio)) / bps > self.max_buffer_s:
            if self._overflowed:
                return Actions()
            self._overflowed = True
            return Actions(
                [
                    self._error(
                        "input_audio_buffer_full",
                        f"The input audio buffer already holds {self.buffered_s:.1f} s of "
                        "uncommitted "
                        f"audio, the most this server keeps (max_buffer_s={self.max_buffer_s:g}); "
                        "audio is dropped until the buffer is committed or cleared.",
                        param="audio",
                        client_event_id=client_id,
                    )
                ]
            )
        if not self._buffer:
            self._open_started_at = self._now
        self._buffer += audio
        self._audio_received_s += len(audio) / bps
        actions = self._audio_faults()
        if self._turn_detection is not None and audio and not self.closed:
            cfg = self.config
            actions.vad = VadInput(audio, cfg.format_type, cfg.rate, self._vad_epoch)
        return actions

    def _audio_faults(self) -> Actions:
        actions = Actions()
        f, received_ms = self.faults, self._audio_received_s * 1000
        if (
            f.error_code_after_audio_ms is not None
            and not self._error_fault_sent
            and self.counters.error_events < 1
            and received_ms >= f.error_code_after_audio_ms[1]
        ):
            self._error_fault_sent = True
            self.counters.error_events += 1
            code = f.error_code_after_audio_ms[0]
            actions.events.append(
                self._error(
                    code,
                    f"Injected error '{code}'.",
                    etype="server_error" if code == "server_error" else "invalid_request_error",
                )
            )
        if (
            f.drop_after_audio_ms is not None
            and received_ms >= f.drop_after_audio_ms
            and self.counters.drops < f.drop_sessions
        ):
            self.counters.drops += 1
            if f.drop_mode == "reset":
                return self._close(actions, 1006, "reset", abort=True)
            return self._close(actions, 1011, "internal error (fault injection)")
        return actions

    def _on_clear(self, event: dict[str, Any], client_id: str | None) -> Actions:
        self._reset_open_item(clear=True)
        return Actions([self._event("input_audio_buffer.cleared")])

    def _on_commit(self, event: dict[str, Any], client_id: str | None) -> Actions:
        duration_s = self.buffered_s
        if duration_s < MIN_COMMIT_S:
            ms = duration_s * 1000
            return Actions(
                [
                    self._error(
                        "input_audio_buffer_commit_empty",
                        f"Error committing input audio buffer: buffer too small. Expected at least "
                        f"100ms of audio, but buffer only has {ms:.2f}ms of audio.",
                        param=None,
                        client_event_id=client_id,
                    )
                ]
            )
        self._speaking = False
        self._silence_since_s = None
        return self._commit(len(self._buffer))

    def _commit(self, nbytes: int) -> Actions:
        """Commit the first ``nbytes`` of the buffer as the next item: ``committed`` and a job;
        what follows stays as the start of the next open item."""
        self._item_seq += 1
        item_id = f"item_{self._item_seq:03d}"
        previous = self._last_item_id
        self._last_item_id = item_id
        audio = bytes(self._buffer[:nbytes])
        del self._buffer[:nbytes]
        cfg = self.config
        duration_s = len(audio) / cfg.bytes_per_second
        self.turns_committed += 1
        if self._streamed and cfg.transcription_enabled:
            self._streamed_by_item[item_id] = self._streamed
        self._open_id_used = False
        self._start_open_item()
        actions = Actions(
            [
                self._event(
                    "input_audio_buffer.committed", item_id=item_id, previous_item_id=previous
                )
            ]
        )
        if cfg.transcription_enabled:
            actions.jobs.append(
                TranscriptionJob(
                    session_id=self.session_id,
                    item_id=item_id,
                    index=self._item_seq,
                    previous_item_id=previous,
                    audio=audio,
                    format_type=cfg.format_type,
                    rate=cfg.rate,
                    duration_s=duration_s,
                    model=cfg.model or DEFAULT_MODEL,
                    language=cfg.language,
                    prompt=cfg.prompt,
                    logprobs=cfg.logprobs,
                    fail=self._item_seq in self.faults.fail_items,
                )
            )
        return actions

    def _bytes_before(self, t_s: float) -> int:
        """Bytes of the buffer before session time ``t_s`` (whole samples, clamped)."""
        cfg = self.config
        width = cfg.bytes_per_second // cfg.rate
        samples = round((t_s - self._buffer_start_s) * cfg.rate)
        return min(max(0, samples * width), len(self._buffer))

    # -- server VAD ---------------------------------------------------------------------------

    def speech_probabilities(
        self, probabilities: list[float] | tuple[float, ...], epoch: int
    ) -> Actions:
        """The detector's speech probabilities for the next windows (``vad_window_s`` each) of
        the audio of :class:`VadInput` s of ``epoch`` -> turn events (docs/protocol.md §4).

        Idle: a probability >= ``threshold`` sends ``speech_started`` (``audio_start_ms`` =
        speech start minus ``prefix_padding_ms``, not before the buffer). Speaking:
        probabilities below the lower threshold for ``silence_duration_ms`` send
        ``speech_stopped`` (``audio_end_ms`` where the silence was confirmed), then commit the
        audio up to there as the turn. Results of an old epoch are ignored.
        """
        td = self._turn_detection
        actions = Actions()
        if self.closed or td is None or epoch != self._vad_epoch:
            return actions
        for p in probabilities:
            start = self._vad_pos_s
            end = start + self.vad_window_s
            self._vad_pos_s = end
            if not self._speaking:
                if p < td.threshold:
                    continue
                self._speaking = True
                self._silence_since_s = None
                audio_start = max(self._buffer_start_s, start - td.prefix_padding_ms / 1000)
                del self._buffer[: self._bytes_before(audio_start)]
                if self._open_started_at is None and self._buffer:
                    self._open_started_at = self._now
                self._open_id_used = True
                actions.events.append(
                    self._event(
                        "input_audio_buffer.speech_started",
                        item_id=self._next_item_id,
                        audio_start_ms=max(0, round(self._buffer_start_s * 1000)),
                    )
                )
            elif p >= td.threshold:
                self._silence_since_s = None
            elif p < td.neg_threshold:
                if self._silence_since_s is None:
                    self._silence_since_s = start
                if end - self._silence_since_s >= td.silence_duration_ms / 1000:
                    self._speaking = False
                    self._silence_since_s = None
                    actions.events.append(
                        self._event(
                            "input_audio_buffer.speech_stopped",
                            item_id=self._next_item_id,
                            audio_end_ms=round(end * 1000),
                        )
                    )
                    actions.extend(self._commit(self._bytes_before(end)))
        if not self._speaking:  # keep only the padding a next turn may need
            keep_from = self._vad_pos_s - td.prefix_padding_ms / 1000
            del self._buffer[: self._bytes_before(keep_from)]
            if not self._buffer:
                self._open_started_at = None
        return actions

    # -- pre-commit deltas --------------------------------------------------------------------

    def partial_due_at(self, backlog: int = 0) -> float | None:
        """When the next partial decode of the open buffer is due (None: none is wanted now:
        the model has no pre-commit deltas, one is in flight, or too little new audio)."""
        if (
            self.closed
            or self._partial_pending is not None
            or self._open_started_at is None
            or not self.streams_partials
        ):
            return None
        assert self.delta_interval_s is not None
        bps = self.config.bytes_per_second
        n = len(self._buffer)
        if (
            n < MIN_PARTIAL_S * bps
            or n - self._partial_bytes < MIN_PARTIAL_GROWTH_S * bps
            or n > self.max_partial_s * bps
        ):
            return None
        last = self._partial_last_at if self._partial_last_at is not None else self._open_started_at
        return last + partial_interval(self.delta_interval_s, backlog)

    def take_partial(self, now: float, backlog: int = 0) -> PartialJob | None:
        """A :class:`PartialJob` if one is due at ``now`` with ``backlog`` decode jobs
        waiting (see :meth:`partial_due_at`); at most one is in flight per session."""
        due = self.partial_due_at(backlog)
        if due is None or now < due:
            return None
        cfg = self.config
        audio = bytes(self._buffer)
        job = PartialJob(
            session_id=self.session_id,
            item_id=self._next_item_id,
            previous_item_id=self._last_item_id,
            audio=audio,
            format_type=cfg.format_type,
            rate=cfg.rate,
            duration_s=len(audio) / cfg.bytes_per_second,
            model=cfg.model or DEFAULT_MODEL,
            language=cfg.language,
            prompt=cfg.prompt,
            logprobs=cfg.logprobs,
        )
        self._partial_pending = job
        self._partial_last_at = now
        self._partial_bytes = len(audio)
        return job

    def partial_transcribed(self, job: PartialJob, result: Recognition) -> Actions:
        """A partial hypothesis -> deltas of the newly stable words (under ``job.item_id``).

        Nothing if the buffer was committed or cleared since ``job`` was taken."""
        if self.closed or job is not self._partial_pending:
            return Actions()
        self.partials_run += 1
        self._partial_pending = None
        words = result.text.split()
        delta = stable_delta(self._streamed, self._hypothesis, words)
        self._hypothesis = words
        if not delta:
            return Actions()
        self._streamed += delta
        self._open_id_used = True
        return Actions(self._deltas(job.item_id, delta, result.logprob, job.logprobs))

    def partial_failed(self, job: PartialJob) -> None:
        """``job`` was dropped (load) or failed: another may be taken."""
        if job is self._partial_pending:
            self._partial_pending = None

    # -- results ------------------------------------------------------------------------------

    def engine_prompt(self, job: TranscriptionJob | PartialJob, max_chars: int = 600) -> str | None:
        """The prompt to give the recognizer for ``job``: the client's ``prompt`` followed by
        the transcript of the previous item of this session (context across turns), cut to the
        last ``max_chars`` characters; None when both are empty."""
        parts = [p for p in (job.prompt, self._transcripts.get(job.previous_item_id or "")) if p]
        if not parts:
            return None
        return " ".join(parts)[-max_chars:]

    def _deltas(
        self, item_id: str, text: str, logprob: float | None, with_logprobs: bool
    ) -> list[dict[str, Any] | Pause]:
        lp = -0.1 if logprob is None else round(float(logprob), 4)
        events: list[dict[str, Any] | Pause] = []
        for piece in split_pieces(text):
            delta = self._event(
                "conversation.item.input_audio_transcription.delta",
                item_id=item_id,
                content_index=0,
                delta=piece,
            )
            if with_logprobs:
                delta["logprobs"] = [_logprob_entry(piece, lp)]
            events.append(delta)
        return events

    def transcribed(self, job: TranscriptionJob, result: Recognition) -> Actions:
        """The recognizer's result for ``job`` -> deltas of the text not yet streamed (one per
        word piece), an optional :class:`Pause`, then ``completed`` with ``usage``
        (docs/protocol.md §4). The deltas of the item (pre-commit ones included) concatenate to the
        transcript, unless the final disagrees with what was streamed before the commit: then
        the deltas still only append (the :func:`continuation` of the streamed text in the
        final), and ``completed`` carries the final text, which is authoritative."""
        streamed = self._streamed_by_item.pop(job.item_id, "")
        if self.closed:
            return Actions()
        text = result.text
        self._transcripts[job.item_id] = text
        self._transcripts.pop(job.previous_item_id or "", None)
        actions = Actions()
        if model_sends_deltas(job.model):
            rest = (
                text[len(streamed) :]
                if text.startswith(streamed)
                else continuation(streamed, text.split())
            )
            actions.events.extend(self._deltas(job.item_id, rest, result.logprob, job.logprobs))
        if self.faults.completed_delay_ms > 0:
            actions.events.append(Pause(self.faults.completed_delay_ms / 1000))
        completed = self._event(
            "conversation.item.input_audio_transcription.completed",
            item_id=job.item_id,
            content_index=0,
            transcript=text,
            usage=usage_for(job.model, job.duration_s, text),
        )
        if job.logprobs:
            lp = -0.1 if result.logprob is None else round(float(result.logprob), 4)
            completed["logprobs"] = [_logprob_entry(p, lp) for p in split_pieces(text)]
        if job.model == "gpt-transcribe":
            completed["languages"] = [{"code": job.language or "en"}]
        actions.events.append(completed)
        return actions

    def transcription_failed(self, job: TranscriptionJob) -> Actions:
        """``job`` could not be transcribed (the ``fail_items`` fault or an engine error) ->
        ``conversation.item.input_audio_transcription.failed`` (docs/protocol.md §4)."""
        self._streamed_by_item.pop(job.item_id, None)
        if self.closed:
            return Actions()
        return Actions(
            [
                self._event(
                    "conversation.item.input_audio_transcription.failed",
                    item_id=job.item_id,
                    content_index=0,
                    error={
                        "type": "server_error",
                        "code": None,
                        "message": f"Input transcription failed for item '{job.item_id}'.",
                        "param": None,
                    },
                )
            ]
        )


def _logprob_entry(piece: str, logprob: float) -> dict[str, Any]:
    return {"token": piece, "logprob": logprob, "bytes": list(piece.encode("utf-8"))}


def parse_query(path: str) -> dict[str, str]:
    """The query parameters of a request target (first value of each)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(path).query).items() if v}
