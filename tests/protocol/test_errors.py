"""Tables for protocol/errors.py: each symptom of docs/protocol.md §5 and its verdict."""

from __future__ import annotations

import pytest

from livekit.plugins.openai_stt.protocol.errors import (
    INVALID_MODEL_HINT,
    Classified,
    ErrorAction,
    classify_close,
    classify_error_event,
    classify_handshake_status,
)
from livekit.plugins.openai_stt.protocol.events import ErrorInfo

FATAL, RETRY, RECONNECT, IGNORE, REPORT = (
    ErrorAction.FATAL,
    ErrorAction.RETRY,
    ErrorAction.RECONNECT,
    ErrorAction.IGNORE,
    ErrorAction.REPORT,
)
IRE = "invalid_request_error"

ERROR_EVENTS = [
    # (ErrorInfo, action, code, substrings the message must hold)
    pytest.param(
        ErrorInfo(
            IRE,
            "invalid_model",
            'Model "gpt-realtime-whisper" is not supported in transcription mode.',
            "session.audio.input.transcription.model",
        ),
        FATAL,
        "invalid_model",
        [
            'Model "gpt-realtime-whisper" is not supported',
            "include_model_in_url",
            "?model=",
            "param=session.audio.input.transcription.model",
        ],
        id="invalid_model-fatal-with-url-hint",
    ),
    pytest.param(
        ErrorInfo(
            IRE,
            "input_audio_buffer_commit_empty",
            "Error committing input audio buffer: buffer too small. Expected at least "
            "100ms of audio, but buffer only has 0.00ms of audio.",
        ),
        IGNORE,
        "input_audio_buffer_commit_empty",
        ["buffer too small"],
        id="commit_empty-ignored",
    ),
    pytest.param(
        ErrorInfo(IRE, "session_expired", "Your session hit the maximum duration of 60 minutes."),
        RECONNECT,
        "session_expired",
        ["maximum duration"],
        id="session_expired-reconnect",
    ),
    pytest.param(
        ErrorInfo(IRE, None, "Session reached its Maximum Duration."),
        RECONNECT,
        "session_expired",
        ["Maximum Duration"],
        id="maximum-duration-message-without-code-reconnect",
    ),
    pytest.param(
        ErrorInfo(
            IRE,
            "invalid_value",
            "Turn detection is not supported for this transcription model.",
            "session.audio.input.turn_detection",
        ),
        FATAL,
        "invalid_value",
        ["Turn detection is not supported"],
        id="unsupported-turn-detection-message-fatal",
    ),
    pytest.param(
        ErrorInfo(IRE, None, "Turn detection is not supported for this transcription model."),
        FATAL,
        None,
        ["Turn detection"],
        id="unsupported-turn-detection-no-code-fatal",
    ),
    pytest.param(
        ErrorInfo(IRE, "unsupported_turn_detection", "nope"),
        FATAL,
        "unsupported_turn_detection",
        ["nope", "code=unsupported_turn_detection"],
        id="unsupported_turn_detection-code-fatal",
    ),
    pytest.param(
        ErrorInfo(
            IRE,
            "invalid_value",
            "The 'prompt' parameter is not supported for this model.",
            "session.audio.input.transcription.prompt",
        ),
        FATAL,
        "invalid_value",
        ["prompt"],
        id="prompt-rejected-fatal",
    ),
    pytest.param(
        ErrorInfo(IRE, "beta_api_shape_disabled", "The beta API shape is disabled."),
        FATAL,
        "beta_api_shape_disabled",
        ["beta"],
        id="beta_api_shape_disabled-fatal",
    ),
    pytest.param(
        ErrorInfo(IRE, "invalid_api_key", "Incorrect API key provided."),
        FATAL,
        "invalid_api_key",
        ["Incorrect API key"],
        id="invalid_api_key-fatal",
    ),
    pytest.param(
        ErrorInfo("insufficient_quota", "insufficient_quota", "You exceeded your current quota."),
        FATAL,
        "insufficient_quota",
        ["quota"],
        id="insufficient_quota-fatal",
    ),
    pytest.param(
        ErrorInfo(IRE, "model_not_found", "The model `x` does not exist."),
        FATAL,
        "model_not_found",
        ["does not exist"],
        id="model_not_found-fatal",
    ),
    pytest.param(
        ErrorInfo("rate_limit_error", "rate_limit_exceeded", "Rate limit reached."),
        RETRY,
        "rate_limit_exceeded",
        ["Rate limit"],
        id="rate_limit-retry",
    ),
    pytest.param(
        ErrorInfo("server_error", None, "The server had an error."),
        RETRY,
        None,
        ["server had an error"],
        id="server_error-retry",
    ),
    pytest.param(
        ErrorInfo(IRE, "brand_new_code", "Something new happened.", "session.x"),
        REPORT,
        "brand_new_code",
        ["Something new happened.", "code=brand_new_code", "param=session.x"],
        id="unknown-code-reported",
    ),
    pytest.param(
        ErrorInfo(IRE, "invalid_value", "Invalid value for 'audio.input.format.rate'."),
        REPORT,
        "invalid_value",
        ["Invalid value"],
        id="other-invalid_value-reported",
    ),
    pytest.param(
        ErrorInfo("error", None, ""),
        REPORT,
        None,
        ["(no message)"],
        id="empty-error-reported-with-placeholder",
    ),
    pytest.param(
        ErrorInfo("error", None, "Model not loaded"),
        REPORT,
        None,
        ["Model not loaded"],
        id="vllm-plain-string-reported",
    ),
]


