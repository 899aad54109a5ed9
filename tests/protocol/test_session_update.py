"""Tables for protocol/session.py: the session configuration event of each dialect
(docs/protocol.md §2) and the rule "never send what the model rejects" (§5)."""

from __future__ import annotations

import copy
import dataclasses
import json
import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

from livekit.plugins.openai_stt import models
from livekit.plugins.openai_stt.models import get_model_info
from livekit.plugins.openai_stt.protocol.events import EventParseError
from livekit.plugins.openai_stt.protocol.session import (
    DIALECTS,
    LOGPROBS_INCLUDE,
    WIRE_FORMATS,
    SessionConfig,
    build_session_update,
    parse_session_update,
    wire_bytes_per_sample,
    wire_format_of_ga_type,
    wire_sample_rate_hz,
)

GRW = "gpt-realtime-whisper"
OPENAI_DIALECTS = ("ga", "beta", "speaches")  # vLLM takes only the model (its own test)
LIVE = "gpt-live-transcribe"
GT = "gpt-transcribe"
G4O = "gpt-4o-transcribe"
G4OM = "gpt-4o-mini-transcribe"
W1 = "whisper-1"

SERVER_VAD = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
}
SEMANTIC_VAD = {"type": "semantic_vad", "eagerness": "auto"}
PCM = {"type": "audio/pcm", "rate": 24000}
PROMPT = "Names: Siobhan, Nguyen."
LANGS = ("en", "fr")
KEYWORDS = ("LiveKit", "Siobhan")


def ga(transcription, turn_detection=None, noise=None, fmt=PCM, include=None):
    """The expected GA payload; every field below is spelled out by each table row."""
    session = {
        "type": "transcription",
        "audio": {
            "input": {
                "format": fmt,
                "transcription": transcription,
                "turn_detection": turn_detection,
                "noise_reduction": noise,
            }
        },
    }
    if include is not None:
        session["include"] = include
    return {"type": "session.update", "session": session}


def test_protocol_md_example_payload_exactly():
    update = build_session_update(
        SessionConfig(model=GRW, language="en", noise_reduction="near_field", logprobs=True),
        get_model_info(GRW),
    )
    assert update.payload == json.loads("""
        {"type": "session.update",
         "session": {"type": "transcription",
                     "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000},
                                         "transcription": {"model": "gpt-realtime-whisper",
                                                           "language": "en"},
                                         "turn_detection": null,
                                         "noise_reduction": {"type": "near_field"}}},
                     "include": ["item.input_audio_transcription.logprobs"]}}
    """)
    assert update.dropped == ()
    assert update.server_vad is False


