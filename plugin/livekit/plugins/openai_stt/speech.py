"""Protocol outputs to LiveKit: ``SpeechEvent`` for each transcript output, ``APIError`` for
each classified failure. Pure functions: no state, no I/O.

Times: an output's audio offsets are seconds on the stream's audio clock; a ``SpeechData``
carries them plus the stream's ``start_time_offset`` (``time_base_s``), as LiveKit expects.
"""

from __future__ import annotations

from livekit.agents import APIConnectionError, APIError, APIStatusError, stt
from livekit.agents.language import LanguageCode

from .protocol.errors import Classified
from .protocol.transcript import (
    FailureOut,
    FinalOut,
    InterimOut,
    SpeechEndedOut,
    SpeechStartedOut,
    UsageOut,
)

__all__ = ["api_error", "joined_final", "speech_event"]

_T = stt.SpeechEventType


def api_error(classified: Classified, body: object | None = None) -> APIError:
    """The one place where a classified failure becomes a LiveKit ``APIError``.

    A failure with an HTTP-like status (a handshake status, a close code) becomes
    ``APIStatusError``; another retryable one ``APIConnectionError``; the rest a non-retryable
    ``APIError``. LiveKit's base stream retries the retryable ones (docs/protocol.md §5).
    """
    retryable = classified.retryable
    if classified.status is not None and 100 <= classified.status < 600:
        return APIStatusError(
            classified.message, status_code=classified.status, body=body, retryable=retryable
        )
    if retryable:
        return APIConnectionError(classified.message)
    return APIError(classified.message, body=body, retryable=False)


def _data(
    text: str,
    *,
    time_base_s: float,
    language: str | None,
    start_s: float = 0.0,
    end_s: float = 0.0,
    confidence: float = 0.0,
    metadata: dict[str, object] | None = None,
    source_languages: tuple[str, ...] | None = None,
) -> stt.SpeechData:
    spanned = end_s > 0
    return stt.SpeechData(
        language=LanguageCode(language or ""),
        text=text,
        start_time=time_base_s + start_s if spanned else 0.0,
        end_time=time_base_s + end_s if spanned else 0.0,
        confidence=confidence,
        metadata=metadata,
        source_languages=[LanguageCode(code) for code in source_languages]
        if source_languages
        else None,
    )


def speech_event(
    out: object, *, time_base_s: float, language: str | None
) -> stt.SpeechEvent | None:
    """The ``SpeechEvent`` for one output of :class:`~.protocol.client.ClientSession`, or
    ``None`` for outputs that are not speech events.

    - ``SpeechStartedOut`` / ``SpeechEndedOut``: START_OF_SPEECH / END_OF_SPEECH;
    - ``InterimOut``: INTERIM_TRANSCRIPT with the item's full text so far;
    - ``FinalOut``: FINAL_TRANSCRIPT (``request_id`` = item id, the item's audio span,
      ``confidence`` when logprobs were asked for, the server's language when it names one);
    - ``FailureOut`` with text: a FINAL_TRANSCRIPT marked ``metadata={"incomplete": True,
      "reason": <code>}`` (the turn ends with what was known); without text, ``None``;
    - ``UsageOut``: RECOGNITION_USAGE (``audio_duration`` = seconds committed in the item).

    Args:
        out: the output.
        time_base_s: the stream's ``start_time_offset``, seconds.
        language: the configured language, for data whose output names none.
    """
    if isinstance(out, InterimOut):
        data = _data(out.text, time_base_s=time_base_s, language=language)
        return stt.SpeechEvent(_T.INTERIM_TRANSCRIPT, request_id=out.item_id, alternatives=[data])
    if isinstance(out, FinalOut):
        data = _data(
            out.text,
            time_base_s=time_base_s,
            language=out.language or language,
            start_s=out.audio_start_s,
            end_s=out.audio_end_s,
            confidence=out.confidence if out.confidence is not None else 0.0,
            source_languages=out.languages,
        )
        return stt.SpeechEvent(_T.FINAL_TRANSCRIPT, request_id=out.item_id, alternatives=[data])
    if isinstance(out, FailureOut):
        if not out.text.strip():
            return None
        data = _data(
            out.text,
            time_base_s=time_base_s,
            language=language,
            start_s=out.audio_start_s,
            end_s=out.audio_end_s,
            metadata={"incomplete": True, "reason": out.error.code or "transcription_failed"},
        )
        return stt.SpeechEvent(_T.FINAL_TRANSCRIPT, request_id=out.item_id, alternatives=[data])
    if isinstance(out, UsageOut):
        usage = stt.RecognitionUsage(
            audio_duration=out.audio_seconds,
            input_tokens=out.input_tokens,
            output_tokens=out.output_tokens,
        )
        return stt.SpeechEvent(
            _T.RECOGNITION_USAGE, request_id=out.item_id, recognition_usage=usage
        )
    if isinstance(out, SpeechStartedOut):
        return stt.SpeechEvent(_T.START_OF_SPEECH, request_id=out.item_id)
    if isinstance(out, SpeechEndedOut):
        return stt.SpeechEvent(_T.END_OF_SPEECH, request_id=out.item_id)
    return None


def joined_final(finals: list[stt.SpeechData], request_id: str, language: str) -> stt.SpeechEvent:
    """One ``FINAL_TRANSCRIPT`` for a whole recognised buffer (``STT.recognize`` through a
    stream): the finals' texts joined by spaces, from the first one's start to the last one's
    end (seconds), their mean confidence; ``language`` (a code) when no final came."""
    data = stt.SpeechData(
        language=finals[0].language if finals else LanguageCode(language),
        text=" ".join(f.text.strip() for f in finals if f.text.strip()),
        start_time=finals[0].start_time if finals else 0.0,
        end_time=finals[-1].end_time if finals else 0.0,
        confidence=(sum(f.confidence for f in finals) / len(finals)) if finals else 0.0,
    )
    return stt.SpeechEvent(type=_T.FINAL_TRANSCRIPT, request_id=request_id, alternatives=[data])
