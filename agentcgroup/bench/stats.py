"""Summaries of repeated measurements: median, P95, mean with a 95 % confidence interval (bootstrap).

Pure and stdlib only. The bootstrap is seeded, so the same figures give the same interval every time.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..quantile import median, quantile

RESAMPLES = 2000

__all__ = ["Estimate", "estimate", "median", "p95", "quantile"]


@dataclass(frozen=True)
class Estimate:
    """A statistic of ``n`` values and its 95 % bootstrap confidence interval."""

    value: float
    lo: float
    hi: float
    n: int

    def to_dict(self, digits: int = 4) -> dict[str, float | int | list[float]]:
        return {"value": _round(self.value, digits), "ci95": [_round(self.lo, digits), _round(self.hi, digits)],
                "n": self.n}  # fmt: skip

    def text(self, fmt: str = "{:.2f}") -> str:
        if math.isnan(self.value):
            return "-"
        if self.n < 2 or self.lo == self.hi:
            return fmt.format(self.value)
        return f"{fmt.format(self.value)} [{fmt.format(self.lo)}, {fmt.format(self.hi)}]"


def _round(x: float, digits: int) -> float:
    return round(x, digits) if not math.isnan(x) else math.nan


def estimate(values: Sequence[float], stat: Callable[[Sequence[float]], float] = statistics.fmean) -> Estimate:
    """``stat`` of the values with a percentile-bootstrap 95 % interval (NaN when there are none)."""
    xs = [float(v) for v in values if not math.isnan(float(v))]
    if not xs:
        return Estimate(math.nan, math.nan, math.nan, 0)
    value = stat(xs)
    if len(xs) == 1:
        return Estimate(value, value, value, 1)
    rng = random.Random(1234567)
    boots = sorted(stat([rng.choice(xs) for _ in xs]) for _ in range(RESAMPLES))
    return Estimate(value, boots[int(0.025 * RESAMPLES)], boots[int(0.975 * RESAMPLES) - 1], len(xs))


def p95(values: Sequence[float]) -> float:
    return quantile(values, 0.95)