@pytest.mark.parametrize("info, action, code, holds", ERROR_EVENTS)
def test_classify_error_event(info, action, code, holds):
    verdict = classify_error_event(info)
    assert verdict.action is action
    assert verdict.code == code
    assert verdict.status is None
    for text in holds:
        assert text in verdict.message
    assert verdict.retryable is (action in (RETRY, RECONNECT))


def test_invalid_model_hint_names_the_override():
    assert "include_model_in_url" in INVALID_MODEL_HINT
    assert "Azure" in INVALID_MODEL_HINT


def test_hint_is_only_added_to_invalid_model():
    for info in [
        ErrorInfo(IRE, "rate_limit_exceeded", "slow down"),
        ErrorInfo(IRE, "session_expired", "expired"),
        ErrorInfo(IRE, "brand_new_code", "new"),
    ]:
        assert "include_model_in_url" not in classify_error_event(info).message


CLOSES = [
    # (code, reason, action, Classified.code, must hold, must not hold)
    pytest.param(
        4000,
        "",
        FATAL,
        None,
        ["4000", "include_model_in_url"],
        [],
        id="4000-no-reason-fatal-with-hint",
    ),
    pytest.param(
        4000,
        "invalid_model",
        FATAL,
        "invalid_model",
        ["4000", "invalid_model", "include_model_in_url"],
        [],
        id="4000-invalid_model-fatal-with-hint",
    ),
    pytest.param(
        4000,
        "beta_api_shape_disabled",
        FATAL,
        "beta_api_shape_disabled",
        ["beta_api_shape_disabled"],
        ["include_model_in_url"],
        id="4000-beta_api_shape_disabled-fatal-without-model-hint",
    ),
    pytest.param(
        1001,
        "Your session hit the maximum duration of 60 minutes.",
        RECONNECT,
        "session_expired",
        ["1001", "maximum duration"],
        [],
        id="1001-maximum-duration-reconnect",
    ),
    pytest.param(
        1001, None, RECONNECT, "session_expired", ["1001"], [], id="1001-going-away-reconnect"
    ),
    pytest.param(
        1008,
        "model query parameter is required",
        FATAL,
        "model query parameter is required",
        ["1008", "include_model_in_url=True"],
        [],
        id="1008-model-required-fatal-with-hint",
    ),
    pytest.param(
        1008,
        "policy violation",
        FATAL,
        "policy violation",
        ["1008"],
        ["include_model_in_url"],
        id="1008-other-policy-fatal-without-hint",
    ),
    pytest.param(1006, None, RETRY, None, ["1006"], [], id="1006-abnormal-retry"),
    pytest.param(
        1011,
        "internal error",
        RETRY,
        None,
        ["1011", "internal error"],
        [],
        id="1011-internal-error-retry",
    ),
    pytest.param(1000, "", RETRY, None, ["1000"], [], id="1000-unrequested-normal-close-retry"),
    pytest.param(None, None, RETRY, None, ["None"], [], id="no-close-code-retry"),
]


@pytest.mark.parametrize("code, reason, action, verdict_code, holds, lacks", CLOSES)
def test_classify_close(code, reason, action, verdict_code, holds, lacks):
    verdict = classify_close(code, reason)
    assert verdict.action is action
    assert verdict.code == verdict_code
    assert verdict.status == code
    for text in holds:
        assert text in verdict.message
    for text in lacks:
        assert text not in verdict.message


HANDSHAKES = [
    # (status, insufficient_quota, action, code, must hold)
    pytest.param(401, False, FATAL, None, ["401", "API key"], id="401-fatal"),
    pytest.param(403, False, FATAL, None, ["403", "API key"], id="403-fatal"),
    pytest.param(429, False, RETRY, None, ["429"], id="429-retry"),
    pytest.param(
        429,
        True,
        FATAL,
        "insufficient_quota",
        ["429", "insufficient_quota"],
        id="429-insufficient_quota-fatal",
    ),
    pytest.param(500, False, RETRY, None, ["500"], id="500-retry"),
    pytest.param(502, False, RETRY, None, ["502"], id="502-retry"),
    pytest.param(503, False, RETRY, None, ["503"], id="503-retry"),
    pytest.param(408, False, RETRY, None, ["408"], id="408-retry"),
    pytest.param(
        400, False, FATAL, None, ["400", "include_model_in_url"], id="400-fatal-with-model-hint"
    ),
    pytest.param(404, False, FATAL, None, ["404"], id="404-fatal"),
]


@pytest.mark.parametrize("status, quota, action, code, holds", HANDSHAKES)
def test_classify_handshake_status(status, quota, action, code, holds):
    verdict = classify_handshake_status(status, insufficient_quota=quota)
    assert verdict.action is action
    assert verdict.code == code
    assert verdict.status == status
    for text in holds:
        assert text in verdict.message
    assert verdict.retryable is (action is RETRY)


@pytest.mark.parametrize(
    "action, retryable",
    [(FATAL, False), (REPORT, False), (IGNORE, False), (RETRY, True), (RECONNECT, True)],
)
def test_retryable_is_retry_or_reconnect(action, retryable):
    assert Classified(action, "m").retryable is retryable
