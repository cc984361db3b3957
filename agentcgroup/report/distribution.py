"""Small summaries of number lists (stdlib only): mean, median, percentiles as numpy's default 'linear'."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (0..100) with linear interpolation; None for an empty list."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * p / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def describe(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """``n``, ``mean``, ``median``, ``p95``, ``min``, ``max`` of the known values."""
    xs = [float(v) for v in values if v is not None]
    return {
        "n": len(xs),
        "mean": mean(xs),
        "median": percentile(xs, 50),
        "p95": percentile(xs, 95),
        "min": min(xs) if xs else None,
        "max": max(xs) if xs else None,
    }


def union_length(intervals: Iterable[tuple[float, float]]) -> float:
    """Total length covered by possibly overlapping ``(start, end)`` intervals."""
    total, cur_start, cur_end = 0.0, None, None
    for start, end in sorted(intervals):
        if cur_end is None or start > cur_end:
            if cur_end is not None and cur_start is not None:
                total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    if cur_end is not None and cur_start is not None:
        total += cur_end - cur_start
    return total
