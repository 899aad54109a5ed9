"""The ``openai`` SDK (3.57.0) as a client of the local server, in each compat mode.

The SDK's own realtime client (``AsyncOpenAI().realtime.connect``, a transcription session:
``extra_query={"intent": "transcription"}``) drives the server for ``gpt-realtime-whisper`` (the
client commits at the speaker's pauses) and ``gpt-4o-transcribe`` (server VAD commits at the
pauses of real speech). Each session also gets an ``error`` (a commit with no audio), a
``failed`` item (``Faults(fail_items={2})``) and ``input_audio_buffer.cleared``. Every event the
SDK receives is validated with :func:`support.strict_event`: pydantic strict mode against the
SDK's ``RealtimeServerEvent`` union, and no field the SDK does not declare (beyond the two that
OpenAI itself sends, see ``support.UNDECLARED_BUT_SENT_BY_OPENAI``); the SDK's own
``parse_event`` must pick the same model.

How each mode is reached: ``lenient`` with the SDK's ``model=`` (on the URL); ``openai`` without
it, as OpenAI requires (docs/protocol.md §1); ``gateway`` with ``model`` in ``extra_query``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks.clips import turn_boundaries
from examples.evaluation import word_error_rate
from livekit.plugins.openai_stt.server import Faults, LocalRealtimeServer
from tests.peers.support import (
    PINNED,
    installed,
    peers_required,
    silence_pcm16,
    strict_event,
    wire_pcm16,
)

pytestmark = pytest.mark.peers

if installed("openai") is None and not peers_required():
    pytest.skip("the openai SDK is not installed (the peers extra)", allow_module_level=True)

import openai  # noqa: E402
from openai.types.realtime import (  # noqa: E402
    RealtimeTranscriptionSessionCreateRequest,
)
from openai.types.realtime.conversation_item_input_audio_transcription_completed_event import (  # noqa: E402
    UsageTranscriptTextUsageDuration,
    UsageTranscriptTextUsageTokens,
)
from openai.types.realtime.realtime_transcription_session_audio_input_turn_detection import (  # noqa: E402
    ServerVad,
)
from websockets.exceptions import ConnectionClosed  # noqa: E402

KEY = "sdk-peer-key"
COMPATS = ("lenient", "openai", "gateway")
FIRST_TURN = "It was the best of times, it was the worst of times"
"""What the demo clip says before its first pause (4.8 s)."""
LOGPROBS = "item.input_audio_transcription.logprobs"


def test_the_pinned_sdk_is_the_one_installed() -> None:
    assert installed("openai") == PINNED["openai"], "the findings below were made with this one"


def test_the_validator_is_stricter_than_the_sdk() -> None:
    """What :func:`strict_event` refuses that the SDK's models alone would let through."""
    good = {
        "type": "input_audio_buffer.speech_started",
        "event_id": "event_1",
        "item_id": "item_1",
        "audio_start_ms": 916,
    }
    strict_event(good)
    bad = [
        {**good, "type": "input_audio_buffer.speech_begun"},  # no such event
        {**good, "audio_start_ms": "916"},  # a string for an int: coerced without strict
        {**good, "audio_start_ms": 916.0},  # a float for an int: coerced without strict
        {**good, "speaker": "a"},  # a field the SDK does not declare: kept as extra by the SDK
        {k: v for k, v in good.items() if k != "item_id"},  # a required field missing
    ]
    for event in bad:
        with pytest.raises(AssertionError):
            strict_event(event)


# -- the SDK's side -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def sdk_connection(
    server: LocalRealtimeServer, compat: str, model: str
) -> AsyncIterator[Any]:
    """The SDK's transcription session on ``server``, reached as ``compat`` needs."""
    client = openai.AsyncOpenAI(api_key=KEY, base_url=server.base_url, max_retries=0)
    query = {"intent": "transcription"}
    options: dict[str, Any] = {}
    if compat == "lenient":
        options["model"] = model  # the SDK puts it on the URL
    elif compat == "gateway":
        query["model"] = model
    async with client.realtime.connect(extra_query=query, **options) as conn:
        yield conn


