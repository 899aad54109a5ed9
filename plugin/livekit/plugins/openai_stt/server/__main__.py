"""Command line: ``python -m livekit.plugins.openai_stt.server [options]``.

Serves the OpenAI Realtime transcription protocol on ``ws://HOST:PORT/v1/realtime`` until
interrupted. Point a client at ``--base-url http://HOST:PORT/v1``. Fault flags mirror
:class:`~livekit.plugins.openai_stt.server.Faults`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from .app import DEFAULT_MAX_SESSIONS, LocalRealtimeServer
from .config import COMPAT_MODES
from .connection import DEFAULT_SEND_TIMEOUT_S
from .faults import Faults
from .limits import DEFAULT_IDLE_TIMEOUT_S, DEFAULT_MAX_PENDING_S
from .metrics import ExtrasFormatter
from .partials import DEFAULT_DELTA_INTERVAL_S
from .recognizer import DEVICES, RecognizerRefused
from .session import DEFAULT_MAX_BUFFER_S


def _error_code_after(value: str) -> tuple[str, float]:
    code, sep, ms = value.rpartition(":")
    if not sep or not code:
        raise argparse.ArgumentTypeError("expected CODE:MS, e.g. rate_limit_exceeded:1500")
    try:
        return code, float(ms)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number of milliseconds: {ms!r}") from exc


def _items(value: str) -> frozenset[int]:
    try:
        items = frozenset(int(v) for v in value.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError("expected 1-based item numbers, e.g. 2,5") from exc
    if any(i < 1 for i in items):
        raise argparse.ArgumentTypeError("item numbers start at 1")
    return items


def _max_sessions(value: str) -> int | None:
    try:
        n = int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("expected a whole number of sessions") from exc
    if n < 0:
        raise argparse.ArgumentTypeError("must be 0 (no limit) or more")
    return n or None


def _positive(value: str) -> float:
    try:
        x = float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("expected a number") from exc
    if not 0 < x < float("inf"):
        raise argparse.ArgumentTypeError("must be a positive number")
    return x


def _non_negative(value: str) -> float:
    try:
        x = float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("expected a number") from exc
    if not 0 <= x < float("inf"):
        raise argparse.ArgumentTypeError("must be 0 or more")
    return x


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m livekit.plugins.openai_stt.server",
        description="A local server speaking the OpenAI Realtime transcription protocol, offline.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument(
        "--port", type=int, default=8000, help="TCP port; 0 picks a free one (default 8000)"
    )
    p.add_argument(
        "--engine",
        choices=("whisper", "scripted"),
        default="whisper",
        help="recognizer: faster-whisper tiny.en, or the instant scripted one",
    )
    p.add_argument(
        "--api-key",
        default=os.environ.get("OPENAI_STT_SERVER_API_KEY"),
        help="only accept this bearer token (default: any; env OPENAI_STT_SERVER_API_KEY); "
        "required to listen on an address that is not loopback",
    )
    p.add_argument(
        "--insecure-public",
        action="store_true",
        help="listen on a non-loopback --host without --api-key (any token is accepted)",
    )
    p.add_argument(
        "--compat",
        choices=COMPAT_MODES,
        default="lenient",
        help="which server to imitate: lenient (default), openai, gateway, or vllm (vLLM's "
        "own realtime dialect: top-level model, 16 kHz pcm16, transcription.delta/done)",
    )
    p.add_argument(
        "--max-session-s", type=float, default=3600.0, help="session cap in seconds (default 3600)"
    )
    p.add_argument(
        "--delta-interval-s",
        type=float,
        default=DEFAULT_DELTA_INTERVAL_S,
        help="seconds between partial decodes of the open buffer, for models that "
        "stream deltas before the commit (gpt-realtime-whisper, gpt-live-transcribe);"
        " 0 turns them off (default 1.0)",
    )
    p.add_argument(
        "--max-sessions",
        type=_max_sessions,
        default=DEFAULT_MAX_SESSIONS,
        help="concurrent sessions served; more get HTTP 503 "
        f"(default {DEFAULT_MAX_SESSIONS}; 0: no limit)",
    )
    p.add_argument(
        "--max-buffer-s",
        type=_positive,
        default=DEFAULT_MAX_BUFFER_S,
        help="uncommitted audio kept per session, in seconds; past it appends get "
        "an error (default 600)",
    )
    p.add_argument(
        "--max-pending-s",
        type=_positive,
        default=DEFAULT_MAX_PENDING_S,
        help="committed audio per session awaiting the recognizer, in seconds; a commit past "
        f"it gets rate_limit_exceeded (default {DEFAULT_MAX_PENDING_S:g})",
    )
    p.add_argument(
        "--idle-timeout-s",
        type=_non_negative,
        default=DEFAULT_IDLE_TIMEOUT_S,
        help="close a session that sent nothing for this many seconds, freeing its slot "
        f"(default {DEFAULT_IDLE_TIMEOUT_S:g}; 0: never)",
    )
    p.add_argument(
        "--send-timeout-s",
        type=_positive,
        default=DEFAULT_SEND_TIMEOUT_S,
        help="drop a connection whose message cannot be sent for this many seconds (a client "
        f"that stopped reading; default {DEFAULT_SEND_TIMEOUT_S:g})",
    )
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    add_recognizer_arguments(p)
    f = p.add_argument_group("fault injection")
    f.add_argument(
        "--drop-after-s",
        type=float,
        default=None,
        help="drop each session this many seconds after it opens (a timed drop)",
    )
    f.add_argument(
        "--drop-after-audio-ms",
        type=float,
        default=None,
        help="drop a session once it has received this much audio",
    )
    f.add_argument("--drop-mode", choices=("close_1011", "reset"), default="close_1011")
    f.add_argument(
        "--drop-sessions", type=int, default=1, help="how many sessions to drop (default 1)"
    )
    f.add_argument(
        "--fail-items",
        type=_items,
        default=frozenset(),
        help="1-based item numbers answered with transcription.failed, e.g. 2,5",
    )
    f.add_argument(
        "--error-code-after-audio-ms",
        type=_error_code_after,
        default=None,
        metavar="CODE:MS",
        help="send one error event with CODE after MS of audio",
    )
    f.add_argument(
        "--completed-delay-ms",
        type=float,
        default=0.0,
        help="delay each completed event by this many milliseconds",
    )
    f.add_argument(
        "--reject-handshake-status",
        type=int,
        default=None,
        help="answer the HTTP upgrade with this status (e.g. 401, 429, 500)",
    )
    f.add_argument(
        "--reject-handshakes",
        type=int,
        default=None,
        help="how many upgrades to reject (default: all)",
    )
    f.add_argument(
        "--pause-reading-after-audio-ms",
        type=float,
        default=None,
        help="stop reading a session's socket once it has received this much audio",
    )
    f.add_argument(
        "--pause-reading-s", type=float, default=0.0, help="for this many seconds (default 0)"
    )
    f.add_argument(
        "--pause-sessions", type=int, default=1, help="how many sessions to pause (default 1)"
    )
    return p


def _at_least_one(value: str) -> int:
    try:
        n = int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("expected a whole number") from exc
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def add_recognizer_arguments(p: argparse.ArgumentParser) -> None:
    """The recognizer's flags (``recognizer.RecognizerOptions``; docs/local-server.md)."""
    r = p.add_argument_group("recognizer (--engine whisper)")
    r.add_argument(
        "--model",
        default=None,
        help="a faster-whisper model name (tiny, base.en, small, large-v3, distil-large-v3, ...; "
        "fetched once with --download) or a CTranslate2 Whisper model folder "
        "(default: the bundled tiny.en, no download)",
    )
    r.add_argument(
        "--download",
        action="store_true",
        help="allow fetching a --model given by name into the local cache",
    )
    r.add_argument("--device", choices=DEVICES, default="auto", help="default auto: CUDA if seen")
    r.add_argument(
        "--compute-type",
        default=None,
        help="CTranslate2 compute type (default int8 on the CPU, float16 on CUDA)",
    )
    r.add_argument(
        "--beam-size", type=_at_least_one, default=5, help="beams of a final decode (default 5)"
    )
    r.add_argument(
        "--workers",
        type=_at_least_one,
        default=None,
        help="decode workers: items decoded at once (default: one per two CPU cores, 2 on CUDA)",
    )
    r.add_argument(
        "--cpu-threads",
        type=_at_least_one,
        default=None,
        help="CTranslate2 threads per worker (default: the cores shared out among the workers)",
    )
    r.add_argument(
        "--language",
        default=None,
        help="language of sessions that set none (default: detect on a multilingual model)",
    )
    r.add_argument(
        "--temperature-fallback",
        action="store_true",
        help="re-decode a final at higher temperatures when it looks like a loop "
        "(faster-whisper's default; slower tail)",
    )
    r.add_argument(
        "--speculate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="decode a final ahead when a session pauses (default: on for whisper)",
    )
    r.add_argument(
        "--fast-finals-under-load",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="past capacity, decode finals as partials are: faster, a few points of WER "
        "worse (default: on for whisper)",
    )