GA_CASES = [
    # (model, SessionConfig kwargs, expected transcription, expected turn_detection, dropped)
    # -- gpt-realtime-whisper: no prompt, no turn detection, delay yes, no languages/keywords
    pytest.param(GRW, {}, {"model": GRW, "language": "en"}, None, (), id="grw-defaults"),
    pytest.param(
        GRW,
        {"prompt": PROMPT},
        {"model": GRW, "language": "en"},
        None,
        ("prompt",),
        id="grw-prompt-dropped",
    ),
    pytest.param(
        GRW,
        {"turn_detection": SERVER_VAD},
        {"model": GRW, "language": "en"},
        None,
        ("turn_detection",),
        id="grw-server_vad-dropped-sent-as-null",
    ),
    pytest.param(
        GRW,
        {"turn_detection": SEMANTIC_VAD},
        {"model": GRW, "language": "en"},
        None,
        ("turn_detection",),
        id="grw-semantic_vad-dropped",
    ),
    pytest.param(
        GRW,
        {"delay": "low"},
        {"model": GRW, "language": "en", "delay": "low"},
        None,
        (),
        id="grw-delay-sent",
    ),
    pytest.param(
        GRW,
        {"languages": LANGS, "keywords": KEYWORDS},
        {"model": GRW, "language": "en"},
        None,
        ("languages", "keywords"),
        id="grw-languages-keywords-dropped",
    ),
    pytest.param(
        GRW,
        {"language": None, "delay": "xhigh"},
        {"model": GRW, "delay": "xhigh"},
        None,
        (),
        id="grw-no-language",
    ),
    pytest.param(
        GRW,
        {
            "prompt": PROMPT,
            "delay": "minimal",
            "turn_detection": SERVER_VAD,
            "languages": LANGS,
            "keywords": KEYWORDS,
            "language": "de",
        },
        {"model": GRW, "language": "de", "delay": "minimal"},
        None,
        ("prompt", "languages", "keywords", "turn_detection"),
        id="grw-everything",
    ),
    # -- gpt-live-transcribe: languages (never language), keywords, prompt; delay, turn
    # detection no
    # keywords go to these models always: [] clears keywords set before (a field left out keeps
    # its value), as the official plugin does
    pytest.param(
        LIVE, {}, {"model": LIVE, "languages": ["en"], "keywords": []}, None, (), id="live-defaults"
    ),
    pytest.param(
        LIVE,
        {"languages": LANGS, "keywords": KEYWORDS},
        {"model": LIVE, "languages": ["en", "fr"], "keywords": ["LiveKit", "Siobhan"]},
        None,
        (),
        id="live-languages-keywords",
    ),
    pytest.param(
        LIVE,
        {"language": "en-US", "languages": ("fr_FR", "en")},
        {"model": LIVE, "languages": ["en", "fr"], "keywords": []},  # ISO-639-1, once, not both
        None,
        (),
        id="live-regional-tags-merged",
    ),
    pytest.param(
        LIVE,
        {"prompt": PROMPT, "delay": "low", "turn_detection": SERVER_VAD},
        {"model": LIVE, "languages": ["en"], "prompt": PROMPT, "keywords": []},
        None,
        ("delay", "turn_detection"),
        id="live-prompt-yes-delay-vad-dropped",
    ),
    # -- gpt-transcribe: prompt and languages/keywords yes; delay and turn detection no
    pytest.param(
        GT,
        {"prompt": PROMPT, "keywords": KEYWORDS},
        {"model": GT, "languages": ["en"], "prompt": PROMPT, "keywords": ["LiveKit", "Siobhan"]},
        None,
        (),
        id="gt-prompt-keywords",
    ),
    pytest.param(
        GT,
        {"languages": ("es",), "delay": "high", "turn_detection": SERVER_VAD},
        {"model": GT, "languages": ["en", "es"], "keywords": []},
        None,
        ("delay", "turn_detection"),
        id="gt-delay-vad-dropped",
    ),
    # -- gpt-4o-transcribe / mini: server VAD and prompt yes; delay, languages/keywords no
    pytest.param(
        G4O,
        {"prompt": PROMPT, "turn_detection": SERVER_VAD},
        {"model": G4O, "language": "en", "prompt": PROMPT},
        SERVER_VAD,
        (),
        id="4o-prompt-server_vad",
    ),
    pytest.param(
        G4O,
        {"turn_detection": SEMANTIC_VAD},
        {"model": G4O, "language": "en"},
        SEMANTIC_VAD,
        (),
        id="4o-semantic_vad",
    ),
    pytest.param(
        G4O,
        {"delay": "low", "languages": LANGS, "keywords": KEYWORDS},
        {"model": G4O, "language": "en"},
        None,
        ("delay", "languages", "keywords"),
        id="4o-delay-languages-keywords-dropped",
    ),
    pytest.param(
        G4OM,
        {"prompt": PROMPT, "turn_detection": SERVER_VAD, "language": "fr"},
        {"model": G4OM, "language": "fr", "prompt": PROMPT},
        SERVER_VAD,
        (),
        id="4o-mini-prompt-server_vad",
    ),
    pytest.param(
        G4OM,
        {"delay": "medium"},
        {"model": G4OM, "language": "en"},
        None,
        ("delay",),
        id="4o-mini-delay-dropped",
    ),
    # -- whisper-1: server VAD and prompt yes
    pytest.param(
        W1,
        {"prompt": PROMPT, "turn_detection": SERVER_VAD},
        {"model": W1, "language": "en", "prompt": PROMPT},
        SERVER_VAD,
        (),
        id="whisper-1-prompt-server_vad",
    ),
    pytest.param(
        W1,
        {"delay": "low", "keywords": KEYWORDS},
        {"model": W1, "language": "en"},
        None,
        ("delay", "keywords"),
        id="whisper-1-delay-keywords-dropped",
    ),
    # -- empty values are "not set", not "dropped"; an empty prompt is sent: it clears one set
    # before (a field left out keeps its value)
    pytest.param(
        G4O,
        {"prompt": "", "language": "", "languages": (), "keywords": ()},
        {"model": G4O, "prompt": ""},
        None,
        (),
        id="empty-values-not-sent-nor-dropped",
    ),
    # -- a name outside the registry: only language is sent
    pytest.param(
        "my-azure-deployment",
        {"prompt": PROMPT, "turn_detection": SERVER_VAD},
        {"model": "my-azure-deployment", "language": "en"},
        None,
        ("prompt", "turn_detection"),
        id="unknown-model-safe-defaults",
    ),
    pytest.param(
        "gpt-4o-transcribe-2025-03-20",
        {"turn_detection": SERVER_VAD},
        {"model": "gpt-4o-transcribe-2025-03-20", "language": "en"},
        SERVER_VAD,
        (),
        id="dated-snapshot-uses-its-base-model",
    ),
]


