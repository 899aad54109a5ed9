"""``tools/contract_probe.py`` (issue 11, point 2) against the local server in OpenAI compat mode.

The real-API path cannot run here (no key, no network); the same code runs against
``LocalRealtimeServer(compat="openai")``, which refuses ``?model=`` as OpenAI does, so the probe
is told ``--no-model-in-url`` (its loopback host would otherwise get the gateway rule).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from livekit.plugins.openai_stt.models import get_model_info
from livekit.plugins.openai_stt.server import LocalRealtimeServer
from tools import contract_probe as probe

PROJECT_ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-probe-test-0123456789abcdef"
#: the probe's rows that carry each option a model may refuse (``ModelInfo.rejected_options``)
ROWS_OF_OPTION = {
    "turn_detection": ("server_vad", "semantic_vad"),
    "prompt": ("prompt",),
    "delay": ("delay",),
}
CELL = re.compile(
    r"^(accepted(, not echoed)?|rejected `[a-z_]+`(, closed \d+)?|rejected \(no code\)"
    r"(, closed \d+)?|closed \d+|no answer|handshake HTTP \d+|connect failed)$"
)


def _table(text: str, header_start: str) -> tuple[list[str], dict[str, list[str]]]:
    """The Markdown table whose header row starts with ``header_start``: its column names and
    ``{first cell: other cells}`` (backticks stripped from names)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    columns = [c.strip().strip("`") for c in lines[start].strip("|").split("|")][1:]
    rows: dict[str, list[str]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        rows[cells[0].strip("`")] = cells[1:]
    return columns, rows


async def _run(server: LocalRealtimeServer, out: Path, *extra: str) -> int:
    argv = [
        "--base-url",
        server.base_url,
        "--out",
        str(out),
        "--timeout",
        "5",
        "--close-grace",
        "0.2",
        "--label",
        'the bundled local server, `compat="openai"`, scripted engine, started by the test',
        *extra,
    ]
    return await probe.amain(argv, api_key=KEY, environ={})


async def test_probe_writes_the_whole_table_against_the_local_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "openai-contract.md"
    server = LocalRealtimeServer(engine="scripted", compat="openai", port=0, api_key=KEY)
    async with server:
        assert await _run(server, out, "--no-model-in-url") == 0
    text = out.read_text(encoding="utf-8")
    printed = capsys.readouterr()

    # headed as what it is, and never the key
    assert "This is NOT a record of the real OpenAI API" in text
    assert "make live" in text and "OPENAI_API_KEY" in text
    assert re.search(r"Date: \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", text)
    port = server.base_url.split(":")[-1].split("/")[0]
    assert f"`ws://127.0.0.1:{port}/v1/realtime?intent=transcription`" in text
    assert "(`?model=` on the URL: no)" in text
    for shown in (text, printed.out, printed.err):
        assert KEY not in shown and "sk-probe" not in shown

    # every model a column, every field a row, every cell a known outcome
    columns, rows = _table(text, "| field |")
    assert columns == list(probe.DEFAULT_MODELS)
    assert list(rows) == [probe.BASELINE, *(f.key for f in probe.FIELDS)]
    for key, cells in rows.items():
        assert len(cells) == len(columns), key
        for cell in cells:
            assert CELL.match(cell), (key, cell)
    assert all(cell == "accepted" for cell in rows[probe.BASELINE])

    # what compat="openai" refuses (it copies the registry's rejected_options) shows as
    # rejected with its code
    whisper = columns.index("gpt-realtime-whisper")
    assert rows["prompt"][whisper] == "rejected `unsupported_prompt`"
    assert rows["server_vad"][whisper] == "rejected `unsupported_turn_detection`"
    assert rows["semantic_vad"][whisper] == "rejected `unsupported_turn_detection`"
    for model in columns:
        for option in get_model_info(model).rejected_options:
            for row in ROWS_OF_OPTION[option]:
                assert rows[row][columns.index(model)].startswith("rejected `"), (model, row)
    assert "code `unsupported_prompt`, param `session.audio.input.transcription.prompt`" in text
    for model in columns:  # the effective session after each model's baseline
        assert f"<summary><code>{model}</code></summary>" in text

    # one transcription per model through STT.stream(): a final each (the scripted engine
    # counts seconds, so the WER is shown but means nothing)
    header, transcriptions = _table(text, "| model | final text |")
    assert list(transcriptions) == list(probe.DEFAULT_MODELS)
    for model, cells in transcriptions.items():
        row = dict(zip(header, cells, strict=True))
        assert re.search(r"\d+\.\d\d seconds of audio", row["final text"]), (model, row)
        assert int(row["finals"].split()[0]) >= 1, (model, row)
        assert re.fullmatch(r"\d+\.\d\d", row["WER"]), (model, row)
        assert float(row["audio sent (s)"]) == pytest.approx(probe.CLIP_SECONDS, abs=0.05)
        assert row["error"] == "—", (model, row)


async def test_model_on_the_url_is_refused_and_each_update_gets_a_fresh_socket(
    tmp_path: Path,
) -> None:
    """The loopback host gets ``?model=`` by the URL rule; compat="openai" answers the first
    update ``invalid_model`` and closes 4000, as OpenAI does. The field then goes out on a new
    socket (and meets the same answer)."""
    out = tmp_path / "contract.md"
    server = LocalRealtimeServer(engine="scripted", compat="openai", port=0, api_key=KEY)
    async with server:
        argv = ("--models", "gpt-realtime-whisper", "--fields", "language", "--no-transcribe")
        assert await _run(server, out, *argv) == 0
        sessions = server.counters.sessions_opened
    text = out.read_text(encoding="utf-8")
    _, rows = _table(text, "| field |")
    assert rows[probe.BASELINE] == ["rejected `invalid_model`, closed 4000"]
    assert rows["language"] == ["rejected `invalid_model`, closed 4000"]
    assert sessions == 3  # the preflight, the baseline's socket, the field's socket
    assert "`?model=` on the URL: yes" in text
    assert "Transcriptions not run (--no-transcribe)." in text


async def test_a_refused_key_fails_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "contract.md"
    server = LocalRealtimeServer(engine="scripted", compat="openai", port=0, api_key="other")
    async with server:
        assert await _run(server, out, "--no-model-in-url") == 1
    assert not out.exists()
    err = capsys.readouterr().err
    assert "HTTP 401" in err and KEY not in err


async def test_no_key_skips_without_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "contract.md"
    assert await probe.amain(["--out", str(out)], environ={}) == 0
    assert "skipped" in capsys.readouterr().out
    assert not out.exists()


def test_cli_without_a_key_exits_0_and_says_it_skipped(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    out = tmp_path / "contract.md"
    proc = subprocess.run(
        [sys.executable, "-m", "tools.contract_probe", "--out", str(out)],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "contract probe skipped: OPENAI_API_KEY is not set" in proc.stdout
    assert not out.exists()


async def test_a_key_is_not_sent_over_plaintext_to_a_remote_host(tmp_path: Path) -> None:
    argv = ["--base-url", "http://gateway.example.com/v1", "--out", str(tmp_path / "x.md")]
    with pytest.raises(SystemExit) as exc:
        await probe.amain(argv, api_key=KEY, environ={})
    assert exc.value.code == 2


def test_scrub_removes_the_key_and_key_shaped_text() -> None:
    message = f"Incorrect API key provided: sk-abc*********wxyz. Bearer {KEY} and {KEY}"
    cleaned = probe.scrub(message, [KEY])
    assert KEY not in cleaned and "sk-abc" not in cleaned and "wxyz" not in cleaned
    assert cleaned.startswith("Incorrect API key provided: [REDACTED]")


def test_update_events_add_one_field_to_the_minimal_session() -> None:
    fields = {f.key: f for f in probe.FIELDS}
    base = probe.update_event("gpt-live-transcribe", None, "e1")
    assert base == {
        "type": "session.update",
        "event_id": "e1",
        "session": {
            "type": "transcription",
            "audio": {"input": {"transcription": {"model": "gpt-live-transcribe"}}},
        },
    }
    both = probe.update_event("gpt-live-transcribe", fields["language+languages"], "e2")
    assert both["session"]["audio"]["input"]["transcription"] == {
        "model": "gpt-live-transcribe",
        "language": "en",
        "languages": ["en", "fr"],
    }
    assert probe.update_event("m", fields["turn_detection=null"], "e3")["session"]["audio"][
        "input"
    ] == {"transcription": {"model": "m"}, "turn_detection": None}
    assert probe.plugin_sends(fields["delay"], "gpt-realtime-whisper") is True
    assert probe.plugin_sends(fields["delay"], "whisper-1") is False
    assert probe.plugin_sends(fields["turn_detection=null"], "gpt-realtime-whisper") is True


def test_a_report_of_the_real_api_is_headed_as_such() -> None:
    target = probe.Target(base_url="https://api.openai.com/v1", api_key=KEY)
    report = probe.ProbeReport(
        target=target,
        models=["gpt-realtime-whisper"],
        fields=[],
        started=probe.dt.datetime(2026, 1, 2, 3, 4, tzinfo=probe.dt.timezone.utc),
        results={"gpt-realtime-whisper": {}},
        transcription_note="not run (--no-transcribe)",
    )
    text = probe.render_markdown(report)
    assert "Recorded against the OpenAI Realtime API on 2026-01-02 03:04 UTC" in text
    assert "NOT" not in text and KEY not in text
    assert "`wss://api.openai.com/v1/realtime?intent=transcription`" in text
    assert "(`?model=` on the URL: no)" in text
