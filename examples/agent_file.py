"""Run a LiveKit ``AgentSession`` on a WAV file, without a room, and print the user's turns.

    python examples/agent_file.py [AUDIO] [--speed X]

The session is the one a room agent runs (silero VAD, the default turn handling, this plugin's
STT), but its microphone is a WAV file: :class:`WavAudioInput` is an
``livekit.agents.voice.io.AudioInput`` that yields the file's frames at real-time pace, then a
little silence so the last turn can end, then stops. No LLM and no TTS: the agent only listens,
and each completed user turn is printed as the session commits it.

Where the audio goes: to OpenAI when ``OPENAI_API_KEY`` is set (``$OPENAI_BASE_URL`` is
honoured), otherwise to the local faster-whisper server started inside this process.
``--local`` forces the local server.

The reusable pieces, :class:`WavAudioInput` and :func:`run_agent_on_file`, are imported by the
tests (``tests/test_agent_pipeline.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

from evaluation import demo_clip, read_wav, wav_frames
from livekit import rtc
from livekit.agents import (
    Agent,
    AgentSession,
    APIError,
    CloseEvent,
    UserInputTranscribedEvent,
    UserStateChangedEvent,
    inference,
    llm,
)
from livekit.agents.stt import STT
from livekit.agents.vad import VAD
from livekit.agents.voice import io
from livekit.plugins import openai_stt


class WavAudioInput(io.AudioInput):
    """A WAV file as an ``AgentSession`` audio input ("microphone").

    Yields mono ``rtc.AudioFrame``\\ s of ``frame_ms`` milliseconds at the file's sample rate
    (stereo is downmixed), paced on a monotonic schedule at ``speed`` times real time from the
    first frame the session asks for; then ``trailing_silence_s`` seconds of zeros so the VAD
    sees the last turn end; then the iteration stops. ``done`` is set at that point and
    ``audio_pos`` counts the seconds yielded so far.

    Raises (at construction) what :func:`evaluation.read_wav`
    raises for a missing or unreadable file.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        speed: float = 1.0,
        trailing_silence_s: float = 1.5,
        frame_ms: int = 10,
    ) -> None:
        super().__init__(label=f"wav:{Path(path).name}")
        if speed <= 0:
            raise ValueError("speed must be positive")
        _, self.sample_rate = read_wav(path)
        self._frames = self._all_frames(Path(path), trailing_silence_s, frame_ms)
        self._speed = speed
        self._start: float | None = None
        self.audio_pos = 0.0
        self.done = asyncio.Event()

    def _all_frames(self, path: Path, silence_s: float, frame_ms: int) -> Iterator[rtc.AudioFrame]:
        yield from wav_frames(path, frame_ms=frame_ms)
        samples = self.sample_rate * frame_ms // 1000
        for _ in range(round(silence_s * 1000 / frame_ms)):
            yield rtc.AudioFrame.create(self.sample_rate, 1, samples)  # zeros

    async def __anext__(self) -> rtc.AudioFrame:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        frame = next(self._frames, None)
        if frame is None:
            self.done.set()
            raise StopAsyncIteration
        due = self._start + (self.audio_pos + frame.duration) / self._speed
        await asyncio.sleep(max(0.0, due - loop.time()))
        self.audio_pos += frame.duration
        return frame


class ListeningAgent(Agent):
    """An agent that only listens: it records each completed user turn and never replies."""

    def __init__(self, on_turn: Callable[[str], None]) -> None:
        super().__init__(instructions="You only listen and transcribe; you never answer.")
        self._on_turn = on_turn

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        # called with the committed user turn; with no LLM the session then stops there
        self._on_turn(new_message.text_content or "")


