"""``python -m benchmarks [--quick] [--out PATH] [--json PATH] [--skip a,b] [--only a,b]``."""

from benchmarks.report import main

raise SystemExit(main())
