"""Scenarios for protocol/transcript.py: per-item assembly keyed by item_id (docs/protocol.md §4),
audio spans on the stream clock, usage, confidence, and the reconnect helpers."""

from __future__ import annotations

import math

import pytest

from livekit.plugins.openai_stt.protocol import events as ev
from livekit.plugins.openai_stt.protocol.transcript import (
    CommitRefusedOut,
    CommittedOut,
    FailureOut,
    FinalOut,
    InterimOut,
    SpeechEndedOut,
    SpeechStartedOut,
    TranscriptAssembler,
    UsageOut,
    mean_token_probability,
)

ERR = ev.ErrorInfo("server_error", None, "Input transcription failed for item 'item_1'.")


def lps(*values: float) -> tuple[ev.LogProb, ...]:
    return tuple(ev.LogProb(f"t{i}", v) for i, v in enumerate(values))


def delta(item_id, text, logprobs=None):
    return ev.TranscriptionDelta(item_id=item_id, delta=text, logprobs=logprobs)


def partial(item_id, text):
    return ev.PartialTranscription(item_id=item_id, transcript=text)


def committed(item_id, previous=None):
    return ev.AudioBufferCommitted(item_id=item_id, previous_item_id=previous)


def completed(item_id, text, **kwargs):
    return ev.TranscriptionCompleted(item_id=item_id, transcript=text, **kwargs)


def failed(item_id, error=ERR):
    return ev.TranscriptionFailed(item_id=item_id, error=error)


def started(item_id, ms):
    return ev.SpeechStarted(item_id=item_id, audio_start_ms=ms)


def stopped(item_id, ms):
    return ev.SpeechStopped(item_id=item_id, audio_end_ms=ms)


def client_committed(asm: TranscriptAssembler, item_id: str, until_s: float) -> None:
    """The client commits audio up to ``until_s`` and the server acknowledges it."""
    asm.commit_sent(until_s)
    [out] = asm.receive(committed(item_id))
    assert isinstance(out, CommittedOut) and out.item_id == item_id and out.audio_end_s == until_s


# -- interim text ---------------------------------------------------------------------------


def test_interim_text_never_mixes_items():
    asm = TranscriptAssembler("en")
    asm.commit_sent(1.0)
    assert asm.receive(committed("item_1")) == [CommittedOut("item_1", 0.0, 1.0)]
    asm.commit_sent(2.0)
    assert asm.receive(committed("item_2", "item_1")) == [CommittedOut("item_2", 1.0, 2.0)]
    assert asm.receive(delta("item_1", "Hel")) == [InterimOut("item_1", "Hel")]
    assert asm.receive(delta("item_2", "Wor")) == [InterimOut("item_2", "Wor")]
    assert asm.receive(delta("item_1", "lo")) == [InterimOut("item_1", "Hello")]
    assert asm.receive(delta("item_2", "ld")) == [InterimOut("item_2", "World")]
    # the next turn's uncommitted text is its own, too
    assert asm.receive(delta(None, "Next")) == [InterimOut("", "Next")]
    assert asm.receive(delta("item_1", " there")) == [InterimOut("item_1", "Hello there")]


def test_partial_transcription_replaces_rather_than_extends_interim_text():
    asm = TranscriptAssembler()
    assert asm.receive(partial("item_1", "Hello")) == [InterimOut("item_1", "Hello")]
    assert asm.receive(partial("item_1", "Hello the")) == [InterimOut("item_1", "Hello the")]
    assert asm.receive(partial("item_1", "Hello there")) == [InterimOut("item_1", "Hello there")]
    assert asm.receive(partial("item_2", "Other")) == [InterimOut("item_2", "Other")]


def test_empty_delta_gives_no_interim():
    asm = TranscriptAssembler()
    assert asm.receive(delta("item_1", "")) == []
    assert asm.receive(delta("item_1", "Hi")) == [InterimOut("item_1", "Hi")]
    assert asm.receive(delta("item_1", "")) == []


# -- completions and failures ---------------------------------------------------------------