async def run_agent_on_file(
    path: str | Path,
    stt: STT,
    *,
    vad: VAD | None = None,
    speed: float = 1.0,
    trailing_silence_s: float = 1.5,
    settle_timeout_s: float = 6.0,
    on_turn: Callable[[str], None] | None = None,
) -> list[str]:
    """Play a WAV file into an ``AgentSession`` (no room, no LLM, no TTS); return the user turns.

    The session uses ``stt`` and ``vad`` (default: ``inference.VAD(model="silero")``, the
    native silero model, offline) with its default turn handling. After the file and its
    trailing silence have been played, waits until the user is no longer speaking and every
    turn that was heard has been committed, or until nothing has happened for
    ``settle_timeout_s`` seconds (a burst of noise can open a turn that never gets text), then
    closes the session. ``stt`` is not closed.

    Args:
        path: a PCM WAV file (any rate; stereo is downmixed).
        stt: the speech-to-text, e.g. ``openai_stt.STT(...)``.
        vad: voice activity detector for the session.
        speed: playback speed (2.0 = twice real time).
        trailing_silence_s: seconds of silence played after the file.
        settle_timeout_s: seconds of quiet after which an unfinished turn is given up.
        on_turn: called with each user turn's text as the session commits it.

    Returns:
        The text of each completed user turn, in order (empty turns left out).

    Raises:
        livekit.agents.APIError: when the STT fails for good and the session closes (e.g. a
            rejected key); a retryable failure is retried by the framework first.
    """
    turns: list[str] = []
    last_activity = time.monotonic()
    turn_open = False  # speech or text was heard that no committed turn has covered yet
    close_error: list[BaseException] = []

    def turn_completed(text: str) -> None:
        nonlocal last_activity, turn_open
        last_activity, turn_open = time.monotonic(), False
        if text.strip():
            turns.append(text.strip())
            if on_turn is not None:
                on_turn(text.strip())

    session: AgentSession = AgentSession(
        stt=stt,
        vad=vad if vad is not None else inference.VAD(model="silero"),
        user_away_timeout=None,  # no "away" state while the file is silent
        aec_warmup_duration=None,  # the agent never speaks: there is no echo to wait for
    )

    @session.on("user_state_changed")
    def _on_user_state(ev: UserStateChangedEvent) -> None:
        nonlocal last_activity, turn_open
        last_activity = time.monotonic()
        if ev.new_state == "speaking":
            turn_open = True

    @session.on("user_input_transcribed")
    def _on_transcribed(ev: UserInputTranscribedEvent) -> None:
        nonlocal last_activity, turn_open
        last_activity = time.monotonic()
        if ev.transcript.strip():
            turn_open = True

    @session.on("close")
    def _on_close(ev: CloseEvent) -> None:  # e.g. the STT failed for good (bad key)
        if ev.error is not None:
            close_error.append(ev.error.error)

    def settled() -> bool:
        if close_error:
            return True
        if not audio.done.is_set() or session.user_state == "speaking":
            return False
        return not turn_open or time.monotonic() - last_activity >= settle_timeout_s

    audio = WavAudioInput(path, speed=speed, trailing_silence_s=trailing_silence_s)
    session.input.audio = audio
    await session.start(ListeningAgent(turn_completed), record=False)
    try:
        while not settled():  # noqa: ASYNC110 (polls the session state)
            await asyncio.sleep(0.05)
    finally:
        await session.aclose()
    if close_error:
        raise close_error[0]
    return turns


def make_stt(local_base_url: str | None, model: str) -> openai_stt.STT:
    """``openai_stt.STT`` for OpenAI (key and URL from the environment) or the local server."""
    if local_base_url is None:
        return openai_stt.STT(model=model)
    return openai_stt.STT(model=model, base_url=local_base_url, api_key="local")


async def main(args: argparse.Namespace) -> int:
    async with contextlib.AsyncExitStack() as stack:
        if os.environ.get("OPENAI_API_KEY") and not args.local:
            base_url = os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
            host = urlsplit(base_url).hostname  # never the key, nor a query string
            print(f"Endpoint: {host} (OPENAI_API_KEY is set)")
            recognizer = make_stt(None, args.model)
        else:
            from livekit.plugins.openai_stt.server import LocalRealtimeServer

            server = await stack.enter_async_context(LocalRealtimeServer(engine="whisper"))
            print(f"Endpoint: local faster-whisper server at {server.base_url}")
            recognizer = make_stt(server.base_url, args.model)
        stack.push_async_callback(recognizer.aclose)

        print(f"Playing {args.audio} into an AgentSession at {args.speed:g}x real time")
        try:
            turns = await run_agent_on_file(
                args.audio,
                recognizer,
                speed=args.speed,
                on_turn=lambda text: print(f"user: {text}", flush=True),
            )
        except APIError as e:
            print(f"Error: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
    print(f"{len(turns)} user turn(s).")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "audio", nargs="?", type=Path, help="a WAV file (default: the demo clip, two_cities.wav)"
    )
    parser.add_argument("--speed", type=float, default=1.0, help="2 = twice real time")
    parser.add_argument("--model", default="gpt-realtime-whisper")
    parser.add_argument("--local", action="store_true", help="use the local server even with a key")
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


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(main(parse_args())))
