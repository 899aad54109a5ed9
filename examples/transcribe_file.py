"""Transcribe a WAV file in real time with livekit-plugins-openai-stt.

    python examples/transcribe_file.py [AUDIO] [--speed X] [--reference TEXT]

The file is streamed frame by frame at its real pace (``--speed 2`` plays it twice as fast)
into ``openai_stt.STT(...).stream()``, with a silero VAD inside the stream that commits each
turn when the speaker pauses. Interim text is shown live on one line (on a terminal) and each
final transcript is printed on its own line with its time span. At the end comes a summary:
the full transcript, the word error rate against the reference text, the end-of-speech to
final-transcript latency, the audio seconds sent and the estimated cost.

Where the audio goes:

- ``OPENAI_API_KEY`` set: to the OpenAI Realtime API (or to ``$OPENAI_BASE_URL``, e.g. a
  gateway). ``--local`` forces the local server anyway.
- otherwise: to a local server speaking the same protocol with faster-whisper, started inside
  this process on a free port. No key and no network needed (``pip install
  "livekit-plugins-openai-stt[local]"``).

AUDIO defaults to the demo clip, ``two_cities.wav`` (44 s of a LibriVox reading of *A Tale of
Two Cities*), which the ``demo`` extra installs with the moonshine-voice wheel; its reference
text is known. Any PCM WAV works (any sample rate; stereo is downmixed to mono). The reference
text comes from ``--reference``, the demo clip's own, or a ``transcripts.tsv`` next to the
clip; without one the WER is "n/a".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from evaluation import (
    DEMO_REFERENCE,
    demo_clip,
    load_reference,
    read_wav,
    wav_frames,
    word_error_rate,
)
from livekit.agents import APIError, inference, stt
from livekit.plugins import openai_stt
from rich.console import Console
from rich.live import Live
from rich.text import Text

FRAME_MS = 10
END_TIMEOUT_S = 60.0  # after the last frame, how long the stream may take to finish


@dataclass
class Pacer:
    """Pushes a WAV file into an STT stream at ``speed`` times real time.

    Frames are sent on a fixed monotonic schedule (frame *i* is due at
    ``start + end_of_frame_i / speed``), so the pace does not drift the way a sleep after
    every frame would. ``audio_pos`` is the number of seconds of audio pushed so far.
    """

    path: Path
    speed: float
    audio_pos: float = 0.0

    async def run(self, stream: stt.RecognizeStream) -> None:
        """Push every frame of the file, then ``end_input()`` (which commits the tail)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for frame in wav_frames(self.path, frame_ms=FRAME_MS):
            due = start + (self.audio_pos + frame.duration) / self.speed
            await asyncio.sleep(max(0.0, due - loop.time()))
            stream.push_frame(frame)
            self.audio_pos += frame.duration
        stream.end_input()


@dataclass
class LatencyTracker:
    """End-of-speech -> final-transcript latency per turn, in wall-clock milliseconds.

    Each END_OF_SPEECH is remembered with the wall time it arrived and how much audio had been
    pushed by then. A FINAL_TRANSCRIPT is paired with the first unpaired end of speech that
    came at or after the end of its audio (``end_time``, seconds since the stream start), so a
    turn without a final, or finals arriving out of order, do not shift the pairs.
    """

    tolerance_s: float = 0.3
    _ends: list[tuple[float, float, bool]] = field(default_factory=list)  # (audio, wall, used)
    latencies_ms: list[float] = field(default_factory=list)

    def end_of_speech(self, audio_pos: float) -> None:
        self._ends.append((audio_pos, time.monotonic(), False))

    def final(self, end_time: float) -> None:
        for i, (audio_pos, wall, used) in enumerate(self._ends):
            if not used and (end_time <= 0 or audio_pos >= end_time - self.tolerance_s):
                self._ends[i] = (audio_pos, wall, True)
                self.latencies_ms.append((time.monotonic() - wall) * 1000)
                return


class Display:
    """Interim text on one live line (only on a terminal); finals and notes as plain lines."""

    def __init__(self) -> None:
        self.console = Console(highlight=False, soft_wrap=True)
        self._live: Live | None = None
        if self.console.is_terminal:
            self._live = Live(Text(""), console=self.console, transient=True, auto_refresh=False)

    def __enter__(self) -> Display:
        if self._live:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live:
            self._live.stop()

    def interim(self, text: str) -> None:
        if self._live:
            line = Text("… " + text, style="dim", no_wrap=True, overflow="ellipsis")
            self._live.update(line, refresh=True)

    def line(self, text: str | Text) -> None:
        if self._live:
            self._live.update(Text(""), refresh=True)
        self.console.print(text)


def make_stt(local_base_url: str | None, model: str, language: str) -> openai_stt.STT:
    """The STT, with a silero VAD inside the stream that commits a turn at each pause.

    ``inference.VAD(model="silero")`` runs the native silero model bundled with
    livekit-local-inference: offline, nothing to download. A turn ends after half a second of
    silence rather than the default quarter second, so a comma pause does not split a sentence
    (the recognizer gets whole sentences, which it transcribes better).
    """
    vad = inference.VAD(model="silero", min_silence_duration=0.5)
    if local_base_url is None:  # key and endpoint from OPENAI_API_KEY / OPENAI_BASE_URL
        return openai_stt.STT(model=model, language=language, vad=vad)
    return openai_stt.STT(
        model=model, language=language, vad=vad, base_url=local_base_url, api_key="local"
    )