@pytest.mark.parametrize("model, kwargs, transcription, turn_detection, dropped", GA_CASES)
def test_ga_payload_and_dropped_per_model_and_options(
    model, kwargs, transcription, turn_detection, dropped
):
    update = build_session_update(SessionConfig(model=model, **kwargs), get_model_info(model))
    assert update.payload == ga(transcription, turn_detection)
    assert update.dropped == dropped
    assert update.server_vad is (turn_detection is not None)


@pytest.mark.parametrize("model", [GRW, LIVE, GT, G4O, G4OM, W1])
@pytest.mark.parametrize("noise", ["near_field", "far_field", None])
@pytest.mark.parametrize("logprobs", [True, False])
def test_noise_reduction_and_logprobs_are_sent_for_every_model(model, noise, logprobs):
    update = build_session_update(
        SessionConfig(model=model, noise_reduction=noise, logprobs=logprobs), get_model_info(model)
    )
    language = {"languages": ["en"], "keywords": []} if model in (LIVE, GT) else {"language": "en"}
    expected = ga(
        {"model": model, **language},
        noise={"type": noise} if noise else None,
        include=[LOGPROBS_INCLUDE] if logprobs else None,
    )
    assert update.payload == expected
    assert update.dropped == ()


def test_gpt_realtime_whisper_never_gets_prompt_or_turn_detection_in_any_dialect():
    config = SessionConfig(model=GRW, prompt=PROMPT, turn_detection=SERVER_VAD)
    for dialect in ("ga", "beta", "speaches"):
        update = build_session_update(config, get_model_info(GRW), dialect)
        text = json.dumps(update.payload)
        assert "prompt" not in text, dialect
        assert "server_vad" not in text, dialect
        assert '"turn_detection": null' in text, dialect
        assert update.server_vad is False


@pytest.mark.parametrize(
    "audio_format, ga_format, rate, bytes_per_sample",
    [
        ("pcm16", {"type": "audio/pcm", "rate": 24000}, 24000, 2),
        ("g711_ulaw", {"type": "audio/pcmu"}, 8000, 1),
        ("g711_alaw", {"type": "audio/pcma"}, 8000, 1),
    ],
)
def test_audio_formats_in_ga_and_beta(audio_format, ga_format, rate, bytes_per_sample):
    config = SessionConfig(model=W1, audio_format=audio_format)
    info = get_model_info(W1)
    assert build_session_update(config, info, "ga").payload == ga(
        {"model": W1, "language": "en"}, fmt=ga_format
    )
    for dialect in ("beta", "speaches"):
        session = build_session_update(config, info, dialect).payload["session"]
        assert session["input_audio_format"] == audio_format
    assert wire_sample_rate_hz(audio_format) == rate
    assert wire_bytes_per_sample(audio_format) == bytes_per_sample


def test_ga_format_is_a_fresh_dict_each_time():
    info = get_model_info(GRW)
    first = build_session_update(SessionConfig(model=GRW), info).payload
    first["session"]["audio"]["input"]["format"]["rate"] = 8000
    second = build_session_update(SessionConfig(model=GRW), info).payload
    assert second["session"]["audio"]["input"]["format"] == PCM