def faults_from_args(args: argparse.Namespace) -> Faults:
    """The :class:`Faults` the parsed flags describe."""
    return Faults(
        drop_after_audio_ms=args.drop_after_audio_ms,
        drop_after_s=args.drop_after_s,
        drop_mode=args.drop_mode,
        drop_sessions=args.drop_sessions,
        fail_items=args.fail_items,
        error_code_after_audio_ms=args.error_code_after_audio_ms,
        completed_delay_ms=args.completed_delay_ms,
        reject_handshake_status=args.reject_handshake_status,
        reject_handshakes=args.reject_handshakes,
        pause_reading_after_audio_ms=args.pause_reading_after_audio_ms,
        pause_reading_s=args.pause_reading_s,
        pause_sessions=args.pause_sessions,
    )


def server_from_args(args: argparse.Namespace) -> LocalRealtimeServer:
    """The (not yet started) server the parsed flags describe."""
    if args.delta_interval_s < 0:
        raise SystemExit("--delta-interval-s must not be negative")
    return LocalRealtimeServer(
        host=args.host,
        port=args.port,
        engine=args.engine,
        api_key=args.api_key,
        compat=args.compat,
        faults=faults_from_args(args),
        max_session_s=args.max_session_s,
        delta_interval_s=args.delta_interval_s or None,
        max_sessions=args.max_sessions,
        max_buffer_s=args.max_buffer_s,
        idle_timeout_s=args.idle_timeout_s or None,
        max_pending_s=args.max_pending_s,
        send_timeout_s=args.send_timeout_s,
        insecure_public=args.insecure_public,
        **recognizer_kwargs(args),
    )


def recognizer_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``LocalRealtimeServer`` keyword arguments of the recognizer flags."""
    return {
        "model": args.model,
        "download": args.download,
        "device": args.device,
        "compute_type": args.compute_type,
        "beam_size": args.beam_size,
        "workers": args.workers,
        "cpu_threads": args.cpu_threads,
        "language": args.language,
        "speculate": args.speculate,
        "temperature_fallback": args.temperature_fallback,
        "fast_finals_under_load": args.fast_finals_under_load,
    }


async def _serve(args: argparse.Namespace) -> None:
    server = server_from_args(args)
    await server.start()
    print(
        f"listening on {server.ws_url}  (base URL {server.base_url}, engine {args.engine}, "
        f"compat {args.compat}, workers {server.workers})",
        file=sys.stderr,
        flush=True,
    )
    task = asyncio.current_task()
    assert task is not None
    with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await server.serve_forever()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        server_from_args(args)  # refuse bad combinations (a public bind without a key) early
    except ValueError as exc:
        parser.error(str(exc))
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:  # extra fields printed as key=value
        handler.setFormatter(ExtrasFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(args))
    except RecognizerRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
