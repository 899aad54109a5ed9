"""One measurement in a fresh process: ``python -m benchmarks.harness.worker MODULE:FUNCTION JSON``.

The function is ``async def f(args: dict) -> dict`` (JSON in, JSON out). The worker pins itself
to ``args["cpu"]`` (default the client CPU), runs it and prints ``RESULT {json}`` last. A fresh
process per measurement keeps one plugin's imports, caches and garbage out of the other's
figures.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.harness.machine import CLIENT_CPU, ROOT, pin_to_cpu

Task = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


async def call(
    fn: Task, args: dict[str, Any], *, fresh: bool = True, timeout_s: float = 400.0
) -> dict[str, Any]:
    """``fn(args)`` in a fresh pinned process (``fresh``), or in this process and event loop
    (smoke runs: faster, numbers moot). Either way the result went through JSON."""
    if not fresh:
        return json.loads(json.dumps(await fn(args)))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.harness.worker",
        f"{fn.__module__}:{fn.__qualname__}",
        json.dumps(args),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    for line in reversed(out.decode().splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(
        f"worker {fn.__qualname__} failed (rc={proc.returncode}):\n{err.decode()[-3000:]}"
    )


def main() -> None:
    target, args = sys.argv[1], json.loads(sys.argv[2])
    module, name = target.split(":")
    fn = getattr(importlib.import_module(module), name)
    note = pin_to_cpu(args.get("cpu", CLIENT_CPU))
    logging.basicConfig(level=logging.CRITICAL)  # plugins' retry tracebacks are expected
    result = asyncio.run(fn(args))
    result["pinning"] = note
    print("RESULT " + json.dumps(result), flush=True)
    os._exit(0)  # skip a slow interpreter teardown (native threads of livekit-rtc)


if __name__ == "__main__":
    main()
