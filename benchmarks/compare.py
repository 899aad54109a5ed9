"""Kept for the tests that import :func:`turn_boundaries` from here; it lives in
:mod:`benchmarks.clips` now."""

from benchmarks.clips import turn_boundaries

__all__ = ["turn_boundaries"]
