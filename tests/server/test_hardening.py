"""Regression tables for the local server's hardening (issue 14 "Local server", issue 12 slips):
pure sessions with ``now`` as data; the shell over the in-memory pair where a connection is
needed. No port, no sleep."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from typing import Any

import numpy as np
import pytest

from livekit.plugins.openai_stt.protocol.events import LogProb
from livekit.plugins.openai_stt.server import (
    LocalRealtimeServer,
    ScriptedEngine,
    memory_channel_pair,
)
from livekit.plugins.openai_stt.server import handshake as handshake_mod
from livekit.plugins.openai_stt.server.actions import Close
from livekit.plugins.openai_stt.server.handshake import check_handshake
from livekit.plugins.openai_stt.server.jobs import Recognition
from livekit.plugins.openai_stt.server.limits import SessionLimits, sequential_ids
from livekit.plugins.openai_stt.server.session import ServerSession

MODES = ("lenient", "openai", "gateway")


def ev(type_: str, **fields: Any) -> str:
    return json.dumps({"type": type_, **fields})


def ga(**input_fields: Any) -> str:
    return ev("session.update", session={"type": "transcription", "audio": {"input": input_fields}})


def opened(compat: str = "lenient", **kwargs: Any) -> ServerSession:
    query_model = "gpt-4o-transcribe" if compat == "gateway" else None  # gateway needs one
    s = ServerSession(compat=compat, query_model=query_model, **kwargs)
    s.opened(0.0)
    return s


def append_bytes(data: bytes) -> str:
    return ev("input_audio_buffer.append", audio=base64.b64encode(data).decode())


def sent(s: ServerSession, text: str, now: float = 1.0) -> list[dict[str, Any]]:
    return s.receive(text, now).sent


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


# ------------------------------------------------------------ issue 14.1: malformed values

RAW_TD = (
    '{"type":"session.update","session":{"type":"transcription","audio":{"input":'
    '{"transcription":{"model":"gpt-4o-transcribe"},"turn_detection":%s}}}}'
)
DEEP = "[" * 1000 + "]" * 1000
MALFORMED = {
    "nested 1,000 deep": '{"type":"session.update","session":' + DEEP + "}",
    "nested 1,000 deep inside": '{"type":"session.update","session":{"audio":' + DEEP + "}}",
    "1e999 silence": RAW_TD % '{"type":"server_vad","silence_duration_ms":1e999}',
    "NaN padding": RAW_TD % '{"type":"server_vad","prefix_padding_ms":NaN}',
    "Infinity threshold": RAW_TD % '{"type":"server_vad","threshold":Infinity}',
    "-Infinity silence": RAW_TD % '{"type":"server_vad","silence_duration_ms":-Infinity}',
    "eagerness list": RAW_TD % '{"type":"semantic_vad","eagerness":["low"]}',
    "eagerness object": RAW_TD % '{"type":"semantic_vad","eagerness":{}}',
    "format list": '{"type":"session.update","session":{"input_audio_format":[]}}',
    "format object": '{"type":"session.update","session":{"input_audio_format":{}}}',
    "beta format list": '{"type":"transcription_session.update","session":'
    '{"input_audio_format":[]}}',
}


@pytest.mark.parametrize("compat", MODES)
@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_value_gets_an_error_event_and_the_session_goes_on(
    name: str, compat: str
) -> None:
    s = opened(compat)
    (reply,) = sent(s, MALFORMED[name])
    if compat == "gateway" and name.startswith("format"):  # flat fields: lenient mode only
        assert reply["type"] == "session.updated"
    else:
        assert reply["type"] == "error" and reply["error"]["type"] == "invalid_request_error"
    assert not s.closed
    (after,) = sent(s, ga(transcription={"model": "gpt-4o-transcribe"}), 2.0)
    assert after["type"] == "session.updated"


def test_extra_fields_of_turn_detection_are_not_echoed_in_lenient_mode() -> None:
    s = opened()
    td = {"type": "server_vad", "threshold": 0.4, "x": [[[[]]]], "create_response": {"a": 1}}
    (updated,) = sent(s, ga(transcription={"model": "gpt-4o-transcribe"}, turn_detection=td))
    assert updated["session"]["audio"]["input"]["turn_detection"] == {
        "type": "server_vad",
        "threshold": 0.4,
    }


# ------------------------------------------------------------ issue 14.6: odd pcm16, fields, key


@pytest.mark.parametrize("compat", MODES)
def test_an_odd_length_pcm16_append_is_refused_and_the_samples_stay_aligned(compat: str) -> None:
    s = opened(compat)
    sent(s, append_bytes(b"\x01\x00" * 2400))
    (error,) = sent(s, append_bytes(b"\x07"))
    assert error["error"]["code"] == "invalid_value" and error["error"]["param"] == "audio"
    assert s.buffered_s == pytest.approx(0.1)  # the stray byte was not kept
    assert sent(s, append_bytes(b"\x01\x00" * 10)) == []


def test_g711_appends_of_any_length_are_accepted() -> None:
    s = opened()
    sent(s, ga(format={"type": "audio/pcmu"}))
    assert sent(s, append_bytes(b"\xff" * 801)) == []


PCM_WITH_X = {"type": "audio/pcm", "x": 1}


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"type": "transcription", "modalities": ["text"]}, "session.modalities"),
        ({"type": "transcription", "audio": {"output": {}}}, "session.audio.output"),
        (
            {"type": "transcription", "audio": {"input": {"format": PCM_WITH_X}}},
            "session.audio.input.format.x",
        ),
        (
            {"type": "transcription", "audio": {"input": {"transcription": {"temperature": 0}}}},
            "session.audio.input.transcription.temperature",
        ),
        (
            {
                "type": "transcription",
                "audio": {
                    "input": {
                        "transcription": {"model": "gpt-4o-transcribe"},
                        "turn_detection": {"type": "server_vad", "eagerness": "low"},
                    }
                },
            },
            "session.audio.input.turn_detection.eagerness",
        ),
        ({"input_audio_format": "pcm16"}, "session.input_audio_format"),
    ],
)
def test_unknown_session_fields_get_unknown_parameter_in_openai_mode(
    session: dict[str, Any], param: str
) -> None:
    s = opened("openai")
    (error,) = sent(s, ev("session.update", session=session))
    assert error["error"] == {
        "type": "invalid_request_error",
        "code": "unknown_parameter",
        "message": f"Unknown parameter: '{param}'.",
        "param": param,
        "event_id": None,
    }
    (lenient,) = sent(opened("lenient"), ev("session.update", session=session))
    assert lenient["type"] == "session.updated"  # other modes ignore unknown fields


def test_every_field_the_client_builds_is_known_in_openai_mode() -> None:
    full = {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "gpt-4o-transcribe", "language": "en", "prompt": "p"},
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 500,
                    "create_response": False,
                    "interrupt_response": False,
                    "idle_timeout_ms": None,
                },
                "noise_reduction": {"type": "far_field"},
            }
        },
        "include": ["item.input_audio_transcription.logprobs"],
    }
    (updated,) = sent(opened("openai"), ev("session.update", session=full))
    assert updated["type"] == "session.updated"


def test_the_key_is_compared_with_hmac_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return a == b

    monkeypatch.setattr(handshake_mod.hmac, "compare_digest", spy)
    for token in ("k", "wrong"):
        check_handshake(
            path="/v1/realtime", headers={"Authorization": f"Bearer {token}"}, api_key="k"
        )
    assert calls == [(b"k", b"k"), (b"wrong", b"k")]


# ------------------------------------------------------------ issue 12.1: confirmed VAD runs


@pytest.mark.parametrize("compat", MODES)
@pytest.mark.parametrize("model", ["gpt-realtime-whisper", "gpt-live-transcribe", "gpt-transcribe"])
@pytest.mark.parametrize(
    "td", [{"type": "server_vad"}, {"type": "semantic_vad", "eagerness": "low"}]
)
def test_turn_detection_for_a_model_without_server_vad_is_refused_in_every_mode(
    compat: str, model: str, td: dict[str, Any]
) -> None:
    s = opened(compat)
    (error,) = sent(s, ga(transcription={"model": model}, turn_detection=td))
    assert error["error"]["code"] == "unsupported_turn_detection"
    assert error["error"]["param"] == "session.audio.input.turn_detection"
    assert not s.vad_active and s.config.turn_detection is None


def test_switching_a_vad_session_to_a_model_without_vad_is_refused() -> None:
    s = opened()
    td = {"type": "server_vad"}
    sent(s, ga(transcription={"model": "gpt-4o-transcribe"}, turn_detection=td))
    assert s.vad_active
    (error,) = sent(s, ga(transcription={"model": "gpt-realtime-whisper"}))
    assert error["error"]["code"] == "unsupported_turn_detection"
    assert s.vad_active and s.config.model == "gpt-4o-transcribe"  # unchanged


def test_speaches_flat_turn_detection_for_gpt_realtime_whisper_is_refused() -> None:
    s = opened()
    flat = {"input_audio_transcription": {"model": "gpt-realtime-whisper"}, "turn_detection": {}}
    flat["turn_detection"] = {"type": "server_vad"}
    (error,) = sent(s, ev("session.update", session=flat))
    assert error["error"]["param"] == "session.turn_detection"


@pytest.mark.parametrize("model", ["gpt-4o-transcribe", "whisper-1", "my-local-model"])
def test_turn_detection_the_session_confirms_is_the_one_it_runs(model: str) -> None:
    s = opened()
    (updated,) = sent(s, ga(transcription={"model": model}, turn_detection={"type": "server_vad"}))
    assert updated["session"]["audio"]["input"]["turn_detection"] == {"type": "server_vad"}
    assert s.vad_active


# ------------------------------------------------------------ issue 14.3: decode backlog bound


def commit_ms(s: ServerSession, ms: int, now: float = 1.0) -> list[dict[str, Any]]:
    sent(s, append_bytes(b"\x01\x00" * (24 * ms)), now)
    return sent(s, ev("input_audio_buffer.commit", event_id=f"c{ms}"), now)


def test_a_commit_past_the_decode_backlog_is_refused_with_rate_limit_exceeded() -> None:
    s = opened(limits=SessionLimits(max_pending_s=2.0))
    first = s.receive(append_bytes(b"\x01\x00" * 24 * 1500), 1.0)
    assert first.sent == []
    (committed,) = (a := s.receive(ev("input_audio_buffer.commit"), 1.0)).sent
    job = a.jobs[0]
    assert s.limits.pending_s == pytest.approx(1.5)
    (error,) = commit_ms(s, 600)  # 1.5 + 0.6 > 2.0
    assert error["error"]["code"] == "rate_limit_exceeded"
    assert error["error"]["type"] == "tokens" and error["error"]["event_id"] == "c600"
    assert "Limit 2 s, Used 1.5 s, Requested 0.6 s" in error["error"]["message"]
    assert s.buffered_s == pytest.approx(0.6)  # kept for a later commit
    s.transcribed(job, Recognition("done"))
    assert s.limits.pending_s == 0
    assert types(s.receive(ev("input_audio_buffer.commit"), 2.0).sent) == [
        "input_audio_buffer.committed"
    ]


def test_one_long_commit_is_admitted_when_nothing_is_pending() -> None:
    s = opened(limits=SessionLimits(max_pending_s=1.0))
    assert types(commit_ms(s, 3000)) == ["input_audio_buffer.committed"]


def test_a_failed_item_frees_its_share_of_the_backlog() -> None:
    s = opened(limits=SessionLimits(max_pending_s=1.0))
    sent(s, append_bytes(b"\x01\x00" * 24 * 800))
    job = s.receive(ev("input_audio_buffer.commit"), 1.0).jobs[0]
    s.transcription_failed(job)
    assert s.limits.pending_s == 0


def test_a_vad_turn_past_the_backlog_is_dropped_with_the_error_and_the_next_gets_a_new_id() -> None:
    s = opened(limits=SessionLimits(max_pending_s=0.5), vad_window_s=0.1)
    sent(s, ga(transcription={"model": "gpt-4o-transcribe"}, turn_detection={"type": "server_vad"}))
    out: list[Any] = []
    ids = []
    for _ in range(2):
        probs = [0.9] * 10 + [0.0] * 8
        a = s.receive(append_bytes(b"\x01\x00" * int(24000 * 0.1 * len(probs))), 1.0)
        assert a.vad is not None
        r = s.speech_probabilities(probs, a.vad.epoch)
        out.append(types(r.sent))
        ids += [e["item_id"] for e in r.sent if e["type"].endswith("speech_started")]
    assert out[0][-1] == "input_audio_buffer.committed"
    assert out[1][-1] == "error" and "input_audio_buffer.committed" not in out[1]
    assert len(set(ids)) == 2 and s.buffered_s < 0.5


# ------------------------------------------------------------ issue 14.4: idle sessions reaped


def test_an_idle_session_gets_idle_timeout_then_close_1001() -> None:
    s = ServerSession(limits=SessionLimits(idle_timeout_s=30.0))
    s.opened(100.0)
    assert s.next_tick_at == 130.0
    sent(s, append_bytes(b"\x01\x00" * 240), 110.0)
    assert s.next_tick_at == 140.0  # every client message restarts the clock
    assert s.tick(139.9).close is None
    actions = s.tick(140.0)
    (error,) = actions.sent
    assert error["error"]["code"] == "idle_timeout"
    assert actions.close == Close(1001, "idle timeout")


def test_a_message_after_the_idle_timeout_is_handled_as_activity() -> None:
    s = ServerSession(limits=SessionLimits(idle_timeout_s=30.0))
    s.opened(0.0)
    assert s.receive(append_bytes(b"\x01\x00" * 240), 45.0).close is None


def test_no_idle_timeout_leaves_only_the_cap() -> None:
    s = ServerSession(limits=SessionLimits(idle_timeout_s=None, max_session_s=60.0))
    s.opened(0.0)
    assert s.next_tick_at == 60.0


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_limits_must_be_positive_numbers(bad: float) -> None:
    for name in ("max_session_s", "idle_timeout_s", "max_pending_s"):
        with pytest.raises(ValueError, match=name):
            SessionLimits(**{name: bad})


# ------------------------------------------------------------ issue 12.2: unique item ids


def test_item_ids_are_item_and_a_random_suffix_unique_across_sessions() -> None:
    ids = []
    for _ in range(3):  # three sessions, as after reconnects
        s = opened()
        for _ in range(2):
            (committed,) = commit_ms(s, 200)
            ids.append(committed["item_id"])
    assert all(re.fullmatch(r"item_[A-Za-z0-9]{21}", i) for i in ids), ids
    assert len(set(ids)) == len(ids)


def test_sequential_ids_number_each_prefix_for_tables() -> None:
    next_id = sequential_ids()
    assert [next_id("item"), next_id("sess"), next_id("item")] == [
        "item_001",
        "sess_001",
        "item_002",
    ]


def test_pre_commit_deltas_speech_started_and_committed_share_the_open_items_id() -> None:
    s = opened()
    sent(s, ga(transcription={"model": "gpt-4o-transcribe"}, turn_detection={"type": "server_vad"}))
    a = s.receive(append_bytes(b"\x01\x00" * 24 * 1000), 1.0)
    assert a.vad is not None
    r = s.speech_probabilities([0.9] * 10 + [0.0] * 30, a.vad.epoch)
    by_type = {e["type"]: e["item_id"] for e in r.sent if "item_id" in e}
    assert len(set(by_type.values())) == 1 and len(by_type) == 3


# ------------------------------------------------------------ issue 12.3: logprobs per token

LOGPROBS = {"type": "transcription", "include": ["item.input_audio_transcription.logprobs"]}
WORDS = (LogProb(" Hi", -0.5), LogProb(" the", -0.01), LogProb("re", -0.2), LogProb(" you", -1.0))


def logprob_session(model: str = "gpt-4o-transcribe") -> ServerSession:
    s = opened()
    body = {**LOGPROBS, "audio": {"input": {"transcription": {"model": model}}}}
    sent(s, ev("session.update", session=body))
    return s


def test_each_delta_carries_the_recognizers_own_token_logprobs() -> None:
    s = logprob_session()
    sent(s, append_bytes(b"\x01\x00" * 2400))
    job = s.receive(ev("input_audio_buffer.commit"), 1.0).jobs[0]
    events = s.transcribed(job, Recognition("Hi there you", -0.4, WORDS)).sent
    deltas = [e for e in events if e["type"].endswith(".delta")]
    assert [[(lp["token"], lp["logprob"]) for lp in d["logprobs"]] for d in deltas] == [
        [("Hi", -0.5)],
        [(" the", -0.01), ("re", -0.2)],
        [(" you", -1.0)],
    ]
    completed = events[-1]
    assert [lp["logprob"] for lp in completed["logprobs"]] == [-0.5, -0.01, -0.2, -1.0]


def test_tokens_that_do_not_spell_the_text_fall_back_to_the_mean() -> None:
    s = logprob_session()
    sent(s, append_bytes(b"\x01\x00" * 2400))
    job = s.receive(ev("input_audio_buffer.commit"), 1.0).jobs[0]
    events = s.transcribed(job, Recognition("Hello world", -0.3, WORDS)).sent
    assert {lp["logprob"] for e in events for lp in e["logprobs"]} == {-0.3}


def test_deltas_after_pre_commit_text_take_the_tokens_of_the_rest() -> None:
    s = logprob_session("gpt-realtime-whisper")
    result = Recognition("Hi there you", -0.4, WORDS)
    sent(s, append_bytes(b"\x01\x00" * 24000))
    for now in (1.0, 2.0, 3.0):
        partial = s.take_partial(now)
        if partial is not None:
            s.partial_transcribed(partial, Recognition("Hi there", -0.9))
    job = s.receive(ev("input_audio_buffer.commit"), 4.0).jobs[0]
    job_events = s.transcribed(job, result).sent
    deltas = [e for e in job_events if e["type"].endswith(".delta")]
    assert deltas[-1]["delta"] == " you" and deltas[-1]["logprobs"][0]["logprob"] == -1.0


async def test_the_scripted_engine_gives_distinct_deterministic_logprobs_per_token() -> None:
    engine = ScriptedEngine(["one two three four five six"])
    r = engine.recognize(np.zeros(1600, dtype=np.float32), logprobs=True)
    assert [t.logprob for t in r.tokens or ()] == pytest.approx(
        [-0.05, -0.1, -0.15, -0.2, -0.25, -0.05]
    )
    assert engine.recognize(np.zeros(1600, dtype=np.float32)).tokens is None


async def test_the_server_sends_different_logprobs_for_different_words() -> None:
    async with LocalRealtimeServer(port=None, engine=ScriptedEngine(["one two three"])) as srv:
        end, client = memory_channel_pair()
        task = asyncio.create_task(
            srv.serve_channel(end, path="/v1/realtime", headers={"Authorization": "Bearer k"})
        )
        body = {**LOGPROBS, "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}
        await client.send(ev("session.update", session=body))
        await client.send(append_bytes(b"\x01\x00" * 4800))
        await client.send(ev("input_audio_buffer.commit"))
        events = []
        while not events or not events[-1]["type"].endswith(".completed"):
            events.append(json.loads(await asyncio.wait_for(client.recv(), 5.0)))
        await client.close()
        await asyncio.wait_for(task, 5.0)
    values = [lp["logprob"] for lp in events[-1]["logprobs"]]
    assert values == [-0.05, -0.1, -0.15]


@pytest.mark.slow
def test_whisper_gives_each_word_its_own_probability(demo_clip: Any) -> None:
    from examples.evaluation import read_wav
    from livekit.plugins.openai_stt.server.audio import resample_int16
    from livekit.plugins.openai_stt.server.engines import WhisperEngine

    pcm, rate = read_wav(demo_clip)
    mono = resample_int16(pcm[: 5 * rate, 0], rate, 16000).astype(np.float32) / 32768
    result = WhisperEngine(cpu_threads=1).recognize(mono, logprobs=True)
    assert result.tokens and len({t.logprob for t in result.tokens}) > 1
    assert "".join(t.token for t in result.tokens).split() == result.text.split()
