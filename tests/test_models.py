"""Tables for models.py: capabilities, lookup, registration, cost (docs/protocol.md §2)."""

from __future__ import annotations

import dataclasses
from typing import get_args

import pytest

from livekit.plugins.openai_stt import models
from livekit.plugins.openai_stt.models import (
    ModelInfo,
    STTModels,
    estimate_cost_usd,
    get_model_info,
    register_model,
)

FLAGS = (
    "server_vad",
    "deltas_before_commit",
    "accepts_prompt",
    "accepts_language",
    "accepts_languages_and_keywords",
    "accepts_delay",
    "usage_kind",
)


@pytest.fixture
def isolated_registry(monkeypatch):
    """Give the test its own copy of the registry; pytest puts the original back afterwards."""
    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))


@pytest.mark.parametrize(
    ("name", "flags"),
    [
        pytest.param(
            "gpt-realtime-whisper",
            (False, True, False, True, False, True, "duration"),
            id="gpt-realtime-whisper",
        ),
        pytest.param(
            "gpt-live-transcribe",
            (False, True, True, False, True, False, "duration"),
            id="gpt-live-transcribe",
        ),
        pytest.param(
            "gpt-transcribe",
            (False, False, True, False, True, False, "duration"),
            id="gpt-transcribe",
        ),
        pytest.param(
            "gpt-4o-transcribe",
            (True, False, True, True, False, False, "tokens"),
            id="gpt-4o-transcribe",
        ),
        pytest.param(
            "gpt-4o-mini-transcribe",
            (True, False, True, True, False, False, "tokens"),
            id="gpt-4o-mini-transcribe",
        ),
        pytest.param(
            "whisper-1", (True, False, True, True, False, False, "duration"), id="whisper-1"
        ),
    ],
)
def test_known_model_flags(name, flags) -> None:
    info = get_model_info(name)
    assert info.name == name
    assert tuple(getattr(info, f) for f in FLAGS) == flags
    assert "docs/protocol.md §2" in info.source


@pytest.mark.parametrize(
    ("name", "per_minute", "audio_in", "text_in", "out"),
    [
        ("gpt-realtime-whisper", 0.017, None, None, None),
        ("gpt-live-transcribe", 0.017, None, None, None),
        ("gpt-transcribe", 0.0045, None, None, None),
        ("gpt-4o-transcribe", None, 6.00, 2.50, 10.00),
        ("gpt-4o-mini-transcribe", None, 3.00, 1.25, 5.00),
        ("whisper-1", 0.006, None, None, None),
    ],
)
def test_known_model_prices(name, per_minute, audio_in, text_in, out) -> None:
    info = get_model_info(name)
    assert info.usd_per_audio_minute == per_minute
    assert info.usd_per_million_audio_input_tokens == audio_in
    assert info.usd_per_million_text_input_tokens == text_in
    assert info.usd_per_million_output_tokens == out
    assert "https://developers.openai.com/" in info.source


def test_stt_models_literal_lists_exactly_the_registered_models() -> None:
    assert set(get_args(STTModels)) == {info.name for info in models._KNOWN}


def test_models_whose_facts_are_unconfirmed_say_so_in_source() -> None:
    for name in ("gpt-live-transcribe", "gpt-transcribe"):
        assert "unconfirmed" in get_model_info(name).source


@pytest.mark.parametrize(
    ("name", "base"),
    [
        pytest.param("gpt-4o-transcribe-2025-03-20", "gpt-4o-transcribe", id="4o-snapshot"),
        pytest.param(
            "gpt-4o-mini-transcribe-2025-12-15", "gpt-4o-mini-transcribe", id="mini-snapshot"
        ),
        pytest.param("gpt-realtime-whisper-2026-05-07", "gpt-realtime-whisper", id="rw-snapshot"),
    ],
)
def test_a_dated_snapshot_inherits_from_its_registered_base_name(name, base) -> None:
    info = get_model_info(name)
    assert info.name == name and info.snapshot_of == base
    assert dataclasses.replace(info, name=base, snapshot_of=None) == get_model_info(base)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("my-azure-deployment", id="azure-deployment"),
        pytest.param("gpt-4o-transcribe-diarize", id="undated-variant"),
        pytest.param("Systran/faster-whisper-small", id="self-hosted"),
        pytest.param("gpt-4o-transcribe-latest", id="non-date-suffix"),
        pytest.param("gpt-4o-transcribe-diarize-2025-10-15", id="dated-undated-variant"),
    ],
)
def test_an_unknown_model_gets_safe_defaults(name) -> None:
    info = get_model_info(name)
    assert info.name == name
    assert tuple(getattr(info, f) for f in FLAGS) == (
        False,
        False,
        False,
        True,
        False,
        False,
        "duration",
    )
    assert info.usd_per_audio_minute is None
    assert estimate_cost_usd(info, audio_seconds=60) is None


def test_register_model_adds_a_new_name(isolated_registry) -> None:
    mine = dataclasses.replace(get_model_info("gpt-4o-transcribe"), name="my-deployment")
    register_model(mine)
    assert get_model_info("my-deployment") == mine
    assert get_model_info("my-deployment-2025-01-01").server_vad is True


def test_register_model_overrides_a_known_name(isolated_registry) -> None:
    cheaper = dataclasses.replace(get_model_info("whisper-1"), usd_per_audio_minute=0.001)
    register_model(cheaper)
    assert get_model_info("whisper-1").usd_per_audio_minute == 0.001


