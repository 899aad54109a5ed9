"""LiveKit's STT surface and OpenAI's current model contracts, against the local server in
memory: keyterms, chat context, prewarm, PREFLIGHT at a flush, speech times and finals at the
speaker's pauses under server VAD (no double commit), source languages, shutdown notices, and
failures a gateway or a refused configuration make fatal at once."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from pathlib import Path

import pytest
from livekit.agents import APIError
from livekit.agents import stt as lk_stt
from livekit.agents.llm import ChatMessage
from livekit.agents.voice.events import ConversationItemAddedEvent
from livekit.plugins import openai_stt

from examples.evaluation import wav_frames
from livekit.plugins.openai_stt import transport
from livekit.plugins.openai_stt.models import DEFAULT_SERVER_VAD
from livekit.plugins.openai_stt.options import MAX_CONTEXT_CHARS
from livekit.plugins.openai_stt.protocol.errors import classify_close
from livekit.plugins.openai_stt.server import LocalRealtimeServer, ScriptedEngine
from tests.helpers import FAST_RETRY, Recorder, T, collect, frames, memory_connect, until

BASE = "http://127.0.0.1:9/v1"


def _stt(server: LocalRealtimeServer, recorder: Recorder, **kwargs: object) -> openai_stt.STT:
    recorder.inner = memory_connect(server)
    return openai_stt.STT(base_url=BASE, api_key="t", connect=recorder.connect, **kwargs)  # type: ignore[arg-type]


def _updates(recorder: Recorder) -> list[dict]:
    return [m["session"] for m in recorder.sent if m["type"] == "session.update"]


def _transcription(session: dict) -> dict:
    return session["audio"]["input"]["transcription"]


async def _first_update(**kwargs: object) -> dict:
    """The first ``session`` an ``STT(**kwargs)`` stream sends, against an in-memory server."""
    recorder = Recorder()
    async with LocalRealtimeServer(engine="scripted", port=None) as server:
        stream = _stt(server, recorder, **kwargs).stream(conn_options=FAST_RETRY)
        stream.end_input()
        await asyncio.wait_for(collect(stream), 10)
        await stream.aclose()
    return _updates(recorder)[0]


# -- what is sent ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "turn_detection"),
    [
        ({"model": "gpt-4o-transcribe"}, DEFAULT_SERVER_VAD),  # the official plugin's default
        ({"model": "gpt-4o-transcribe", "turn_detection": None}, None),
        ({"model": "whisper-1"}, DEFAULT_SERVER_VAD),
        ({"model": "gpt-realtime-whisper"}, None),  # no server VAD: the client commits
        ({"model": "gpt-live-transcribe"}, None),
    ],
)
async def test_turn_detection_defaults_as_in_the_official_plugin(
    kwargs: dict, turn_detection: object
) -> None:
    first = await _first_update(**kwargs)
    assert first["audio"]["input"]["turn_detection"] == turn_detection


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"model": "gpt-live-transcribe", "language": "en-US"}, {"languages": ["en"]}),
        ({"model": "gpt-live-transcribe", "language": ["en", "fr"]}, {"languages": ["en", "fr"]}),
        ({"model": "gpt-transcribe", "detect_language": True}, {}),
        ({"model": "gpt-4o-transcribe", "language": ["de"]}, {"languages": ["de"]}),
        ({"model": "gpt-realtime-whisper", "language": "fr"}, {"language": "fr"}),
    ],
)
async def test_language_goes_as_language_or_languages_never_both(
    kwargs: dict, expected: dict
) -> None:
    sent = _transcription(await _first_update(**kwargs))
    sent_languages = {k: sent[k] for k in ("language", "languages") if k in sent}
    if kwargs["model"] == "gpt-4o-transcribe":  # takes only `language`: a list is left out
        assert sent_languages == {}
    else:
        assert sent_languages == expected


def test_a_model_announced_for_shutdown_warns_once_naming_its_replacement(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="livekit.plugins.openai_stt")
    from livekit.plugins.openai_stt import opener as opener_module

    opener_module._warned_shutdown.discard("gpt-4o-mini-transcribe")
    openai_stt.STT(model="gpt-4o-mini-transcribe", api_key="k")
    openai_stt.STT(model="gpt-4o-mini-transcribe", api_key="k")
    notices = [r for r in caplog.records if r.getMessage() == "model announced for shutdown"]
    assert len(notices) == 1
    assert notices[0].replacement == "gpt-live-transcribe"  # type: ignore[attr-defined]
    assert notices[0].shutdown_date == "2027-02-26"  # type: ignore[attr-defined]


# -- keyterms, chat context, prewarm ----------------------------------------------------------


async def test_session_keyterms_join_the_keywords_of_models_that_take_them() -> None:
    recorder = Recorder()
    async with LocalRealtimeServer(engine="scripted", port=None) as server:
        stt = _stt(server, recorder, model="gpt-live-transcribe", keywords=["Siobhan"])
        assert stt.capabilities.keyterms
        stream = stt.stream(conn_options=FAST_RETRY)
        for frame in frames(0.2):
            stream.push_frame(frame)
        stt._update_session_keyterms(["LiveKit", "Siobhan"])
        stream.end_input()
        await asyncio.wait_for(collect(stream), 10)
        await stream.aclose()
    updates = _updates(recorder)
    assert len(updates) == 2 and recorder.connects == 1  # applied to the open session
    assert _transcription(updates[1])["keywords"] == ["Siobhan", "LiveKit"]
    assert not openai_stt.STT(model="gpt-realtime-whisper", api_key="k").capabilities.keyterms


async def test_chat_context_goes_after_the_prompt_bounded() -> None:
    recorder = Recorder()
    async with LocalRealtimeServer(engine="scripted", port=None) as server:
        stt = _stt(server, recorder, model="gpt-live-transcribe", prompt="A support call.")
        assert stt.capabilities.chat_context
        stream = stt.stream(conn_options=FAST_RETRY)
        for frame in frames(0.2):
            stream.push_frame(frame)
        for words in ("How can I help?", "x " * 1000, "Ask about Siobhan."):
            item = ChatMessage(role="assistant", content=[words])
            stt._push_conversation_item(ConversationItemAddedEvent(item=item))
        stream.end_input()
        await asyncio.wait_for(collect(stream), 10)
        await stream.aclose()
    prompt = _transcription(_updates(recorder)[-1])["prompt"]
    assert prompt.startswith("A support call.\n") and prompt.endswith("Ask about Siobhan.")
    assert len(prompt) <= len("A support call.\n") + MAX_CONTEXT_CHARS
    assert not openai_stt.STT(model="gpt-realtime-whisper", api_key="k").capabilities.chat_context


async def test_prewarm_opens_the_session_the_first_stream_then_takes() -> None:
    recorder = Recorder()
    acquired: list[object] = []
    async with LocalRealtimeServer(engine="scripted", port=None) as server:
        stt = _stt(server, recorder)
        stt.on("metrics_collected", acquired.append)
        stt.prewarm()
        await until(lambda: recorder.connects == 1)
        stream = stt.stream(conn_options=FAST_RETRY)
        for frame in frames(0.3):
            stream.push_frame(frame)
        stream.end_input()
        events = await asyncio.wait_for(collect(stream), 10)
        await stream.aclose()
        await stt.aclose()
    assert recorder.connects == 1  # the stream ran on the prewarmed session
    assert [e.alternatives[0].text for e in events if e.type == T.FINAL_TRANSCRIPT]
    reports = [m for m in acquired if getattr(m, "acquire_time", None) is not None]
    assert reports and reports[0].connection_reused is True  # type: ignore[attr-defined]


# -- PREFLIGHT, speech times, server VAD -------------------------------------------------------


async def test_a_flush_gives_a_preflight_transcript_from_the_text_streamed_before_it() -> None:
    engine = ScriptedEngine(["And so my fellow Americans ask not"])  # partials: its first words
    async with LocalRealtimeServer(engine=engine, port=None, delta_interval_s=0.05) as server:
        stt = _stt(server, Recorder(), model="gpt-realtime-whisper")
        stream = stt.stream(conn_options=FAST_RETRY)
        events: list[lk_stt.SpeechEvent] = []

        async def consume() -> None:
            async for event in stream:
                events.append(event)

        consumer = asyncio.create_task(consume())
        for frame in frames(3.0, frame_ms=100):  # 3 s of audio over about 0.6 s
            stream.push_frame(frame)
            await asyncio.sleep(0.02)
        await until(lambda: any(e.type == T.INTERIM_TRANSCRIPT for e in events))
        stream.flush()
        stream.end_input()
        await asyncio.wait_for(consumer, 10)
        await stream.aclose()
    kinds = [e.type for e in events]
    preflight = events[kinds.index(T.PREFLIGHT_TRANSCRIPT)]
    interims = [e.alternatives[0].text for e in events[: kinds.index(T.PREFLIGHT_TRANSCRIPT)]]
    assert preflight.alternatives[0].text == interims[-1]  # the text streamed before the flush
    assert kinds.index(T.PREFLIGHT_TRANSCRIPT) < kinds.index(T.FINAL_TRANSCRIPT)


async def test_server_vad_gives_finals_at_the_pauses_with_speech_times_and_no_double_commit(
    demo_clip: Path,
) -> None:
    """A bare ``stream()`` of a server-VAD model: finals as the speaker pauses, before
    ``end_input()``; START_OF_SPEECH carries the onset's wall-clock time; a flush right after
    the server's own commit sends no commit (nothing is left to commit)."""
    recorder = Recorder()
    async with LocalRealtimeServer(engine="scripted", port=None) as server:
        stt = _stt(server, recorder, model="gpt-4o-transcribe")
        stream = stt.stream(conn_options=FAST_RETRY)
        events: list[lk_stt.SpeechEvent] = []

        async def consume() -> None:
            async for event in stream:
                events.append(event)

        consumer = asyncio.create_task(consume())
        clip = list(wav_frames(demo_clip, frame_ms=100))[:130]  # 13 s: several pauses
        for frame in clip:
            stream.push_frame(frame)
            await asyncio.sleep(0)
        await until(lambda: sum(e.type == T.FINAL_TRANSCRIPT for e in events) >= 2, 10)
        commits_before = recorder.types().count("input_audio_buffer.commit")
        await until(lambda: sum(e.type == T.END_OF_SPEECH for e in events) >= 2, 10)
        stream.flush()  # what an AgentSession does at the end of the turn
        stream.end_input()
        await asyncio.wait_for(consumer, 15)
        await stream.aclose()
    assert sum(e.type == T.FINAL_TRANSCRIPT for e in events) >= 2
    assert commits_before == 0  # the server committed by itself
    starts = [e for e in events if e.type == T.START_OF_SPEECH]
    assert starts and all(e.speech_start_time is not None for e in starts)
    errors = [m for m in recorder.sent if m["type"] == "error"]
    assert not errors


