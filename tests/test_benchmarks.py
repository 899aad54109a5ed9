"""Smoke test of the benchmarks: every scenario's ``measure()`` in its small configuration
(``Config.small()``: in this process, servers inline, numbers moot), then ``render()`` and the
report. Figures are not checked (timing belongs in ``benchmarks/``, not in pass/fail tests);
only that each section ran, rendered, and compared both plugins where it compares them."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("livekit.plugins.openai", reason="the bench extra is not installed")
pytest.importorskip("psutil", reason="the bench extra is not installed")

from benchmarks import report  # noqa: E402
from benchmarks.harness.machine import machine_info  # noqa: E402

pytestmark = pytest.mark.timeout(120)

LANES = (
    ("e2e", "resilience"),
    ("cpu", "ramp", "server"),
    ("latency", "bytes", "drops", "memory"),
    ("soak",),
)
"""Sections run one after the other within a lane and the lanes side by side: most of a small
run is waiting on paced audio. The recognizer e2e loads first is reused by the later whisper
sections (inline servers share it)."""


@pytest.fixture(scope="module")
def small_run() -> tuple[dict[str, Any], str]:
    async def lane(names: tuple[str, ...]) -> dict[str, Any]:
        out = {}
        for name in names:
            out[name] = await report.SECTIONS[name].measure(report.config_for(name, quick=True))
        return out

    async def run_all() -> dict[str, Any]:
        lanes = await asyncio.gather(*(lane(names) for names in LANES))
        return {name: lanes_out[name] for lanes_out in lanes for name in lanes_out}

    t0 = time.monotonic()
    results = asyncio.run(run_all())
    md, _ = report.assemble(machine_info(), results, time.monotonic() - t0, quick=True)
    return results, md


def test_every_lane_holds_every_section_once() -> None:
    names = [name for lane in LANES for name in lane]
    assert sorted(names) == sorted(report.SECTIONS)


def test_every_section_ran_and_rendered(small_run: tuple[dict[str, Any], str]) -> None:
    results, md = small_run
    for name, module in report.SECTIONS.items():
        text = module.render(results[name])
        assert text.startswith(("## ", "**")) and "|---|" in text, name
        assert text in md, name
    for heading in (
        "## Machine",
        "## Summary",
        "## 1. CPU",
        "**`chunk_ms` (ours)**",
        "**Most concurrent streams",
        "## 2-3. Latency",
        "## 4. Bytes",
        "## 5. Memory",
        "## 6. End to end",
        "## 7. Audio lost",
        "## Server figures",
        "## Resilience",
        "Words lost per drop",
        "Rollover (",
        "Peak Python memory",
        "## Soak",
        "A flood of deltas",
        "## Targets",
    ):
        assert heading in md, heading
    assert "| figure | ours | official | ours ÷ official | target (ours) |" in md


def test_both_plugins_were_measured_in_each_comparison(
    small_run: tuple[dict[str, Any], str],
) -> None:
    r, _ = small_run
    both = {"ours", "official"}
    assert {"ours", "official", "null"} <= set(r["cpu"].runs[0]["variants"])
    assert set(r["ramp"].plugins) == both
    assert {x["plugin"] for x in r["latency"].runs} == both
    assert {x["plugin"] for x in r["bytes"].runs} == both
    assert {x["plugin"] for x in r["memory"].runs} == both
    assert {x["plugin"] for x in r["e2e"].runs} == both
    assert {x["plugin"] for x in r["drops"].runs} == both
    assert {x["plugin"] for x in r["drops"].controls} == both
    # the probe server's stamps came back through both plugins as interim transcripts
    for plugin in both:
        assert any(x["interim_latencies"] for x in r["latency"].runs if x["plugin"] == plugin)
    # the scripted engine's finals came back through both plugins
    for x in r["drops"].controls:
        assert x["finals"] >= 1, x


def test_summary_rows_give_both_plugins(small_run: tuple[dict[str, Any], str]) -> None:
    results, _ = small_run
    for name in ("cpu", "ramp", "latency", "bytes", "memory", "e2e", "drops"):
        rows = report.SECTIONS[name].summary(results[name])
        assert rows, name
        figure, ours, official, _, _ = rows[0]
        assert ours and official, (name, figure)


def test_the_command_line_writes_the_report_and_the_raw_results(tmp_path: Path) -> None:
    md, raw = tmp_path / "BENCHMARKS.md", tmp_path / "results.json"
    args = ["--quick", "--only", "bytes", "--out", str(md), "--json", str(raw)]
    assert report.main(args) == 0
    text, data = md.read_text(encoding="utf-8"), json.loads(raw.read_text(encoding="utf-8"))
    assert "## 4. Bytes" in text and "## 1. CPU" not in text
    assert set(data["results"]) == {"bytes"} and data["config"]["bytes"]["quick"]
    info = data["info"]
    assert info["cpu"] and info["cores"] and info["python"]
    assert info["packages"]["livekit-plugins-openai"] in text


def test_the_soak_lost_no_word_and_duplicated_no_final(
    small_run: tuple[dict[str, Any], str],
) -> None:
    soak = small_run[0]["soak"]
    s = soak.soak
    assert s["stream_error"] is None
    assert s["server"]["drops"] >= 1 and s["server"]["read_pauses"] >= 1
    # a failure sent just before a drop may not arrive: that turn is replayed and transcribed
    assert s["server"]["items_failed"] >= s["failures_reported"] >= 1
    assert s["lost_words"] == 0 and s["duplicates"] == 0 and s["altered"] == 0
    assert s["finals"] + s["failures_reported"] == s["turns"]
    assert {f["plugin"] for f in soak.flood} == {"ours", "official"}
    assert all(f["final_chars"] == 5 * soak.cfg.flood_deltas for f in soak.flood)
