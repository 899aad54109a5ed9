"""Both plugins built the same way, the null STT, and the oracle VAD.

"ours" is ``livekit.plugins.openai_stt``; "official" is ``livekit.plugins.openai`` (its realtime
STT). Both are pointed at the same server, with the same model (:data:`MODEL`), the same API key
and the same 48 kHz 10 ms frames. The benchmarks use the public API only: ``STT``,
``stream()``, ``push_frame``, ``flush``, ``end_input``, the events, and LiveKit's base-class
``_input_ch`` for the input backlog.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, stt, vad

PLUGINS = ("ours", "official")
LABELS = {"ours": "openai_stt (ours)", "official": "livekit-plugins-openai"}

MODEL = "gpt-realtime-whisper"
"""The model both plugins ask for. The official plugin serves it only in realtime mode, with
no server turn detection (it commits on its VAD's end of speech); our local server never runs
VAD either, so this is the one model both can be measured with on the same server."""

FINAL = stt.SpeechEventType.FINAL_TRANSCRIPT
INTERIM = stt.SpeechEventType.INTERIM_TRANSCRIPT


def text(event: stt.SpeechEvent) -> str:
    """The first alternative's text ("" when there is none)."""
    return event.alternatives[0].text if event.alternatives else ""


def make_stt(
    plugin: str,
    base_url: str,
    *,
    audio_format: str = "pcm16",
    chunk_ms: int = 100,
    vad: Any = None,
    **ours: Any,
) -> Any:
    """The STT of ``plugin`` (``"ours"``, ``"official"`` or ``"null"``) pointed at ``base_url``.

    ``vad=None`` opts the official plugin out of its default Silero VAD (it then never commits);
    pass an :class:`OracleVAD` to have it commit. ``ours``: further ``openai_stt.STT`` options.
    The official STT takes its aiohttp session from :func:`http_context`.
    """
    if plugin == "ours":
        from livekit.plugins import openai_stt

        return openai_stt.STT(
            model=MODEL,
            base_url=base_url,
            api_key="bench",
            audio_format=audio_format,  # type: ignore[arg-type]
            chunk_ms=chunk_ms,
            vad=vad,
            **ours,
        )
    if plugin == "official":
        if audio_format != "pcm16":
            raise ValueError("the official plugin only sends pcm16 at 24 kHz")
        from livekit.plugins import openai as lk_openai

        return lk_openai.STT(
            model=MODEL,
            base_url=base_url,
            api_key="bench",
            use_realtime=True,
            language="en",
            vad=vad,
        )
    if plugin == "null":
        return NullSTT()
    raise ValueError(plugin)


class _NullStream(stt.RecognizeStream):
    async def _run(self) -> None:
        async for _ in self._input_ch:
            pass


class NullSTT(stt.STT):
    """The framework floor: a LiveKit STT whose stream resamples each frame to 24 kHz in the
    base class (``RecognizeStream.push_frame``), queues it, and drops it. What any streaming
    plugin that keeps the base class's per-frame path pays before sending anything."""

    def __init__(self) -> None:
        super().__init__(capabilities=stt.STTCapabilities(streaming=True, interim_results=False))

    async def _recognize_impl(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def stream(
        self, *, language: Any = None, conn_options: Any = DEFAULT_API_CONNECT_OPTIONS
    ) -> Any:
        return _NullStream(stt=self, conn_options=conn_options, sample_rate=24000)


@contextlib.asynccontextmanager
async def http_context(*, unlimited: bool = False) -> AsyncIterator[None]:
    """``livekit.agents.utils.http_context.open()``: the aiohttp session the official plugin
    takes its websockets from (ours does not use it).

    As shipped that session's connector allows 50 connections per host, and a realtime
    websocket holds its connection for the stream's life: a 51st concurrent stream of the
    official plugin waits for a free slot. ``unlimited=True`` binds a session without that
    limit instead, to measure what the plugin's own code can do.
    """
    from livekit.agents.utils import http_context as hc

    if not unlimited:
        async with hc.open():
            yield
        return
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, limit_per_host=0))
    token = hc._ContextVar.set(lambda: session)
    try:
        yield
    finally:
        hc._ContextVar.reset(token)
        await session.close()


@contextlib.asynccontextmanager
async def open_stt(plugin: str, base_url: str, **kwargs: Any) -> AsyncIterator[Any]:
    """:func:`make_stt` inside :func:`http_context`, closed on exit."""
    async with http_context():
        s = make_stt(plugin, base_url, **kwargs)
        try:
            yield s
        finally:
            with contextlib.suppress(Exception):
                await s.aclose()


class _OracleStream(vad.VADStream):
    def __init__(self, owner: OracleVAD) -> None:
        self._owner = owner
        super().__init__(owner)

    def _emit(self, kind: vad.VADEventType) -> None:
        if kind == vad.VADEventType.END_OF_SPEECH:
            self._owner.eos_times.append(time.monotonic())
        self._event_ch.send_nowait(
            vad.VADEvent(
                type=kind,
                samples_index=0,
                timestamp=time.time(),
                speech_duration=0.0,
                silence_duration=0.0,
            )
        )

    async def _main_task(self) -> None:
        owner, seen_s, speaking, k = self._owner, 0.0, False, 0
        offset = owner.next_offset()
        async for item in self._input_ch:
            if not hasattr(item, "samples_per_channel"):
                continue  # a flush sentinel
            if not speaking:
                speaking = True
                self._emit(vad.VADEventType.START_OF_SPEECH)
            seen_s += item.samples_per_channel / item.sample_rate
            boundary = owner.boundary(k)
            if boundary is not None and seen_s >= boundary + offset - 1e-9:
                speaking, k = False, k + 1
                self._emit(vad.VADEventType.END_OF_SPEECH)
        if speaking:
            self._emit(vad.VADEventType.END_OF_SPEECH)


class OracleVAD(vad.VAD):
    """A LiveKit VAD that knows where the turns end: no model, near-zero cost, zero delay.

    END_OF_SPEECH fires as soon as the audio pushed reaches the end of a turn (every ``turn_s``
    seconds, or at the explicit ``boundaries_s``), and at end of input if a turn is open;
    START_OF_SPEECH at a turn's first frame. With ``stagger``, stream ``j``'s turn ends are
    shifted by ``37 j`` frames modulo a turn. ``eos_times``: the ``time.monotonic()`` of every
    END_OF_SPEECH emitted. It stands in for the Silero VAD the official plugin loads by default
    (which it needs to commit at all), the most favourable stand-in.
    """

    def __init__(
        self,
        turn_s: float | None = None,
        boundaries_s: Sequence[float] | None = None,
        stagger: bool = False,
    ) -> None:
        super().__init__(capabilities=vad.VADCapabilities(update_interval=0.1))
        self.turn_s = turn_s
        self.boundaries_s = list(boundaries_s) if boundaries_s else None
        self.stagger = stagger
        self.eos_times: list[float] = []
        self._streams = 0

    def next_offset(self) -> float:
        """Seconds the next stream's turn ends are shifted by: ``37 j`` frames mod a turn."""
        j, self._streams = self._streams, self._streams + 1
        if not self.stagger or not self.turn_s:
            return 0.0
        return (j * 37 % max(1, round(self.turn_s * 100))) / 100

    def boundary(self, k: int) -> float | None:
        """Where turn ``k`` ends, seconds of audio (None: no more turn ends)."""
        if self.boundaries_s is not None:
            return self.boundaries_s[k] if k < len(self.boundaries_s) else None
        return None if self.turn_s is None else self.turn_s * (k + 1)

    def stream(self) -> _OracleStream:
        return _OracleStream(self)
