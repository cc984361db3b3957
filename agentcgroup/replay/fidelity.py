"""How closely a replay followed its trace: Pearson correlation of memory over time, and the peak ratio.

The trace (already time- and memory-scaled in the plan) is resampled, linearly, onto the times the replay was
measured at, inside the replayed window; the correlation is taken over those pairs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .plan import Point, lerp


@dataclass(frozen=True)
class Fidelity:
    correlation: float | None  # Pearson r of measured vs trace memory (None: too few or constant values)
    peak_ratio: float | None  # measured peak / trace peak (None: the trace has no memory)
    measured_peak: int
    trace_peak: int
    samples: int  # measured samples compared

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Pearson's r; ``None`` with fewer than three pairs or a constant series."""
    n = len(xs)
    if n != len(ys):
        raise ValueError(f"pearson: {n} x values but {len(ys)} y values")
    if n < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx <= 0 or syy <= 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def resample(points: Sequence[Point], times: Sequence[float]) -> list[float]:
    """The memory of ``points`` at each of ``times`` (linear between points, flat outside)."""
    ts = [p.t for p in points]
    vs = [float(p.bytes) for p in points]
    return [lerp(ts, vs, t) for t in times]


def fidelity(trace: Sequence[Point], times: Sequence[float], measured: Sequence[int]) -> Fidelity:
    """Compare measured memory (at ``times``, seconds since the replay's start) with the trace."""
    end = trace[-1].t if trace else 0.0
    pairs = [(t, m) for t, m in zip(times, measured, strict=True) if 0.0 <= t <= end]
    expected = resample(trace, [t for t, _ in pairs])
    got = [float(m) for _, m in pairs]
    trace_peak = max((p.bytes for p in trace), default=0)
    measured_peak = int(max(got, default=0))
    return Fidelity(
        correlation=pearson(got, expected),
        peak_ratio=measured_peak / trace_peak if trace_peak > 0 else None,
        measured_peak=measured_peak,
        trace_peak=trace_peak,
        samples=len(pairs),
    )