async def test_detected_languages_become_source_languages() -> None:
    async with LocalRealtimeServer(engine="scripted", port=None) as server:
        stt = _stt(server, Recorder(), model="gpt-transcribe", language="fr")
        stream = stt.stream(conn_options=FAST_RETRY)
        for frame in frames(0.5):
            stream.push_frame(frame)
        stream.end_input()
        events = await asyncio.wait_for(collect(stream), 10)
        await stream.aclose()
    (final,) = [e for e in events if e.type == T.FINAL_TRANSCRIPT]
    assert final.alternatives[0].language == "fr"
    assert final.alternatives[0].source_languages == ["fr"]


# -- failures a gateway or a refused configuration make fatal ----------------------------------


class Refusing:
    """The transport seam: a server that answers the session configuration with ``first``
    (an error event), then closes with ``close_code``."""

    def __init__(self, first: dict, close_code: int | None) -> None:
        self.connects = 0
        self.first = first
        self.close_code = close_code

    async def connect(
        self, url: str, headers: Mapping[str, str], timeout: float
    ) -> transport.Connection:
        self.connects += 1
        outbox: asyncio.Queue[str | None] = asyncio.Queue()
        outbox.put_nowait(json.dumps({"type": "session.created", "session": {}}))
        peer = self

        class Conn:
            async def send(self, message: str | bytes) -> None:
                text = message.decode() if isinstance(message, bytes) else message
                if json.loads(text)["type"] == "session.update":
                    first = dict(peer.first)
                    first["error"] = {**first["error"], "event_id": json.loads(text)["event_id"]}
                    outbox.put_nowait(json.dumps(first))
                    if peer.close_code is not None:
                        outbox.put_nowait(None)

            async def recv(self) -> str:
                message = await outbox.get()
                if message is None:
                    raise transport.TransportError(classify_close(peer.close_code, "bye"))
                return message

            async def aclose(self) -> None:
                pass

        return Conn()


