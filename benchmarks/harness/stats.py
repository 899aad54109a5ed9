"""Statistics and the number formats of the report."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

Row = tuple[str, str, str, str, str]
"""One line of the summary table: figure, ours, official, ours ÷ official, target (ours)."""


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, ``q`` in 0..100; NaN for no values."""
    xs = sorted(values)
    if not xs:
        return math.nan
    k = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def describe(values: Sequence[float]) -> dict[str, float]:
    """``n``, ``median``, ``p95`` and ``max`` of ``values``."""
    return {
        "n": len(values),
        "median": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else math.nan,
    }


def mean(values: Iterable[float]) -> float:
    xs = list(values)
    return sum(xs) / len(xs) if xs else math.nan


def median(values: Iterable[float | None]) -> float:
    """Median of the values that are not None or NaN."""
    return percentile([x for x in values if x is not None and not math.isnan(x)], 50)


def worst(values: Iterable[float | None]) -> float:
    """Largest of the values that are not None (NaN for none)."""
    return max((x for x in values if x is not None), default=math.nan)


def missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt(x: Any, digits: int = 2, unit: str = "") -> str:
    """``x`` with ``digits`` decimals (floats) and ``unit``; "n/a" for None or NaN."""
    if missing(x):
        return "n/a"
    return f"{x:.{digits}f}{unit}" if isinstance(x, float) else f"{x}{unit}"


def ms(seconds: Any, digits: int = 1) -> str:
    """Seconds as milliseconds: ``"1.2 ms"``; "n/a" for None or NaN."""
    return "n/a" if missing(seconds) else f"{seconds * 1000:.{digits}f} ms"


def ratio(a: Any, b: Any) -> str:
    """``a / b`` as ``"0.45×"``, small ratios as ``"0.0017× (1/585)"``; "n/a" if undefined."""
    if missing(a) or missing(b) or not b:
        return "n/a"
    r = a / b
    if r >= 0.1:
        return f"{r:.2f}×"
    return f"{r:.2g}× (1/{1 / r:.0f})" if r > 0 else "0×"


def pass_fail(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def fixed(digits: int, unit: str = "", scale: float = 1.0) -> Any:
    """A formatter: ``x * scale`` with ``digits`` decimals and ``unit``; "n/a" for None or NaN."""
    return lambda x: fmt(x if missing(x) else float(x * scale), digits, unit)


def row(
    figure: str, ours: Any, official: Any, show: Any = str, target: str = "", *, div: bool = True
) -> Row:
    """A summary row: both values through ``show``, and their ratio unless ``div`` is False."""
    return (figure, show(ours), show(official), ratio(ours, official) if div else "", target)
