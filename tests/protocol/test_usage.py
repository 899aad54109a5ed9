"""protocol/usage.py: UsageSummary totals and cost (docs/protocol.md §2 prices via the registry).

The price arithmetic of ``estimate_cost_usd`` itself is tested in tests/test_models.py; here
the question is which figures a summary hands it."""

from __future__ import annotations

import dataclasses

import pytest

from livekit.plugins.openai_stt.models import get_model_info
from livekit.plugins.openai_stt.protocol import events as ev
from livekit.plugins.openai_stt.protocol.transcript import TranscriptAssembler, UsageOut
from livekit.plugins.openai_stt.protocol.usage import UsageSummary

GRW = get_model_info("gpt-realtime-whisper")  # $0.017 / min, duration
GT = get_model_info("gpt-transcribe")  # $0.0045 / min, duration
W1 = get_model_info("whisper-1")  # $0.006 / min, duration (even when usage comes as tokens)
G4O = get_model_info("gpt-4o-transcribe")  # audio in $6, text in $2.50, out $10 per 1M
G4OM = get_model_info("gpt-4o-mini-transcribe")  # audio in $3, text in $1.25, out $5 per 1M
UNKNOWN = get_model_info("my-deployment")  # no price


@pytest.mark.parametrize("model", [GRW, GT, W1, G4O, G4OM])
def test_empty_summary_costs_nothing(model):
    summary = UsageSummary(model)
    assert summary.items == 0
    assert summary.cost_usd == 0.0


def test_unknown_price_gives_no_cost():
    summary = UsageSummary(UNKNOWN)
    summary.add_item(UsageOut("i", 60.0, billed_seconds=60.0))
    assert summary.cost_usd is None


DURATION_CASES = [
    # (model, usages, committed seconds, billed seconds, cost)
    pytest.param(
        GRW,
        [UsageOut("a", 2.0, billed_seconds=3.0)],
        2.0,
        3.0,
        3.0 / 60 * 0.017,
        id="server-billed-seconds-preferred",
    ),
    pytest.param(
        GRW,
        [UsageOut("a", 2.0)],
        2.0,
        2.0,
        2.0 / 60 * 0.017,
        id="committed-seconds-when-server-sends-none",
    ),
    pytest.param(
        GRW,
        [UsageOut("a", 30.0, billed_seconds=31.0), UsageOut("b", 29.0)],
        59.0,
        60.0,
        0.017,
        id="mixed-items-one-minute",
    ),
    pytest.param(
        GT,
        [UsageOut("a", 60.0, billed_seconds=120.0)],
        60.0,
        120.0,
        0.009,
        id="gpt-transcribe-two-billed-minutes",
    ),
    pytest.param(
        W1,
        [UsageOut("a", 90.0, input_tokens=500, output_tokens=40, audio_input_tokens=500)],
        90.0,
        90.0,
        1.5 * 0.006,
        id="whisper-1-token-usage-priced-per-committed-minute",
    ),
    pytest.param(
        GRW,
        [UsageOut("a", 0.0, billed_seconds=0.0)],
        0.0,
        0.0,
        0.0,
        id="zero-billed-seconds-are-not-replaced",
    ),
]


@pytest.mark.parametrize("model, usages, committed, billed, cost", DURATION_CASES)
def test_duration_models_cost_billed_seconds(model, usages, committed, billed, cost):
    summary = UsageSummary(model)
    for usage in usages:
        summary.add_item(usage)
    assert summary.items == len(usages)
    assert summary.audio_seconds_committed == pytest.approx(committed)
    assert summary.billed_seconds == pytest.approx(billed)
    assert summary.cost_usd == pytest.approx(cost)


TOKEN_CASES = [
    # (model, usages, (input, output, audio in, text in), cost)
    pytest.param(
        G4O,
        [UsageOut("a", 2.0, input_tokens=120, output_tokens=5, audio_input_tokens=120)],
        (120, 5, 120, 0),
        (120 * 6.00 + 5 * 10.00) / 1e6,
        id="4o-audio-and-output-tokens",
    ),
    pytest.param(
        G4O,
        [
            UsageOut(
                "a",
                2.0,
                input_tokens=120,
                output_tokens=5,
                audio_input_tokens=100,
                text_input_tokens=20,
            ),
            UsageOut("b", 1.0, input_tokens=50, output_tokens=7, audio_input_tokens=50),
        ],
        (170, 12, 150, 20),
        (150 * 6.00 + 20 * 2.50 + 12 * 10.00) / 1e6,
        id="4o-two-items-with-prompt-tokens",
    ),
    pytest.param(
        G4OM,
        [
            UsageOut(
                "a",
                5.0,
                input_tokens=1_000_000,
                output_tokens=1_000_000,
                audio_input_tokens=1_000_000,
            )
        ],
        (1_000_000, 1_000_000, 1_000_000, 0),
        3.00 + 5.00,
        id="4o-mini-a-million-each",
    ),
    pytest.param(
        G4O,
        [UsageOut("a", 2.0, billed_seconds=2.0)],
        (0, 0, 0, 0),
        None,
        id="token-model-with-audio-but-no-tokens-is-unknown",
    ),
]


