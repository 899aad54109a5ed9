"""Contract probe: which session fields each transcription model accepts, asked of a server.

    python -m tools.contract_probe [--base-url URL] [--out docs/openai-contract.md]
        [--models M [M ...]] [--fields F [F ...]] [--no-model-in-url | --model-in-url]
        [--local [scripted|whisper]] [--no-transcribe] [--timeout S] [--close-grace S]
        [--allow-insecure] [--label TEXT]

What it does (issue 11, point 2; the wire facts are docs/protocol.md §1-§2):

1. For each model and each optional field (:data:`FIELDS`), a fresh websocket to
   ``/v1/realtime?intent=transcription`` (URL and headers from the plugin's own
   ``protocol.endpoint``; ``websockets`` directly, not the STT class, so that exactly the
   update below goes out). On it: a GA ``session.update`` with only the model (the baseline),
   then the same update with that one field added, each with its own ``event_id``. The answer
   is recorded: ``session.updated`` (accepted; the effective session it returns is checked
   for the value sent), an ``error`` (rejected: ``code``, ``param``, ``message``; a close that
   follows within ``--close-grace`` seconds is recorded too), a close (its code and reason)
   or nothing within ``--timeout``. A fresh socket per field because an update changes only
   the fields it carries: an accepted field would otherwise still be in force when the next
   one is tried. When the baseline's socket closes or stays silent, the field goes out as the
   first update of another fresh socket.
2. One transcription per model through the plugin's own ``openai_stt.STT(...).stream()``: the
   first 6.4 s of the demo clip (``examples.evaluation.demo_clip``, cut in a pause), the final
   text, its word error rate against the first 18 words of ``DEMO_REFERENCE``, and ``usage``.
3. A Markdown report to ``--out``: the model x field table, the details of every rejection and
   close, where the plugin's registry (``models.py``, through ``build_session_update``) and
   the server disagree, and the transcriptions. It names the endpoint (``redact_url``: never
   the key, never a secret query parameter) and the date. A report of any endpoint other than
   OpenAI's says in its heading that it is NOT a record of the real API.

Credentials: ``OPENAI_API_KEY`` (and ``OPENAI_BASE_URL`` when ``--base-url`` is not given).
Without a key the probe prints that it skipped and exits 0, writing nothing, so ``make live``
is harmless without one. The key is never printed, logged or written: every message taken
from a server or an exception is scrubbed of it (:func:`scrub`). A key is not sent over
plaintext ``ws://`` to a host that is not loopback unless ``--allow-insecure``.

URL rule: OpenAI and Azure hosts get no ``?model=``, any other host gets it (the plugin's
rule, docs/protocol.md §1); ``--no-model-in-url`` / ``--model-in-url`` override it, as
``include_model_in_url`` does for the STT. ``--local`` starts the bundled local server in
``compat="openai"`` mode in this process (no key needed) and probes it without ``?model=``;
that is how the committed ``docs/openai-contract.md`` is generated.

Exit status: 0 after writing the report (whatever the server answered) or when skipped; 1 when
the endpoint refused the key or could not be reached at all (nothing is written then, so a
committed report is not replaced by a table of failures); 2 for a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from livekit.plugins.openai_stt.models import STTModels, get_model_info
from livekit.plugins.openai_stt.protocol.endpoint import (
    build_headers,
    build_realtime_stt_url,
    carries_credentials,
    classify_endpoint,
    is_loopback_host,
    redact_url,
)
from livekit.plugins.openai_stt.protocol.session import (
    LOGPROBS_INCLUDE,
    SessionConfig,
    build_session_update,
)
from livekit.plugins.openai_stt.version import __version__ as PLUGIN_VERSION

__all__ = [
    "CLIP_SECONDS",
    "DEFAULT_MODELS",
    "DEFAULT_OUT",
    "FIELDS",
    "REFERENCE_WORDS",
    "FieldProbe",
    "Outcome",
    "ProbeReport",
    "Target",
    "Transcription",
    "amain",
    "main",
    "render_markdown",
    "run_probe",
    "scrub",
]

DEFAULT_OUT = Path("docs/openai-contract.md")
DEFAULT_MODELS: tuple[str, ...] = get_args(STTModels)
"""Every model of the registry (docs/protocol.md §2), in its order."""

CLIP_SECONDS = 6.4
"""Audio sent per transcription: the demo clip up to the pause after "...the age of wisdom"
(6.2-6.6 s is silence), so that no word is cut."""
REFERENCE_WORDS = 18
"""Words of ``DEMO_REFERENCE`` spoken in the first :data:`CLIP_SECONDS`."""

_PROMPT = "LiveKit agents, realtime transcription."
_SERVER_VAD = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
}
_SEMANTIC_VAD = {"type": "semantic_vad", "eagerness": "auto"}


def _tr(**values: Any) -> dict[str, Any]:
    return {"audio": {"input": {"transcription": values}}}


def _inp(**values: Any) -> dict[str, Any]:
    return {"audio": {"input": values}}


@dataclass(frozen=True)
class FieldProbe:
    """One optional field: ``key`` (its name in ``--fields`` and in the table), ``patch`` (what
    is merged into the baseline's ``session`` object; GA shapes, docs/protocol.md §2 and types
    ``openai.types.realtime``) and ``plugin_config`` (the ``SessionConfig`` overrides under
    which the plugin would send it, to compare with its registry; ``None``: the plugin has no
    option for it)."""

    key: str
    patch: dict[str, Any]
    plugin_config: dict[str, Any] | None = None


FIELDS: tuple[FieldProbe, ...] = (
    FieldProbe("language", _tr(language="en"), {"language": "en"}),
    FieldProbe("languages", _tr(languages=["en", "fr"]), {"languages": ("en", "fr")}),
    FieldProbe(
        "language+languages",
        _tr(language="en", languages=["en", "fr"]),
        {"language": "en", "languages": ("en", "fr")},
    ),
    FieldProbe("prompt", _tr(prompt=_PROMPT), {"prompt": _PROMPT}),
    FieldProbe("keywords", _tr(keywords=["LiveKit"]), {"keywords": ("LiveKit",)}),
    FieldProbe("delay", _tr(delay="low"), {"delay": "low"}),
    FieldProbe("turn_detection=null", _inp(turn_detection=None), {}),
    FieldProbe(
        "server_vad", _inp(turn_detection=dict(_SERVER_VAD)), {"turn_detection": _SERVER_VAD}
    ),
    FieldProbe(
        "semantic_vad", _inp(turn_detection=dict(_SEMANTIC_VAD)), {"turn_detection": _SEMANTIC_VAD}
    ),
    FieldProbe(
        "noise_reduction",
        _inp(noise_reduction={"type": "near_field"}),
        {"noise_reduction": "near_field"},
    ),
    FieldProbe(
        "noise_reduction.strength",
        _inp(noise_reduction={"type": "near_field", "strength": 0.5}),
        {"noise_reduction": "near_field", "noise_reduction_strength": 0.5},
    ),
    FieldProbe("noise_reduction=null", _inp(noise_reduction=None), {}),
    FieldProbe("logprobs", {"include": [LOGPROBS_INCLUDE]}, {"logprobs": True}),
    FieldProbe("pcm16", _inp(format={"type": "audio/pcm", "rate": 24000}), {}),
    FieldProbe("pcmu", _inp(format={"type": "audio/pcmu"}), {"audio_format": "g711_ulaw"}),
    FieldProbe("pcma", _inp(format={"type": "audio/pcma"}), {"audio_format": "g711_alaw"}),
)
"""The fields tried, one at a time, in the table's order."""