def test_turn_detection_in_payload_is_a_copy_of_the_config():
    td = copy.deepcopy(SERVER_VAD)
    config = SessionConfig(model=G4O, turn_detection=td)
    payload = build_session_update(config, get_model_info(G4O)).payload
    payload["session"]["audio"]["input"]["turn_detection"]["threshold"] = 0.9
    assert config.turn_detection == SERVER_VAD


BETA_CASES = [
    # (dialect, model, kwargs, expected payload, dropped)
    pytest.param(
        "beta",
        W1,
        {
            "prompt": PROMPT,
            "turn_detection": SERVER_VAD,
            "noise_reduction": "far_field",
            "logprobs": True,
        },
        {
            "type": "transcription_session.update",
            "session": {
                "input_audio_format": "pcm16",
                "input_audio_transcription": {"model": W1, "language": "en", "prompt": PROMPT},
                "turn_detection": SERVER_VAD,
                "input_audio_noise_reduction": {"type": "far_field"},
                "include": [LOGPROBS_INCLUDE],
            },
        },
        (),
        id="beta-whisper-1-everything",
    ),
    pytest.param(
        "beta",
        GRW,
        {"prompt": PROMPT, "turn_detection": SERVER_VAD, "audio_format": "g711_ulaw"},
        {
            "type": "transcription_session.update",
            "session": {
                "input_audio_format": "g711_ulaw",
                "input_audio_transcription": {"model": GRW, "language": "en"},
                "turn_detection": None,
                "input_audio_noise_reduction": None,
            },
        },
        ("prompt", "turn_detection"),
        id="beta-grw-g711_ulaw-prompt-vad-dropped",
    ),
    pytest.param(
        "speaches",
        "Systran/faster-whisper-small",
        {"language": "fr"},
        {
            "type": "session.update",
            "session": {
                "input_audio_format": "pcm16",
                "input_audio_transcription": {
                    "model": "Systran/faster-whisper-small",
                    "language": "fr",
                },
                "turn_detection": None,
                "input_audio_noise_reduction": None,
            },
        },
        (),
        id="speaches-flat-session-inside-session.update",
    ),
    pytest.param(
        "speaches",
        G4OM,
        {"turn_detection": SEMANTIC_VAD, "audio_format": "g711_alaw", "logprobs": True},
        {
            "type": "session.update",
            "session": {
                "input_audio_format": "g711_alaw",
                "input_audio_transcription": {"model": G4OM, "language": "en"},
                "turn_detection": SEMANTIC_VAD,
                "input_audio_noise_reduction": None,
                "include": [LOGPROBS_INCLUDE],
            },
        },
        (),
        id="speaches-semantic_vad-g711_alaw-logprobs",
    ),
]


@pytest.mark.parametrize("dialect, model, kwargs, expected, dropped", BETA_CASES)
def test_beta_and_speaches_shapes(dialect, model, kwargs, expected, dropped):
    update = build_session_update(
        SessionConfig(model=model, **kwargs), get_model_info(model), dialect
    )
    assert update.payload == expected
    assert update.dropped == dropped


