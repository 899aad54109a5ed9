"""Smoke test of the side-by-side benchmarks: ``python -m benchmarks.run --quick`` runs every
section in a tiny configuration and writes a report. Figures are not checked (timing belongs in
``benchmarks/``, not in pass/fail tests); only that each measurement ran and was reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


pytest.importorskip("livekit.plugins.openai", reason="the bench extra is not installed")
pytest.importorskip("psutil", reason="the bench extra is not installed")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict]:
    out = tmp_path_factory.mktemp("bench")
    md, raw = out / "BENCHMARKS.md", out / "results.json"
    # server_bench.py (the local server's own figures) has its own tests and takes a minute
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--quick",
            "--skip",
            "server",
            "--out",
            str(md),
            "--json",
            str(raw),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return md.read_text(encoding="utf-8"), json.loads(raw.read_text(encoding="utf-8"))


def test_the_quick_bench_runs_every_section_without_error(quick_run: tuple[str, dict]) -> None:
    _, raw = quick_run
    results = raw["results"]
    for section in ("cpu", "ramp", "latency", "bytes", "memory", "e2e", "drops", "resilience"):
        assert section in results, section
        assert "error" not in results[section], results[section].get("error")


def test_the_report_has_both_plugins_side_by_side_with_machine_facts(
    quick_run: tuple[str, dict],
) -> None:
    md, raw = quick_run
    assert "| figure | ours | official | ours ÷ official | target (ours) |" in md
    for heading in (
        "## Machine",
        "## 1. CPU",
        "## 2-3. Latency",
        "## 4. Bytes",
        "## 5. Memory",
        "## 6. End to end",
        "## 7. Audio lost",
        "## Targets",
        "## Resilience",
        "Words lost per drop",
    ):
        assert heading in md, heading
    info = raw["info"]
    assert info["cpu"] and info["cores"] and info["python"]
    assert info["packages"]["livekit-plugins-openai"] in md


def test_both_plugins_were_measured_in_each_comparison(quick_run: tuple[str, dict]) -> None:
    _, raw = quick_run
    r = raw["results"]
    assert {"ours", "official", "null"} <= set(r["cpu"]["runs"][0]["variants"])
    assert {run["plugin"] for run in r["latency"]["runs"]} == {"ours", "official"}
    assert {run["plugin"] for run in r["bytes"]["runs"]} == {"ours", "official"}
    assert {run["plugin"] for run in r["e2e"]["runs"]} == {"ours", "official"}
    assert {run["plugin"] for run in r["drops"]["runs"]} == {"ours", "official"}
    # the probe server's stamps came back through both plugins as interim transcripts
    for plugin in ("ours", "official"):
        assert any(
            run["interim_latencies"] for run in r["latency"]["runs"] if run["plugin"] == plugin
        ), plugin
