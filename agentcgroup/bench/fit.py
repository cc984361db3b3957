"""Which replayed calls are traced over a budget alone: their peak and their own agent need more than it has.

A call of a replayed session is to hold its traced peak (the replay workers subtract their own footprint), while
its session's agent lives beside it under the same budget. The agent's schedule runs on the wall clock and a
call never starts before its planned start (sessions only fall behind), so while the call runs its agent holds
at least the least its baseline has from the call's planned start on (held at its last point after the end).
If that peak plus that least reaches the budget, the call as traced needs more than the budget has even if
nothing else ran.

Not a proof that no policy could finish it: a call's load is spread over several elastic processes
(``--call-procs``), each following its share of the schedule at its own pace, so a call held at a cap can have
its processes peak at different times, below the traced peak (seen: calls traced at 1011 and 1160 MiB ending
well at 708 and 811 MiB under a 1109 MiB budget). The bench counts these calls apart, killed or ended well, so
that how many of the kills they are is visible; the other sessions' agents, the call's shell and the kernel's own
memory are left out (a call over by a few MiB with them is not counted).
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


def over_budget_alone(plan: ReplayPlan, budget: int | None) -> frozenset[int]:
    """The indexes of ``plan``'s calls whose traced peak plus their agent's least memory from their start reaches
    ``budget`` (none without a budget)."""
    if budget is None:
        return frozenset()
    return frozenset(c.index for c in plan.calls if c.peak_bytes + least_from(plan.baseline, c.start) >= budget)