@pytest.mark.parametrize("dialect", ["GA", "v1", "", "openai"])
def test_unknown_dialect_raises_value_error(dialect):
    with pytest.raises(ValueError, match="dialect"):
        build_session_update(
            SessionConfig(model=W1),
            get_model_info(W1),
            dialect,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("dialect", ["beta", "speaches"])
@pytest.mark.parametrize("audio_format", ["opus", "pcm24", ""])
def test_unknown_audio_format_raises_value_error_in_beta_dialects(dialect, audio_format):
    with pytest.raises(ValueError, match="audio_format"):
        build_session_update(
            SessionConfig(model=W1, audio_format=audio_format),  # type: ignore[arg-type]
            get_model_info(W1),
            dialect,
        )


@pytest.mark.parametrize("audio_format", ["opus", "pcm24", ""])
def test_unknown_audio_format_raises_value_error_in_ga(audio_format):
    with pytest.raises(ValueError, match="audio_format"):
        build_session_update(
            SessionConfig(model=W1, audio_format=audio_format),  # type: ignore[arg-type]
            get_model_info(W1),
            "ga",
        )


@pytest.mark.parametrize("audio_format", ["opus", "pcm", "g711", ""])
def test_wire_helpers_reject_unknown_format(audio_format):
    with pytest.raises(ValueError):
        wire_sample_rate_hz(audio_format)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        wire_bytes_per_sample(audio_format)  # type: ignore[arg-type]


@pytest.mark.parametrize("dialect", ["ga", "beta", "speaches"])
def test_payload_is_json_serialisable(dialect):
    config = SessionConfig(model=G4O, prompt="Grüße", turn_detection=SERVER_VAD, logprobs=True)
    payload = build_session_update(config, get_model_info(G4O), dialect).payload
    assert json.loads(json.dumps(payload)) == payload


# -- parse_session_update: the inverse of build_session_update, per dialect ----------------------

ALL_MODELS = [*typing.get_args(models.STTModels), "my-self-hosted-model"]


@st.composite
def accepted_configs(draw, dialect):
    """A model and a config using only options that model accepts (nothing dropped)."""
    model = draw(st.sampled_from(ALL_MODELS))
    info = get_model_info(model)
    text = st.text(min_size=1, max_size=12)
    names = st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=3).map(tuple)
    audio_format = draw(st.sampled_from(list(WIRE_FORMATS)))
    pcm_rate = 24000
    if dialect == "ga" and audio_format == "pcm16":
        pcm_rate = draw(st.sampled_from([8000, 16000, 24000, 44100, 48000]))
    vad = st.sampled_from([SERVER_VAD, SEMANTIC_VAD, {"type": "server_vad", "threshold": 0.7}])
    noise = draw(st.sampled_from([None, "near_field", "far_field"]))
    codes = st.lists(st.sampled_from(["en", "fr", "de", "es"]), unique=True, min_size=1, max_size=3)
    config = SessionConfig(
        model=model,
        language=draw(st.none() | st.sampled_from(["en", "fr", "de"]))
        if info.accepts_language
        else None,
        prompt=draw(st.none() | text) if info.accepts_prompt else None,
        delay=draw(st.none() | st.sampled_from(typing.get_args(models.DelayLevel)))
        if info.accepts_delay
        else None,
        noise_reduction=noise,
        noise_reduction_strength=draw(st.none() | st.floats(0.0, 2.0))
        if noise and dialect == "ga"
        else None,
        turn_detection=draw(st.none() | vad) if info.server_vad else None,
        audio_format=audio_format,
        logprobs=draw(st.booleans()),
        languages=draw(st.none() | codes.map(tuple))
        if info.accepts_languages_and_keywords
        else None,
        keywords=draw(st.none() | names) if info.accepts_languages_and_keywords else None,
        pcm_rate_hz=pcm_rate,
    )
    return config, info


@pytest.mark.parametrize("dialect", OPENAI_DIALECTS)
@given(data=st.data())
def test_parse_session_update_inverts_build_session_update_per_dialect(dialect, data):
    config, info = data.draw(accepted_configs(dialect))
    update = build_session_update(config, info, dialect)
    assert update.dropped == ()
    assert parse_session_update(update.payload, dialect) == config
    # and through JSON, as it travels
    assert parse_session_update(json.loads(json.dumps(update.payload)), dialect) == config


@pytest.mark.parametrize("dialect", OPENAI_DIALECTS)
def test_a_null_transcription_round_trips_as_transcription_disabled(dialect):
    config = SessionConfig(model="", language=None, transcription_enabled=False)
    payload = build_session_update(config, get_model_info(W1), dialect).payload
    assert parse_session_update(payload, dialect) == config


def test_protocol_md_example_parses_back():
    text = json.dumps(
        {
            "type": "session.update",
            "session": {
                "type": "transcription",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "transcription": {
                            "model": "gpt-realtime-whisper",
                            "language": "en",
                            "delay": "low",
                        },
                        "turn_detection": None,
                        "noise_reduction": {"type": "far_field"},
                    }
                },
                "include": ["item.input_audio_transcription.logprobs"],
            },
        }
    )
    assert parse_session_update(json.loads(text), "ga") == SessionConfig(
        model=GRW, language="en", delay="low", noise_reduction="far_field", logprobs=True
    )


