"""The runnable examples: they import, and the file transcriber runs end to end offline."""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = PROJECT_ROOT / "examples"


def _import_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_agent_room_imports_and_registers_an_entrypoint() -> None:
    from livekit.agents import AgentServer

    module = _import_example("agent_room")
    assert isinstance(module.server, AgentServer)
    assert inspect.iscoroutinefunction(module.entrypoint)


@pytest.mark.parametrize("name", ["transcribe_file", "agent_file"])
def test_example_defaults_to_the_demo_clip(name: str, demo_clip: Path) -> None:
    module = _import_example(name)
    assert module.parse_args([]).audio == demo_clip


@pytest.mark.parametrize("name", ["transcribe_file", "agent_file"])
def test_example_refuses_a_missing_file_with_a_clear_message(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module = _import_example(name)
    with pytest.raises(SystemExit):
        module.parse_args([str(tmp_path / "nothing.wav")])
    assert "no such file" in capsys.readouterr().err


@pytest.mark.slow
def test_transcribe_file_runs_offline_and_reports_a_low_wer(audio_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    proc = subprocess.run(
        [sys.executable, "examples/transcribe_file.py", str(audio_dir / "jfk.wav"), "--speed", "4"],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "local server" in proc.stdout
    match = re.search(r"^WER: (\d+(?:\.\d+)?)%", proc.stdout, re.MULTILINE)
    assert match, proc.stdout
    assert float(match.group(1)) <= 10.0, proc.stdout
    assert re.search(r"^\[\d+\.\ds - \d+\.\ds\] \S", proc.stdout, re.MULTILINE), proc.stdout