_FIELDS_BY_KEY = {f.key: f for f in FIELDS}
BASELINE = "baseline"
"""The table row of the update with only the model."""


# -- secrets ------------------------------------------------------------------------------------

_TOKEN_PATTERNS = (
    re.compile(r"\bsk-[A-Za-z0-9_*.\-]{6,}"),
    re.compile(r"(?i)\b(bearer)\s+\S+"),
)


def scrub(text: str, secrets: Sequence[str | None] = ()) -> str:
    """``text`` fit to print or write: each of ``secrets`` (4 characters or more) and anything
    shaped like an OpenAI key (``sk-...``, masked or not) or a bearer token becomes
    ``[REDACTED]``. Server messages may quote a key ("Incorrect API key provided: sk-...")."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[REDACTED]")
    text = _TOKEN_PATTERNS[0].sub("[REDACTED]", text)
    return _TOKEN_PATTERNS[1].sub(r"\1 [REDACTED]", text)


# -- session updates ----------------------------------------------------------------------------


def _merge(base: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif isinstance(value, Mapping):
            out[key] = _merge({}, value)
        else:
            out[key] = list(value) if isinstance(value, list) else value
    return out


def baseline_session(model: str) -> dict[str, Any]:
    """The minimal GA transcription session: only the model (docs/protocol.md §2)."""
    return {"type": "transcription", "audio": {"input": {"transcription": {"model": model}}}}


def update_event(model: str, probe: FieldProbe | None, event_id: str) -> dict[str, Any]:
    """The ``session.update`` of the baseline (``probe`` None) or of the baseline plus one
    field."""
    session = baseline_session(model)
    if probe is not None:
        session = _merge(session, probe.patch)
    return {"type": "session.update", "event_id": event_id, "session": session}


def _leaves(obj: Mapping[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for key, value in obj.items():
        if isinstance(value, Mapping) and value:
            yield from _leaves(value, (*path, key))
        else:
            yield (*path, key)


def _lookup(obj: Any, path: tuple[str, ...]) -> tuple[bool, Any]:
    for key in path:
        if not isinstance(obj, Mapping) or key not in obj:
            return False, None
        obj = obj[key]
    return True, obj


def _same(sent: Any, got: Any) -> bool:
    if isinstance(sent, bool) or isinstance(got, bool):
        return sent is got
    if isinstance(sent, (int, float)) and isinstance(got, (int, float)):
        return math.isclose(sent, got, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(sent, Mapping):
        return isinstance(got, Mapping) and not _differing(sent, got, require_key=True)
    if isinstance(sent, list):
        return isinstance(got, list) and len(sent) == len(got) and all(map(_same, sent, got))
    return bool(sent == got)


def _differing(sent: Mapping[str, Any], got: Any, *, require_key: bool) -> list[str]:
    """Dotted paths of the leaves of ``sent`` whose value ``got`` does not carry. A ``null``
    leaf matches a missing key unless ``require_key``."""
    out = []
    for path in _leaves(sent):
        want = _lookup(sent, path)[1]
        found, value = _lookup(got, path)
        if not found:
            if want is None and not require_key:
                continue
            out.append(".".join(path))
        elif not _same(want, value):
            out.append(".".join(path))
    return out


def plugin_sends(probe: FieldProbe, model: str) -> bool | None:
    """Whether the plugin, asked for this field, puts it on the wire for ``model``: the
    ``session`` of ``build_session_update`` carries every value of the probe's patch (the
    registry decides, docs/protocol.md §2). ``None``: the plugin has no option for it, or its
    ``SessionConfig`` no longer takes these arguments."""
    if probe.plugin_config is None:
        return None
    try:
        config = SessionConfig(model=model, **{"language": None, **probe.plugin_config})
        payload = build_session_update(config, get_model_info(model)).payload
    except (TypeError, ValueError):
        return None
    return not _differing(probe.patch, payload.get("session"), require_key=True)


# -- outcomes -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one ``session.update`` (or the socket opened for it) got.

    ``kind``: ``accepted`` (``session.updated``), ``rejected`` (an ``error`` naming the update,
    or naming none), ``closed`` (the socket closed before an answer), ``no_answer``,
    ``handshake`` (the upgrade was refused with HTTP ``status``) or ``connect_failed``.
    """

    kind: str
    code: str | None = None
    param: str | None = None
    message: str | None = None
    error_type: str | None = None
    close_code: int | None = None
    close_reason: str | None = None
    status: int | None = None
    not_echoed: list[str] = field(default_factory=list)
    answered_by: str | None = None
    session: dict[str, Any] | None = None
    """The effective session a ``session.updated`` reported."""

    @property
    def refused(self) -> bool:
        return self.kind in ("rejected", "closed", "handshake")

    def cell(self) -> str:
        """The table cell: ``accepted``, ``accepted, not echoed``, ``rejected `code```, ..."""
        close = f", closed {self.close_code}" if self.close_code is not None else ""
        if self.kind == "accepted":
            return "accepted, not echoed" if self.not_echoed else "accepted"
        if self.kind == "rejected":
            return f"rejected `{self.code}`{close}" if self.code else f"rejected (no code){close}"
        if self.kind == "closed":
            return f"closed {self.close_code}"
        if self.kind == "handshake":
            return f"handshake HTTP {self.status}"
        if self.kind == "no_answer":
            return "no answer"
        return "connect failed"

    def details(self) -> str:
        """One line: everything the server said, for the details section."""
        parts = []
        if self.kind == "accepted" and self.not_echoed:
            shown = ", ".join(f"`{p}`" for p in self.not_echoed)
            parts.append(f"`{self.answered_by}` whose session lacks the value sent at {shown}")
        if self.kind == "rejected" or (self.kind == "handshake" and self.code is not None):
            parts.append(
                f"{'error' if self.kind == 'rejected' else 'body'}: type `{self.error_type}`, "
                f"code `{self.code}`, param `{self.param}`, message: {_quote(self.message)}"
            )
        elif self.kind == "handshake":
            parts.append(f"HTTP {self.status}, body: {_quote(self.message)}")
        if self.kind == "rejected" and self.close_code is None:
            parts.append("the socket stayed open")
        if self.close_code is not None:
            parts.append(f"close {self.close_code} reason {_quote(self.close_reason)}")
        if self.kind in ("no_answer", "connect_failed") and self.message:
            parts.append(_quote(self.message))
        return "; ".join(parts)