def test_completions_out_of_order_are_matched_by_item_id():
    asm = TranscriptAssembler("en")
    asm.commit_sent(1.0)
    asm.commit_sent(2.5)
    assert asm.receive(committed("item_1")) == [CommittedOut("item_1", 0.0, 1.0)]
    assert asm.receive(committed("item_2", "item_1")) == [CommittedOut("item_2", 1.0, 2.5)]
    assert asm.pending_items == 2
    assert asm.receive(completed("item_2", "Second.")) == [
        FinalOut("item_2", "Second.", 1.0, 2.5, "en", None),
        UsageOut("item_2", 1.5),
    ]
    assert asm.unfinished_item_ids() == ["item_1"]
    assert asm.receive(completed("item_1", "First.")) == [
        FinalOut("item_1", "First.", 0.0, 1.0, "en", None),
        UsageOut("item_1", 1.0),
    ]
    assert asm.pending_items == 0


def test_final_text_is_the_servers_transcript_not_the_deltas():
    asm = TranscriptAssembler()
    client_committed(asm, "item_1", 1.0)
    asm.receive(delta("item_1", "Helo ther"))
    [final, _usage] = asm.receive(completed("item_1", "Hello there."))
    assert final.text == "Hello there."


LATE_EVENTS = [
    pytest.param(delta("item_1", " late"), id="delta"),
    pytest.param(partial("item_1", "late"), id="partial_transcription"),
    pytest.param(completed("item_1", "Again."), id="duplicate-completed"),
    pytest.param(failed("item_1"), id="failed"),
    pytest.param(committed("item_1"), id="committed"),
]


@pytest.mark.parametrize("ending", ["completed", "failed", "expired"])
@pytest.mark.parametrize("late", LATE_EVENTS)
def test_late_delta_after_completed_is_dropped(ending, late):
    asm = TranscriptAssembler()
    client_committed(asm, "item_1", 1.0)
    asm.receive(delta("item_1", "Hello"))
    if ending == "completed":
        asm.receive(completed("item_1", "Hello."))
    elif ending == "failed":
        asm.receive(failed("item_1"))
    else:
        asm.expire("item_1", ERR)
    retain = asm.retain_from_s
    assert asm.receive(late) == []
    assert asm.pending_items == 0
    assert asm.unfinished_item_ids() == []
    assert asm.retain_from_s == retain
    # other items are unaffected
    assert asm.receive(delta("item_2", "Next")) == [InterimOut("item_2", "Next")]


def test_failed_item_ends_its_turn_with_known_text():
    asm = TranscriptAssembler("en")
    asm.commit_sent(1.25)
    asm.receive(committed("item_1"))
    asm.receive(delta("item_1", "Hel"))
    asm.receive(delta("item_1", "lo"))
    assert asm.pending_items == 1
    assert asm.receive(failed("item_1")) == [FailureOut("item_1", ERR, "Hello", 0.0, 1.25)]
    assert asm.pending_items == 0
    assert asm.receive(completed("item_1", "Hello.")) == []


def test_failed_item_with_no_text_yet_reports_empty_text():
    asm = TranscriptAssembler()
    client_committed(asm, "item_1", 0.5)
    assert asm.receive(failed("item_1")) == [FailureOut("item_1", ERR, "", 0.0, 0.5)]


def test_expire_ends_an_item_without_final_and_drops_the_late_final():
    asm = TranscriptAssembler()
    client_committed(asm, "item_1", 2.0)
    asm.receive(delta("item_1", "Hi"))
    assert asm.expire("item_1", ERR) == [FailureOut("item_1", ERR, "Hi", 0.0, 2.0)]
    assert asm.expire("item_1", ERR) == []
    assert asm.expire("never_seen", ERR) == []
    assert asm.receive(completed("item_1", "Hi.")) == []
    assert asm.pending_items == 0


# -- client commits before the id is known ------------------------------------------------------


@pytest.mark.parametrize(
    "ids, interims",
    [
        pytest.param((None, None), [("", "Hel"), ("", "Hello")], id="no-id-at-all"),
        pytest.param(
            (None, "item_1"), [("", "Hel"), ("item_1", "Hello")], id="id-appears-mid-turn"
        ),
        pytest.param(
            ("item_1", "item_1"),
            [("item_1", "Hel"), ("item_1", "Hello")],
            id="committed-id-from-the-start",
        ),
    ],
)
def test_pre_commit_deltas_without_item_id_join_the_committed_item(ids, interims):
    asm = TranscriptAssembler("en")
    asm.begin_session(0.0)
    outs = asm.receive(delta(ids[0], "Hel")) + asm.receive(delta(ids[1], "lo"))
    assert outs == [InterimOut(i, t) for i, t in interims]
    asm.commit_sent(1.5)
    assert asm.receive(committed("item_1")) == [CommittedOut("item_1", 0.0, 1.5)]
    assert asm.receive(delta("item_1", " there")) == [InterimOut("item_1", "Hello there")]
    # the next turn starts from nothing
    assert asm.receive(delta(None, "Next")) == [InterimOut("", "Next")]
    assert asm.receive(failed("item_1")) == [FailureOut("item_1", ERR, "Hello there", 0.0, 1.5)]


