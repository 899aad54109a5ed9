"""Tables for the server's pure rules, time as data: the VAD state table, fault timing, the
configuration the server accepts (against the client's own session.update), and model facts
read from the registry."""

from __future__ import annotations

import dataclasses
import itertools
import json
import typing

import pytest

from livekit.plugins.openai_stt import models
from livekit.plugins.openai_stt.models import get_model_info, register_model
from livekit.plugins.openai_stt.protocol.events import (
    DurationUsage,
    TokenUsage,
    UpdateSession,
    to_wire,
)
from livekit.plugins.openai_stt.protocol.session import (
    SessionConfig,
    build_session_update,
    parse_session_update,
)
from livekit.plugins.openai_stt.server.config import (
    apply_beta_update,
    apply_ga_update,
    initial_config,
    model_runs_server_vad,
    model_sends_deltas,
    session_body,
)
from livekit.plugins.openai_stt.server.faults import (
    FaultCounters,
    Faults,
    drop_close,
    injected_error_due,
    take_audio_drop,
    take_timed_drop,
    timed_drop_at,
)
from livekit.plugins.openai_stt.server.jobs import usage_for
from livekit.plugins.openai_stt.server.session import ServerSession
from livekit.plugins.openai_stt.server.turns import (
    TRANSITIONS,
    Level,
    TurnDetection,
    TurnDetector,
    TurnStarted,
    TurnStopped,
    VadState,
)

W = 0.032
TD = TurnDetection(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=96)  # 3 windows


# -- the VAD state table -----------------------------------------------------------------------


def test_the_state_table_covers_every_state_and_level() -> None:
    assert set(TRANSITIONS) == set(itertools.product(VadState, Level))


@pytest.mark.parametrize(
    ("probabilities", "edges", "state"),
    [
        ([], [], VadState.IDLE),
        ([0.1, 0.4, 0.49], [], VadState.IDLE),  # nothing reaches the threshold
        ([0.1, 0.5], [TurnStarted(W)], VadState.SPEAKING),
        ([0.9, 0.0], [TurnStarted(0)], VadState.PAUSING),
        ([0.9, 0.0, 0.0, 0.0], [TurnStarted(0), TurnStopped(4 * W)], VadState.IDLE),
        ([0.9, 0.0, 0.0, 0.9, 0.0, 0.0], [TurnStarted(0)], VadState.PAUSING),  # speech resets
        # between the thresholds (0.35..0.5): the timer runs on but is not checked
        ([0.9, 0.0, 0.4, 0.4, 0.4], [TurnStarted(0)], VadState.PAUSING),
        ([0.9, 0.0, 0.4, 0.4, 0.0], [TurnStarted(0), TurnStopped(5 * W)], VadState.IDLE),
        ([0.9, 0.4, 0.4, 0.4, 0.4], [TurnStarted(0)], VadState.SPEAKING),  # never silent
        (
            [0.9, 0.0, 0.0, 0.0, 0.7, 0.0, 0.0, 0.0],
            [TurnStarted(0), TurnStopped(4 * W), TurnStarted(4 * W), TurnStopped(8 * W)],
            VadState.IDLE,
        ),
    ],
)
def test_turn_edges_follow_the_state_table(probabilities, edges, state) -> None:
    detector = TurnDetector()
    assert detector.feed(probabilities, TD, W) == pytest.approx(edges)
    assert detector.state is state
    assert detector.position_s == pytest.approx(len(probabilities) * W)


def test_the_edges_do_not_depend_on_how_the_windows_are_cut() -> None:
    probabilities = [0.0, 0.9, 0.9, 0.0, 0.4, 0.0, 0.0, 0.8, 0.0, 0.0, 0.0]
    whole = TurnDetector().feed(probabilities, TD, W)
    detector, pieces = TurnDetector(), []
    for k in range(0, len(probabilities), 2):
        pieces += detector.feed(probabilities[k : k + 2], TD, W)
    assert pieces == pytest.approx(whole)


def test_a_detector_starts_where_its_epoch_starts_and_a_client_commit_ends_the_turn() -> None:
    detector = TurnDetector(position_s=10.0)
    assert detector.feed([0.9], TD, W) == [TurnStarted(10.0)]
    detector.end_turn()
    assert detector.state is VadState.IDLE and not detector.speaking
    assert detector.feed([0.0] * 5, TD, W) == []


# -- fault timing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("faults", "drops_used", "opened_at", "now", "due_at", "dropped"),
    [
        (Faults(), 0, 10.0, 99.0, None, False),
        (Faults(drop_after_s=2.0), 0, 10.0, 11.9, 12.0, False),
        (Faults(drop_after_s=2.0), 0, 10.0, 12.0, 12.0, True),
        (Faults(drop_after_s=2.0), 1, 10.0, 50.0, None, False),  # budget spent
        (Faults(drop_after_s=2.0, drop_sessions=2), 1, 10.0, 12.5, 12.0, True),
    ],
)
def test_timed_drops(faults, drops_used, opened_at, now, due_at, dropped) -> None:
    counters = FaultCounters(drops=drops_used)
    assert timed_drop_at(faults, counters, opened_at) == due_at
    assert take_timed_drop(faults, counters, opened_at, now) is dropped
    assert counters.drops == drops_used + dropped