def _quote(text: str | None) -> str:
    if text is None:
        return "(none)"
    return '"' + text.replace("`", "'").replace("\n", " ").replace("|", "\\|") + '"'


@dataclass
class FieldResult:
    baseline: Outcome
    outcome: Outcome


@dataclass
class Transcription:
    """One transcription through ``STT.stream()``."""

    model: str
    text: str = ""
    finals: int = 0
    incomplete: int = 0
    wer: float | None = None
    audio_seconds_sent: float = 0.0
    billed_seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None
    elapsed_s: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class Target:
    """Where and how to probe."""

    base_url: str
    api_key: str
    include_model: bool | None = None
    timeout_s: float = 10.0
    close_grace_s: float = 1.0
    label: str | None = None
    command: str = "python -m tools.contract_probe"

    def url(self, model: str) -> str:
        return build_realtime_stt_url(self.base_url, model, include_model=self.include_model)

    def headers(self) -> dict[str, str]:
        return build_headers(self.api_key, base_url=self.base_url)

    def scrub(self, text: str) -> str:
        return scrub(text, (self.api_key,))


@dataclass
class ProbeReport:
    target: Target
    models: list[str]
    fields: list[FieldProbe]
    started: dt.datetime
    results: dict[str, dict[str, FieldResult]] = field(default_factory=dict)
    transcriptions: list[Transcription] = field(default_factory=list)
    transcription_note: str | None = None
    stray_errors: list[str] = field(default_factory=list)


# -- the socket ----------------------------------------------------------------------------------


class AuthRefused(Exception):
    """The endpoint refused the credential at the handshake (HTTP 401 or 403)."""


def _close_of(exc: ConnectionClosed) -> tuple[int, str]:
    if exc.rcvd is not None:
        return exc.rcvd.code, exc.rcvd.reason
    return 1006, "no close frame received"