def test_pre_commit_delta_logprobs_join_the_committed_item():
    asm = TranscriptAssembler()
    asm.receive(delta(None, "Hi", lps(math.log(0.5))))
    client_committed(asm, "item_1", 1.0)
    asm.receive(delta("item_1", "!", lps(math.log(0.25))))
    [final, _] = asm.receive(completed("item_1", "Hi!"))
    assert final.confidence == pytest.approx(0.375)


# -- server VAD and the stream clock ------------------------------------------------------------


def test_server_vad_offsets_map_to_stream_clock_after_begin_session():
    asm = TranscriptAssembler("en")
    asm.begin_session(10.0)  # a reconnect: this session's first audio is at 10 s of the stream
    assert asm.receive(started("item_1", 1000)) == [SpeechStartedOut("item_1", 11.0)]
    assert asm.receive(stopped("item_1", 2500)) == [SpeechEndedOut("item_1", 12.5)]
    committed_1 = CommittedOut("item_1", 10.0, 12.5, by_server=True)
    assert asm.receive(committed("item_1")) == [committed_1]
    assert asm.committed_until_s == 12.5
    assert asm.receive(delta("item_1", "One")) == [InterimOut("item_1", "One")]
    # the next turn starts before the first one is transcribed
    assert asm.receive(started("item_2", 4000)) == [SpeechStartedOut("item_2", 14.0)]
    assert asm.receive(completed("item_1", "One.")) == [
        FinalOut("item_1", "One.", 11.0, 12.5, "en", None),
        UsageOut("item_1", 2.5),
    ]
    assert asm.receive(stopped("item_2", 5000)) == [SpeechEndedOut("item_2", 15.0)]
    assert asm.receive(committed("item_2", "item_1")) == [
        CommittedOut("item_2", 12.5, 15.0, by_server=True)
    ]
    assert asm.receive(completed("item_2", "Two.")) == [
        FinalOut("item_2", "Two.", 14.0, 15.0, "en", None),
        UsageOut("item_2", 2.5),
    ]


def test_server_vad_offsets_without_begin_session_start_at_zero():
    asm = TranscriptAssembler()
    assert asm.receive(started("item_1", 250)) == [SpeechStartedOut("item_1", 0.25)]
    assert asm.receive(stopped("item_1", 750)) == [SpeechEndedOut("item_1", 0.75)]
    assert asm.receive(committed("item_1")) == [CommittedOut("item_1", 0.0, 0.75, by_server=True)]


# -- usage ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "usage, expected",
    [
        pytest.param(None, UsageOut("item_1", 1.5), id="no-usage"),
        pytest.param(
            ev.DurationUsage(2.0),
            UsageOut("item_1", 1.5, billed_seconds=2.0),
            id="duration-billed-seconds",
        ),
        pytest.param(
            ev.TokenUsage(120, 5, 125, audio_tokens=100, text_tokens=20),
            UsageOut(
                "item_1",
                1.5,
                input_tokens=120,
                output_tokens=5,
                audio_input_tokens=100,
                text_input_tokens=20,
            ),
            id="tokens-with-details",
        ),
        pytest.param(
            ev.TokenUsage(120, 5, 125, audio_tokens=0, text_tokens=20),
            UsageOut(
                "item_1",
                1.5,
                input_tokens=120,
                output_tokens=5,
                audio_input_tokens=100,
                text_input_tokens=20,
            ),
            id="tokens-audio-is-input-minus-text",
        ),
        pytest.param(
            ev.TokenUsage(120, 5, 125),
            UsageOut("item_1", 1.5, input_tokens=120, output_tokens=5, audio_input_tokens=120),
            id="tokens-without-details",
        ),
    ],
)
def test_usage_audio_seconds_is_committed_span(usage, expected):
    asm = TranscriptAssembler()
    asm.begin_session(2.0)
    client_committed(asm, "item_1", 3.5)
    assert asm.receive(completed("item_1", "Hi.", usage=usage))[-1] == expected