@pytest.mark.parametrize(
    ("faults", "received_ms", "dropped"),
    [
        (Faults(drop_after_audio_ms=500), 499.0, False),
        (Faults(drop_after_audio_ms=500), 500.0, True),
        (Faults(), 10_000.0, False),
    ],
)
def test_audio_drops(faults, received_ms, dropped) -> None:
    assert take_audio_drop(faults, FaultCounters(), received_ms) is dropped


def test_one_injected_error_per_server() -> None:
    faults, counters = (
        Faults(error_code_after_audio_ms=("rate_limit_exceeded", 300)),
        FaultCounters(),
    )
    assert injected_error_due(faults, counters, 299, False) is None
    assert injected_error_due(faults, counters, 300, False) == "rate_limit_exceeded"
    assert injected_error_due(faults, counters, 900, False) is None  # spent
    assert counters.error_events == 1


@pytest.mark.parametrize(
    ("mode", "close"),
    [
        ("close_1011", (1011, "internal error (fault injection)", False)),
        ("reset", (1006, "reset", True)),
    ],
)
def test_drop_close_per_mode(mode, close) -> None:
    assert drop_close(Faults(drop_mode=mode)) == close


# -- configuration: the server takes what the client builds -------------------------------------

OPENAI_DIALECTS = ("ga", "beta", "speaches")  # vLLM takes only the model (its own test)
ALL_MODELS = [*typing.get_args(models.STTModels), "my-self-hosted-model"]


def accepted(model: str, audio_format: str) -> SessionConfig:
    """A config using every option ``model`` accepts (so nothing is dropped)."""
    info = get_model_info(model)
    takes_list = info.accepts_languages_and_keywords and not info.accepts_language
    return SessionConfig(
        model=model,
        language=None if takes_list else "fr",
        languages=("fr",) if takes_list else None,
        keywords=("LiveKit",) if info.accepts_languages_and_keywords else None,
        noise_reduction_strength=0.5,
        prompt="names" if info.accepts_prompt else None,
        delay="low" if info.accepts_delay else None,
        noise_reduction="near_field",
        turn_detection={"type": "server_vad", "threshold": 0.6} if info.server_vad else None,
        audio_format=audio_format,  # type: ignore[arg-type]
        logprobs=True,
    )


@pytest.mark.parametrize("dialect", OPENAI_DIALECTS)
@pytest.mark.parametrize("model", ALL_MODELS)
@pytest.mark.parametrize("audio_format", ["pcm16", "g711_alaw"])
def test_the_server_applies_what_the_client_builds_to_the_same_config(
    dialect, model, audio_format
) -> None:
    config = accepted(model, audio_format)
    if dialect != "ga":  # no noise strength in the beta shapes: not sent
        config = dataclasses.replace(config, noise_reduction_strength=None)
    payload = build_session_update(config, get_model_info(model), dialect).payload
    assert parse_session_update(payload, dialect) == config
    apply = apply_ga_update if dialect == "ga" else apply_beta_update
    applied = apply(initial_config("gpt-realtime-whisper"), payload["session"], "lenient")
    if dialect != "ga":  # the beta transcription object has no delay: the server ignores it
        config = dataclasses.replace(config, delay=None)
    assert applied == config
    # and the session answers it with its updated event
    session = ServerSession()
    session.opened(0.0)
    (updated,) = session.receive(to_wire(UpdateSession(**payload)), 0.0).sent
    assert updated["type"].endswith("updated"), updated
    assert session.config == config


@pytest.mark.parametrize("model", typing.get_args(models.STTModels))
def test_openai_mode_accepts_every_update_the_client_builds_for_a_listed_model(model) -> None:
    config = accepted(model, "pcm16")
    payload = build_session_update(config, get_model_info(model), "ga").payload
    session = ServerSession(compat="openai")
    session.opened(0.0)
    actions = session.receive(json.dumps(payload), 0.0)
    assert [e["type"] for e in actions.sent] == ["session.updated"]


@pytest.mark.parametrize("dialect", ["ga", "beta"])
def test_the_echoed_session_describes_the_effective_config(dialect) -> None:
    config = dataclasses.replace(
        initial_config("whisper-1"), language="en", prompt="p", noise_reduction="far_field"
    )
    body = session_body(config, "sess_1", dialect)
    if dialect == "ga":
        inp = body["audio"]["input"]
        assert inp["format"] == {"type": "audio/pcm", "rate": 24000}
        assert inp["transcription"] == {"model": "whisper-1", "language": "en", "prompt": "p"}
        assert inp["noise_reduction"] == {"type": "far_field"}
        assert inp["turn_detection"] is None
    else:
        assert body["input_audio_format"] == "pcm16"
        assert body["input_audio_noise_reduction"] == {"type": "far_field"}
        assert body["turn_detection"] is None
    assert body["include"] is None and body["id"] == "sess_1"


# -- model facts come from the registry ----------------------------------------------------------


@pytest.fixture
def isolated_registry(monkeypatch):
    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))


def test_the_server_follows_the_registry(isolated_registry) -> None:
    assert model_runs_server_vad("my-model")  # unknown: honour what the client asked
    assert usage_for("my-model", 1.0, "x") == DurationUsage(1.0)
    register_model(
        dataclasses.replace(
            get_model_info("gpt-4o-transcribe"),
            name="my-model",
            server_vad=False,
            sends_deltas=False,
        )
    )
    assert not model_runs_server_vad("my-model")
    assert not model_sends_deltas("my-model")
    assert usage_for("my-model", 1.0, "abcd") == TokenUsage(10, 1, 11, 10, 0)
    assert model_runs_server_vad("my-model-2026-01-01") is False  # a snapshot of it