def test_the_registry_is_restored_after_the_registration_tests() -> None:
    assert get_model_info("whisper-1").usd_per_audio_minute == 0.006
    assert get_model_info("my-deployment").server_vad is False


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"name": ""}, id="empty-name"),
        pytest.param({"usage_kind": "characters"}, id="bad-usage-kind"),
        pytest.param({"usd_per_audio_minute": -1.0}, id="negative-price"),
    ],
)
def test_an_invalid_model_info_raises(kwargs) -> None:
    base = dict(
        name="x",
        server_vad=False,
        deltas_before_commit=False,
        accepts_prompt=False,
        accepts_language=True,
        accepts_languages_and_keywords=False,
        accepts_delay=False,
        usage_kind="duration",
    )
    with pytest.raises(ValueError):
        ModelInfo(**{**base, **kwargs})


@pytest.mark.parametrize(
    ("name", "kwargs", "expected"),
    [
        pytest.param("gpt-realtime-whisper", {"audio_seconds": 60}, 0.017, id="rw-60s"),
        pytest.param("gpt-realtime-whisper", {"audio_seconds": 90}, 0.0255, id="rw-90s"),
        pytest.param("gpt-transcribe", {"audio_seconds": 120}, 0.009, id="transcribe-120s"),
        pytest.param(
            "whisper-1",
            {"audio_seconds": 30, "output_tokens": 999},
            0.003,
            id="duration-model-ignores-tokens",
        ),
        pytest.param(
            "gpt-4o-transcribe",
            {
                "audio_seconds": 60,
                "audio_input_tokens": 1_000_000,
                "text_input_tokens": 1_000_000,
                "output_tokens": 1_000_000,
            },
            6.00 + 2.50 + 10.00,
            id="4o-one-million-each",
        ),
        pytest.param(
            "gpt-4o-mini-transcribe",
            {"audio_seconds": 2.4, "audio_input_tokens": 120, "output_tokens": 5},
            120 * 3.00 / 1e6 + 5 * 5.00 / 1e6,
            id="mini-usage-example",
        ),
        pytest.param("gpt-4o-transcribe", {"audio_seconds": 0}, 0.0, id="token-model-nothing-sent"),
        pytest.param(
            "gpt-4o-transcribe", {"audio_seconds": 5}, None, id="token-model-tokens-unknown"
        ),
    ],
)
def test_estimate_cost_usd(name, kwargs, expected) -> None:
    cost = estimate_cost_usd(get_model_info(name), **kwargs)
    if expected is None:
        assert cost is None
    else:
        assert cost == pytest.approx(expected)


def test_a_token_model_without_a_price_has_no_cost() -> None:
    info = dataclasses.replace(
        get_model_info("gpt-4o-transcribe"), usd_per_million_output_tokens=None
    )
    assert estimate_cost_usd(info, audio_seconds=1, audio_input_tokens=10) == pytest.approx(6e-5)
    assert estimate_cost_usd(info, audio_seconds=1, audio_input_tokens=10, output_tokens=1) is None


def test_a_negative_amount_raises() -> None:
    with pytest.raises(ValueError):
        estimate_cost_usd(get_model_info("whisper-1"), audio_seconds=-1)


# -- facts the local server reads (server VAD, deltas, usage shape, languages, rejections) -------


@pytest.mark.parametrize(
    ("name", "sends_deltas", "usage_shape", "returns_languages", "rejected"),
    [
        ("gpt-realtime-whisper", True, "duration", False, {"turn_detection", "prompt"}),
        ("gpt-live-transcribe", True, "duration", False, {"turn_detection"}),
        ("gpt-transcribe", True, "duration", True, {"delay"}),
        ("gpt-4o-transcribe", True, "tokens", False, {"delay"}),
        ("gpt-4o-mini-transcribe", True, "tokens", False, {"delay"}),
        ("whisper-1", False, "tokens", False, {"delay"}),  # priced per minute, reports tokens
        ("gpt-4o-transcribe-2025-03-20", True, "tokens", False, {"delay"}),
        ("my-azure-deployment", True, "duration", False, set()),
    ],
)
def test_completed_event_facts_and_rejected_options(
    name, sends_deltas, usage_shape, returns_languages, rejected
) -> None:
    info = get_model_info(name)
    assert info.sends_deltas is sends_deltas
    assert info.reported_usage_kind == usage_shape
    assert info.returns_languages is returns_languages
    assert info.rejected_options == frozenset(rejected)


def test_known_is_false_only_for_the_safe_defaults(isolated_registry) -> None:
    assert all(get_model_info(n).known for n in get_args(STTModels))
    assert get_model_info("gpt-4o-transcribe-2025-03-20").known
    assert not get_model_info("my-deployment").known
    register_model(dataclasses.replace(get_model_info("whisper-1"), name="my-deployment"))
    assert get_model_info("my-deployment").known


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"usage_shape": "seconds"}, id="bad-usage-shape"),
        pytest.param({"rejected_options": {"language"}}, id="unrejectable-option"),
    ],
)
def test_an_invalid_new_field_raises(kwargs) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(get_model_info("whisper-1"), **kwargs)


def test_rejected_options_given_as_a_set_become_a_frozenset() -> None:
    info = dataclasses.replace(get_model_info("whisper-1"), rejected_options={"prompt"})
    assert info.rejected_options == frozenset({"prompt"}) and hash(info)
    assert models.REJECTABLE_OPTIONS == ("turn_detection", "prompt", "delay")
