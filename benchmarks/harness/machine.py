"""CPU pinning and machine facts.

The client (the report's process and each worker) runs on :data:`CLIENT_CPU`; servers in their
own processes on :data:`SERVER_CPU`, so that a server's CPU is never counted as the client's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
"""The project root (the benchmarks run from here: ``python -m benchmarks``)."""
CLIENT_CPU, SERVER_CPU = 0, 1
INITIAL_CPUS = frozenset(os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else ())
"""The CPUs this process could use when it started, before :func:`pin_to_cpu`."""
PACKAGES = ("livekit-plugins-openai-stt", "livekit-plugins-openai", "livekit-agents", "livekit")
PACKAGES += ("websockets", "aiohttp", "faster-whisper")


def pin_to_cpu(cpu: int | None) -> str:
    """Pin this process to ``cpu`` if the machine allows it; returns a note for the report."""
    try:
        os.sched_setaffinity(0, {cpu} if cpu in INITIAL_CPUS else ())
    except (OSError, TypeError, ValueError):
        return "not pinned"
    return f"pinned to CPU {cpu}"


def unpin() -> None:
    """Give this process back every CPU it started with."""
    if INITIAL_CPUS:
        os.sched_setaffinity(0, INITIAL_CPUS)


def server_cpus(cpu: int | None | str = "auto") -> frozenset[int]:
    """The CPUs a server process gets: ``"auto"``: :data:`SERVER_CPU` alone when another CPU is
    left for the client, else all; ``None``: all (not pinned); an int: that one."""
    if cpu == "auto":
        return frozenset({SERVER_CPU}) if {CLIENT_CPU, SERVER_CPU} <= INITIAL_CPUS else INITIAL_CPUS
    return INITIAL_CPUS if cpu is None else frozenset({int(cpu)})


def process_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` so far (this process for ``None``)."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def rss_bytes() -> int:
    """Resident set size of this process, bytes."""
    import psutil

    return psutil.Process().memory_info().rss


def cpu_busy(cpu: int) -> tuple[float, float]:
    """(busy, total) seconds of one CPU since boot, from the kernel's per-CPU times."""
    import psutil

    t = psutil.cpu_times(percpu=True)[cpu]
    return sum(t) - t.idle - getattr(t, "iowait", 0.0), sum(t)


def _read(path: str, key: str) -> str:
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.lower().startswith(key):
                return line.split(":", 1)[1].strip()
    return ""


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _revision() -> str:
    """The checkout measured: commit, subject, and whether ``plugin/`` differs from it."""
    try:
        git = ["git", "-C", str(ROOT)]
        head = subprocess.run([*git, "log", "-1", "--format=%h %s"], capture_output=True, text=True)
        dirty = subprocess.run([*git, "diff", "--quiet", "HEAD", "--", "plugin"]).returncode
    except OSError:
        return "unknown"
    changed = " (plugin/ has uncommitted changes)" if dirty else ""
    return head.stdout.strip() + changed if head.returncode == 0 else "unknown"


def machine_info() -> dict[str, Any]:
    """Date, CPU model and count, memory, OS, Python, load average, revision, versions."""
    mem = _read("/proc/meminfo", "memtotal").split()
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _read("/proc/cpuinfo", "model name") or platform.processor(),
        "cores": os.cpu_count(),
        "memory": f"{int(mem[0]) / 2**20:.1f} GiB" if mem else "",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "revision": _revision(),
        "packages": {d: _version(d) for d in PACKAGES},
    }
