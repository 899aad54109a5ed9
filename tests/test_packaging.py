"""What ships is the runtime: build the sdist and the wheel, install the wheel with ``[local]``
in a fresh virtual environment, and from a folder outside the checkout serve and transcribe.

Nothing comes from the source tree: the server and the client run with the new environment's
interpreter, in an empty folder, without ``PYTHONPATH``. The test costs about a minute (most of
it is pip installing the dependencies), so it is marked ``packaging``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from benchmarks.clips import turn_boundaries
from examples.evaluation import DEMO_REFERENCE, word_error_rate

pytestmark = [pytest.mark.packaging, pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "livekit/plugins/openai_stt/"

CLIENT = """
import asyncio, json, sys, wave
import numpy as np
from livekit import rtc
from livekit.agents import stt as lk_stt
from livekit.plugins import openai_stt

async def main(base_url, clip, flush_after_s):
    stt = openai_stt.STT(base_url=base_url, api_key="local")
    stream = stt.stream()
    with wave.open(clip, "rb") as w:
        rate, pcm = w.getframerate(), w.readframes(w.getnframes())
    samples = np.frombuffer(pcm, dtype=np.int16)
    step, pending = rate // 10, list(flush_after_s)
    for start in range(0, len(samples), step):
        chunk = samples[start : start + step]
        stream.push_frame(rtc.AudioFrame(chunk.tobytes(), rate, 1, len(chunk)))
        if pending and (start + len(chunk)) / rate >= pending[0]:
            pending.pop(0)
            stream.flush()
    stream.end_input()
    finals = [e.alternatives[0].text async for e in stream
              if e.type == lk_stt.SpeechEventType.FINAL_TRANSCRIPT]
    await stream.aclose()
    print(json.dumps({"module": openai_stt.__file__, "finals": finals}))

asyncio.run(main(sys.argv[1], sys.argv[2], json.loads(sys.argv[3])))
"""


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)  # type: ignore[call-overload]
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # the wheel is built from the sdist, which proves the sdist complete too
    _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)])
    return out


def test_the_wheel_holds_the_runtime_and_nothing_else(dist: Path) -> None:
    (wheel,) = dist.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    files = {n for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert all(n.startswith(PACKAGE) for n in files), sorted(files)
    assert {PACKAGE + "py.typed", PACKAGE + "stt.py", PACKAGE + "server/__main__.py"} <= files
    assert not any("evaluation" in n or "/tests/" in n for n in files)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "openai-stt-server = livekit.plugins.openai_stt.server.__main__:main" in scripts
    metadata = (
        zipfile.ZipFile(wheel)
        .read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        .decode()
    )
    assert re.search(r"Requires-Dist: websockets<18,>=13", metadata), metadata


def test_the_installed_wheel_serves_and_transcribes_outside_the_checkout(
    dist: Path, tmp_path: Path, demo_clip: Path
) -> None:
    (wheel,) = dist.glob("*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # no .pyc compile: the test imports each module once anyway
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run([*pip, "--no-compile", f"{wheel}[local]"])

    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OPENAI_API_KEY")}
    env["PYTHONUNBUFFERED"] = "1"
    # the console script answers
    help_text = _run([str(env_dir / "bin" / "openai-stt-server"), "--help"], cwd=workdir, env=env)
    assert "--engine" in help_text.stdout

    server = subprocess.Popen(
        [str(python), "-m", "livekit.plugins.openai_stt.server", "--engine", "whisper",
         "--port", "0", "--no-fast-finals-under-load"],  # full-quality finals whatever the load
        cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stderr is not None
        base_url = None
        for line in server.stderr:  # "listening on ws://... (base URL http://..., ...)"
            found = re.search(r"base URL (\S+),", line)
            if found:
                base_url = found.group(1)
                break
        assert base_url, "the server did not report its address"
        script = workdir / "client.py"
        script.write_text(CLIENT, encoding="utf-8")
        flushes = turn_boundaries(demo_clip)[:-1]
        proc = _run(
            [str(python), str(script), base_url, str(demo_clip), json.dumps(flushes)],
            cwd=workdir, env=env, timeout=300,
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=30)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert Path(result["module"]).is_relative_to(env_dir), result["module"]
    assert len(result["finals"]) == len(flushes) + 1, result["finals"]
    assert word_error_rate(DEMO_REFERENCE, " ".join(result["finals"])) <= 0.05, result["finals"]