@pytest.mark.parametrize(
    ("error", "close_code", "said"),
    [
        # LiteLLM: the upstream refused the proxy's key: server_error, then close 1008
        (
            {
                "type": "server_error",
                "message": "Upstream realtime handshake rejected with HTTP 401",
            },
            1008,
            "HTTP 401",
        ),
        # an unknown model through a gateway
        (
            {"type": "server_error", "message": "Invalid model name passed in model=nope"},
            1011,
            "nope",
        ),
        # a server that refuses our session.update (it names its event_id): no 43 s of audio
        ({"type": "invalid_request_error", "code": "invalid_event", "message": "bad"}, None, "bad"),
    ],
)
async def test_a_refusal_is_fatal_at_once_with_the_servers_message(
    error: dict, close_code: int | None, said: str
) -> None:
    peer = Refusing({"type": "error", "error": error}, close_code)
    stt = openai_stt.STT(base_url=BASE, api_key="t", connect=peer.connect)
    stream = stt.stream(conn_options=FAST_RETRY)
    for frame in frames(0.5):
        stream.push_frame(frame)
    stream.end_input()
    with pytest.raises(APIError) as info:
        await asyncio.wait_for(collect(stream), 10)
    await stream.aclose()
    assert not info.value.retryable and peer.connects == 1
    assert said in str(info.value)