async def _open(target: Target, model: str) -> tuple[ClientConnection | None, Outcome | None]:
    try:
        ws = await connect(
            target.url(model),
            additional_headers=target.headers(),
            open_timeout=target.timeout_s,
            close_timeout=2.0,
            max_size=2**24,
        )
    except InvalidStatus as exc:
        outcome = Outcome("handshake", status=exc.response.status_code)
        try:
            body = json.loads(exc.response.body or b"")
            err = body.get("error") if isinstance(body, dict) else None
        except (ValueError, UnicodeDecodeError):
            err = None
        if isinstance(err, dict):
            outcome.code = _str_or_none(err.get("code"))
            outcome.param = _str_or_none(err.get("param"))
            outcome.error_type = _str_or_none(err.get("type"))
            outcome.message = target.scrub(str(err.get("message")))
        elif exc.response.body:
            body_text = exc.response.body[:300].decode("utf-8", "replace").strip()
            outcome.message = target.scrub(body_text) or None
        return None, outcome
    except Exception as exc:  # unreachable host, TLS, broken handshake, timeout
        return None, Outcome("connect_failed", message=target.scrub(f"{type(exc).__name__}: {exc}"))
    return ws, None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


async def _answer(
    ws: ClientConnection, event_id: str, sent: dict[str, Any], target: Target, strays: list[str]
) -> Outcome:
    """Wait for the answer to the update ``event_id`` (``session.updated`` carries no event id,
    so updates are sent one at a time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + target.timeout_s
    while True:
        try:
            raw = await asyncio.wait_for(ws.recv(), max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            return Outcome("no_answer", message=f"nothing within {target.timeout_s:g} s")
        except ConnectionClosed as exc:
            code, reason = _close_of(exc)
            return Outcome("closed", close_code=code, close_reason=target.scrub(reason))
        try:
            msg = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(msg, dict):
            continue
        etype = msg.get("type")
        if etype in ("session.updated", "transcription_session.updated"):
            got = msg.get("session")
            return Outcome(
                "accepted",
                answered_by=str(etype),
                not_echoed=_differing(sent["session"], got, require_key=False),
                session=got if isinstance(got, dict) else None,
            )
        if etype == "error":
            raw_err = msg.get("error")
            err: dict[str, Any] = raw_err if isinstance(raw_err, dict) else {}
            answered = err.get("event_id")
            if answered not in (None, event_id):
                strays.append(target.scrub(f"{answered}: {err.get('code')} {err.get('message')}"))
                continue
            outcome = Outcome(
                "rejected",
                code=_str_or_none(err.get("code")),
                param=_str_or_none(err.get("param")),
                message=target.scrub(str(err.get("message"))),
                error_type=_str_or_none(err.get("type")),
            )
            await _await_close(ws, outcome, target)
            return outcome


async def _await_close(ws: ClientConnection, outcome: Outcome, target: Target) -> None:
    """After a rejection: does the server close the socket (within the grace period)?"""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + target.close_grace_s
    while True:
        try:
            await asyncio.wait_for(ws.recv(), max(0.0, deadline - loop.time()))
        except asyncio.TimeoutError:
            return
        except ConnectionClosed as exc:
            code, reason = _close_of(exc)
            outcome.close_code, outcome.close_reason = code, target.scrub(reason)
            return


async def _send(
    ws: ClientConnection, payload: dict[str, Any], target: Target, strays: list[str]
) -> Outcome:
    try:
        await ws.send(json.dumps(payload))
    except ConnectionClosed as exc:
        code, reason = _close_of(exc)
        return Outcome("closed", close_code=code, close_reason=target.scrub(reason))
    return await _answer(ws, payload["event_id"], payload, target, strays)


async def _close(ws: ClientConnection | None) -> None:
    if ws is not None:
        with contextlib.suppress(Exception):
            await ws.close()


async def probe_field(
    target: Target, model: str, probe: FieldProbe, tag: str, strays: list[str]
) -> FieldResult:
    """Fresh socket: the baseline update, then baseline + ``probe`` (on another fresh socket
    when the baseline's was closed or left silent, so that no late answer is misread)."""
    ws, failed = await _open(target, model)
    if ws is None:
        failed = failed or Outcome("connect_failed")
        return FieldResult(failed, failed)
    try:
        base = await _send(ws, update_event(model, None, f"{tag}-base"), target, strays)
        if base.kind not in ("accepted", "rejected") or base.close_code is not None:
            await _close(ws)
            reopened, failed = await _open(target, model)
            if reopened is None:
                return FieldResult(base, failed or Outcome("connect_failed"))
            ws = reopened
        outcome = await _send(ws, update_event(model, probe, f"{tag}-field"), target, strays)
        return FieldResult(base, outcome)
    finally:
        await _close(ws)


async def probe_model(
    target: Target, model: str, index: int, fields: Sequence[FieldProbe], report: ProbeReport
) -> None:
    results: dict[str, FieldResult] = {}
    report.results[model] = results
    for n, probe in enumerate(fields):
        tag = f"probe-{index}-{n}-{re.sub(r'[^A-Za-z0-9]+', '_', probe.key)}"
        result = await probe_field(target, model, probe, tag, report.stray_errors)
        results[probe.key] = result
        print(f"  {model:24} {probe.key:26} {result.outcome.cell()}", file=sys.stderr, flush=True)


async def preflight(target: Target, model: str) -> Outcome | None:
    """One handshake before the many: ``None`` when it opens; raises :class:`AuthRefused` on
    HTTP 401/403; else the failure (the endpoint cannot be reached, or refuses the URL)."""
    ws, failed = await _open(target, model)
    await _close(ws)
    if failed is not None and failed.kind == "handshake" and failed.status in (401, 403):
        raise AuthRefused(f"the endpoint refused the key (HTTP {failed.status})")
    return failed


# -- one transcription per model -----------------------------------------------------------------


def load_clip() -> tuple[list[Any], str]:
    """The first :data:`CLIP_SECONDS` of the demo clip as 10 ms frames, and its reference.

    Raises:
        FileNotFoundError: the ``demo`` extra is not installed (no clip).
    """
    from examples.evaluation import DEMO_REFERENCE, demo_clip, wav_frames

    frames, total = [], 0.0
    for frame in wav_frames(demo_clip(), frame_ms=10):
        if total + frame.duration > CLIP_SECONDS + 1e-6:
            break
        frames.append(frame)
        total += frame.duration
    reference = " ".join(DEMO_REFERENCE.split()[:REFERENCE_WORDS])
    return frames, reference


async def transcribe(
    target: Target, model: str, frames: Sequence[Any], reference: str
) -> Transcription:
    """Push ``frames`` into ``openai_stt.STT(model=...).stream()``, end the input (the stream
    commits the tail), and collect the finals and the usage. No retries: the first failure is
    the result."""
    from livekit.agents import APIConnectOptions
    from livekit.agents import stt as lk_stt
    from livekit.plugins import openai_stt

    result = Transcription(model=model)
    started = time.monotonic()
    try:
        engine = openai_stt.STT(
            model=model,
            base_url=target.base_url,
            api_key=target.api_key,
            include_model_in_url=target.include_model,
            allow_insecure=True,  # checked once for the whole probe (amain)
        )
    except Exception as exc:
        result.error = target.scrub(f"STT(...) raised {type(exc).__name__}: {exc}")
        return result

    def on_error(err: Any) -> None:
        inner = getattr(err, "error", err)
        result.warnings.append(target.scrub(f"{type(inner).__name__}: {inner}"))

    engine.on("error", on_error)
    texts: list[str] = []
    stream = engine.stream(conn_options=APIConnectOptions(max_retry=0, timeout=target.timeout_s))

    async def run() -> None:
        for frame in frames:
            stream.push_frame(frame)
        stream.end_input()
        async for event in stream:
            if event.type == lk_stt.SpeechEventType.FINAL_TRANSCRIPT and event.alternatives:
                alt = event.alternatives[0]
                texts.append(alt.text)
                if (getattr(alt, "metadata", None) or {}).get("incomplete"):
                    result.incomplete += 1

    try:
        await asyncio.wait_for(run(), timeout=max(30.0, 3 * target.timeout_s))
    except asyncio.TimeoutError:
        result.error = "no end of stream within the time limit"
    except Exception as exc:
        result.error = target.scrub(f"{type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(Exception):
            await stream.aclose()
        with contextlib.suppress(Exception):
            await engine.aclose()
    result.elapsed_s = time.monotonic() - started
    result.finals = len(texts)
    result.text = " ".join(t.strip() for t in texts if t.strip())
    if result.finals:
        try:
            from examples.evaluation import word_error_rate

            result.wer = word_error_rate(reference, result.text)
        except Exception as exc:  # jiwer missing, or an empty normalised reference
            result.warnings.append(f"no WER: {type(exc).__name__}: {exc}")
    usage = engine.usage
    result.audio_seconds_sent = usage.audio_seconds_sent
    result.billed_seconds = usage.billed_seconds
    result.input_tokens = usage.input_tokens
    result.output_tokens = usage.output_tokens
    result.cost_usd = usage.cost_usd
    return result


# -- the run --------------------------------------------------------------------------------------


async def run_probe(
    target: Target,
    models: Sequence[str] = DEFAULT_MODELS,
    fields: Sequence[FieldProbe] = FIELDS,
    *,
    transcriptions: bool = True,
) -> ProbeReport:
    """Probe every model (concurrently; one field at a time within a model), then transcribe
    once per model (all at once). Failures are recorded, not raised."""
    report = ProbeReport(
        target=target,
        models=list(models),
        fields=list(fields),
        started=dt.datetime.now(dt.timezone.utc),
    )
    await asyncio.gather(*(probe_model(target, m, i, fields, report) for i, m in enumerate(models)))
    report.results = {m: report.results[m] for m in models}
    if not transcriptions:
        report.transcription_note = "not run (--no-transcribe)"
        return report
    try:
        frames, reference = load_clip()
    except (FileNotFoundError, ImportError) as exc:
        report.transcription_note = f"not run: {exc}"
        return report
    report.transcriptions = list(
        await asyncio.gather(*(transcribe(target, m, frames, reference) for m in models))
    )
    return report


# -- the report -----------------------------------------------------------------------------------


def _source_revision() -> str | None:
    """The project's commit, and whether ``plugin/`` has uncommitted changes (best effort)."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "plugin"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha} with uncommitted changes in plugin/" if dirty else sha or None


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _endpoint_line(target: Target, model: str) -> str:
    url = redact_url(target.url(model))
    return url.replace(f"model={model}", "model=<model>")


def _comparisons(report: ProbeReport) -> list[str]:
    """Where the plugin (registry + ``build_session_update``) and the server disagree."""
    lines = []
    rejected_option = {"prompt": "prompt", "delay": "delay"}
    rejected_option.update({"server_vad": "turn_detection", "semantic_vad": "turn_detection"})
    for model, results in report.results.items():
        info = get_model_info(model)
        for probe in report.fields:
            outcome = results[probe.key].outcome
            if outcome.kind in ("no_answer", "connect_failed"):
                continue
            sends = plugin_sends(probe, model)
            marked = rejected_option.get(probe.key) in getattr(info, "rejected_options", ())
            what = f"- `{model}` `{probe.key}`: {outcome.cell()}"
            if sends and outcome.refused:
                lines.append(f"{what}, **but the plugin sends it**.")
            elif sends and outcome.not_echoed:
                lines.append(f"{what}: the plugin sends it; the server may ignore it.")
            elif sends is False and outcome.kind == "accepted" and not outcome.not_echoed:
                note = " (its registry entry marks it rejected)" if marked else ""
                lines.append(f"{what}; the plugin does not send it{note}.")
            elif marked and outcome.kind == "accepted":
                lines.append(f"{what}; the registry marks it rejected.")
            elif outcome.refused and probe.key in rejected_option and not marked:
                lines.append(f"{what}; not among the registry's `rejected_options`.")
    return lines


def render_markdown(report: ProbeReport) -> str:
    """The report: heading (what was probed, and whether it is OpenAI), the table, details,
    plugin vs server, and the transcriptions."""
    target = report.target
    first = report.models[0] if report.models else "gpt-realtime-whisper"
    endpoint = _endpoint_line(target, first)
    kind = classify_endpoint(target.base_url)
    model_in_url = "model=<model>" in endpoint
    when = report.started.strftime("%Y-%m-%d %H:%M UTC")
    written_by = (
        "Written by `tools/contract_probe.py` (issue 11, point 2); do not edit by hand. It asks "
        "the endpoint which `session.update` fields each transcription model accepts, then "
        "transcribes once per model through the plugin."
    )
    if kind == "openai":
        out: list[str] = [
            "# OpenAI Realtime transcription: the contract as probed",
            "",
            f"Recorded against the OpenAI Realtime API on {when} by `make live`. Run it again "
            "to refresh this page; each run replaces it. " + written_by,
            "",
        ]
    else:
        described = f" ({target.label})" if target.label else ""
        out = [
            "# Realtime transcription contract: a local run, NOT the OpenAI API",
            "",
            "> **This is NOT a record of the real OpenAI API.** It was generated against "
            f"`{endpoint}`{described}, so it shows what that server does, not what OpenAI "
            "does. The bundled local server is our own reading of the API (docs/protocol.md), "
            "not evidence about it. To record OpenAI's real behaviour, run `make live` with "
            "`OPENAI_API_KEY` set: it rewrites this file.",
            "",
            written_by,
            "",
        ]
    python = platform.python_version()
    revision = _source_revision()
    out += [
        f"- Date: {when}",
        f"- Endpoint: `{endpoint}` (`?model=` on the URL: {'yes' if model_in_url else 'no'})",
        f"- Command: `{target.command}`",
        f"- Versions: livekit-plugins-openai-stt {PLUGIN_VERSION}, websockets "
        f"{importlib.metadata.version('websockets')}, Python {python}"
        + (f"; project at git {revision}" if revision else ""),
        "",
        "## Session fields",
        "",
        "Each cell is one fresh socket: a `session.update` with only the model "
        '(`{"type":"transcription","audio":{"input":{"transcription":{"model":…}}}}`, the '
        "`baseline` row), then the same update with that one field added, each with its own "
        "`event_id`. `accepted`: `session.updated`; `accepted, not echoed`: `session.updated` "
        "whose session lacks the value sent (the server may have ignored the field); "
        "`rejected` and the error's `code`: an `error` answering the update (then `closed N` "
        f"when the socket closed within {target.close_grace_s:g} s); `closed N`: the socket closed "
        "with code N before any answer; `no answer`: nothing within "
        f"{target.timeout_s:g} s. The exact JSON of each field is under "
        "[Fields tried](#fields-tried).",
        "",
    ]
    header = "| field | " + " | ".join(f"`{m}`" for m in report.models) + " |"
    out += [header, "|---|" + "---|" * len(report.models)]
    base_cells = []
    for model in report.models:
        outcomes = [r.baseline for r in report.results[model].values()]
        kinds = {o.cell() for o in outcomes}
        cell = outcomes[0].cell() if outcomes else "—"
        base_cells.append(cell + (" (varied)" if len(kinds) > 1 else ""))
    out.append(f"| `{BASELINE}` | " + " | ".join(_cell(c) for c in base_cells) + " |")
    for probe in report.fields:
        cells = [_cell(report.results[m][probe.key].outcome.cell()) for m in report.models]
        out.append(f"| `{probe.key}` | " + " | ".join(cells) + " |")
    out += ["", "### Rejections, closes and fields not echoed", ""]
    details = []
    for model in report.models:
        seen_base: set[str] = set()
        for key, result in report.results[model].items():
            base = result.baseline
            if base.kind != "accepted" or base.not_echoed:
                line = base.details()
                if line and line not in seen_base:
                    seen_base.add(line)
                    details.append(f"- `{model}` `{BASELINE}`: {base.cell()}. {line}")
            outcome = result.outcome
            if outcome.kind != "accepted" or outcome.not_echoed:
                details.append(f"- `{model}` `{key}`: {outcome.cell()}. {outcome.details()}")
    out += details or ["None: every update was accepted and echoed."]
    if report.stray_errors:
        out += ["", "Errors naming another event (not counted as answers):", ""]
        out += [f"- {_quote(s)}" for s in report.stray_errors]
    out += [
        "",
        "### Plugin vs server",
        "",
        "Where what the plugin would put on the wire (its registry, `models.py`, through "
        "`build_session_update`, asked for that one field) and what the server did disagree. "
        "Updates that got no answer are left out.",
        "",
    ]
    out += _comparisons(report) or ["No disagreement."]
    out += [
        "",
        "### The session after the baseline",
        "",
        "The effective session each model's first baseline `session.updated` reported: the "
        "server's defaults for what the baseline leaves out (turn detection, noise reduction, "
        "format, include).",
        "",
    ]
    for model in report.models:
        first_base = next(iter(report.results[model].values()), None)
        body = first_base.baseline.session if first_base else None
        if body is None:
            out.append(f"- `{model}`: no `session.updated` to show.")
            continue
        shown = target.scrub(json.dumps(body, indent=2, sort_keys=True))
        out += [
            f"<details><summary><code>{model}</code></summary>",
            "",
            "```json",
            shown,
            "```",
            "",
            "</details>",
            "",
        ]
    out += [
        "",
        "### Fields tried",
        "",
        "| field | added to the baseline's `session` |",
        "|---|---|",
    ]
    for probe in report.fields:
        out.append(f"| `{probe.key}` | `{json.dumps(probe.patch, separators=(',', ':'))}` |")
    out += [
        "",
        "## One transcription per model",
        "",
        f"Through the plugin's own `openai_stt.STT(model=…).stream()` with its defaults for "
        f"each model (language `en`): the first {CLIP_SECONDS:g} s of the demo clip "
        f"(`two_cities.wav`, cut in a pause) pushed at once, then `end_input()`; no retries. "
        f"WER against the first {REFERENCE_WORDS} words of `DEMO_REFERENCE` "
        "(`examples.evaluation.word_error_rate`). Usage is `STT.usage`.",
        "",
    ]
    if report.transcription_note:
        out += [f"Transcriptions {report.transcription_note}.", ""]
    else:
        out += [
            "| model | final text | WER | finals | audio sent (s) | billed (s) | tokens in/out "
            "| est. cost (USD) | error |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for t in report.transcriptions:
            wer = f"{t.wer:.2f}" if t.wer is not None else "—"
            cost = f"{t.cost_usd:.5f}" if t.cost_usd is not None else "unknown"
            finals = f"{t.finals}" + (f" ({t.incomplete} incomplete)" if t.incomplete else "")
            error = t.error or ("; ".join(t.warnings) if t.warnings else "")
            out.append(
                f"| `{t.model}` | {_cell(t.text) or '—'} | {wer} | {finals} | "
                f"{t.audio_seconds_sent:.2f} | {t.billed_seconds:.2f} | "
                f"{t.input_tokens}/{t.output_tokens} | {cost} | {_cell(error) or '—'} |"
            )
        out.append("")
    return "\n".join(out)


# -- the command line -----------------------------------------------------------------------------


def _names(values: Sequence[str] | None) -> list[str]:
    return [n.strip() for v in values or () for n in v.split(",") if n.strip()]


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.contract_probe",
        description=(
            "Ask a Realtime transcription endpoint which session fields each model accepts, "
            "transcribe once per model, and write the Markdown table. Uses OPENAI_API_KEY "
            "(skips, exit 0, without it) and OPENAI_BASE_URL."
        ),
    )
    p.add_argument("--base-url", help="endpoint base URL (default: $OPENAI_BASE_URL or OpenAI's)")
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"report path (default {DEFAULT_OUT})"
    )
    p.add_argument(
        "--models",
        nargs="+",
        metavar="MODEL",
        help="models to probe, space- or comma-separated (default: all six)",
    )
    p.add_argument(
        "--fields",
        nargs="+",
        metavar="FIELD",
        help=f"fields to try (default: all): {', '.join(_FIELDS_BY_KEY)}",
    )
    url = p.add_mutually_exclusive_group()
    url.add_argument(
        "--no-model-in-url",
        dest="include_model",
        action="store_false",
        default=None,
        help="never put ?model= on the URL (a transparent proxy in front of OpenAI)",
    )
    url.add_argument(
        "--model-in-url",
        dest="include_model",
        action="store_true",
        default=None,
        help="always put ?model= on the URL (a gateway on an OpenAI-looking host)",
    )
    p.add_argument(
        "--local",
        nargs="?",
        const="whisper",
        choices=("whisper", "scripted"),
        help="probe the bundled local server (compat=openai), started here; no key needed",
    )
    p.add_argument("--no-transcribe", action="store_true", help="skip the transcriptions")
    p.add_argument(
        "--timeout", type=_positive, default=10.0, help="seconds to wait for each answer (10)"
    )
    p.add_argument(
        "--close-grace",
        type=_positive,
        default=1.0,
        help="seconds to watch for a close after a rejection (1)",
    )
    p.add_argument(
        "--allow-insecure",
        action="store_true",
        help="allow sending the key over plaintext ws:// to a host that is not loopback",
    )
    p.add_argument("--label", help="words describing the endpoint, for the report's heading")
    return p


def _command_line(args: argparse.Namespace, base_url_given: bool) -> str:
    parts = ["python -m tools.contract_probe"]
    if args.local:
        parts.append(f"--local {args.local}")
    elif base_url_given:
        parts.append(f"--base-url {redact_url(args.base_url)}")
    if args.include_model is not None and not args.local:
        parts.append("--model-in-url" if args.include_model else "--no-model-in-url")
    if args.models:
        parts.append("--models " + " ".join(_names(args.models)))
    if args.fields:
        parts.append("--fields " + " ".join(_names(args.fields)))
    if args.no_transcribe:
        parts.append("--no-transcribe")
    return " ".join(parts)


async def amain(
    argv: Sequence[str] | None = None,
    *,
    api_key: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """The command line, in the running loop. ``api_key`` wins over ``$OPENAI_API_KEY``;
    ``environ`` replaces ``os.environ`` (tests). Returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    env = os.environ if environ is None else environ
    models = _names(args.models) or list(DEFAULT_MODELS)
    field_keys = _names(args.fields)
    unknown = [k for k in field_keys if k not in _FIELDS_BY_KEY]
    if unknown:
        parser.error(
            f"unknown field(s) {', '.join(unknown)}; choose from {', '.join(_FIELDS_BY_KEY)}"
        )
    fields = [_FIELDS_BY_KEY[k] for k in field_keys] if field_keys else list(FIELDS)

    if args.local:
        if args.base_url or args.include_model is not None:
            parser.error("--local probes its own server: no --base-url or --(no-)model-in-url")
        return await _run_local(args, models, fields)

    key = api_key or env.get("OPENAI_API_KEY") or ""
    if not key.strip():
        print(
            "contract probe skipped: OPENAI_API_KEY is not set (nothing was sent, "
            f"{args.out} left as it is). Set it to probe the real API, or use --local."
        )
        return 0
    base_url_given = bool(args.base_url)
    base_url = args.base_url or env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    target = Target(
        base_url=base_url,
        api_key=key.strip(),
        include_model=args.include_model,
        timeout_s=args.timeout,
        close_grace_s=args.close_grace,
        label=args.label,
        command=_command_line(args, base_url_given),
    )
    try:
        url = target.url(models[0])
        target.headers()
    except ValueError as exc:
        parser.error(target.scrub(str(exc)))
    parts = urlsplit(url)
    if (
        parts.scheme == "ws"
        and not is_loopback_host(parts.hostname or "")
        and not args.allow_insecure
        and carries_credentials(url, target.headers())
    ):
        parser.error("refusing to send the key over plaintext ws:// (use --allow-insecure)")
    return await _run(target, models, fields, args)


async def _run(
    target: Target, models: list[str], fields: list[FieldProbe], args: argparse.Namespace
) -> int:
    print(f"probing {_endpoint_line(target, models[0])}", file=sys.stderr, flush=True)
    try:
        failed = await preflight(target, models[0])
    except AuthRefused as exc:
        print(f"contract probe failed: {exc}; nothing written", file=sys.stderr)
        return 1
    if failed is not None and failed.kind == "connect_failed":
        print(
            f"contract probe failed: cannot reach the endpoint ({failed.message}); nothing written",
            file=sys.stderr,
        )
        return 1
    report = await run_probe(target, models, fields, transcriptions=not args.no_transcribe)
    text = render_markdown(report)
    out: Path = args.out
    if str(out) == "-":
        sys.stdout.write(text)
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    for t in report.transcriptions:
        shown = f"WER {t.wer:.2f}" if t.wer is not None else (t.error or "no final")
        print(f"  {t.model:24} transcription: {shown}", file=sys.stderr)
    print(f"wrote {out}")
    return 0


async def _run_local(args: argparse.Namespace, models: list[str], fields: list[FieldProbe]) -> int:
    import secrets

    from livekit.plugins.openai_stt.server import LocalRealtimeServer

    token = "local-" + secrets.token_hex(8)
    server = LocalRealtimeServer(engine=args.local, compat="openai", port=0, api_key=token)
    async with server:
        target = Target(
            base_url=server.base_url,
            api_key=token,
            include_model=False,  # compat="openai" refuses ?model=, as OpenAI does
            timeout_s=args.timeout,
            close_grace_s=args.close_grace,
            label=args.label
            or (
                f'the bundled local server, `LocalRealtimeServer(compat="openai", '
                f'engine="{args.local}")`, started by the probe'
            ),
            command=_command_line(args, False),
        )
        return await _run(target, models, fields, args)


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(amain(argv))


if __name__ == "__main__":
    raise SystemExit(main())