@pytest.mark.parametrize("model, usages, tokens, cost", TOKEN_CASES)
def test_token_models_cost_their_tokens(model, usages, tokens, cost):
    summary = UsageSummary(model)
    for usage in usages:
        summary.add_item(usage)
    got = (
        summary.input_tokens,
        summary.output_tokens,
        summary.audio_input_tokens,
        summary.text_input_tokens,
    )
    assert got == tokens
    if cost is None:
        assert summary.cost_usd is None
    else:
        assert summary.cost_usd == pytest.approx(cost)


def test_audio_seconds_sent_do_not_count_as_billed():
    summary = UsageSummary(GRW, audio_seconds_sent=120.0)
    assert summary.cost_usd == 0.0
    summary.add_item(UsageOut("a", 60.0))
    assert summary.cost_usd == pytest.approx(0.017)
    assert summary.audio_seconds_sent == 120.0


def _totals(summary: UsageSummary) -> dict:
    out = dataclasses.asdict(summary)
    del out["model"], out["cost_usd"]
    return out


def test_merge_adds_every_total():
    a = UsageSummary(G4O, audio_seconds_sent=3.0)
    a.add_item(
        UsageOut(
            "a",
            2.0,
            input_tokens=10,
            output_tokens=2,
            audio_input_tokens=8,
            text_input_tokens=2,
            billed_seconds=2.5,
        )
    )
    b = UsageSummary(G4O, audio_seconds_sent=5.0)
    b.add_item(UsageOut("b", 4.0, input_tokens=20, output_tokens=3, audio_input_tokens=20))
    b.add_item(UsageOut("c", 1.0, input_tokens=4, audio_input_tokens=4))
    b_before = dataclasses.replace(b)
    a.merge(b)
    assert _totals(a) == {
        "audio_seconds_sent": 8.0,
        "audio_seconds_committed": 7.0,
        "billed_seconds": 7.5,
        "input_tokens": 34,
        "output_tokens": 5,
        "audio_input_tokens": 32,
        "text_input_tokens": 2,
        "items": 3,
    }
    assert b == b_before  # the merged-in summary is not changed
    assert a.cost_usd == pytest.approx((32 * 6.00 + 2 * 2.50 + 5 * 10.00) / 1e6)


@pytest.mark.parametrize("unknown_side", ["self", "other"])
def test_merge_with_an_unknown_cost_is_unknown(unknown_side):
    known = UsageSummary(GRW)
    known.add_item(UsageOut("a", 60.0))
    unknown = UsageSummary(UNKNOWN)
    unknown.add_item(UsageOut("b", 60.0))
    target, other = (unknown, known) if unknown_side == "self" else (known, unknown)
    target.merge(other)
    assert target.cost_usd is None
    assert target.billed_seconds == 120.0


def test_each_item_is_priced_with_its_own_model():
    summary = UsageSummary(GRW)
    summary.add_item(UsageOut("a", 60.0))  # the summary's model: $0.017
    summary.add_item(UsageOut("b", 60.0), GT)  # switched model: $0.0045
    assert summary.cost_usd == pytest.approx(0.017 + 0.0045)
    summary.add_item(UsageOut("c", 1.0), UNKNOWN)
    assert summary.cost_usd is None
    summary.add_item(UsageOut("d", 60.0))
    assert summary.cost_usd is None  # stays unknown
    assert summary.items == 4


def test_token_model_item_without_token_counts_makes_the_cost_unknown():
    summary = UsageSummary(G4O)
    summary.add_item(UsageOut("a", 2.0, input_tokens=120, output_tokens=5, audio_input_tokens=120))
    assert summary.cost_usd == pytest.approx((120 * 6.00 + 5 * 10.00) / 1e6)
    summary.add_item(UsageOut("b", 1.0))  # the server reported no usage for this item
    assert summary.cost_usd is None


def test_summary_from_assembler_usage_outputs():
    asm = TranscriptAssembler()
    summary = UsageSummary(GRW)
    asm.commit_sent(1.5)
    asm.commit_sent(4.0)
    asm.receive(ev.AudioBufferCommitted("item_1"))
    asm.receive(ev.AudioBufferCommitted("item_2"))
    outs = asm.receive(ev.TranscriptionCompleted("item_1", "a", usage=ev.DurationUsage(1.6)))
    outs += asm.receive(ev.TranscriptionCompleted("item_2", "", usage=None))
    for out in outs:
        if isinstance(out, UsageOut):
            summary.add_item(out)
    assert summary.items == 2
    assert summary.audio_seconds_committed == pytest.approx(4.0)
    assert summary.billed_seconds == pytest.approx(1.6 + 2.5)
    assert summary.cost_usd == pytest.approx(4.1 / 60 * 0.017)
