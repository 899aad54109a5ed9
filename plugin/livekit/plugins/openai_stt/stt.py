"""The LiveKit ``STT``: options, endpoint policy, usage totals, ``stream()``, and LiveKit's STT
surface (keyterms, chat context, prewarm), with the arguments of ``livekit-plugins-openai``'s
``openai.STT`` 1.8.9 so that it is a drop-in replacement."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import weakref
from collections import deque
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from livekit.agents import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions, stt
from livekit.agents import vad as vad_mod
from livekit.agents.types import NOT_GIVEN, NotGivenOr
from livekit.agents.utils import AudioBuffer, is_given

from . import transport
from .http_recognize import http_base_url, recognize_http
from .models import ModelInfo, get_model_info
from .opener import (
    Credentials,
    DroppedOptionWarnings,
    SessionOpener,
    TokenProvider,
    warn_shutdown_once,
)
from .options import (
    MAX_CONTEXT_CHARS,
    STTOptions,
    language_fields,
    option_changes,
    string_tuple,
)
from .protocol.endpoint import (
    DEFAULT_BASE_URL,
    carries_credentials,
    classify_endpoint,
    is_loopback_host,
    redact_url,
)
from .protocol.session import AudioFormat, Dialect
from .protocol.usage import UsageSummary
from .providers import AZURE_ROLLOVER_S, OVHCLOUD_BASE_URL, from_openai_client
from .providers import azure_endpoint as azure_base_url
from .speech import joined_final
from .stream import SpeechStream

if TYPE_CHECKING:
    import openai

__all__ = ["STT", "STTOptions"]


class STT(stt.STT):
    """Streaming speech-to-text over the OpenAI Realtime transcription protocol.

    Works with OpenAI, Azure OpenAI (:meth:`with_azure`), OVHcloud (:meth:`with_ovhcloud`),
    gateways (LiteLLM, Cloudflare AI Gateway), self-hosted servers and the bundled local server
    (``livekit.plugins.openai_stt.server``). Takes every argument of the official
    ``livekit.plugins.openai.STT`` 1.8.9 with the same meaning (the README's migration table
    lists the defaults that differ on purpose).

    Args:
        model: transcription model; its registry entry (:mod:`.models`) decides what is sent.
        language: an ISO-639-1 code, a list of possible codes, or ``None`` to detect. Models
            that take ``languages`` get a single code as a one-item list; never both fields.
        detect_language: ``True`` sends no language (the model detects it).
        base_url: ``$OPENAI_BASE_URL`` or ``https://api.openai.com/v1`` when unset; ``http``,
            ``https``, ``ws`` and ``wss`` are accepted (docs/protocol.md §1).
        api_key: ``$OPENAI_API_KEY`` when unset. Never logged, never put in a URL.
        client: an ``openai.AsyncOpenAI``: its key, base URL and headers are used (and it
            serves ``recognize()`` over HTTP).
        include_model_in_url: ``None`` applies the per-host rule (OpenAI and Azure: no
            ``?model=``; other hosts: yes); ``True``/``False`` force it.
        vad: an optional LiveKit VAD run inside the stream: it commits each turn at its end of
            speech. Not needed in an ``AgentSession``, which flushes the stream at each turn's
            end (unlike the official plugin, none is loaded unless given).
        turn_detection: not given: the model's default (server VAD for the models that have
            it, so a bare ``stream()`` gets finals at the speaker's pauses); ``None``: the
            client commits; or a ``server_vad`` / ``semantic_vad`` dict.
        prompt, delay, keywords, languages: sent only when the model takes them (a warning
            names any option left out).
        noise_reduction (or ``noise_reduction_type``): ``near_field`` or ``far_field``;
            ``noise_reduction_strength``: higher suppresses more.
        temperature: for ``recognize()`` over HTTP only.
        use_realtime: ``False`` declares no streaming, so an ``AgentSession`` transcribes each
            turn with ``recognize()`` over HTTP; ``stream()`` still works.
        logprobs: ask for token logprobs; finals then carry ``confidence``.
        audio_format: ``pcm16`` (24 kHz) or ``g711_ulaw`` / ``g711_alaw`` (8 kHz).
        dialect: ``ga`` (OpenAI, Azure), ``beta`` or ``speaches`` (docs/protocol.md §2).
        extra_headers, extra_query: merged into the handshake.
        chunk_ms: audio per ``input_audio_buffer.append`` event, milliseconds.
        final_timeout_s: a turn whose final has not come this long after its commit ends with
            its interim text and a recoverable error (no turn hangs).
        max_queued_audio_s: audio accepted while disconnected, seconds; past it the stream
            fails rather than dropping audio.
        session_rollover_s: move to the next session at a turn boundary after this long,
            before the server's cap (docs/protocol.md §6); the next one is opened ahead.
        max_item_s: longest audio committed as one item, seconds.
        allow_insecure: allow credentials over plaintext ``ws://`` to a non-loopback host.
        connect: the transport seam (``transport.connect`` by default); tests may pass another.

    Raises:
        ValueError: an invalid option (the message names it), or credentials bound for a
            plaintext non-loopback URL without ``allow_insecure=True``.
    """

    def __init__(
        self,
        *,
        model: str = "gpt-realtime-whisper",
        language: str | Sequence[str] | None = "en",
        detect_language: bool = False,
        base_url: NotGivenOr[str | None] = NOT_GIVEN,
        api_key: NotGivenOr[str | None] = NOT_GIVEN,
        client: openai.AsyncClient | None = None,
        include_model_in_url: bool | None = None,
        vad: NotGivenOr[vad_mod.VAD | None] = NOT_GIVEN,
        prompt: NotGivenOr[str | None] = NOT_GIVEN,
        delay: str | None = None,
        keywords: NotGivenOr[Sequence[str] | None] = NOT_GIVEN,
        languages: Sequence[str] | None = None,
        turn_detection: NotGivenOr[Mapping[str, Any] | None] = NOT_GIVEN,
        noise_reduction: str | None = None,
        noise_reduction_type: NotGivenOr[str | None] = NOT_GIVEN,
        noise_reduction_strength: float | None = None,
        temperature: NotGivenOr[float] = NOT_GIVEN,
        use_realtime: NotGivenOr[bool] = NOT_GIVEN,
        logprobs: bool = False,
        audio_format: AudioFormat = "pcm16",
        dialect: Dialect = "ga",
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str] | None = None,
        chunk_ms: int = 100,
        final_timeout_s: float = 15.0,
        max_queued_audio_s: float = 120.0,
        session_rollover_s: float = 55 * 60.0,
        max_item_s: float = 120.0,
        allow_insecure: bool = False,
        transcription_model: str | None = None,
        connect: transport.ConnectFn | None = None,
    ) -> None:
        endpoint = from_openai_client(client) if client is not None else None
        url = base_url if is_given(base_url) else None
        url = url or (endpoint.base_url if endpoint else None)
        url = url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        key = api_key if is_given(api_key) else None
        if key is None:
            key = endpoint.api_key if endpoint else os.environ.get("OPENAI_API_KEY")
        headers = {**(endpoint.headers if endpoint else {}), **dict(extra_headers or {})}
        realtime = use_realtime if is_given(use_realtime) else True
        super().__init__(
            capabilities=stt.STTCapabilities(streaming=realtime, interim_results=realtime)
        )
        self._credentials = Credentials(
            api_key=key,
            azure_ad_token_provider=endpoint.azure_ad_token_provider if endpoint else None,
        )
        self._openai_client = client
        self._opts = STTOptions(
            model=model,
            base_url=url,
            include_model_in_url=include_model_in_url,
            prompt=prompt if is_given(prompt) else None,
            delay=delay,
            noise_reduction=(
                noise_reduction_type if is_given(noise_reduction_type) else noise_reduction
            ),
            noise_reduction_strength=noise_reduction_strength,
            turn_detection=turn_detection if is_given(turn_detection) else None,
            turn_detection_auto=not is_given(turn_detection),
            logprobs=logprobs,
            audio_format=audio_format,
            dialect=dialect,
            extra_headers=tuple(headers.items()),
            extra_query=tuple((extra_query or {}).items()),
            chunk_ms=chunk_ms,
            transcription_model=transcription_model,
            keywords=string_tuple("keywords", keywords if is_given(keywords) else None),
            final_timeout_s=final_timeout_s,
            max_queued_audio_s=max_queued_audio_s,
            session_rollover_s=session_rollover_s,
            max_item_s=max_item_s,
            temperature=temperature if is_given(temperature) else None,
            use_realtime=realtime,
            **language_fields(language, languages, detect_language),
        )
        self._check_endpoint(allow_insecure)
        self._vad = vad if is_given(vad) else None
        self._connect = connect or transport.connect
        self._usage = UsageSummary(model=self.model_info)
        self._streams: weakref.WeakSet[SpeechStream] = weakref.WeakSet()
        self._warnings = DroppedOptionWarnings()
        self._context: deque[str] = deque(maxlen=8)
        self._prewarmed: SessionOpener | None = None
        self._azure: dict[str, Any] | None = None  # set by with_azure, for the HTTP client
        self._sync_capabilities()
        warn_shutdown_once(self.model_info)

    def _check_endpoint(self, allow_insecure: bool) -> None:
        url = self._opts.url()  # validates the base URL now, not at the first stream
        parts = urlsplit(url)
        has_key = bool(self._credentials.api_key or self._credentials.azure_ad_token)
        credentials = has_key or carries_credentials(
            url, dict(self._opts.extra_headers), dict(self._opts.extra_query)
        )
        remote = not is_loopback_host(parts.hostname or "")
        if credentials and parts.scheme == "ws" and remote and not allow_insecure:
            raise ValueError(
                "refusing to send credentials (an API key, a user:password, a credential header "
                "or query parameter) over plaintext ws:// to a non-loopback host; use https/wss, "
                "or pass allow_insecure=True"
            )
        if has_key and "@" in parts.netloc:
            raise ValueError(
                "base_url carries credentials (user@host) and an API key is set: give one, "
                "not both (they would be two Authorization headers)"
            )

    def _sync_capabilities(self) -> None:
        """What the model takes decides what LiveKit may hand us (keyterms, chat context)."""
        info = self.model_info
        self._capabilities.keyterms = info.accepts_languages_and_keywords
        self._capabilities.chat_context = info.accepts_prompt
        self._capabilities.manual_flush = True
        self._capabilities.offline_recognize = True

    @classmethod
    def with_azure(
        cls,
        *,
        language: str | Sequence[str] | None = "en",
        detect_language: bool = False,
        model: str = "gpt-realtime-whisper",
        prompt: NotGivenOr[str | None] = NOT_GIVEN,
        keywords: NotGivenOr[Sequence[str] | None] = NOT_GIVEN,
        turn_detection: NotGivenOr[Mapping[str, Any] | None] = NOT_GIVEN,
        noise_reduction_type: NotGivenOr[str | None] = NOT_GIVEN,
        temperature: NotGivenOr[float] = NOT_GIVEN,
        azure_endpoint: str | None = None,
        azure_deployment: str | None = None,
        api_version: str | None = None,
        api_key: str | None = None,
        azure_ad_token: str | None = None,
        azure_ad_token_provider: TokenProvider | None = None,
        organization: str | None = None,
        project: str | None = None,
        base_url: str | None = None,
        use_realtime: NotGivenOr[bool] = NOT_GIVEN,
        timeout: Any = None,
        vad: NotGivenOr[vad_mod.VAD | None] = NOT_GIVEN,
        **kwargs: Any,
    ) -> STT:
        """An STT for Azure OpenAI GA (docs/protocol.md §1), with the official plugin's
        arguments.

        ``azure_endpoint`` (``https://<resource>.openai.azure.com``) defaults to
        ``$AZURE_OPENAI_ENDPOINT``; the deployment (default: ``model``) goes in the session's
        transcription ``model``, and ``model`` names the underlying model so the right options
        are sent. Credentials: ``api_key`` (``$AZURE_OPENAI_API_KEY``; the ``api-key`` header),
        or an Entra ID token, ``azure_ad_token`` (``$AZURE_OPENAI_AD_TOKEN``) or
        ``azure_ad_token_provider`` (called on every connect): ``Authorization: Bearer``.
        ``api_version`` (``$OPENAI_API_VERSION``) is sent as ``api-version`` when given;
        ``organization``/``project`` as ``OpenAI-Organization``/``OpenAI-Project``.
        Sessions roll over at 25 minutes (Azure ends them at 30). ``timeout`` bounds
        ``recognize()`` over HTTP. Other keyword arguments go to :class:`STT`.

        Raises:
            ValueError: no endpoint given or in the environment.
        """
        version = api_version or os.environ.get("OPENAI_API_VERSION")
        extra_query = dict(kwargs.pop("extra_query", None) or {})
        if version:
            extra_query.setdefault("api-version", version)
        headers = dict(kwargs.pop("extra_headers", None) or {})
        org = organization or os.environ.get("OPENAI_ORG_ID")
        proj = project or os.environ.get("OPENAI_PROJECT_ID")
        if org:
            headers.setdefault("OpenAI-Organization", org)
        if proj:
            headers.setdefault("OpenAI-Project", proj)
        token = azure_ad_token or os.environ.get("AZURE_OPENAI_AD_TOKEN")
        key = api_key if api_key is not None else os.environ.get("AZURE_OPENAI_API_KEY")
        kwargs.setdefault("session_rollover_s", AZURE_ROLLOVER_S)
        stt_ = cls(
            model=model,
            language=language,
            detect_language=detect_language,
            prompt=prompt,
            keywords=keywords,
            turn_detection=turn_detection,
            noise_reduction_type=noise_reduction_type,
            temperature=temperature,
            transcription_model=azure_deployment or model,
            base_url=azure_base_url(azure_endpoint, base_url, azure_deployment),
            api_key="",  # set below: never $OPENAI_API_KEY for Azure
            use_realtime=use_realtime,
            vad=vad,
            extra_query=extra_query,
            extra_headers=headers,
            **kwargs,
        )
        # Azure's rules (the /openai/v1/realtime path, no ?model=, the api-key header) whatever
        # the host: an Azure resource may sit behind a custom domain or API Management
        stt_._opts = dataclasses.replace(stt_._opts, endpoint_kind="azure")
        stt_._credentials = Credentials(
            api_key=None if (token or azure_ad_token_provider) else key,
            azure_ad_token=token,
            azure_ad_token_provider=azure_ad_token_provider,
        )
        stt_._azure = {
            "endpoint": stt_._opts.base_url,
            "deployment": azure_deployment or model,
            "api_version": version,
            "timeout": timeout,
        }
        return stt_

    @classmethod
    def with_ovhcloud(
        cls,
        *,
        model: str = "whisper-large-v3-turbo",
        api_key: NotGivenOr[str] = NOT_GIVEN,
        base_url: str = OVHCLOUD_BASE_URL,
        client: openai.AsyncClient | None = None,
        language: str | Sequence[str] | None = "en",
        detect_language: bool = False,
        prompt: NotGivenOr[str | None] = NOT_GIVEN,
    ) -> STT:
        """An STT for OVHcloud AI Endpoints (OpenAI-compatible HTTP transcription), as the
        official plugin's ``with_ovhcloud``: ``recognize()`` over HTTP (``use_realtime=False``).

        Raises:
            ValueError: no key given nor in ``$OVHCLOUD_API_KEY``.
        """
        key = api_key if is_given(api_key) else os.environ.get("OVHCLOUD_API_KEY")
        if not key:
            raise ValueError("OVHcloud AI Endpoints API key is required")
        return cls(
            model=model,
            api_key=key,
            base_url=base_url,
            client=client,
            language=language,
            detect_language=detect_language,
            prompt=prompt,
            use_realtime=False,
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

    def _opener(self, conn_options: APIConnectOptions) -> SessionOpener:
        return SessionOpener(
            connect=self._connect,
            credentials=self._credentials,
            open_timeout_s=conn_options.timeout,
            warnings=self._warnings,
        )

    def _new_stream(
        self, opts: STTOptions, conn_options: APIConnectOptions, vad: vad_mod.VAD | None
    ) -> SpeechStream:
        opener = self._opener(conn_options)
        warm = self._prewarmed
        if warm is not None:
            self._prewarmed = None
            opener.take_over(warm)
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
        language: NotGivenOr[str | Sequence[str] | None] = NOT_GIVEN,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    ) -> SpeechStream:
        """Open a streaming recognition session (connects in the background, or takes the
        session :meth:`prewarm` opened).

        Returns a :class:`SpeechStream`: push frames (any rate, mono or stereo), ``flush()`` to
        commit a turn, ``end_input()`` to finish; iterate it for ``SpeechEvent``.
        """
        opts = self._opts
        if is_given(language):
            opts = dataclasses.replace(opts, **language_fields(language, None, False))
        stream = self._new_stream(opts, conn_options, self._vad)
        self._streams.add(stream)
        return stream

    def prewarm(self) -> None:
        """Open and configure a session now, so the next ``stream()`` starts on it without a
        handshake (what an ``AgentSession`` calls when an agent starts). The make-before-break
        machinery of rollovers: the stream takes it if its options are still the same and it
        is young enough, else closes it."""
        if self._prewarmed is None and self._opts.use_realtime:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return  # no event loop: nothing to prewarm on
            self._prewarmed = self._opener(DEFAULT_API_CONNECT_OPTIONS)
            self._prewarmed.open_ahead(self._opts)

    def update_options(
        self,
        *,
        model: NotGivenOr[str] = NOT_GIVEN,
        language: NotGivenOr[str | Sequence[str] | None] = NOT_GIVEN,
        detect_language: NotGivenOr[bool] = NOT_GIVEN,
        prompt: NotGivenOr[str | None] = NOT_GIVEN,
        keywords: NotGivenOr[Sequence[str] | None] = NOT_GIVEN,
        turn_detection: NotGivenOr[Mapping[str, Any] | None] = NOT_GIVEN,
        noise_reduction_type: NotGivenOr[str | None] = NOT_GIVEN,
        temperature: NotGivenOr[float] = NOT_GIVEN,
        delay: NotGivenOr[str | None] = NOT_GIVEN,
        noise_reduction: NotGivenOr[str | None] = NOT_GIVEN,
        noise_reduction_strength: NotGivenOr[float | None] = NOT_GIVEN,
    ) -> None:
        """Change options for new streams and every open one (the official plugin's
        arguments, plus ``delay`` and ``noise_reduction_strength``). Open streams get a
        ``session.update`` behind the audio already pushed; a model change reconnects them,
        replaying the unfinished turn (see :meth:`SpeechStream.update_options`)."""
        changes = option_changes(
            model=model,
            prompt=prompt,
            turn_detection=turn_detection,
            delay=delay,
            noise_reduction=(
                noise_reduction_type if is_given(noise_reduction_type) else noise_reduction
            ),
            noise_reduction_strength=noise_reduction_strength,
            temperature=temperature,
        )
        if is_given(keywords):
            changes["keywords"] = string_tuple("keywords", keywords)
        if "turn_detection" in changes:
            changes["turn_detection_auto"] = False
        if is_given(language) or (is_given(detect_language) and detect_language):
            lang = language if is_given(language) else self._opts.language
            changes.update(language_fields(lang, None, bool(detect_language) is True))
        self._apply(changes)

    def _apply(self, changes: dict[str, Any]) -> None:
        if not changes:
            return
        self._opts = dataclasses.replace(self._opts, **changes)
        if "model" in changes:
            self._sync_capabilities()
            warn_shutdown_once(self.model_info)
        for stream in list(self._streams):
            stream.apply_options(changes)

    def _update_session_keyterms(self, keyterms: list[str]) -> None:
        """LiveKit's session keyterms (``AgentSession(stt_context_options=...)`` and its keyterm
        detection): sent with ``keywords`` to models that take keywords, by a
        ``session.update`` on open streams."""
        if not self._capabilities.keyterms:
            super()._update_session_keyterms(keyterms)
            return
        self._apply({"session_keyterms": string_tuple("keyterms", list(keyterms))})

    def _push_conversation_item(self, ev: Any) -> None:
        """LiveKit's chat context: the text of recent messages goes after ``prompt`` (bounded
        by :data:`~.options.MAX_CONTEXT_CHARS`, newest kept) to models that take a prompt."""
        if not self._capabilities.chat_context:
            super()._push_conversation_item(ev)
            return
        item = getattr(ev, "item", None)
        if getattr(item, "type", None) != "message":
            return
        text = (getattr(item, "text_content", None) or "").strip()
        if not text:
            return
        self._context.append(" ".join(text.split()))
        context = " ".join(self._context)[-MAX_CONTEXT_CHARS:]
        self._apply({"context": context})

    async def _recognize_impl(
        self,
        buffer: AudioBuffer,
        *,
        language: NotGivenOr[str] = NOT_GIVEN,
        conn_options: APIConnectOptions,
    ) -> stt.SpeechEvent:
        """Recognise a whole buffer: over HTTP for models that serve it (or with
        ``use_realtime=False``), as the official plugin does; else through one stream (one
        commit), all finals joined."""
        opts = self._opts
        if is_given(language):
            opts = dataclasses.replace(opts, **language_fields(language, None, False))
        if opts.model_info.http_transcription or not opts.use_realtime:
            return await recognize_http(self._http_client(), opts, buffer, conn_options)
        frames = buffer if isinstance(buffer, list) else [buffer]
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
        return joined_final(finals, request_id, opts.language or "")

    def _http_client(self) -> openai.AsyncOpenAI:
        """The ``openai`` client of the HTTP path: the one given, else one built from these
        options (an ``AsyncAzureOpenAI`` for :meth:`with_azure`)."""
        if self._openai_client is not None:
            return self._openai_client
        import openai

        azure = self._azure
        creds = self._credentials
        headers = dict(self._opts.extra_headers)
        if azure is not None:
            self._openai_client = openai.AsyncAzureOpenAI(
                max_retries=0,
                azure_endpoint=azure["endpoint"],
                azure_deployment=azure["deployment"],
                api_version=azure["api_version"] or "2025-04-01-preview",
                api_key=creds.api_key,
                azure_ad_token=creds.azure_ad_token,
                azure_ad_token_provider=creds.azure_ad_token_provider,
                default_headers=headers or None,
                timeout=azure["timeout"],
            )
        else:
            self._openai_client = openai.AsyncOpenAI(
                max_retries=0,
                api_key=creds.api_key or "no-key",
                base_url=http_base_url(self._opts.base_url),
                default_headers=headers or None,
            )
        return self._openai_client

    async def aclose(self) -> None:
        """Close every open stream of this STT and a session opened by :meth:`prewarm`."""
        warm, self._prewarmed = self._prewarmed, None
        if warm is not None:
            await warm.discard()
        await asyncio.gather(*(s.aclose() for s in list(self._streams)), return_exceptions=True)
