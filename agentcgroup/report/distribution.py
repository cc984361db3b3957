"""Small summaries of number lists: mean, median and P95 (:func:`agentcgroup.quantile.quantile`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..quantile import quantile


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def describe(values: Iterable[float | None]) -> dict[str, float | int | None]:
    """``n``, ``mean``, ``median``, ``p95``, ``min``, ``max`` of the known values."""
    xs = [float(v) for v in values if v is not None]
    return {
        "n": len(xs),
        "mean": mean(xs),
        "median": quantile(xs, 0.5) if xs else None,
        "p95": quantile(xs, 0.95) if xs else None,
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