class Inbox:
    """Reads the SDK connection in the background; every event strictly validated (a failure
    is raised by :meth:`until` or :meth:`close`). ``closed``: the close, once it came."""

    def __init__(self, conn: Any) -> None:
        self.events: list[Any] = []
        self.closed: ConnectionClosed | None = None
        self._task = asyncio.create_task(self._read(conn))

    async def _read(self, conn: Any) -> None:
        try:
            while True:
                raw = await conn.recv_bytes()
                event = strict_event(json.loads(raw))
                # the SDK's own (unvalidated) parse picks the same model
                assert type(conn.parse_event(raw)) is type(event), event.type
                self.events.append(event)
        except ConnectionClosed as e:
            self.closed = e

    def of(self, type_: str) -> list[Any]:
        return [e for e in self.events if e.type == type_]

    async def until(self, condition: Callable[[], Any], timeout_s: float = 30.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not condition():
            if self._task.done():
                self._task.result()  # a validation failure
                if not condition():
                    raise AssertionError(f"closed ({self.closed}) before the condition held")
            assert asyncio.get_running_loop().time() < deadline, [e.type for e in self.events]
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        if self._task.done():
            self._task.result()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def append(conn: Any, pcm: bytes, chunk_bytes: int = 4800) -> None:
    """``pcm`` in appends of 100 ms (24 kHz pcm16)."""
    for i in range(0, len(pcm), chunk_bytes):
        await conn.input_audio_buffer.append(
            audio=base64.b64encode(pcm[i : i + chunk_bytes]).decode()
        )


def session(model: str, turn_detection: dict[str, Any] | None, **more: Any) -> dict[str, Any]:
    audio_input = {
        "format": {"type": "audio/pcm", "rate": 24000},
        "transcription": {"model": model, "language": "en"},
        "turn_detection": turn_detection,
    }
    return {"type": "transcription", "audio": {"input": audio_input}, **more}


def demo_turns(clip: Path) -> list[float]:
    """The ends of the demo clip's first turns (its pauses of 0.3 s or more in the first
    ~10.5 s): about 4.8, 6.4, 8.4 and 10.5 s."""
    return [
        b for b in turn_boundaries(clip, min_pause_s=0.3, min_turn_s=1.0, seconds=12.0) if b < 11.0
    ]


async def open_session(conn: Any, inbox: Inbox, update: dict[str, Any]) -> Any:
    """``session.created``, then the update and its ``session.updated``; then an ``error``: a
    commit with no audio (``input_audio_buffer_commit_empty``)."""
    await inbox.until(lambda: inbox.of("session.created"))
    created = inbox.of("session.created")[0]
    assert isinstance(created.session, RealtimeTranscriptionSessionCreateRequest)
    await conn.session.update(session=update)
    await inbox.until(lambda: inbox.of("session.updated") or inbox.of("error"))
    assert not inbox.of("error"), inbox.of("error")
    updated = inbox.of("session.updated")[0]
    assert isinstance(updated.session, RealtimeTranscriptionSessionCreateRequest)
    await conn.input_audio_buffer.commit()
    await inbox.until(lambda: inbox.of("error"))
    (error,) = inbox.of("error")
    assert error.error.type == "invalid_request_error"
    assert error.error.code == "input_audio_buffer_commit_empty"
    return updated.session


async def clear(conn: Any, inbox: Inbox) -> None:
    """Half a second of silence, then ``clear``: ``input_audio_buffer.cleared``, no item."""
    committed = len(inbox.of("input_audio_buffer.committed"))
    await append(conn, silence_pcm16(0.5))
    await conn.input_audio_buffer.clear()
    await inbox.until(lambda: inbox.of("input_audio_buffer.cleared"))
    assert len(inbox.of("input_audio_buffer.cleared")) == 1
    assert len(inbox.of("input_audio_buffer.committed")) == committed


def finished(inbox: Inbox) -> set[str]:
    kinds = (
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.input_audio_transcription.failed",
    )
    return {e.item_id for kind in kinds for e in inbox.of(kind)}


def check_items(inbox: Inbox) -> tuple[list[str], dict[str, Any]]:
    """The committed items chain by ``previous_item_id``; item 2 failed, the others completed,
    each exactly once, with deltas before ``completed`` and none after. Returns the item ids
    and their ``completed`` events."""
    committed = inbox.of("input_audio_buffer.committed")
    items = [e.item_id for e in committed]
    assert len(set(items)) == len(items)
    assert [e.previous_item_id for e in committed] == [None, *items[:-1]]
    (failed,) = inbox.of("conversation.item.input_audio_transcription.failed")
    assert failed.item_id == items[1]
    assert failed.error.message
    completed = {
        e.item_id: e for e in inbox.of("conversation.item.input_audio_transcription.completed")
    }
    assert set(completed) == set(items) - {items[1]}
    assert len(inbox.of("conversation.item.input_audio_transcription.completed")) == len(completed)
    order = {id(e): i for i, e in enumerate(inbox.events)}
    for item_id, done in completed.items():
        deltas = [
            e
            for e in inbox.of("conversation.item.input_audio_transcription.delta")
            if e.item_id == item_id
        ]
        assert deltas, item_id
        assert all(order[id(d)] < order[id(done)] for d in deltas)
    events = [e.event_id for e in inbox.events]
    assert len(set(events)) == len(events), "event ids repeat"
    return items, completed


# -- gpt-realtime-whisper: the client commits -----------------------------------------------------


@pytest.mark.parametrize("compat", COMPATS)
async def test_the_sdk_drives_gpt_realtime_whisper_with_client_commits(
    compat: str, demo_clip: Path
) -> None:
    turns = demo_turns(demo_clip)
    assert len(turns) >= 3, turns
    pcm = wire_pcm16(demo_clip, 0.0, turns[-1])
    faults = Faults(fail_items=frozenset({2}))
    async with LocalRealtimeServer(
        engine="whisper", compat=compat, api_key=KEY, faults=faults
    ) as server:
        async with sdk_connection(server, compat, "gpt-realtime-whisper") as conn:
            inbox = Inbox(conn)
            update = session("gpt-realtime-whisper", None)
            effective = await open_session(conn, inbox, update)
            start = 0
            for end_s in turns:
                end = 2 * round(end_s * 24000)
                await append(conn, pcm[start:end])
                await conn.input_audio_buffer.commit()
                start = end
            await inbox.until(lambda: len(finished(inbox)) == len(turns))
            await clear(conn, inbox)
            await inbox.close()

    assert effective.audio.input.turn_detection is None
    assert effective.audio.input.transcription.model == "gpt-realtime-whisper"
    assert effective.include is None
    assert not inbox.of("input_audio_buffer.speech_started")  # no server VAD
    items, completed = check_items(inbox)
    assert len(items) == len(turns)
    lengths = [b - a for a, b in zip([0.0, *turns[:-1]], turns, strict=True)]
    for item_id, length in zip(items, lengths, strict=True):
        if item_id in completed:
            done = completed[item_id]
            # billed by duration: the seconds of the committed audio, to the sample
            assert isinstance(done.usage, UsageTranscriptTextUsageDuration)
            assert done.usage.seconds == pytest.approx(length, abs=0.01)
            assert done.logprobs is None  # not asked for
    first = completed[items[0]].transcript
    assert word_error_rate(FIRST_TURN, first) <= 0.2, first


async def test_the_sdk_asking_logprobs_gets_the_same_transcript(demo_clip: Path) -> None:
    """``include: [logprobs]`` adds the tokens' log probabilities (each with its UTF-8 bytes,
    as the SDK's ``LogProbProperties`` has them) and changes nothing else."""
    pcm = wire_pcm16(demo_clip, 0.0, demo_turns(demo_clip)[0])
    transcripts: list[str] = []
    kind = "conversation.item.input_audio_transcription.completed"
    async with LocalRealtimeServer(engine="whisper", api_key=KEY) as server:
        for include in (None, [LOGPROBS]):
            async with sdk_connection(server, "lenient", "gpt-realtime-whisper") as conn:
                inbox = Inbox(conn)
                more = {"include": include} if include else {}
                await open_session(conn, inbox, session("gpt-realtime-whisper", None, **more))
                await append(conn, pcm)
                await conn.input_audio_buffer.commit()
                await inbox.until(lambda inbox=inbox: inbox.of(kind))
                await inbox.close()
            (done,) = inbox.of(kind)
            if include:
                assert done.logprobs, done
                assert all(lp.bytes == list(lp.token.encode()) for lp in done.logprobs)
                assert "".join(lp.token for lp in done.logprobs).strip() == done.transcript
                # per token, from the recognizer: as many as the words at least, not one value
                assert len(done.logprobs) >= len(done.transcript.split())
                assert len({lp.logprob for lp in done.logprobs}) > 1
            transcripts.append(done.transcript)
    assert word_error_rate(FIRST_TURN, transcripts[0]) <= 0.2, transcripts
    assert transcripts[1] == transcripts[0]


# -- gpt-4o-transcribe: server VAD commits at the pauses of real speech --------------------------


@pytest.mark.parametrize("compat", COMPATS)
async def test_the_sdk_drives_gpt_4o_transcribe_with_server_vad(
    compat: str, demo_clip: Path
) -> None:
    speech_s = demo_turns(demo_clip)[-1]
    pcm = wire_pcm16(demo_clip, 0.0, speech_s) + silence_pcm16(1.0)
    faults = Faults(fail_items=frozenset({2}))
    vad = {"type": "server_vad", "silence_duration_ms": 350}
    async with LocalRealtimeServer(
        engine="whisper", compat=compat, api_key=KEY, faults=faults
    ) as server:
        async with sdk_connection(server, compat, "gpt-4o-transcribe") as conn:
            inbox = Inbox(conn)
            effective = await open_session(conn, inbox, session("gpt-4o-transcribe", vad))
            await append(conn, pcm)  # no commit from here on: the server's VAD commits

            def settled() -> bool:
                stopped = inbox.of("input_audio_buffer.speech_stopped")
                committed = inbox.of("input_audio_buffer.committed")
                return (
                    len(committed) >= 2
                    and len(inbox.of("input_audio_buffer.speech_started")) == len(committed)
                    and stopped[-1].audio_end_ms >= 1000 * (speech_s - 1.0)
                    and finished(inbox) == {e.item_id for e in committed}
                )

            await inbox.until(settled)
            await clear(conn, inbox)
            await inbox.close()

    td = effective.audio.input.turn_detection
    assert isinstance(td, ServerVad), td
    assert (td.type, td.silence_duration_ms) == ("server_vad", 350)
    items, completed = check_items(inbox)
    started = inbox.of("input_audio_buffer.speech_started")
    stopped = inbox.of("input_audio_buffer.speech_stopped")
    assert [e.item_id for e in started] == items == [e.item_id for e in stopped]
    for a, b in zip(started, stopped, strict=True):
        assert a.audio_start_ms < b.audio_end_ms
    for b, next_a in zip(stopped[:-1], started[1:], strict=True):
        assert b.audio_end_ms <= next_a.audio_start_ms
    for item_id, done in completed.items():
        assert isinstance(done.usage, UsageTranscriptTextUsageTokens)
        assert done.logprobs is None  # not asked for
        deltas = [
            e.delta
            for e in inbox.of("conversation.item.input_audio_transcription.delta")
            if e.item_id == item_id
        ]
        assert "".join(deltas) == done.transcript
    first = completed[items[0]].transcript
    assert word_error_rate(FIRST_TURN, first) <= 0.2, first


# -- refusals, as the SDK sees them ---------------------------------------------------------------


@pytest.mark.parametrize("compat", COMPATS)
async def test_the_sdk_asking_server_vad_of_gpt_realtime_whisper_is_refused(compat: str) -> None:
    """Issue 12, slip 1, through a real client: the session either runs the turn detection it
    confirmed or refuses it with OpenAI's error; here it refuses, and no ``session.updated``
    confirms it (the empty commit's error behind it proves the update was handled)."""
    async with LocalRealtimeServer(engine="scripted", compat=compat, api_key=KEY) as server:
        async with sdk_connection(server, compat, "gpt-realtime-whisper") as conn:
            inbox = Inbox(conn)
            await inbox.until(lambda: inbox.of("session.created"))
            vad = {"type": "server_vad"}
            await conn.session.update(session=session("gpt-realtime-whisper", vad))
            await conn.input_audio_buffer.commit()
            await inbox.until(lambda: len(inbox.of("error")) == 2)
            await inbox.close()
    refused, empty = inbox.of("error")
    assert refused.error.code == "unsupported_turn_detection"
    assert refused.error.type == "invalid_request_error"
    assert refused.error.param == "session.audio.input.turn_detection"
    assert empty.error.code == "input_audio_buffer_commit_empty"
    assert not inbox.of("session.updated")


async def test_the_sdk_on_a_conversation_url_gets_invalid_model_in_openai_mode() -> None:
    """``connect(model=...)`` puts the model on the URL: OpenAI then opens a conversation and
    refuses the transcription ``session.update`` with ``invalid_model``, then closes 4000
    (docs/protocol.md §1, §5); ``--compat openai`` copies it, and the SDK's models accept both
    the error and the session it names."""
    async with LocalRealtimeServer(engine="scripted", compat="openai", api_key=KEY) as server:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=server.base_url, max_retries=0)
        async with client.realtime.connect(
            model="gpt-realtime-whisper", extra_query={"intent": "transcription"}
        ) as conn:
            inbox = Inbox(conn)
            await inbox.until(lambda: inbox.of("session.created"))
            await conn.session.update(session=session("gpt-realtime-whisper", None))
            await inbox.until(lambda: inbox.closed is not None)
            await inbox.close()
    (error,) = inbox.of("error")
    assert error.error.code == "invalid_model"
    assert error.error.param == "session.audio.input.transcription.model"
    assert inbox.closed is not None and inbox.closed.rcvd is not None
    assert inbox.closed.rcvd.code == 4000