def test_usage_of_consecutive_commits_does_not_overlap():
    asm = TranscriptAssembler()
    asm.commit_sent(1.5)
    asm.commit_sent(4.0)
    asm.receive(committed("item_1"))
    asm.receive(committed("item_2"))
    usages = asm.receive(completed("item_2", "b"))[-1:] + asm.receive(completed("item_1", "a"))[-1:]
    assert usages == [UsageOut("item_2", 2.5), UsageOut("item_1", 1.5)]


# -- confidence and language ------------------------------------------------------------------


@pytest.mark.parametrize(
    "delta_logprobs, completed_logprobs, expected",
    [
        pytest.param([], None, None, id="no-logprobs-no-confidence"),
        pytest.param([], lps(0.0), 1.0, id="certain"),
        pytest.param([], lps(math.log(0.5), math.log(0.25)), 0.375, id="mean-of-probabilities"),
        pytest.param(
            [lps(-0.1), lps(-0.2)],
            None,
            (math.exp(-0.1) + math.exp(-0.2)) / 2,
            id="from-deltas-when-completed-has-none",
        ),
        pytest.param([lps(-5.0)], lps(math.log(0.9)), 0.9, id="completed-logprobs-win"),
        pytest.param([], lps(0.7, math.log(0.5)), 0.75, id="positive-logprob-clamped-to-1"),
        pytest.param([lps(math.log(0.2))], (), 0.2, id="empty-completed-logprobs-use-deltas"),
    ],
)
def test_confidence_is_mean_token_probability(delta_logprobs, completed_logprobs, expected):
    asm = TranscriptAssembler()
    client_committed(asm, "item_1", 1.0)
    for chunk in delta_logprobs:
        asm.receive(delta("item_1", "x", chunk))
    [final, _] = asm.receive(completed("item_1", "x", logprobs=completed_logprobs))
    if expected is None:
        assert final.confidence is None
    else:
        assert final.confidence == pytest.approx(expected)
        assert 0.0 <= final.confidence <= 1.0


@pytest.mark.parametrize(
    "logprobs, expected",
    [
        ((), None),
        ([], None),
        (lps(0.0, 0.0), 1.0),
        (lps(math.log(0.1)), 0.1),
        (lps(-1000.0), 0.0),
        (lps(math.log(0.5), 2.0), 0.75),
    ],
)
def test_mean_token_probability(logprobs, expected):
    got = mean_token_probability(logprobs)
    assert got == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(
    "languages, configured, expected",
    [
        pytest.param(("fr",), "en", "fr", id="server-language-wins"),
        pytest.param(("de", "en"), None, "de", id="first-of-several"),
        pytest.param(None, "en", "en", id="configured-when-none-sent"),
        pytest.param((), "en", "en", id="configured-when-empty-list"),
        pytest.param(None, None, None, id="unknown"),
    ],
)
def test_language_from_completed_languages(languages, configured, expected):
    asm = TranscriptAssembler(configured)
    client_committed(asm, "item_1", 1.0)
    [final, _] = asm.receive(completed("item_1", "Hola.", languages=languages))
    assert final.language == expected


@pytest.mark.parametrize("transcript", ["", " ", "\n\t  "])
def test_empty_transcript_still_ends_its_turn_with_an_empty_final_and_usage(transcript):
    # LiveKit's AgentSession waits for a final after each flush; an item with no speech must
    # still give one, or the turn waits out the session's transcript timeout
    asm = TranscriptAssembler("en")
    client_committed(asm, "item_1", 0.75)
    outs = asm.receive(completed("item_1", transcript, usage=ev.DurationUsage(1.0)))
    assert outs == [
        FinalOut("item_1", transcript, 0.0, 0.75, "en", None),
        UsageOut("item_1", 0.75, billed_seconds=1.0),
    ]
    assert asm.pending_items == 0


# -- bookkeeping for replay after a reconnect ---------------------------------------------------


