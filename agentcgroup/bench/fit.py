"""Which replayed calls no policy can finish under a budget: they need more than it has beside their own agent.

A call of a replayed session holds its planned peak of its own at some point (the replay worker subtracts its
processes' own footprint, so its cgroup holds at least that), while its session's agent lives beside it, under
the same budget. The agent's schedule runs on the wall clock and a call never starts before its planned start
(sessions only fall behind), so while the call runs its agent holds at least the least its baseline has from
the call's planned start on (the baseline holds its last point after the end). If that peak plus that least
reaches the budget, the call cannot end by itself under that budget even if nothing else ran: it is killed,
times out or fails whatever the policy, and counts among the calls killed without being any policy's choice.

Deliberately conservative: the other sessions' agents, the call's shell and the kernel's own memory are left
out, so a call counted here certainly could not fit, and one that fits by a few MiB is not counted.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from ..replay.plan import Point, ReplayPlan


def least_from(points: Sequence[Point], t: float) -> int:
    """The least a piecewise-linear schedule (held before its first point and after its last) has from ``t``
    on."""
    if not points:
        return 0
    times = [p.t for p in points]
    i = bisect.bisect_right(times, t)
    if i == 0:
        at = points[0].bytes
    elif i == len(points):
        at = points[-1].bytes
    else:
        a, b = points[i - 1], points[i]
        at = round(a.bytes + (b.bytes - a.bytes) * (t - a.t) / (b.t - a.t)) if b.t > a.t else b.bytes
    return min([at, *(p.bytes for p in points[i:])])


def could_not_fit(plan: ReplayPlan, budget: int | None) -> frozenset[int]:
    """The indexes of ``plan``'s calls whose peak plus their agent's least memory from their start reaches
    ``budget`` (none without a budget)."""
    if budget is None:
        return frozenset()
    return frozenset(c.index for c in plan.calls if c.peak_bytes + least_from(plan.baseline, c.start) >= budget)
