"""Table tests of the pure ``ClientSession``: replay, duplicate suppression, out-of-order finals,
deadlines and rollover, with time passed in as data. No socket, no event loop, no sleep."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from livekit.plugins.openai_stt.models import get_model_info
from livekit.plugins.openai_stt.protocol import events as ev
from livekit.plugins.openai_stt.protocol.client import (
    FORCED_ROLLOVER_GRACE_S,
    MAX_QUICK_RECONNECTS,
    TRANSITIONS,
    ClientConfig,
    ClientSession,
    ErrorReportedOut,
    InvalidTransition,
    OpenAheadOut,
    ReplayOut,
    SessionEndedOut,
    State,
    UnknownEventOut,
)
from livekit.plugins.openai_stt.protocol.errors import Classified, ErrorAction
from livekit.plugins.openai_stt.protocol.transcript import (
    MAX_ITEM_TEXT_CHARS,
    CommittedOut,
    FailureOut,
    FinalOut,
    InterimOut,
    UsageOut,
)

RATE = 24_000
MODEL = get_model_info("gpt-realtime-whisper")


def loud(ms: int) -> bytes:
    """pcm16 24 kHz of a tone (not a pause)."""
    t = np.arange(RATE * ms // 1000) / RATE
    return (3000 * np.sin(2 * np.pi * 220 * t)).astype("<i2").tobytes()


def quiet(ms: int) -> bytes:
    return bytes(RATE * ms // 1000 * 2)


def session(**config: object) -> ClientSession:
    return ClientSession(ClientConfig(**config), MODEL)  # type: ignore[arg-type]


def live(s: ClientSession, now: float = 0.0) -> ClientSession:
    s.connecting()
    s.opened(now, now)
    s.data_to_send()
    s.receive(ev.SessionUpdated(session={}), now)  # the server confirmed the session
    return s


def wire(s: ClientSession) -> list[tuple[str, int]]:
    """What the session queued: (type, audio milliseconds for appends, else 0)."""
    out = []
    for message in s.data_to_send():
        event = json.loads(message)
        ms = 0
        if event["type"] == "input_audio_buffer.append":
            ms = len(base64.b64decode(event["audio"])) // 2 * 1000 // RATE
        out.append((event["type"], ms))
    return out


def commits(s: ClientSession) -> list[str]:
    return [json.loads(m)["event_id"] for m in s.data_to_send() if b"commit" in _b(m)]


def _b(message: str | bytes) -> bytes:
    return message.encode() if isinstance(message, str) else message


APPEND, COMMIT = "input_audio_buffer.append", "input_audio_buffer.commit"


def committed(item_id: str) -> ev.AudioBufferCommitted:
    return ev.AudioBufferCommitted(item_id=item_id)


def completed(item_id: str, text: str) -> ev.TranscriptionCompleted:
    return ev.TranscriptionCompleted(item_id=item_id, transcript=text)


def delta(item_id: str | None, text: str) -> ev.TranscriptionDelta:
    return ev.TranscriptionDelta(item_id=item_id, delta=text)


def finals(outputs: list[object]) -> list[str]:
    return [o.text for o in outputs if isinstance(o, FinalOut)]


# -- commits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pushed_ms", "committed_expected"),
    [(0, False), (50, False), (99, False), (100, True), (250, True)],
)
def test_a_commit_needs_at_least_100ms_of_audio(pushed_ms: int, committed_expected: bool) -> None:
    s = live(session())
    if pushed_ms:
        s.push_audio(loud(pushed_ms), 0.0)
    assert s.commit(0.0) is committed_expected
    kinds = [kind for kind, _ in wire(s)]
    assert (COMMIT in kinds) is committed_expected
    assert s.finals_owed == int(committed_expected)


def test_appends_are_chunk_ms_and_a_commit_follows_the_audio_it_closes() -> None:
    s = live(session(chunk_ms=100))
    s.push_audio(loud(250), 0.0)
    assert wire(s) == [(APPEND, 100), (APPEND, 100)]  # the 50 ms tail waits for a full chunk
    s.commit(0.0)
    assert wire(s) == [(APPEND, 50), (COMMIT, 0)]
    assert s.usage.audio_seconds_sent == pytest.approx(0.25)


def test_a_commit_while_disconnected_is_sent_with_the_replay() -> None:
    s = session()
    s.push_audio(loud(300), 0.0)
    assert s.commit(0.0)
    assert s.data_to_send() == []  # no socket: nothing queued
    s.connecting()
    (replay,) = s.opened(1.0, 1.0)
    assert isinstance(replay, ReplayOut) and replay.commits == 1
    assert wire(s) == [(APPEND, 100), (APPEND, 100), (APPEND, 100), (COMMIT, 0)]
    assert s.state is State.LIVE


def test_end_input_commits_the_last_turn_and_sends_a_short_tail() -> None:
    s = live(session())
    s.push_audio(loud(130), 0.0)
    s.end_input(0.0)
    assert wire(s) == [(APPEND, 100), (APPEND, 30), (COMMIT, 0)]
    s2 = live(session())
    s2.push_audio(loud(40), 0.0)
    s2.end_input(0.0)
    assert wire(s2) == [(APPEND, 40)]  # under 100 ms: sent, never committed
    assert s2.input_ended


@pytest.mark.parametrize(
    ("tail", "pushed_s", "expect_commit"),
    [
        (quiet, 1.5, False),  # a pause, but not yet in the last second before max_item_s
        (quiet, 2.1, True),  # a pause in the last second: cut there
        (loud, 2.9, False),  # no pause, under max_item_s
        (loud, 3.0, True),  # at max_item_s: cut regardless
    ],
)
def test_a_long_item_is_cut_at_a_pause_in_its_last_second_or_at_max_item_s(
    tail: object, pushed_s: float, expect_commit: bool
) -> None:
    s = live(session(max_item_s=3.0))
    for _ in range(round(pushed_s * 10) - 1):
        s.push_audio(loud(100), 0.0)
    s.push_audio(tail(100), 0.0)  # type: ignore[operator]
    assert (COMMIT in [kind for kind, _ in wire(s)]) is expect_commit


# -- replay --------------------------------------------------------------------------------


def test_a_drop_replays_unfinished_turns_with_their_commits_and_the_uncommitted_tail() -> None:
    s = live(session())
    s.push_audio(loud(200), 0.0)
    s.commit(0.0)
    s.receive(committed("item_a"), 0.1)
    s.push_audio(loud(300), 0.2)
    s.commit(0.2)  # turn 2: committed, never acknowledged
    s.push_audio(loud(150), 0.3)  # uncommitted
    s.data_to_send()
    s.connection_lost()
    assert s.state is State.IDLE
    s.connecting()
    (replay,) = s.opened(5.0, 5.0)
    assert replay == ReplayOut(audio_s=0.65, commits=2, abandoned_items=("item_a",))
    assert wire(s) == [
        (APPEND, 100), (APPEND, 100), (COMMIT, 0),  # turn 1 again: its final never came
        (APPEND, 100), (APPEND, 100), (APPEND, 100), (COMMIT, 0),  # turn 2
        (APPEND, 100), (APPEND, 50),  # the uncommitted tail, whole
    ]  # fmt: skip
    assert s.finals_owed == 2


def test_replayed_turns_come_back_as_new_items_with_their_original_audio_spans() -> None:
    s = live(session())
    s.push_audio(loud(200), 0.0)
    s.commit(0.0)
    s.receive(committed("item_a"), 0.1)
    s.push_audio(loud(300), 0.2)
    s.commit(0.2)
    s.connection_lost()
    s.connecting()
    s.opened(1.0, 1.0)
    outs = s.receive(committed("item_1"), 1.1) + s.receive(committed("item_2"), 1.1)
    spans = [(o.audio_start_s, o.audio_end_s) for o in outs if isinstance(o, CommittedOut)]
    assert spans == [(0.0, 0.2), (0.2, 0.5)]
    assert finals(s.receive(completed("item_2", "two"), 1.3)) == ["two"]
    assert finals(s.receive(completed("item_1", "one"), 1.4)) == ["one"]
    assert s.finals_owed == 0


def test_after_out_of_order_finals_only_the_unfinished_turn_is_replayed() -> None:
    s = live(session())
    for item in ("item_a", "item_b", "item_c"):
        s.push_audio(loud(200), 0.0)
        s.commit(0.0)
        s.receive(committed(item), 0.1)
    s.data_to_send()
    # completions out of order: the second and third turns are done, the first is not
    assert finals(s.receive(completed("item_c", "three"), 0.2)) == ["three"]
    assert finals(s.receive(completed("item_b", "two"), 0.3)) == ["two"]
    s.connection_lost()
    s.connecting()
    s.opened(1.0, 1.0)
    assert wire(s) == [(APPEND, 100), (APPEND, 100), (COMMIT, 0)]  # turn 1 only
    assert s.finals_owed == 1


def test_audio_before_the_oldest_unfinished_turn_is_dropped_from_the_ledger() -> None:
    s = live(session())
    s.push_audio(loud(200), 0.0)
    s.commit(0.0)
    s.receive(committed("item_a"), 0.1)
    assert s.ledger.held_samples == RATE * 200 // 1000
    s.receive(completed("item_a", "done"), 0.2)
    assert s.ledger.held_samples == 0
    s.connection_lost()
    s.connecting()
    assert s.opened(1.0, 1.0) == []  # nothing to replay
    assert wire(s) == []


def test_the_ledger_bound_drops_only_audio_already_sent() -> None:
    s = session(max_retained_audio_s=1.0)
    s.push_audio(loud(1500), 0.0)  # disconnected: nothing sent, so nothing may be dropped
    assert s.ledger.held_samples == RATE * 1500 // 1000
    live(s)
    s.push_audio(loud(100), 0.0)
    assert s.ledger.held_samples <= RATE * 1000 // 1000


# -- one final per turn --------------------------------------------------------------------


def test_interim_text_is_the_items_full_text_and_the_final_comes_once() -> None:
    s = live(session())
    outs = s.receive(delta(None, "Hel"), 0.0) + s.receive(delta(None, "lo"), 0.1)
    assert [o.text for o in outs if isinstance(o, InterimOut)] == ["Hel", "Hello"]
    s.push_audio(loud(200), 0.0)
    s.commit(0.0)
    s.receive(committed("item_1"), 0.1)
    first = s.receive(completed("item_1", "Hello."), 0.2)
    assert finals(first) == ["Hello."]
    assert [type(o) for o in first] == [FinalOut, UsageOut]
    assert s.receive(completed("item_1", "Hello."), 0.3) == []  # a duplicate is dropped
    assert s.usage.items == 1


@pytest.mark.parametrize(
    ("second_delta_s", "tick_s", "interims"),
    [
        (0.10, None, ["one", "one two"]),  # 100 ms apart: each delta shows
        (0.01, None, ["one"]),  # 10 ms apart: the second waits for its time ...
        (0.01, 0.04, ["one"]),  # ... not yet due at 40 ms ...
        (0.01, 0.06, ["one", "one two"]),  # ... and comes with the tick once due
    ],
)
def test_interims_of_an_item_come_at_most_every_min_interim_interval_s(
    second_delta_s: float, tick_s: float | None, interims: list[str]
) -> None:
    s = live(session(final_timeout_s=1e9))
    outs = s.receive(delta("item_1", "one"), 0.0) + s.receive(
        delta("item_1", " two"), second_delta_s
    )
    if tick_s is not None:
        outs += s.tick(tick_s)
    assert [o.text for o in outs if isinstance(o, InterimOut)] == interims


def test_a_flood_of_deltas_costs_linear_time_and_bounded_memory() -> None:
    s = live(session(final_timeout_s=1e9))
    shown = 0
    for index in range(30_000):  # 30,000 deltas in 1.5 s
        shown += len(s.receive(delta("item_1", "word "), index * 0.00005))
    shown += len(s.tick(2.0))
    assert shown <= 32  # at most 20 a second, plus the last one held back
    (item,) = s.assembler._items.values()
    assert item.chars == MAX_ITEM_TEXT_CHARS and len(item.text) == MAX_ITEM_TEXT_CHARS


@pytest.mark.parametrize(
    ("late_s", "outputs"),
    [
        (14.9, []),  # not yet due
        (15.0, [FailureOut]),  # due: the turn ends with its interim text
    ],
)
def test_a_final_that_never_comes_ends_its_turn_at_final_timeout_s(
    late_s: float, outputs: list[type]
) -> None:
    s = live(session(final_timeout_s=15.0))
    s.push_audio(loud(200), 0.0)
    s.commit(0.0)
    s.receive(delta("item_1", "partial words"), 0.05)
    s.receive(committed("item_1"), 0.1)
    result = s.tick(0.1 + late_s)
    assert [type(o) for o in result] == outputs
    if outputs:
        (failure,) = result
        assert isinstance(failure, FailureOut)
        assert failure.text == "partial words" and failure.error.code == "final_timeout"
        assert s.finals_owed == 0
        assert finals(s.receive(completed("item_1", "too late"), 20.0)) == []


@pytest.mark.parametrize(("now", "ended"), [(15.0, False), (15.01, True)])
def test_a_commit_never_acknowledged_ends_the_socket_as_retryable(now: float, ended: bool) -> None:
    s = live(session(final_timeout_s=15.0))
    s.push_audio(loud(200), 0.0)
    s.commit(0.0)
    result = s.tick(now)
    assert bool(result) is ended
    if ended:
        (out,) = result
        assert isinstance(out, SessionEndedOut)
        assert out.classified.action is ErrorAction.RETRY


def test_a_refused_commit_owes_no_final_and_is_not_replayed() -> None:
    s = live(session())
    s.push_audio(loud(200), 0.0)
    s.commit(0.0)
    error = ev.ErrorInfo(
        type="invalid_request_error", code="input_audio_buffer_commit_empty", event_id="commit_1"
    )
    assert s.receive(ev.ErrorEvent(error=error), 0.1) != []  # CommitRefusedOut
    assert s.finals_owed == 0
    s.data_to_send()
    s.connection_lost()
    s.connecting()
    s.opened(1.0, 1.0)
    assert COMMIT not in [kind for kind, _ in wire(s)]


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error_type", "expected"),
    [
        ("some_warning", "invalid_request_error", ErrorReportedOut),
        ("session_expired", "invalid_request_error", SessionEndedOut),
        ("invalid_model", "invalid_request_error", SessionEndedOut),
        (None, "server_error", SessionEndedOut),
    ],
)
def test_error_events_are_classified_once(
    code: str | None, error_type: str, expected: type
) -> None:
    s = live(session())
    (out,) = s.receive(ev.ErrorEvent(error=ev.ErrorInfo(type=error_type, code=code)), 0.0)
    assert isinstance(out, expected)


@pytest.mark.parametrize(
    ("confirmed", "event_id", "fatal"),
    [
        (True, None, False),  # a later error: the session goes on
        (True, "session_update_2", True),  # it answers an update of ours
        (False, None, True),  # before the session was confirmed
    ],
)
def test_an_error_that_answers_the_session_configuration_is_fatal(
    confirmed: bool, event_id: str | None, fatal: bool
) -> None:
    s = session()
    s.connecting()
    s.opened(0.0, 0.0)
    if confirmed:
        s.receive(ev.SessionUpdated(session={}), 0.0)
    info = ev.ErrorInfo(type="invalid_request_error", code="invalid_event", event_id=event_id)
    (out,) = s.receive(ev.ErrorEvent(error=info), 0.1)
    assert isinstance(out, SessionEndedOut if fatal else ErrorReportedOut)
    if fatal:
        assert isinstance(out, SessionEndedOut) and out.classified.action is ErrorAction.FATAL


@pytest.mark.parametrize(
    ("message", "close_code", "fatal"),
    [
        ("Upstream realtime handshake rejected with HTTP 401", 1008, True),
        ("Invalid model name passed in model=nope", 1011, True),
        ("a transient upstream hiccup", 1011, False),
        ("", 4003, True),
    ],
)
def test_a_gateway_failure_before_a_close_is_fatal_at_once(
    message: str, close_code: int, fatal: bool
) -> None:
    from livekit.plugins.openai_stt.protocol.errors import classify_close

    s = live(session())
    if message:
        s.receive(ev.ErrorEvent(error=ev.ErrorInfo(type="server_error", message=message)), 0.1)
    verdict = s.session_ended(classify_close(close_code, "closing"), 0.2, max_attempts=3)
    assert (verdict.action is ErrorAction.FATAL) is fatal
    if fatal and message:
        assert message in verdict.message


def test_an_unknown_event_type_is_reported_once() -> None:
    s = live(session())
    unknown = ev.UnknownEvent(type="x.new_event", raw={})
    assert s.receive(unknown, 0.0) == [UnknownEventOut("x.new_event")]
    assert s.receive(unknown, 1.0) == []


# -- rollover and the session opened ahead ---------------------------------------------------


@pytest.mark.parametrize(
    ("age_s", "owed", "due"),
    [
        (99.9, False, False),
        (100.0, False, True),
        (100.0, True, False),  # a final is owed: wait for the turn boundary
        (100.0 + FORCED_ROLLOVER_GRACE_S, True, True),  # unless far past the limit
    ],
)
def test_rollover_happens_at_a_turn_boundary_after_session_rollover_s(
    age_s: float, owed: bool, due: bool
) -> None:
    s = live(session(session_rollover_s=100.0), now=0.0)
    if owed:
        s.push_audio(loud(200), 0.0)
        s.commit(0.0)
        s.receive(committed("item_1"), 0.1)
    assert s.check_rollover(age_s) is due
    assert (s.state is State.ROLLING_OVER) is due


@pytest.mark.parametrize(
    ("limit_s", "now", "opens"),
    [(3300.0, 3269.9, False), (3300.0, 3270.0, True), (20.0, 9.9, False), (20.0, 10.0, True)],
)
def test_the_next_session_is_opened_ahead_once_before_a_rollover(
    limit_s: float, now: float, opens: bool
) -> None:
    s = live(session(session_rollover_s=limit_s, final_timeout_s=1e9), now=0.0)
    assert (OpenAheadOut() in s.tick(now)) is opens
    if opens:
        assert OpenAheadOut() not in s.tick(now + 1)  # once per session


def test_nothing_is_opened_ahead_after_end_input() -> None:
    s = live(session(session_rollover_s=100.0), now=0.0)
    s.end_input(0.0)
    assert OpenAheadOut() not in s.tick(99.0)


@pytest.mark.parametrize(("waited_s", "usable"), [(0.0, True), (74.9, True), (75.0, False)])
def test_a_session_opened_ahead_is_used_only_while_young(waited_s: float, usable: bool) -> None:
    s = session(session_rollover_s=100.0)
    assert s.ahead_usable(connected_at=10.0, now=10.0 + waited_s) is usable


def test_a_session_ages_from_its_own_connect() -> None:
    s = session(session_rollover_s=100.0)
    s.connecting()
    s.opened(connected_at=50.0, now=80.0)  # opened ahead at 50, taken at 80
    s.data_to_send()
    assert not s.check_rollover(149.0)
    assert s.check_rollover(150.0)


# -- lifecycle --------------------------------------------------------------------------------


def test_the_lifecycle_is_an_explicit_state_table() -> None:
    s = session()
    with pytest.raises(InvalidTransition):
        s.opened(0.0, 0.0)  # not connecting
    s.connecting()
    with pytest.raises(InvalidTransition):
        s.connecting()
    s.opened(0.0, 0.0)
    assert s.state is State.REPLAYING
    s.data_to_send()
    assert s.state is State.LIVE
    s.close()
    assert s.state is State.CLOSED
    with pytest.raises(InvalidTransition):
        s.push_audio(loud(10), 0.0)
    assert all(TRANSITIONS[(state, "close")] is State.CLOSED for state in State)


@pytest.mark.parametrize(
    ("lifetimes_s", "verdicts"),
    [
        ([1.0, 1.0, 1.0], [ErrorAction.RECONNECT, ErrorAction.RECONNECT, ErrorAction.RETRY]),
        ([1.0, 60.0, 1.0, 1.0], [ErrorAction.RECONNECT] * 4),  # progress resets the count
    ],
)
def test_sessions_the_server_ends_at_once_become_a_failure(
    lifetimes_s: list[float], verdicts: list[ErrorAction]
) -> None:
    assert MAX_QUICK_RECONNECTS == 3
    s = session()
    now = 0.0
    got = []
    for lifetime in lifetimes_s:
        live(s, now)
        now += lifetime
        s.connection_lost()
        got.append(s.session_ended(Classified(ErrorAction.RECONNECT, "expired"), now).action)
    assert got == verdicts