def test_pending_items_counts_unacknowledged_commits_and_unfinished_items():
    asm = TranscriptAssembler()
    assert asm.pending_items == 0
    asm.commit_sent(1.0)
    asm.commit_sent(2.0)
    assert asm.pending_items == 2
    asm.receive(committed("item_1"))
    assert asm.pending_items == 2  # one unacknowledged commit + one unfinished item
    asm.receive(delta(None, "uncommitted text is not owed"))
    assert asm.pending_items == 2
    asm.receive(completed("item_1", "a"))
    assert asm.pending_items == 1
    asm.receive(committed("item_2"))
    asm.receive(failed("item_2"))
    assert asm.pending_items == 0


def test_retain_from_is_start_of_oldest_unfinished_turn():
    asm = TranscriptAssembler()
    asm.begin_session(0.0)
    assert asm.retain_from_s == 0.0
    asm.receive(delta(None, "a"))
    asm.commit_sent(1.0)
    assert asm.retain_from_s == 0.0  # unacknowledged commit starting at 0
    asm.receive(committed("item_1"))
    asm.commit_sent(2.5)
    asm.receive(committed("item_2"))
    assert asm.retain_from_s == 0.0  # item_1 unfinished
    asm.receive(completed("item_1", "a"))
    assert asm.retain_from_s == 1.0  # item_2 is now the oldest
    asm.commit_sent(4.0)
    asm.receive(completed("item_2", "b"))
    assert asm.retain_from_s == 2.5  # the unacknowledged commit
    asm.receive(committed("item_3"))
    assert asm.retain_from_s == 2.5  # item_3, committed, unfinished
    asm.receive(failed("item_3"))
    assert asm.retain_from_s == 4.0  # nothing owed: the start of the uncommitted buffer
    assert asm.committed_until_s == 4.0


def test_retain_from_stays_at_an_older_unfinished_item_when_a_newer_one_completes():
    asm = TranscriptAssembler()
    client_committed(asm, "item_1", 1.0)
    client_committed(asm, "item_2", 2.0)
    asm.receive(completed("item_2", "b"))
    assert asm.retain_from_s == 0.0
    asm.receive(completed("item_1", "a"))
    assert asm.retain_from_s == 2.0


def test_abandon_unfinished_forgets_items_and_returns_ids():
    asm = TranscriptAssembler()
    asm.begin_session(0.0)
    client_committed(asm, "item_1", 1.0)
    client_committed(asm, "item_2", 2.0)
    client_committed(asm, "item_3", 3.0)
    asm.receive(completed("item_2", "two"))
    asm.commit_sent(4.0)  # never acknowledged
    asm.receive(delta(None, "open buffer"))
    assert asm.unfinished_item_ids() == ["item_1", "item_3"]
    assert asm.pending_items == 3

    assert asm.abandon_unfinished() == ["item_1", "item_3"]
    assert asm.unfinished_item_ids() == []
    assert asm.abandon_unfinished() == []
    assert asm.pending_items == 1  # the unacknowledged commit, forgotten by begin_session
    asm.begin_session(0.0)
    assert asm.pending_items == 0
    assert asm.retain_from_s == 0.0
    # the forgotten items' text is gone: a new session's item of the same id starts empty
    client_committed(asm, "item_3", 1.0)
    assert asm.receive(failed("item_3")) == [FailureOut("item_3", ERR, "", 0.0, 1.0)]


def test_reconnect_replay_maps_new_items_onto_the_stream_clock():
    asm = TranscriptAssembler("en")
    asm.begin_session(0.0)
    client_committed(asm, "item_1", 1.0)
    asm.receive(completed("item_1", "one"))
    client_committed(asm, "item_2", 2.0)  # unfinished when the socket dies
    asm.commit_sent(3.0)  # sent, never acknowledged
    origin = asm.retain_from_s
    assert origin == 1.0
    # the stream: abandon, begin a session at the replayed audio, resend the commits
    assert asm.abandon_unfinished() == ["item_2"]
    asm.begin_session(origin)
    assert asm.pending_items == 0
    asm.commit_sent(2.0)
    asm.commit_sent(3.0)
    assert asm.pending_items == 2
    assert asm.receive(committed("new_a")) == [CommittedOut("new_a", 1.0, 2.0)]
    assert asm.receive(committed("new_b")) == [CommittedOut("new_b", 2.0, 3.0)]
    assert asm.receive(completed("new_a", "two")) == [
        FinalOut("new_a", "two", 1.0, 2.0, "en", None),
        UsageOut("new_a", 1.0),
    ]
    assert asm.unfinished_item_ids() == ["new_b"]
    assert asm.retain_from_s == 2.0


