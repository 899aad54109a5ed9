"""``python -m benchmarks [--quick] [--out PATH] [--json PATH] [--skip a,b] [--only a,b]``."""

from benchmarks.report import main

if __name__ == "__main__":  # the soak's servers are spawned processes: they import this module
    raise SystemExit(main())
