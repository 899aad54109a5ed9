"""``recognize()`` over HTTP: ``POST /v1/audio/transcriptions`` through the ``openai`` SDK, for
models that serve it (:attr:`~.models.ModelInfo.http_transcription`) and for
``use_realtime=False``, as the official ``livekit-plugins-openai`` does.

The fields follow the same per-model rule as the realtime session (``language`` or
``languages``, ``keywords``, ``prompt``: :func:`~.protocol.session.transcription_fields`), plus
``temperature``. Failures become LiveKit's ``APIError`` family.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from livekit import rtc
from livekit.agents import (
    APIConnectionError,
    APIConnectOptions,
    APIStatusError,
    APITimeoutError,
    stt,
)
from livekit.agents.language import LanguageCode
from livekit.agents.utils import AudioBuffer

from .options import STTOptions
from .protocol.session import transcription_fields

if TYPE_CHECKING:
    import openai

__all__ = ["http_base_url", "recognize_http"]


def http_base_url(base_url: str) -> str:
    """The HTTP base URL of a realtime base URL: ``ws``/``wss`` become ``http``/``https``, a
    trailing ``/realtime`` is dropped."""
    parts = urlsplit(base_url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    if path.endswith("/realtime"):
        path = path[: -len("/realtime")]
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


async def recognize_http(
    client: openai.AsyncOpenAI,
    opts: STTOptions,
    buffer: AudioBuffer,
    conn_options: APIConnectOptions,
) -> stt.SpeechEvent:
    """Transcribe ``buffer`` in one request; a FINAL_TRANSCRIPT event with the text.

    ``response_format`` is ``verbose_json`` for whisper-1 (it gives the language) and
    ``json`` otherwise; ``language`` of the result: the server's when it gives one, else the
    configured one.

    Raises:
        APITimeoutError: the request timed out.
        APIStatusError: the server answered an error status (retryable for 408, 429, 5xx).
        APIConnectionError: anything else (retryable).
    """
    import openai

    wav = rtc.combine_audio_frames(buffer).to_wav_bytes()
    fields, _ = transcription_fields(opts.session_config(), opts.model_info)
    model = str(fields.pop("model"))
    kwargs: dict[str, Any] = dict(fields)
    if opts.temperature is not None:
        kwargs["temperature"] = opts.temperature
    verbose = opts.model_info.name == "whisper-1" or opts.model_info.snapshot_of == "whisper-1"
    try:
        response = await client.audio.transcriptions.create(
            file=("audio.wav", wav, "audio/wav"),
            model=model,
            response_format="verbose_json" if verbose else "json",
            timeout=max(30.0, conn_options.timeout),
            **kwargs,
        )
    except openai.APITimeoutError:
        raise APITimeoutError() from None
    except openai.APIStatusError as e:
        raise APIStatusError(
            e.message, status_code=e.status_code, request_id=e.request_id, body=e.body
        ) from None
    except Exception as e:
        raise APIConnectionError(f"transcription request failed: {type(e).__name__}") from e
    text = getattr(response, "text", "") or ""
    language = getattr(response, "language", None)
    detected = getattr(response, "languages", None) or []
    codes = [
        getattr(d, "code", None) or (d.get("code") if isinstance(d, dict) else None)
        for d in detected
    ]
    codes = [str(c) for c in codes if c]
    found = str(language or (codes[0] if codes else None) or opts.language or "")
    data = stt.SpeechData(
        language=LanguageCode(found),
        text=text,
        source_languages=[LanguageCode(str(c)) for c in codes] or None,
    )
    return stt.SpeechEvent(type=stt.SpeechEventType.FINAL_TRANSCRIPT, alternatives=[data])