def test_begin_session_forgets_the_open_buffer_text():
    asm = TranscriptAssembler()
    asm.receive(delta(None, "lost with the socket"))
    asm.begin_session(1.0)
    assert asm.receive(delta(None, "fresh")) == [InterimOut("", "fresh")]


def test_item_ids_reused_by_a_new_session_are_not_dropped_as_late():
    # the local server numbers items per session: item_001, item_002, ... on every connection
    asm = TranscriptAssembler("en")
    asm.begin_session(0.0)
    client_committed(asm, "item_001", 1.0)
    asm.receive(completed("item_001", "one"))
    assert asm.abandon_unfinished() == []
    asm.begin_session(1.0)  # reconnect; the new server session starts again at item_001
    asm.commit_sent(2.0)
    assert asm.receive(committed("item_001")) == [CommittedOut("item_001", 1.0, 2.0)]
    assert asm.receive(completed("item_001", "two")) == [
        FinalOut("item_001", "two", 1.0, 2.0, "en", None),
        UsageOut("item_001", 1.0),
    ]
    assert asm.pending_items == 0


# -- events that carry no transcript --------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        ev.SessionCreated(session={}),
        ev.SessionUpdated(session={"type": "transcription"}),
        ev.AudioBufferCleared(),
        ev.ConversationItem(type="conversation.item.added", item_id="item_1"),
        ev.TranscriptionSegment(item_id="item_1", id="seg_1", text="Hi"),
        ev.ErrorEvent(error=ERR),
        ev.UnknownEvent(type="x.y", raw={"type": "x.y"}),
    ],
    ids=lambda e: e.type,
)
def test_events_without_transcript_give_no_output_and_change_nothing(event):
    asm = TranscriptAssembler()
    client_committed(asm, "item_1", 1.0)
    assert asm.receive(event) == []
    assert asm.unfinished_item_ids() == ["item_1"]
    assert asm.pending_items == 1


def test_speech_offsets_of_an_old_session_do_not_leak_into_a_reused_item_id():
    asm = TranscriptAssembler()
    asm.begin_session(0.0)
    asm.receive(started("item_001", 1000))
    asm.receive(stopped("item_001", 3000))  # the socket dies before the commit
    asm.begin_session(5.0)
    client_committed(asm, "item_001", 6.0)
    [final, usage] = asm.receive(completed("item_001", "x"))
    assert (final.audio_start_s, final.audio_end_s) == (5.0, 6.0)
    assert usage == UsageOut("item_001", 1.0)


COMMIT_EMPTY = ev.ErrorEvent(
    error=ev.ErrorInfo(
        "invalid_request_error",
        "input_audio_buffer_commit_empty",
        "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, "
        "but buffer only has 50.00ms of audio.",
    )
)


def test_commit_refused_as_empty_is_not_owed_and_does_not_shift_later_spans():
    asm = TranscriptAssembler()
    asm.begin_session(0.0)
    asm.receive(started("item_1", 500))
    asm.receive(stopped("item_1", 2000))
    assert asm.receive(committed("item_1")) == [CommittedOut("item_1", 0.0, 2.0, by_server=True)]
    asm.commit_sent(2.05)  # a flush from the framework; the server buffer holds 50 ms
    assert asm.receive(COMMIT_EMPTY) == [CommitRefusedOut(2.05)]
    asm.receive(completed("item_1", "one"))
    assert asm.pending_items == 0
    asm.receive(started("item_2", 3000))
    asm.receive(stopped("item_2", 4000))
    assert asm.receive(committed("item_2")) == [CommittedOut("item_2", 2.0, 4.0, by_server=True)]


def test_pre_commit_text_under_another_id_is_adopted_by_the_committed_item():
    # docs/protocol.md §4: which id pre-commit deltas carry is unconfirmed
    asm = TranscriptAssembler("en")
    asm.begin_session(0.0)
    assert asm.receive(delta("draft_7", "Hello")) == [InterimOut("draft_7", "Hello")]
    asm.commit_sent(1.0)
    asm.receive(committed("item_1"))
    assert asm.receive(delta("item_1", " there")) == [InterimOut("item_1", "Hello there")]
    outs = asm.receive(completed("item_1", "Hello there."))
    assert outs[0] == FinalOut("item_1", "Hello there.", 0.0, 1.0, "en", None)
    assert asm.unfinished_item_ids() == [] and asm.pending_items == 0
