"""Pure tables: models behave as their class does (docs/protocol.md §2, §4), and the limits.

- pre-commit deltas (gpt-realtime-whisper, gpt-live-transcribe): the stable-prefix logic and
  when a partial decode is due;
- server VAD (gpt-4o-*transcribe, whisper-1 with ``turn_detection``): the turn state machine
  fed with speech probabilities;
- bounded memory (``max_buffer_s``) and the session limit (503) at the handshake.

No event loop, no sockets, no clock: time comes in as ``now``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from livekit.plugins.openai_stt.server.config import ConfigError, parse_turn_detection
from livekit.plugins.openai_stt.server.handshake import HandshakeReply, check_handshake
from livekit.plugins.openai_stt.server.jobs import PartialJob, Recognition
from livekit.plugins.openai_stt.server.limits import sequential_ids
from livekit.plugins.openai_stt.server.partials import (
    DEFAULT_MAX_PARTIAL_S,
    continuation,
    partial_interval,
    stable_delta,
    stable_prefix,
)
from livekit.plugins.openai_stt.server.session import ServerSession
from livekit.plugins.openai_stt.server.turns import TurnDetection

BYTES_PER_MS = 48  # pcm16 at 24 kHz
DELTA = "conversation.item.input_audio_transcription.delta"
COMPLETED = "conversation.item.input_audio_transcription.completed"


def ev(type_: str, **fields: Any) -> str:
    return json.dumps({"type": type_, **fields})


def append(ms: float) -> str:
    audio = b"\x01\x00" * int(ms * BYTES_PER_MS / 2)
    return ev("input_audio_buffer.append", audio=base64.b64encode(audio).decode())


def session(
    model: str = "gpt-realtime-whisper", turn_detection: dict | None = None, **kwargs: Any
) -> ServerSession:
    s = ServerSession(new_id=sequential_ids(), **kwargs)
    s.opened(0.0)
    body: dict[str, Any] = {"transcription": {"model": model}}
    if turn_detection is not None:
        body["turn_detection"] = turn_detection
    (updated,) = s.receive(
        ev("session.update", session={"type": "transcription", "audio": {"input": body}}), 0.0
    ).sent
    assert updated["type"] == "session.updated", updated
    return s


def types(events: list[Any]) -> list[str]:
    return [e["type"] for e in events if isinstance(e, dict)]


def deltas(events: list[Any]) -> str:
    return "".join(e["delta"] for e in events if isinstance(e, dict) and e["type"] == DELTA)


# ----------------------------------------------------------------------------- stable prefix


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        (None, ["And", "so"], []),  # one hypothesis alone is never stable
        ([], ["And"], []),
        (["And", "so"], ["And", "so", "my"], ["And", "so"]),
        (["And", "so", "my"], ["And", "so"], ["And", "so"]),
        (["And", "sew"], ["And", "so", "my"], ["And"]),
        (["And", "so."], ["And", "so", "my"], ["And", "so"]),  # without case and punctuation
        (["and", "So."], ["And", "so,", "my"], ["And", "so,"]),  # ... in the newer spelling
        (["Ask"], ["And"], []),
    ],
)
def test_stable_prefix_is_the_words_two_consecutive_hypotheses_agree_on(
    previous: list[str] | None, current: list[str], expected: list[str]
) -> None:
    assert stable_prefix(previous, current) == expected


@pytest.mark.parametrize(
    ("streamed", "words", "delta"),
    [
        ("", [], ""),
        ("", ["And", "so"], "And so"),
        ("And so", ["And", "so", "my"], " my"),
        ("And so", ["And", "so"], ""),
        ("And so my", ["And", "so"], ""),  # shorter than what was streamed
        ("And so,", ["and", "so", "my"], " my"),
        # disagreements: never retract, continue after where the streamed text ends
        (
            "And so my fellow Americans asked",
            ["And", "so", "my", "fellow", "Americans", "ask", "not", "what"],
            " not what",
        ),
        ("And so am I", ["And", "so", "my", "fellow", "Americans", "ask"], " Americans ask"),
        ("And so my fell", ["And", "so", "my", "fellow", "Americans"], " Americans"),
        ("Ask snot", ["Ask", "not", "what", "your"], " what your"),
        ("x y", ["a", "b", "c"], " c"),  # nothing in common: word for word
    ],
)
def test_continuation_appends_what_follows_the_streamed_text(
    streamed: str, words: list[str], delta: str
) -> None:
    assert continuation(streamed, words) == delta


@pytest.mark.parametrize(
    ("streamed", "previous", "current", "delta"),
    [
        ("", None, ["And", "so"], ""),
        ("", ["And", "so"], ["And", "so", "my"], "And so"),
        ("And so", ["And", "so", "my"], ["And", "so", "my", "fellow"], " my"),
        ("And so", ["And", "so"], ["And", "so", "my"], ""),  # nothing new is stable
        ("And so my", ["And", "so"], ["And", "so", "me"], ""),
        ("And sew", ["And", "so", "my"], ["And", "so", "my"], " my"),  # past a disagreement
        ("And", ["And", "so"], ["And", "so"], " so"),
    ],
)
def test_stable_delta_only_ever_appends_agreed_words(
    streamed: str, previous: list[str] | None, current: list[str], delta: str
) -> None:
    assert stable_delta(streamed, previous, current) == delta


@pytest.mark.parametrize(
    ("base", "backlog", "interval"),
    [(1.0, 0, 1.0), (1.0, 1, 2.0), (1.0, 3, 4.0), (0.5, 2, 1.5), (1.0, -1, 1.0)],
)
def test_partial_interval_stretches_with_the_decode_backlog(
    base: float, backlog: int, interval: float
) -> None:
    assert partial_interval(base, backlog) == pytest.approx(interval)


# ----------------------------------------------------------------------------- partial scheduling


@pytest.mark.parametrize(
    ("now", "backlog", "due"),
    [
        (0.99, 0, False),
        (1.0, 0, True),  # delta_interval_s after the buffer's first audio
        (1.99, 1, False),  # one job waiting: twice the interval
        (2.0, 1, True),
        (3.99, 3, False),
        (4.0, 3, True),
    ],
)
def test_a_partial_is_due_one_interval_after_the_buffer_opened_stretched_by_the_backlog(
    now: float, backlog: int, due: bool
) -> None:
    s = session()
    s.receive(append(600), 0.0)
    job = s.take_partial(now, backlog)
    assert (job is not None) == due


@pytest.mark.parametrize(
    ("model", "delta_interval_s", "partials"),
    [
        ("gpt-realtime-whisper", 1.0, True),
        ("gpt-live-transcribe", 1.0, True),
        ("gpt-realtime-whisper-2026-05-07", 1.0, True),  # a dated snapshot
        ("gpt-realtime-whisper", None, False),  # turned off
        ("gpt-transcribe", 1.0, False),
        ("gpt-4o-transcribe", 1.0, False),
        ("gpt-4o-mini-transcribe", 1.0, False),
        ("whisper-1", 1.0, False),
        ("my-local-model", 1.0, False),
    ],
)
def test_only_models_with_pre_commit_deltas_get_partial_decodes(
    model: str, delta_interval_s: float | None, partials: bool
) -> None:
    s = session(model, delta_interval_s=delta_interval_s)
    s.receive(append(2000), 0.0)
    assert (s.take_partial(10.0) is not None) == partials


@pytest.mark.parametrize(
    ("steps", "due_at"),
    [
        # (now, appended ms) steps, then when the next partial is due (None: not wanted)
        ([(0.0, 300)], None),  # under MIN_PARTIAL_S of open audio
        ([(0.0, 300), (0.4, 300)], 1.0),  # opened at 0.0
        ([(0.5, 600)], 1.5),  # the interval counts from the first audio of the buffer
    ],
)
def test_partial_due_time_counts_from_the_first_audio_of_the_open_buffer(
    steps: list[tuple[float, int]], due_at: float | None
) -> None:
    s = session()
    for now, ms in steps:
        s.receive(append(ms), now)
    assert s.partial_due_at() == due_at


def test_one_partial_in_flight_then_the_next_needs_new_audio_and_another_interval() -> None:
    s = session()
    s.receive(append(600), 0.0)
    job = s.take_partial(1.0)
    assert isinstance(job, PartialJob) and job.item_id == "item_001"
    assert job.duration_s == pytest.approx(0.6)
    assert s.partial_due_at() is None and s.take_partial(5.0) is None  # in flight
    s.partial_transcribed(job, Recognition("hello"))
    assert s.partial_due_at() is None  # no new audio yet
    s.receive(append(100), 1.2)
    assert s.partial_due_at() is None  # under MIN_PARTIAL_GROWTH_S of new audio
    s.receive(append(200), 1.3)
    assert s.partial_due_at() == 2.0  # the previous partial was taken at 1.0
    assert s.take_partial(2.0) is not None


def test_a_dropped_partial_can_be_taken_again() -> None:
    s = session()
    s.receive(append(600), 0.0)
    job = s.take_partial(1.0)
    assert job is not None
    s.partial_failed(job)
    s.receive(append(300), 1.1)
    assert s.take_partial(2.0) is not None


def test_no_partials_past_max_partial_s_of_open_audio() -> None:
    s = session(max_partial_s=2.0)
    s.receive(append(2100), 0.0)
    assert s.take_partial(10.0) is None
    assert DEFAULT_MAX_PARTIAL_S == 30.0


# ----------------------------------------------------------------------------- pre-commit deltas


def partial(s: ServerSession, now: float, text: str, ms: int = 400) -> list[Any]:
    s.receive(append(ms), now - 0.5)
    job = s.take_partial(now)
    assert job is not None
    return s.partial_transcribed(job, Recognition(text)).sent


def test_pre_commit_deltas_carry_the_next_item_id_and_the_final_sends_only_the_rest() -> None:
    s = session()
    s.receive(append(200), 0.0)
    before: list[Any] = []
    before += partial(s, 1.0, "And so")
    before += partial(s, 2.0, "And so my")
    before += partial(s, 3.0, "And so my fellow")
    assert deltas(before) == "And so my"
    assert [e["delta"] for e in before] == ["And", " so", " my"]
    assert {e["item_id"] for e in before} == {"item_001"}
    commit = s.receive(ev("input_audio_buffer.commit"), 3.2)
    (committed,) = commit.sent
    assert committed["item_id"] == "item_001"
    after = s.transcribed(commit.jobs[0], Recognition("And so my fellow Americans")).sent
    assert types(after) == [DELTA, DELTA, COMPLETED]
    assert deltas(before) + deltas(after) == after[-1]["transcript"]


def test_a_final_that_disagrees_with_the_streamed_text_still_only_appends() -> None:
    s = session()
    s.receive(append(200), 0.0)
    partial(s, 1.0, "Ask snot")
    streamed = deltas(partial(s, 2.0, "Ask snot what"))
    assert streamed == "Ask snot"
    commit = s.receive(ev("input_audio_buffer.commit"), 2.5)
    after = s.transcribed(commit.jobs[0], Recognition("Ask not what your country")).sent
    assert types(after) == [DELTA, DELTA, DELTA, COMPLETED]
    assert deltas(after) == " what your country"
    assert after[-1]["transcript"] == "Ask not what your country"  # authoritative


def test_a_final_that_completes_a_streamed_word_extends_it_exactly() -> None:
    s = session()
    s.receive(append(200), 0.0)
    partial(s, 1.0, "And so my fell")
    streamed = deltas(partial(s, 2.0, "And so my fell"))
    commit = s.receive(ev("input_audio_buffer.commit"), 2.5)
    after = s.transcribed(commit.jobs[0], Recognition("And so my fellow Americans")).sent
    assert streamed + deltas(after) == "And so my fellow Americans"


def test_a_partial_result_for_a_committed_buffer_is_ignored() -> None:
    s = session()
    s.receive(append(800), 0.0)
    job = s.take_partial(1.0)
    assert job is not None
    s.receive(ev("input_audio_buffer.commit"), 1.1)
    assert s.partial_transcribed(job, Recognition("late words")).sent == []


def test_after_a_commit_partials_start_afresh_under_the_next_item_id() -> None:
    s = session()
    s.receive(append(200), 0.0)
    partial(s, 1.0, "one two")
    partial(s, 2.0, "one two three")
    s.receive(ev("input_audio_buffer.commit"), 2.2)
    s.receive(append(700), 3.0)
    job = s.take_partial(4.0)
    assert job is not None and job.item_id == "item_002" and job.previous_item_id == "item_001"
    assert s.partial_transcribed(job, Recognition("four five")).sent == []  # first hypothesis


@pytest.mark.parametrize(
    ("streamed_before_clear", "next_id"), [(True, "item_002"), (False, "item_001")]
)
def test_a_clear_after_pre_commit_deltas_gives_the_next_item_a_new_id(
    streamed_before_clear: bool, next_id: str
) -> None:
    s = session()
    s.receive(append(200), 0.0)
    if streamed_before_clear:
        partial(s, 1.0, "one two")
        assert deltas(partial(s, 2.0, "one two three")) == "one two"
    s.receive(ev("input_audio_buffer.clear"), 2.5)
    s.receive(append(300), 2.6)
    (committed,) = s.receive(ev("input_audio_buffer.commit"), 2.7).sent
    assert committed["item_id"] == next_id


def test_whisper_1_sends_completed_only() -> None:
    s = session("whisper-1")
    s.receive(append(500), 0.0)
    (job,) = s.receive(ev("input_audio_buffer.commit"), 0.0).jobs
    assert types(s.transcribed(job, Recognition("Hello there")).sent) == [COMPLETED]


@pytest.mark.parametrize(
    "model",
    ["gpt-4o-transcribe", "gpt-4o-mini-transcribe", "gpt-transcribe", "gpt-realtime-whisper"],
)
def test_other_models_send_word_deltas_after_the_commit(model: str) -> None:
    s = session(model)
    s.receive(append(500), 0.0)
    (job,) = s.receive(ev("input_audio_buffer.commit"), 0.0).jobs
    assert types(s.transcribed(job, Recognition("Hello there")).sent) == [DELTA, DELTA, COMPLETED]


# ----------------------------------------------------------------------------- server VAD

VAD = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}
W = 0.032  # seconds per probability


def vad_session(
    turn_detection: dict | None = None, model: str = "gpt-4o-transcribe", **kwargs: Any
) -> ServerSession:
    return session(model, turn_detection=turn_detection or VAD, **kwargs)


def feed(s: ServerSession, probs: list[float]) -> list[Any]:
    """Append the audio the probabilities cover, then feed them; returns the events."""
    actions = s.receive(append(len(probs) * W * 1000), 0.0)
    assert actions.vad is not None
    out = s.speech_probabilities(probs, actions.vad.epoch)
    return out.sent + [("job", j) for j in out.jobs]


@pytest.mark.parametrize(
    ("model", "turn_detection", "runs_vad"),
    [
        ("gpt-4o-transcribe", VAD, True),
        ("gpt-4o-mini-transcribe", {"type": "semantic_vad", "eagerness": "high"}, True),
        ("whisper-1", VAD, True),
        ("gpt-4o-transcribe-2025-03-20", VAD, True),
        ("my-local-model", VAD, True),  # unknown names honour what the client asked
        ("gpt-4o-transcribe", None, False),
        ("gpt-realtime-whisper", None, False),  # client commits (VAD is refused: test_hardening)
    ],
)
def test_server_vad_runs_for_vad_models_with_turn_detection(
    model: str, turn_detection: dict | None, runs_vad: bool
) -> None:
    s = session(model, turn_detection=turn_detection)
    assert s.vad_active == runs_vad
    assert (s.receive(append(100), 0.0).vad is not None) == runs_vad


def test_speech_then_silence_gives_started_stopped_and_a_self_commit() -> None:
    s = vad_session()
    events = feed(s, [0.0] * 20 + [0.9] * 30 + [0.0] * 20)
    kinds = [e[0] if isinstance(e, tuple) else e["type"] for e in events]
    assert kinds == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "job",
    ]
    started, stopped, committed, (_, job) = events
    # speech at 20 * 32 = 640 ms, minus 300 ms of padding
    assert started["audio_start_ms"] == 340
    # silence from 1600 ms; confirmed after 16 windows (512 ms >= 500 ms)
    assert stopped["audio_end_ms"] == 1600 + 512
    assert started["item_id"] == stopped["item_id"] == committed["item_id"] == job.item_id
    assert job.duration_s == pytest.approx((2112 - 340) / 1000, abs=0.001)
    assert s.buffered_s == pytest.approx(4 * W, abs=0.002)  # audio after the turn stays


@pytest.mark.parametrize(
    ("turn_detection", "start_ms", "end_ms"),
    [
        ({"type": "server_vad"}, 340, 2112),  # defaults 0.5 / 300 / 500
        ({"type": "server_vad", "prefix_padding_ms": 0}, 640, 2112),
        ({"type": "server_vad", "prefix_padding_ms": 1000}, 0, 2112),  # not before the audio
        ({"type": "server_vad", "silence_duration_ms": 200}, 340, 1600 + 224),
        ({"type": "server_vad", "silence_duration_ms": 1000}, 340, None),  # still speaking
        ({"type": "server_vad", "threshold": 0.95}, None, None),  # 0.9 is not speech
        ({"type": "semantic_vad", "eagerness": "high"}, 340, 1600 + 416),
    ],
)
def test_threshold_prefix_padding_and_silence_duration_are_honoured(
    turn_detection: dict, start_ms: int | None, end_ms: int | None
) -> None:
    s = vad_session(turn_detection)
    events = feed(s, [0.0] * 20 + [0.9] * 30 + [0.0] * 20)
    started = [e for e in events if isinstance(e, dict) and e["type"].endswith("speech_started")]
    stopped = [e for e in events if isinstance(e, dict) and e["type"].endswith("speech_stopped")]
    assert [e["audio_start_ms"] for e in started] == ([start_ms] if start_ms is not None else [])
    assert [e["audio_end_ms"] for e in stopped] == ([end_ms] if end_ms is not None else [])


def test_probabilities_between_the_two_thresholds_do_not_end_a_turn() -> None:
    s = vad_session()  # threshold 0.5: below 0.35 is silence, 0.35..0.5 keeps the state
    events = feed(s, [0.9] * 10 + [0.4] * 40)
    assert types(events) == ["input_audio_buffer.speech_started"]


def test_a_short_dip_below_the_threshold_does_not_end_a_turn() -> None:
    s = vad_session()
    events = feed(s, [0.9] * 10 + [0.0] * 10 + [0.9] * 10 + [0.0] * 16)
    assert types(events).count("input_audio_buffer.speech_started") == 1
    assert types(events).count("input_audio_buffer.committed") == 1


def test_timestamps_count_from_the_sessions_first_audio_across_turns() -> None:
    s = vad_session({"type": "server_vad", "prefix_padding_ms": 0, "silence_duration_ms": 320})
    events = feed(s, ([0.0] * 10 + [0.9] * 10 + [0.0] * 10) * 2)
    started = [
        e["audio_start_ms"]
        for e in events
        if isinstance(e, dict) and e["type"].endswith("speech_started")
    ]
    stopped = [
        e["audio_end_ms"]
        for e in events
        if isinstance(e, dict) and e["type"].endswith("speech_stopped")
    ]
    assert started == [320, 1280] and stopped == [960, 1920]
    assert [
        e["item_id"] for e in events if isinstance(e, dict) and e["type"].endswith("committed")
    ] == ["item_001", "item_002"]


def test_while_nobody_speaks_only_the_prefix_padding_is_kept() -> None:
    s = vad_session()
    for _ in range(10):
        feed(s, [0.0] * 100)  # 32 s of silence in all
    assert s.buffered_s <= 0.3 + W


def test_a_client_commit_during_speech_ends_the_turn_under_the_announced_id() -> None:
    s = vad_session()
    (started,) = [e for e in feed(s, [0.9] * 10) if isinstance(e, dict)]
    (committed,) = s.receive(ev("input_audio_buffer.commit"), 0.0).sent
    assert committed["item_id"] == started["item_id"]
    assert types(feed(s, [0.0] * 30)) == []  # the turn is over: no speech_stopped


def test_a_clear_after_speech_started_gives_the_next_turn_a_new_id() -> None:
    s = vad_session()
    (started,) = [e for e in feed(s, [0.9] * 10) if isinstance(e, dict)]
    s.receive(ev("input_audio_buffer.clear"), 0.0)
    (again,) = [e for e in feed(s, [0.9] * 10) if isinstance(e, dict)]
    assert (started["item_id"], again["item_id"]) == ("item_001", "item_002")


def test_probabilities_of_an_old_detector_epoch_are_ignored() -> None:
    s = vad_session()
    epoch = s.receive(append(100), 0.0).vad.epoch  # type: ignore[union-attr]
    s.receive(
        ev(
            "session.update",
            session={
                "type": "transcription",
                "audio": {"input": {"format": {"type": "audio/pcmu"}}},
            },
        ),
        0.0,
    )  # new format: a fresh detector
    assert s.speech_probabilities([0.9] * 10, epoch).sent == []
    assert s.receive(ev("input_audio_buffer.append", audio="//8="), 0.0).vad.epoch != epoch  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("td", "expected"),
    [
        (None, None),
        ({"type": "server_vad"}, TurnDetection("server_vad", 0.5, 300, 500)),
        (
            {
                "type": "server_vad",
                "threshold": 0.7,
                "prefix_padding_ms": 100,
                "silence_duration_ms": 800,
                "create_response": True,
            },
            TurnDetection("server_vad", 0.7, 100, 800),
        ),
        ({"type": "server_vad", "threshold": None}, TurnDetection("server_vad")),
        ({"type": "semantic_vad"}, TurnDetection("semantic_vad", silence_duration_ms=800)),
        (
            {"type": "semantic_vad", "eagerness": "low"},
            TurnDetection("semantic_vad", silence_duration_ms=1500),
        ),
    ],
)
def test_turn_detection_is_parsed_with_openai_defaults(
    td: dict | None, expected: TurnDetection | None
) -> None:
    assert parse_turn_detection(td) == expected


@pytest.mark.parametrize(
    ("td", "param"),
    [
        ({"type": "push_to_talk"}, "turn_detection.type"),
        ({"type": "server_vad", "threshold": 1.5}, "turn_detection.threshold"),
        ({"type": "server_vad", "threshold": "high"}, "turn_detection.threshold"),
        ({"type": "server_vad", "silence_duration_ms": -1}, "turn_detection.silence_duration_ms"),
        ({"type": "server_vad", "prefix_padding_ms": True}, "turn_detection.prefix_padding_ms"),
        ({"type": "semantic_vad", "eagerness": "eager"}, "turn_detection.eagerness"),
    ],
)
def test_invalid_turn_detection_is_refused_naming_the_field(td: dict, param: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_turn_detection(td)
    assert info.value.param == param
    s = ServerSession()
    s.opened(0.0)
    (error,) = s.receive(
        ev(
            "session.update",
            session={"type": "transcription", "audio": {"input": {"turn_detection": td}}},
        ),
        0.0,
    ).sent
    assert error["type"] == "error"
    assert error["error"]["param"] == "session.audio.input." + param


# ----------------------------------------------------------------------------- limits


def test_audio_past_max_buffer_s_is_dropped_with_one_clear_error_until_a_commit() -> None:
    s = session(max_buffer_s=1.0)
    assert s.receive(append(800), 0.0).sent == []
    (error,) = s.receive(
        ev(
            "input_audio_buffer.append",
            event_id="a7",
            audio=base64.b64encode(b"\0" * 300 * BYTES_PER_MS).decode(),
        ),
        0.0,
    ).sent
    assert error["error"]["code"] == "input_audio_buffer_full"
    assert error["error"]["event_id"] == "a7"
    assert "max_buffer_s=1" in error["error"]["message"]
    assert s.receive(append(300), 0.0).sent == []  # one error per overflow
    assert s.buffered_s == pytest.approx(0.8)
    (job,) = s.receive(ev("input_audio_buffer.commit"), 0.0).jobs
    assert job.duration_s == pytest.approx(0.8)
    assert s.receive(append(900), 0.0).sent == []


@pytest.mark.parametrize(
    ("headers", "active", "limit", "status"),
    [
        ({"Authorization": "Bearer k"}, 0, 1, None),
        ({"Authorization": "Bearer k"}, 1, 1, 503),
        ({"Authorization": "Bearer k"}, 7, 8, None),
        ({"Authorization": "Bearer k"}, 500, None, None),  # no limit
        ({}, 1, 1, 401),  # credentials are checked first
    ],
)
def test_handshakes_past_max_sessions_get_503(
    headers: dict[str, str], active: int, limit: int | None, status: int | None
) -> None:
    reply = check_handshake(
        path="/v1/realtime",
        headers=headers,
        api_key=None,
        active_sessions=active,
        max_sessions=limit,
    )
    assert (reply.status if reply else None) == status
    if status == 503:
        assert reply is not None and "max_sessions=1" in reply.body


def test_health_is_answered_even_when_the_server_is_full() -> None:
    assert check_handshake(
        path="/health", headers={}, api_key=None, active_sessions=9, max_sessions=1
    ) == HandshakeReply(200, "ok\n")