@pytest.mark.parametrize(
    ("dialect", "mutate", "field"),
    [
        ("ga", lambda p: p.update(type="transcription_session.update"), "type"),
        ("beta", lambda p: p.update(type="session.update"), "type"),
        ("ga", lambda p: p.pop("session"), "session"),
        ("ga", lambda p: p["session"].update(type="realtime"), "session.type"),
        ("ga", lambda p: p["session"].pop("audio"), "session.audio"),
        (
            "ga",
            lambda p: p["session"]["audio"]["input"]["format"].update(type="audio/opus"),
            "session.audio.input.format.type",
        ),
        (
            "ga",
            lambda p: p["session"]["audio"]["input"]["format"].update(rate="24k"),
            "session.audio.input.format.rate",
        ),
        (
            "ga",
            lambda p: p["session"]["audio"]["input"]["transcription"].pop("model"),
            "session.audio.input.transcription.model",
        ),
        (
            "ga",
            lambda p: p["session"]["audio"]["input"]["transcription"].update(language=3),
            "session.audio.input.transcription.language",
        ),
        (
            "ga",
            lambda p: p["session"]["audio"]["input"].update(turn_detection="server_vad"),
            "session.audio.input.turn_detection",
        ),
        (
            "ga",
            lambda p: p["session"]["audio"]["input"].update(noise_reduction={"kind": "x"}),
            "session.audio.input.noise_reduction.type",
        ),
        ("ga", lambda p: p["session"].update(include="logprobs"), "session.include"),
        (
            "beta",
            lambda p: p["session"].update(input_audio_format="opus"),
            "session.input_audio_format",
        ),
        (
            "speaches",
            lambda p: p["session"]["input_audio_transcription"].update(keywords=[1]),
            "session.input_audio_transcription.keywords",
        ),
    ],
)
def test_a_malformed_session_update_names_the_field(dialect, mutate, field):
    payload = build_session_update(SessionConfig(model=W1), get_model_info(W1), dialect).payload
    mutate(payload)
    with pytest.raises(EventParseError) as info:
        parse_session_update(payload, dialect)
    assert info.value.field == field


def test_parse_session_update_refuses_an_unknown_dialect():
    with pytest.raises(ValueError, match="dialect"):
        parse_session_update({}, "GA")  # type: ignore[arg-type]


def test_wire_formats_are_the_registry_audio_formats_with_their_ga_names():
    assert tuple(WIRE_FORMATS) == typing.get_args(models.AudioFormat)
    for name, fmt in WIRE_FORMATS.items():
        assert fmt.name == name and wire_format_of_ga_type(fmt.ga_type) is fmt
    assert wire_format_of_ga_type("audio/opus") is None
    assert DIALECTS == ("ga", "beta", "speaches", "vllm")


def test_vllm_gets_only_the_model_and_the_rest_is_reported_as_dropped():
    config = SessionConfig(model="mistralai/Voxtral-Mini-3B-Realtime", prompt=PROMPT, logprobs=True)
    update = build_session_update(config, get_model_info(config.model), "vllm")
    assert update.payload == {"type": "session.update", "model": config.model}
    assert update.dropped == ("language", "prompt", "logprobs")
    parsed = parse_session_update(update.payload, "vllm")
    assert parsed.model == config.model and parsed.sample_rate_hz == 16000
    with pytest.raises(ValueError, match="pcm16"):
        build_session_update(
            SessionConfig(model="m", audio_format="g711_ulaw"), get_model_info("m"), "vllm"
        )


@pytest.mark.parametrize(
    ("kwargs", "format_type", "rate", "bytes_per_second"),
    [
        ({}, "audio/pcm", 24000, 48000),
        ({"pcm_rate_hz": 16000}, "audio/pcm", 16000, 32000),
        ({"audio_format": "g711_ulaw"}, "audio/pcmu", 8000, 8000),
        ({"audio_format": "g711_alaw", "pcm_rate_hz": 16000}, "audio/pcma", 8000, 8000),
    ],
)
def test_config_wire_properties(kwargs, format_type, rate, bytes_per_second):
    config = SessionConfig(model=W1, **kwargs)
    assert (config.format_type, config.sample_rate_hz, config.bytes_per_second) == (
        format_type,
        rate,
        bytes_per_second,
    )


def test_a_lenient_pcm_rate_goes_out_in_the_ga_format():
    config = dataclasses.replace(SessionConfig(model=W1), pcm_rate_hz=16000)
    payload = build_session_update(config, get_model_info(W1), "ga").payload
    assert payload["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 16000}
