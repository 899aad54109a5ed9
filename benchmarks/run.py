"""``python -m benchmarks.run``: the old name of ``python -m benchmarks`` (the Makefile's)."""

from benchmarks.report import main

if __name__ == "__main__":
    raise SystemExit(main())