def host_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, never its query string (which may carry a key)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


async def transcribe(args: argparse.Namespace) -> int:
    display = Display()
    out = display.line
    path: Path = args.audio
    samples, rate = read_wav(path)
    duration = len(samples) / rate
    channels = "mono" if samples.shape[1] == 1 else f"{samples.shape[1]} channels -> mono"
    out(
        f"Audio: {path} ({duration:.1f} s, {rate} Hz, {channels}), "
        f"streamed at {args.speed:g}x real time"
    )
    reference = args.reference or load_reference(path)

    async with contextlib.AsyncExitStack() as stack:
        local = args.local or not os.environ.get("OPENAI_API_KEY")
        if not local:
            base_url = os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
            out(f"Endpoint: {host_of(base_url)} (OPENAI_API_KEY is set)")
            recognizer = make_stt(None, args.model, args.language)
        else:
            from livekit.plugins.openai_stt.server import LocalRealtimeServer

            out("Starting the embedded local server (faster-whisper)...")
            server = await stack.enter_async_context(LocalRealtimeServer(engine="whisper", port=0))
            reason = "--local" if args.local else "OPENAI_API_KEY is not set"
            out(f"Endpoint: local server at {server.base_url} ({reason})")
            recognizer = make_stt(server.base_url, args.model, args.language)
        stack.push_async_callback(recognizer.aclose)

        stream = recognizer.stream()
        stack.push_async_callback(stream.aclose)
        pacer = Pacer(path, args.speed)
        latency = LatencyTracker()
        finals: list[str] = []

        async def consume() -> None:
            async for ev in stream:
                if ev.type == stt.SpeechEventType.INTERIM_TRANSCRIPT and ev.alternatives:
                    display.interim(ev.alternatives[0].text)
                elif ev.type == stt.SpeechEventType.END_OF_SPEECH:
                    latency.end_of_speech(pacer.audio_pos)
                elif ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT and ev.alternatives:
                    alt = ev.alternatives[0]
                    latency.final(alt.end_time)
                    if alt.text.strip():
                        finals.append(alt.text.strip())
                        span = f"[{alt.start_time:.1f}s - {alt.end_time:.1f}s]"
                        out(Text.assemble((span, "cyan"), " ", alt.text.strip()))

        with display:
            pusher = asyncio.create_task(pacer.run(stream))
            try:
                # after end_input() the stream flushes the last turn and ends by itself
                await asyncio.wait_for(consume(), timeout=duration / args.speed + END_TIMEOUT_S)
                await pusher
            except APIError as e:
                out(Text(f"Error: {type(e).__name__}: {e}", style="red"))
                return 1
            except asyncio.TimeoutError:
                out(Text("Error: the stream did not end after the last frame", style="red"))
                return 1
            finally:
                pusher.cancel()

        usage = recognizer.usage

    transcript = " ".join(finals)
    out("")
    out(Text("Summary", style="bold"))
    out(f"Transcript: {transcript or '(nothing recognised)'}")
    if reference:
        if args.reference:
            source = "--reference"
        else:
            source = "the demo clip's text" if reference == DEMO_REFERENCE else "transcripts.tsv"
        out(f"WER: {word_error_rate(reference, transcript):.1%} (against {source})")
    else:
        out("WER: n/a (no reference text: pass --reference or add the clip to transcripts.tsv)")
    if latency.latencies_ms:
        lat = latency.latencies_ms
        out(
            f"End-of-speech -> final latency: median {statistics.median(lat):.0f} ms, "
            f"max {max(lat):.0f} ms ({len(lat)} turns)"
        )
    else:
        out("End-of-speech -> final latency: n/a (no turn ended before the file did)")
    out(
        f"Audio sent: {usage.audio_seconds_sent:.1f} s "
        f"(committed {usage.audio_seconds_committed:.1f} s)"
    )
    cost = "n/a" if usage.cost_usd is None else f"${usage.cost_usd:.4f}"
    note = " at OpenAI's price (the local server itself is free)" if local else ""
    out(f"Estimated cost: {cost}{note}")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Stream a WAV file in real time through livekit-plugins-openai-stt."
    )
    parser.add_argument(
        "audio", nargs="?", type=Path, help="WAV file (default: the demo clip, two_cities.wav)"
    )
    parser.add_argument(
        "--speed", type=float, default=1.0, help="playback speed: 2 = twice real time"
    )
    parser.add_argument("--reference", help="reference text for the WER (else transcripts.tsv)")
    parser.add_argument("--model", default="gpt-realtime-whisper")
    parser.add_argument("--language", default="en")
    parser.add_argument(
        "--local", action="store_true", help="use the embedded local server even with a key"
    )
    args = parser.parse_args(argv)
    if args.speed <= 0:
        parser.error("--speed must be positive")
    if args.audio is None:
        try:
            args.audio = demo_clip()
        except FileNotFoundError as e:
            parser.error(f"no AUDIO given and no demo clip: {e}")
    if not args.audio.is_file():
        parser.error(f"no such file: {args.audio}")
    return args


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args()
    try:
        sys.exit(asyncio.run(transcribe(args)))
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
