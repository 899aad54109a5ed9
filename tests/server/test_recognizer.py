"""Recognizer options (issue 13): what is refused at start-up, what the machine fills in, the
CLI flags, and the multilingual path of WhisperEngine through a fake model that records what it
was asked (no download, no real multilingual model)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from livekit.plugins.openai_stt.server import LocalRealtimeServer, WhisperEngine
from livekit.plugins.openai_stt.server.__main__ import build_parser, main, server_from_args
from livekit.plugins.openai_stt.server.jobs import Recognition, TranscriptionJob, completed_event
from livekit.plugins.openai_stt.server.recognizer import (
    RecognizerOptions,
    RecognizerRefused,
    default_workers,
    load_whisper,
)

# --------------------------------------------------------------------------- refusals


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    (tmp_path / "model.bin").write_bytes(b"")
    return tmp_path


@pytest.mark.parametrize(
    ("options", "cuda", "says"),
    [
        (RecognizerOptions(language="fr"), 0, "English-only"),
        (RecognizerOptions(model="base.en", language="de", download=True), 0, "English-only"),
        (RecognizerOptions(language="xx"), 0, "not a language Whisper knows"),
        (RecognizerOptions(model="/no/such/folder"), 0, "no such folder"),
        (RecognizerOptions(device="cuda"), 0, "no CUDA device"),
        (RecognizerOptions(device="cuda", device_index=2), 1, "CUDA device 2"),
        (RecognizerOptions(device="tpu"), 0, "--device must be one of"),
        (RecognizerOptions(beam_size=0), 0, "--beam-size must be at least 1"),
        (RecognizerOptions(workers=0), 0, "--workers must be at least 1"),
        (RecognizerOptions(cpu_threads=0), 0, "--cpu-threads must be at least 1"),
        (RecognizerOptions(model="no-such-model-anywhere"), 0, "downloads are off"),
    ],
)
def test_what_the_model_cannot_serve_is_refused_before_loading(
    options: RecognizerOptions, cuda: int, says: str
) -> None:
    with pytest.raises(RecognizerRefused, match=says):
        options.check(cuda_devices=cuda)


def test_a_folder_without_model_bin_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RecognizerRefused, match="no model.bin"):
        RecognizerOptions(model=str(tmp_path)).check(cuda_devices=0)


def test_what_can_be_served_passes(model_dir: Path) -> None:
    for ok in (
        RecognizerOptions(),
        RecognizerOptions(language="en"),
        RecognizerOptions(language="en-US"),
        RecognizerOptions(model=str(model_dir), language="fr"),  # checked again once loaded
        RecognizerOptions(device="cuda"),
    ):
        ok.check(cuda_devices=1)


@pytest.mark.parametrize(
    ("cores", "device", "workers"), [(1, "cpu", 1), (2, "cpu", 1), (4, "cpu", 2), (16, "cpu", 4)]
)
def test_default_workers_follow_the_core_count(cores: int, device: str, workers: int) -> None:
    assert default_workers(cores, device) == workers
    assert default_workers(cores, "cuda") == 2


def test_resolved_fills_in_device_compute_type_workers_and_threads() -> None:
    cpu = RecognizerOptions().resolved(cores=2, cuda_devices=0)
    assert (cpu.device, cpu.compute_type, cpu.workers, cpu.cpu_threads) == ("cpu", "int8", 1, 2)
    two = RecognizerOptions(workers=2).resolved(cores=2, cuda_devices=0)
    assert (two.workers, two.cpu_threads) == (2, 1)
    with pytest.raises(RecognizerRefused, match="compute-type float16"):
        RecognizerOptions(device="cpu", compute_type="float16").resolved(cores=2, cuda_devices=0)


# --------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--language", "fr"], "English-only"),
        (["--model", "/no/such/folder"], "no such folder"),
        (["--device", "cuda"], "no CUDA device"),
    ],
)
def test_the_cli_refuses_at_start_up_with_a_clear_message(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--port", "0", *argv])
    assert exited.value.code == 2
    assert says in capsys.readouterr().err


def test_the_cli_flags_reach_the_server() -> None:
    args = build_parser().parse_args(
        ["--engine", "scripted", "--workers", "3", "--beam-size", "2", "--cpu-threads", "1"]
    )
    server = server_from_args(args)
    assert server.workers == 3 and not server.speculate
    assert (server.recognizer.beam_size, server.recognizer.cpu_threads) == (2, 1)
    whisper = server_from_args(build_parser().parse_args(["--workers", "2", "--max-sessions", "8"]))
    assert whisper.workers == 2 and whisper.recognizer.cpu_threads >= 1
    assert whisper.max_sessions == 8 and whisper.speculate


def test_the_server_refuses_in_its_constructor() -> None:
    with pytest.raises(RecognizerRefused, match="English-only"):
        LocalRealtimeServer(language="fr")


# --------------------------------------------------------------------------- multilingual path


@dataclass
class _Info:
    language: str


@dataclass
class _Segment:
    text: str
    start: float = 0.0
    end: float = 1.0
    avg_logprob: float = -0.2
    no_speech_prob: float = 0.01
    words: Any = None


class FakeWhisperModel:
    """Stands in for ``faster_whisper.WhisperModel``: records how it was built and every
    ``transcribe`` call; "detects" ``detects`` when asked no language."""

    built: list[dict[str, Any]] = []

    def __init__(self, path: str, *, multilingual: bool = True, detects: str = "fr", **kw: Any):
        self.kwargs = {"path": path, **kw}
        self.calls: list[dict[str, Any]] = []
        self.detects = detects
        self.model = type("M", (), {"is_multilingual": multilingual})()
        FakeWhisperModel.built.append(self.kwargs)

    def transcribe(self, samples: np.ndarray, **kw: Any) -> tuple[list[_Segment], _Info]:
        self.calls.append(kw)
        lang = kw["language"] or self.detects
        return [_Segment(f"text in {lang}")], _Info(lang)


def fake(multilingual: bool = True) -> Any:
    return lambda path, **kw: FakeWhisperModel(path, multilingual=multilingual, **kw)


def engine(multilingual: bool = True, **kw: Any) -> WhisperEngine:
    return WhisperEngine(
        "/models/x", model_factory=fake(multilingual), partial_min_context_s=None, **kw
    )


SECOND = np.zeros(16000, dtype=np.float32)


@pytest.mark.parametrize(
    ("default", "session", "asked", "reported"),
    [
        (None, None, None, "fr"),  # detect, and report what was found
        (None, "de", "de", None),  # the session's language is honoured
        (None, "pt-BR", "pt", None),
        ("es", None, "es", None),  # the server's default for sessions that set none
        ("es", "it", "it", None),  # the session wins
    ],
)
def test_a_multilingual_model_is_asked_the_sessions_language_or_detects(
    default: str | None, session: str | None, asked: str | None, reported: str | None
) -> None:
    e = engine(language=default)
    result = e.recognize(SECOND, language=session, prompt=None)
    calls = e._model.calls
    assert [c["language"] for c in calls] == [asked]
    assert result == Recognition(f"text in {asked or 'fr'}", -0.2, language=reported)
    partial = e.recognize_partial(SECOND, language=session, prompt=None)
    assert partial.language == reported and calls[-1]["beam_size"] == 1


def test_an_english_only_model_decodes_english_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    e = engine(multilingual=False)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            assert e.recognize(SECOND, language="fr", prompt=None).language is None
    assert [c["language"] for c in e._model.calls] == ["en", "en"]
    assert sum("English-only" in r.getMessage() for r in caplog.records) == 1


def test_the_engine_passes_the_options_to_the_model() -> None:
    e = engine(
        device="cuda", compute_type="float16", workers=2, cpu_threads=3, beam_size=2, download=True
    )
    built = e._model.kwargs
    assert built["device"] == "cuda" and built["compute_type"] == "float16"
    assert (built["num_workers"], built["cpu_threads"], built["local_files_only"]) == (2, 3, False)
    e.recognize(SECOND, language="en", prompt="context")
    call = e._model.calls[0]
    assert (call["beam_size"], call["initial_prompt"], call["temperature"]) == (2, "context", 0.0)
    fallback = engine(temperature_fallback=True)
    fallback.recognize(SECOND, language="en", prompt=None)
    assert "temperature" not in fallback._model.calls[0]  # faster-whisper's fallback ladder


def test_a_loaded_english_only_folder_model_refuses_another_language(model_dir: Path) -> None:
    options = RecognizerOptions(model=str(model_dir), language="fr", device="cpu")
    with pytest.raises(RecognizerRefused, match="English-only"):
        load_whisper(options, model_factory=fake(multilingual=False))
    loaded = load_whisper(options, model_factory=fake(multilingual=True))
    assert loaded.multilingual and loaded.default_language == "fr"


def _job(model: str, language: str | None) -> TranscriptionJob:
    return TranscriptionJob(
        "s", "item_001", 1, None, b"", "audio/pcm", 24000, 1.0, model, language, None, False
    )


@pytest.mark.parametrize(
    ("model", "session", "detected", "languages"),
    [
        ("gpt-realtime-whisper", None, "fr", ("fr",)),  # detected: reported by any model
        ("gpt-realtime-whisper", "de", None, None),
        ("gpt-transcribe", "de", None, ("de",)),  # a model that returns languages
        ("gpt-transcribe", None, None, ("en",)),
        ("gpt-transcribe", None, "ja", ("ja",)),
    ],
)
def test_completed_reports_the_language_found(
    model: str, session: str | None, detected: str | None, languages: tuple[str, ...] | None
) -> None:
    event = completed_event(
        _job(model, session), Recognition("x", None, language=detected), lambda: "e"
    )
    assert event.languages == languages
