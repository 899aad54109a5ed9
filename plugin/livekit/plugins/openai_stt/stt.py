"""The LiveKit ``STT``: options, endpoint policy, usage totals, and ``stream()``."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import weakref
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    APIConnectOptions,
    stt,
)
from livekit.agents import (
    vad as vad_mod,
)
from livekit.agents.language import LanguageCode
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.agents.utils import AudioBuffer, is_given

from . import transport
from .models import ModelInfo, get_model_info
from .opener import DroppedOptionWarnings, SessionOpener
from .options import STTOptions, option_changes
from .protocol.endpoint import (
    DEFAULT_BASE_URL,
    carries_credentials,
    classify_endpoint,
    is_loopback_host,
    redact_url,
)
from .protocol.session import AudioFormat, Dialect
from .protocol.usage import UsageSummary
from .stream import SpeechStream

__all__ = ["STT", "STTOptions"]


def _strings(name: str, values: Sequence[str] | None) -> tuple[str, ...] | None:
    """A sequence of strings as a tuple (``None`` when empty).

    Raises:
        ValueError: a single string (it would be split into characters) or a non-string item.
    """
    if not values:
        return None
    if isinstance(values, str) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{name} must be a list of strings, e.g. {name}=[...]")
    return tuple(values)


class STT(stt.STT):
    """Streaming speech-to-text over the OpenAI Realtime transcription protocol.

    Works with OpenAI, Azure OpenAI (:meth:`with_azure`), gateways (LiteLLM, Cloudflare AI
    Gateway), self-hosted servers and the bundled local server
    (``livekit.plugins.openai_stt.server``).

    Args:
        model: transcription model; its registry entry (:mod:`.models`) decides what is sent.
        language: ISO-639-1 code, or ``None`` to let the model detect it.
        base_url: ``$OPENAI_BASE_URL`` or ``https://api.openai.com/v1`` when unset; ``http``,
            ``https``, ``ws`` and ``wss`` are accepted (docs/protocol.md §1).
        api_key: ``$OPENAI_API_KEY`` when unset. Never logged, never put in a URL.
        include_model_in_url: ``None`` applies the per-host rule (OpenAI and Azure: no
            ``?model=``; other hosts: yes); ``True``/``False`` force it.
        vad: an optional LiveKit VAD run inside the stream: it commits each turn at its end of
            speech and emits START_OF_SPEECH/END_OF_SPEECH. Leave unset inside an
            ``AgentSession``, which flushes the stream at each end of turn.
        prompt, delay, noise_reduction, turn_detection, languages, keywords: sent only when
            the model accepts them (a warning names any option left out).
        logprobs: ask for token logprobs; finals then carry ``confidence``.
        audio_format: ``pcm16`` (24 kHz) or ``g711_ulaw`` / ``g711_alaw`` (8 kHz, a sixth of
            the bytes).
        dialect: ``ga`` (OpenAI, Azure), ``beta`` or ``speaches`` (docs/protocol.md §2).
        extra_headers, extra_query: merged into the handshake (e.g. Cloudflare's
            ``cf-aig-authorization``).
        chunk_ms: audio per ``input_audio_buffer.append`` event, milliseconds.
        final_timeout_s: a turn whose final has not come this many seconds after its commit
            ends with its interim text and a recoverable error (no turn hangs).
        max_queued_audio_s: audio accepted while disconnected, seconds; past it the stream
            fails with a clear error rather than dropping audio.
        session_rollover_s: move to the next session at a turn boundary after this many
            seconds, before the server's cap (docs/protocol.md §6: 60 minutes). The next session is
            opened and configured up to 30 s ahead (make-before-break), so the move costs no
            handshake.
        max_item_s: longest audio committed as one item, seconds: a longer monologue is
            committed at a pause in its last second, or at this length (docs/protocol.md §2:
            gpt-realtime-whisper returns at most 2,000 tokens an item).
        allow_insecure: allow sending the key over plaintext ``ws://`` to a non-loopback host.
        connect: the transport seam (``transport.connect`` by default); tests may pass another.

    Raises:
        ValueError: an unknown audio format or dialect, or a key bound for a plaintext
            non-loopback URL without ``allow_insecure=True``.
    """

    def __init__(
        self,
        *,
        model: str = "gpt-realtime-whisper",
        language: str | None = "en",
        base_url: str | None = None,
        api_key: str | None = None,
        include_model_in_url: bool | None = None,
        vad: vad_mod.VAD | None = None,
        prompt: str | None = None,
        delay: str | None = None,
        noise_reduction: str | None = None,
        turn_detection: Mapping[str, Any] | None = None,
        logprobs: bool = False,
        audio_format: AudioFormat = "pcm16",
        dialect: Dialect = "ga",
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str] | None = None,
        languages: Sequence[str] | None = None,
        keywords: Sequence[str] | None = None,
        chunk_ms: int = 100,
        final_timeout_s: float = 15.0,
        max_queued_audio_s: float = 120.0,
        session_rollover_s: float = 55 * 60.0,
        max_item_s: float = 120.0,
        allow_insecure: bool = False,
        transcription_model: str | None = None,
        connect: transport.ConnectFn | None = None,
    ) -> None:
        super().__init__(
            capabilities=stt.STTCapabilities(
                streaming=True,
                interim_results=True,
                manual_flush=True,
                offline_recognize=True,
            )
        )
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self._api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self._opts = STTOptions(
            model=model,
            language=language or None,
            base_url=base_url,
            include_model_in_url=include_model_in_url,
            prompt=prompt,
            delay=delay,
            noise_reduction=noise_reduction,
            turn_detection=turn_detection,
            logprobs=logprobs,
            audio_format=audio_format,
            dialect=dialect,
            extra_headers=tuple((extra_headers or {}).items()),
            extra_query=tuple((extra_query or {}).items()),
            chunk_ms=chunk_ms,
            transcription_model=transcription_model,
            languages=_strings("languages", languages),
            keywords=_strings("keywords", keywords),
            final_timeout_s=final_timeout_s,
            max_queued_audio_s=max_queued_audio_s,
            session_rollover_s=session_rollover_s,
            max_item_s=max_item_s,
        )
        url = self._opts.url()  # validates the base URL now, not at the first stream
        parts = urlsplit(url)
        credentials = bool(self._api_key) or carries_credentials(
            url, dict(self._opts.extra_headers), dict(self._opts.extra_query)
        )
        remote = not is_loopback_host(parts.hostname or "")
        if credentials and parts.scheme == "ws" and remote and not allow_insecure:
            raise ValueError(
                "refusing to send credentials (an API key, a user:password, a credential header "
                "or query parameter) over plaintext ws:// to a non-loopback host; use https/wss, "
                "or pass allow_insecure=True"
            )
        if self._api_key and "@" in parts.netloc:
            raise ValueError(
                "base_url carries credentials (user@host) and an API key is set: give one, "
                "not both (they would be two Authorization headers)"
            )
        self._vad = vad
        self._connect = connect or transport.connect
        self._usage = UsageSummary(model=self.model_info)
        self._streams: weakref.WeakSet[SpeechStream] = weakref.WeakSet()
        self._warnings = DroppedOptionWarnings()

    @classmethod
    def with_azure(
        cls,
        *,
        azure_endpoint: str | None = None,
        azure_deployment: str,
        model: str = "gpt-realtime-whisper",
        api_key: str | None = None,
        **kwargs: Any,
    ) -> STT:
        """An STT for Azure OpenAI GA (docs/protocol.md §1).

        ``azure_endpoint`` (``https://<resource>.openai.azure.com``) defaults to
        ``$AZURE_OPENAI_ENDPOINT``, ``api_key`` to ``$AZURE_OPENAI_API_KEY`` (sent as the
        ``api-key`` header). The deployment name goes in the session's transcription
        ``model``; ``model`` names the underlying model so the right options are sent.

        Raises:
            ValueError: no endpoint given or in the environment.
        """
        endpoint = azure_endpoint or os.environ.get("AZURE_OPENAI_ENDPOINT")
        if not endpoint:
            raise ValueError("azure_endpoint is required (or set AZURE_OPENAI_ENDPOINT)")
        return cls(
            model=model,
            transcription_model=azure_deployment,
            base_url=endpoint,
            api_key=api_key if api_key is not None else os.environ.get("AZURE_OPENAI_API_KEY"),
            **kwargs,
        )

    # -- identity ------------------------------------------------------------------------

    @property
    def model(self) -> str:
        return self._opts.model

    @property
    def provider(self) -> str:
        kind = classify_endpoint(self._opts.base_url)
        if kind == "openai":
            return "OpenAI"
        if kind == "azure":
            return "Azure OpenAI"
        return urlsplit(self._opts.base_url).hostname or "openai-compatible"

    @property
    def model_info(self) -> ModelInfo:
        """The registry entry that decides what this STT sends (:mod:`.models`)."""
        return get_model_info(self._opts.model)

    @property
    def usage(self) -> UsageSummary:
        """Totals over every stream of this STT: audio seconds, tokens, estimated USD."""
        return self._usage

    @property
    def url(self) -> str:
        """The websocket URL, fit for a log line: never the API key, and credentials in the
        base URL or ``extra_query`` masked (:func:`~.protocol.endpoint.redact_url`)."""
        return redact_url(self._opts.url())

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self._opts.model!r}, "
            f"url={redact_url(self._opts.url())!r}, audio_format={self._opts.audio_format!r})"
        )

    def _new_stream(
        self, opts: STTOptions, conn_options: APIConnectOptions, vad: vad_mod.VAD | None
    ) -> SpeechStream:
        opener = SessionOpener(
            connect=self._connect,
            api_key=self._api_key,
            open_timeout_s=conn_options.timeout,
            warnings=self._warnings,
        )
        return SpeechStream(
            stt=self,
            opts=opts,
            conn_options=conn_options,
            vad=vad,
            opener=opener,
            usage_total=self._usage,
        )

    # -- LiveKit API ------------------------------------------------------------------------

    def stream(
        self,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> SpeechStream:
        """Open a streaming recognition session (connects in the background).

        Returns a :class:`SpeechStream`: push frames (any rate, mono or stereo), ``flush()`` to
        commit a turn, ``end_input()`` to finish; iterate it for ``SpeechEvent``.
        """
        opts = self._opts
        if is_given(language):
            opts = dataclasses.replace(opts, language=language or None)
        stream = self._new_stream(opts, conn_options, self._vad)
        self._streams.add(stream)
        return stream

    def update_options(
        self,
        *,
        model: NotGivenOr[str] = NOT_GIVEN,
        language: NotGivenOr[str | None] = NOT_GIVEN,
        prompt: NotGivenOr[str | None] = NOT_GIVEN,
        delay: NotGivenOr[str | None] = NOT_GIVEN,
        noise_reduction: NotGivenOr[str | None] = NOT_GIVEN,
        turn_detection: NotGivenOr[Mapping[str, Any] | None] = NOT_GIVEN,
    ) -> None:
        """Change options for new streams and every open one (see
        :meth:`SpeechStream.update_options`; a model change reconnects open streams)."""
        changes = option_changes(
            model=model,
            language=language,
            prompt=prompt,
            delay=delay,
            noise_reduction=noise_reduction,
            turn_detection=turn_detection,
        )
        self._opts = dataclasses.replace(self._opts, **changes)
        for stream in list(self._streams):
            stream.update_options(**changes)

    async def _recognize_impl(
        self,
        buffer: AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        """Recognise a whole buffer through one stream (one commit): all finals joined."""
        frames = buffer if isinstance(buffer, list) else [buffer]
        opts = self._opts
        if is_given(language):
            opts = dataclasses.replace(opts, language=language or None)
        stream = self._new_stream(opts, conn_options, None)
        finals: list[stt.SpeechData] = []
        request_id = ""
        try:
            for frame in frames:
                stream.push_frame(frame)
            stream.end_input()
            async for event in stream:
                if event.type == stt.SpeechEventType.FINAL_TRANSCRIPT and event.alternatives:
                    finals.append(event.alternatives[0])
                    request_id = request_id or event.request_id
        finally:
            await stream.aclose()
        text = " ".join(f.text.strip() for f in finals if f.text.strip())
        data = stt.SpeechData(
            language=finals[0].language if finals else LanguageCode(self._opts.language or ""),
            text=text,
            start_time=finals[0].start_time if finals else 0.0,
            end_time=finals[-1].end_time if finals else 0.0,
            confidence=(sum(f.confidence for f in finals) / len(finals)) if finals else 0.0,
        )
        return stt.SpeechEvent(
            type=stt.SpeechEventType.FINAL_TRANSCRIPT, request_id=request_id, alternatives=[data]
        )

    async def aclose(self) -> None:
        """Close every open stream of this STT."""
        await asyncio.gather(*(s.aclose() for s in list(self._streams)), return_exceptions=True)
