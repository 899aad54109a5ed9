"""The docs/architecture.md rule: nothing in ``protocol/`` or the server's pure modules (its
session and its rules: ``PURE_SERVER_MODULES``) imports asyncio, websockets, aiohttp or livekit,
or reads a clock (time comes in as an argument).

Checked on the syntax tree (``ast``), not by grep, and transitively through the package's own
modules they import (an import of ``..stream`` would bring livekit in by the back door)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "livekit.plugins.openai_stt"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = PROJECT_ROOT / "plugin" / "livekit" / "plugins" / "openai_stt"
#: The server's pure modules: every rule of the local server, none of its I/O.
PURE_SERVER_MODULES = (
    "actions",
    "config",
    "faults",
    "handshake",
    "jobs",
    "partials",
    "quiet",
    "refusals",
    "session",
    "turns",
)
PURE_FILES = sorted((PACKAGE_DIR / "protocol").glob("*.py")) + [
    PACKAGE_DIR / "server" / f"{name}.py" for name in PURE_SERVER_MODULES
]

FORBIDDEN_TOP = {"asyncio", "websockets", "aiohttp"}
CLOCK_FUNCS = {
    "time",
    "time_ns",
    "monotonic",
    "monotonic_ns",
    "perf_counter",
    "perf_counter_ns",
}
DATETIME_CLOCKS = {"now", "utcnow", "today"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_DIR).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join([PACKAGE, *parts])


def module_file(name: str) -> Path | None:
    """The file of a module of this package, or None (not ours, or not a module)."""
    if name != PACKAGE and not name.startswith(PACKAGE + "."):
        return None
    rel = name[len(PACKAGE) :].lstrip(".").split(".") if name != PACKAGE else []
    base = PACKAGE_DIR.joinpath(*rel) if rel else PACKAGE_DIR
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = current.split(".")
    if not is_package:
        parts = parts[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def offences(source: str, filename: str, current: str, is_package: bool = False):
    """(offences as 'file:line: why', package modules imported)."""
    found: list[str] = []
    imported: list[str] = []
    time_aliases: set[str] = set()
    clock_names: set[str] = set()
    datetime_aliases: set[str] = set()

    def check_module(name: str, line: int) -> None:
        top = name.split(".")[0]
        if top in FORBIDDEN_TOP:
            found.append(f"{filename}:{line}: imports {name}")
        elif top == "livekit" and name != PACKAGE and not name.startswith(PACKAGE + "."):
            found.append(f"{filename}:{line}: imports {name}")
        elif name == PACKAGE or name.startswith(PACKAGE + "."):
            imported.append(name)

    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                check_module(alias.name, node.lineno)
                if alias.name == "time":
                    time_aliases.add(alias.asname or "time")
                if alias.name == "datetime":
                    datetime_aliases.add(alias.asname or "datetime")
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node, current, is_package)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                # `from pkg import sub` imports pkg.sub when it is a module, else pkg itself
                check_module(full if module_file(full) else base, node.lineno)
                if base == "time" and alias.name in CLOCK_FUNCS:
                    clock_names.add(alias.asname or alias.name)
                    found.append(f"{filename}:{node.lineno}: imports time.{alias.name}")
                if base == "datetime" and alias.name in ("datetime", "date"):
                    datetime_aliases.add(alias.asname or alias.name)
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                if func.value.id in time_aliases and func.attr in CLOCK_FUNCS:
                    found.append(f"{filename}:{node.lineno}: calls {func.value.id}.{func.attr}()")
                if func.value.id in datetime_aliases and func.attr in DATETIME_CLOCKS:
                    found.append(f"{filename}:{node.lineno}: calls {func.value.id}.{func.attr}()")
            elif (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Attribute)
                and isinstance(func.value.value, ast.Name)
                and func.value.value.id in datetime_aliases
                and func.attr in DATETIME_CLOCKS
            ):
                call = f"datetime.{func.value.attr}.{func.attr}()"
                found.append(f"{filename}:{node.lineno}: calls {call}")
            elif isinstance(func, ast.Name) and func.id in clock_names:
                found.append(f"{filename}:{node.lineno}: calls {func.id}()")
    return found, imported


def check_tree(roots: list[Path]) -> tuple[list[str], list[Path]]:
    """Offences of ``roots`` and of every package module they import, transitively."""
    seen: set[Path] = set()
    todo = list(roots)
    found: list[str] = []
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        rel = path.relative_to(PROJECT_ROOT)
        current = module_name(path)
        problems, imported = offences(
            path.read_text(encoding="utf-8"), str(rel), current, path.name == "__init__.py"
        )
        found += problems
        for name in imported:
            target = module_file(name)
            if target is not None and target not in seen:
                todo.append(target)
    return found, sorted(seen)


def test_pure_files_exist():
    names = {p.name for p in PURE_FILES if p.parent.name == "protocol"}
    assert {
        "events.py",
        "session.py",
        "transcript.py",
        "errors.py",
        "usage.py",
        "g711.py",
        "endpoint.py",
    } <= names
    assert all(p.is_file() for p in PURE_FILES)


def test_the_server_session_and_its_rules_are_pure_and_its_shell_is_not():
    server = PACKAGE_DIR / "server"
    found, checked = check_tree([server / f"{name}.py" for name in PURE_SERVER_MODULES])
    assert not found, "\n".join(found)
    # the I/O modules stay outside (they would fail the rule)
    assert not {server / n for n in ("app.py", "connection.py", "channel.py", "memory.py")} & set(
        checked
    )
    shell, _ = check_tree([server / "connection.py"])
    assert any("asyncio" in f for f in shell)


def test_protocol_and_server_session_import_no_io_and_read_no_clock():
    found, checked = check_tree(PURE_FILES)
    assert not found, "docs/architecture.md purity rule broken:\n" + "\n".join(sorted(found))
    # the transitive walk did reach the registry the protocol imports
    assert PACKAGE_DIR / "models.py" in checked


# -- the checker itself must be able to fail ---------------------------------------------------

CUR = f"{PACKAGE}.protocol.demo"

CHECKER_CASES = [
    ("import asyncio\n", ["f.py:1: imports asyncio"]),
    ("import os\nimport asyncio.queues as q\n", ["f.py:2: imports asyncio.queues"]),
    (
        "from websockets.asyncio.client import connect\n",
        ["f.py:1: imports websockets.asyncio.client"],
    ),
    ("import aiohttp\n", ["f.py:1: imports aiohttp"]),
    ("from livekit import rtc\n", ["f.py:1: imports livekit"]),
    ("from livekit.agents import stt\n", ["f.py:1: imports livekit.agents"]),
    ("def f():\n    import asyncio\n", ["f.py:2: imports asyncio"]),
    ("import time\nx = time.monotonic()\n", ["f.py:2: calls time.monotonic()"]),
    ("import time as t\nx = t.perf_counter()\n", ["f.py:2: calls t.perf_counter()"]),
    ("import time\nx = time.time()\n", ["f.py:2: calls time.time()"]),
    (
        "from time import monotonic as m\nx = m()\n",
        ["f.py:1: imports time.monotonic", "f.py:2: calls m()"],
    ),
    ("import datetime\nx = datetime.datetime.now()\n", ["f.py:2: calls datetime.datetime.now()"]),
    ("from datetime import datetime\nx = datetime.utcnow()\n", ["f.py:2: calls datetime.utcnow()"]),
    # allowed
    ("import time\nx = time.sleep\n", []),
    ("import json, math, base64\nfrom dataclasses import dataclass\n", []),
    ("from . import events as ev\nfrom ..models import ModelInfo\n", []),
    ("from livekit.plugins.openai_stt.protocol import events\n", []),
    ("def f(now: float):\n    return now + 1\n", []),
]


@pytest.mark.parametrize("source, expected", CHECKER_CASES)
def test_checker_flags_io_imports_and_clock_calls(source, expected):
    found, _ = offences(source, "f.py", CUR)
    assert sorted(found) == sorted(expected)


@pytest.mark.parametrize(
    "source, current, is_package, expected",
    [
        ("from . import events\n", CUR, False, [f"{PACKAGE}.protocol.events"]),
        ("from ..models import ModelInfo\n", CUR, False, [f"{PACKAGE}.models"]),
        ("from .. import stream\n", CUR, False, [f"{PACKAGE}.stream"]),
        ("from ...openai_stt import transport\n", CUR, False, [f"{PACKAGE}.transport"]),
        (
            "from .events import parse\n",
            f"{PACKAGE}.protocol",
            True,
            [f"{PACKAGE}.protocol.events"],
        ),
        (
            "from ..protocol.events import parse\n",
            f"{PACKAGE}.server.session",
            False,
            [f"{PACKAGE}.protocol.events"],
        ),
    ],
)
def test_checker_resolves_relative_imports(source, current, is_package, expected):
    found, imported = offences(source, "f.py", current, is_package)
    assert found == []
    assert imported == expected


def test_checker_follows_package_imports_into_the_adapter():
    # stream.py imports livekit: reaching it from a pure module is an offence
    found, checked = check_tree([PACKAGE_DIR / "stream.py"])
    assert any("imports livekit" in f or "imports asyncio" in f for f in found)
    assert PACKAGE_DIR / "stream.py" in checked


MAX_MODULE_LINES = 600
"""Issue 10: a module a reader can hold; past this, split it by concern."""


def test_no_module_of_the_package_is_over_600_lines():
    sizes = {
        str(path.relative_to(PACKAGE_DIR)): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE_DIR.rglob("*.py")
    }
    assert len(sizes) > 40, sizes  # the walk found the package
    assert {name: n for name, n in sizes.items() if n > MAX_MODULE_LINES} == {}
