"""What the peer tests share: strict validation against the ``openai`` SDK's models, real speech
as wire audio, free ports, and where the LiteLLM CLI is.

Strictness the SDK allows (``openai`` 3.57.0, ``openai/_models.py``): every generated model
subclasses the SDK's ``BaseModel``, whose config is ``extra="allow"``, so pydantic itself never
rejects an undeclared field; and the ``RealtimeServerEvent`` union names its discriminator only
in the SDK's own ``PropertyInfo`` metadata, which pydantic ignores (the SDK's ``parse_event``
does not validate at all: ``construct_type_unchecked``). So :func:`strict_event` validates with
pydantic's ``strict=True`` (no coercion: a string for a number, a float for an int, a missing
required field all fail; an unknown ``type`` matches no member of the union and fails), and
then walks the validated model for fields the SDK does not declare, failing on any but
:data:`UNDECLARED_BUT_SENT_BY_OPENAI`.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
from openai.types.realtime import RealtimeServerEvent

PROJECT_ROOT = Path(__file__).resolve().parents[2]

#: The versions the peers were checked at; the ``peers`` extra and the Makefile pin the same.
PINNED = {"openai": "3.57.0", "livekit-plugins-openai": "1.8.9", "litellm": "1.108.7"}

#: Fields the server sends that the SDK's models do not declare, and why each is allowed: OpenAI
#: itself sends ``id`` and ``object`` in a transcription session (docs/openai-contract.md, the
#: sessions recorded from api.openai.com), but the SDK types ``session.created`` /
#: ``session.updated`` with the *request* model ``RealtimeTranscriptionSessionCreateRequest``,
#: which has neither.
UNDECLARED_BUT_SENT_BY_OPENAI = frozenset({"$.session.id", "$.session.object"})

_SERVER_EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(RealtimeServerEvent)


def undeclared_fields(value: Any, path: str = "$") -> list[str]:
    """Paths of every field in ``value`` (a validated SDK model, recursively) that its model
    does not declare (pydantic's ``model_extra``)."""
    found: list[str] = []
    if isinstance(value, pydantic.BaseModel):
        found += [f"{path}.{name}" for name in value.model_extra or {}]
        for name in type(value).model_fields:
            found += undeclared_fields(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found += undeclared_fields(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            found += undeclared_fields(item, f"{path}.{key}")
    return found


def strict_event(data: dict[str, Any]) -> Any:
    """``data`` (one server event, parsed JSON) validated as the SDK's ``RealtimeServerEvent``
    in strict mode, with no undeclared field but :data:`UNDECLARED_BUT_SENT_BY_OPENAI`.

    Raises:
        AssertionError: naming the event type and what failed.
    """
    try:
        event = _SERVER_EVENT.validate_python(data, strict=True)
    except pydantic.ValidationError as e:
        raise AssertionError(f"{data.get('type')!r} fails the SDK's models: {e}\n{data}") from e
    assert event.type == data["type"], (event.type, data)
    extra = set(undeclared_fields(event)) - UNDECLARED_BUT_SENT_BY_OPENAI
    assert not extra, f"{data['type']!r} has fields the SDK does not declare: {sorted(extra)}"
    return event


def wire_pcm16(path: Path, start_s: float = 0.0, seconds: float | None = None) -> bytes:
    """``path`` (a WAV file) as the Realtime API's wire audio: mono pcm16 at 24 kHz, little
    endian; from ``start_s``, ``seconds`` long (to the end if None). Resampled by LiveKit's
    ``rtc.AudioResampler`` (the plugins' own resampler)."""
    from livekit import rtc

    from examples.evaluation import wav_frames

    resampler: rtc.AudioResampler | None = None
    chunks: list[bytes] = []
    end_s = None if seconds is None else start_s + seconds
    t = 0.0
    for frame in wav_frames(path, 10):
        t_next = t + frame.duration
        if t_next > start_s + 1e-9 and (end_s is None or t < end_s - 1e-9):
            mono = np.frombuffer(frame.data, np.int16).reshape(-1, frame.num_channels)
            mono = mono.mean(axis=1).astype(np.int16)
            if resampler is None:
                resampler = rtc.AudioResampler(frame.sample_rate, 24000, num_channels=1)
            one = rtc.AudioFrame(mono.tobytes(), frame.sample_rate, 1, len(mono))
            chunks += [bytes(f.data) for f in resampler.push(one)]
        t = t_next
    if resampler is not None:
        chunks += [bytes(f.data) for f in resampler.flush()]
    return b"".join(chunks)


def silence_pcm16(seconds: float) -> bytes:
    """``seconds`` of digital silence as 24 kHz pcm16."""
    return bytes(2 * round(24000 * seconds))


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def litellm_bin() -> Path | None:
    """The ``litellm`` CLI: ``$LITELLM_BIN``, else the one in ``.venv/litellm`` (where the
    Makefile installs it, apart from the project's venv), else one on ``PATH``; None if none."""
    candidates = [os.environ.get("LITELLM_BIN"), PROJECT_ROOT / ".venv/litellm/bin/litellm"]
    candidates.append(shutil.which("litellm"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def installed(distribution: str) -> str | None:
    """The installed version of ``distribution`` in this interpreter, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def peers_required() -> bool:
    """``OPENAI_STT_PEERS=required`` (set by ``make test-peers``): a missing peer fails
    instead of skipping."""
    return os.environ.get("OPENAI_STT_PEERS", "") == "required"
