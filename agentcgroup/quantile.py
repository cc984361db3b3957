"""The one quantile function: every benchmark (``benchmarks/``), ``agentcg bench`` and ``agentcg report`` compute
their medians, P95s and P99s with it, so a P99 here and a P95 there are computed alike.

Linear interpolation between order statistics: numpy's default (``method="linear"``), R's type 7.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def quantile(values: Iterable[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``; NaN when there are none."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile {q!r}: expected 0..1")
    xs = sorted(values)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median(values: Iterable[float]) -> float:
    return quantile(values, 0.5)
