"""Calibration: how much each kind of estimate must be stretched to cover the next call, learned from history.

The rule's point estimates (a p95 of the call's own runs, a p75 of other sessions' largest...) are stretched by
a margin before they are reserved. Fixed margins (:data:`~.rule.MARGIN`, :data:`~.rule.PRIOR_MARGIN`) are
what the rule uses with little history; with enough, the margin is *measured* by split conformal prediction:

1. replay the history's sessions, each call estimated (margins 1) from what ended before it in its own session
   and from every *other* session of the history (leave one session out, as a new session would see it);
2. the ratio ``actual / max(estimate, floor)`` of each call whose estimate is not gated;
3. the multiplier is the ``ceil((n + 1) q)``-th smallest of the ``n`` ratios (``q`` = :data:`COVERAGE`, 0.95):
   under exchangeability the next call exceeds ``estimate x multiplier`` with probability at most ``1 - q``.
   That needs ``n >= q / (1 - q)`` (19) ratios; with fewer, no calibration (the fixed margins).

One multiplier for every basis (``"*"``), not one per basis: the goal is a share of all calls, and per basis
the ratios are heavy-tailed where a session's earlier run failed fast (9 MiB, then 1.4 GB): covering 95 % of
*those* took 18-178x on haiku's halves and cost more misses and more memory than the pooled margin
(:func:`multipliers` computes per-basis ones too with ``per_basis_too=True``, for experiments).

The coverage level is the rule's goal (at most 5 % of calls under-predicted), not a value fitted to any data;
the multipliers come from whatever history the host has, so the same code calibrates itself on sessions never
seen. At most :data:`MAX_CALLS` of the latest observations are replayed (cost: one estimate per call and
figure).
"""

from __future__ import annotations

import heapq
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from .history import History, Observation

if TYPE_CHECKING:
    from .rule import Rule

COVERAGE = 0.95
#: what is calibrated: the figure admission reserves. Duration and CPU keep the fixed margins: their ratios are
#: heavy-tailed (a call that ran in 1 s runs 100 s once the agent fixed its import), and a 95 % cover of them
#: costs tens of times their total
CALIBRATED = ("memory",)
MAX_CALLS = 5000
#: as history grows (``agentcg predict --online``, the controller), the margins are recalibrated each time this
#: many more calls have ended
RECALIBRATE_EVERY = 100
POOLED = "*"

#: figure -> basis (or ``"*"``) -> multiplier
Multipliers = Mapping[str, Mapping[str, float]]


def min_ratios(coverage: float = COVERAGE) -> int:
    """The fewest ratios a conformal ``coverage`` quantile can be taken from."""
    return math.ceil(coverage / (1 - coverage) - 1e-9)


def conformal(ratios: list[float], coverage: float = COVERAGE) -> float | None:
    """The ``ceil((n + 1) coverage)``-th smallest ratio, or None with too few."""
    n = len(ratios)
    if n < min_ratios(coverage):
        return None
    k = min(n, math.ceil((n + 1) * coverage - 1e-9))
    return sorted(ratios)[k - 1]


def ratios(observations: Iterable[Observation], rule: Rule) -> dict[str, dict[str, list[float]]]:
    """figure -> basis -> ``actual / max(estimate, floor)`` for the observations' calls, each estimated from its
    session's calls that ended before it and from the other sessions (the un-margined ``rule``)."""
    from .rule import FLOORS

    obs = sorted(observations, key=lambda o: o.end)[-MAX_CALLS:]
    hist = History()
    for o in obs:  # every session's calls, host-wide only: a session never sees its own in the host's figures
        hist.add(o, own=False)
    by_session: dict[str, list[Observation]] = defaultdict(list)
    for o in obs:
        by_session[o.session].append(o)
    out: dict[str, dict[str, list[float]]] = {f: defaultdict(list) for f in CALIBRATED}
    for calls in by_session.values():
        pending: list[tuple[float, int, Observation]] = []
        for i, o in enumerate(sorted(calls, key=lambda o: (o.start, o.end))):
            while pending and pending[0][0] <= o.start:
                hist.add(heapq.heappop(pending)[2], host=False)
            sig = hist.signature_of(o)
            for figure in CALIBRATED:
                actual = o.value(figure)
                if actual is None:
                    continue
                est = rule.estimate(sig, o.session, hist, figure)
                if est is not None:
                    out[figure][est.basis].append(actual / max(est.value, FLOORS[figure]))
            heapq.heappush(pending, (o.end, i, o))
    return {f: dict(v) for f, v in out.items()}


def multipliers(
    per_basis: Mapping[str, Mapping[str, list[float]]],
    gated: Iterable[str] = (),
    coverage: float = COVERAGE,
    *,
    per_basis_too: bool = False,
) -> dict[str, dict[str, float]]:
    """figure -> ``"*"`` -> the pooled conformal multiplier of the ungated bases, from :func:`ratios` (with
    ``per_basis_too``, each basis's own as well: what the rule then applies first)."""
    gated = set(gated)
    out: dict[str, dict[str, float]] = {}
    for figure, bases in per_basis.items():
        m: dict[str, float] = {}
        for basis, rs in bases.items() if per_basis_too else ():
            c = conformal(rs, coverage)
            if c is not None:
                m[basis] = c
        pooled = conformal([r for b, rs in bases.items() if b not in gated for r in rs], coverage)
        if pooled is not None:
            m[POOLED] = pooled
        if m:
            out[figure] = m
    return out
