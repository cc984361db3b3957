"""Each lower-priority call's own memory cap under a shared budget: its usage plus its fair share of what is left.

A burst faster than one sample (hundreds of MiB in 50 ms) outruns any prediction from growth. So the calls that
give way under a budget are capped *before* it is short: each running one may grow by its share of the budget's
remaining headroom (up to a line: ``pressure_off`` of it beside a higher-priority call, whose bursts need the rest,
else ``pressure_on``), recomputed at every sample. A burst then meets the call's own
cap, where it stalls (v1: ``memory.limit_in_bytes`` with ``oom_kill_disable``; v2: ``memory.high``), and not
the budget's hard limit, where the kernel's OOM killer fires. The hard limit stays above the caps' sum (the
budget's last ``1 - pressure_on``): a backstop for a controller too slow, never the first responder.

Shares are weighted by priority: a call of rank ``r`` weighs ``r + 1`` (low 1, normal 2, high 3). The
protected calls (never capped) count with their weight too, so the headroom they may take stays free for them.
A cap is never under ``floor``: what a starting call's processes need to fork and exec (the kernel charges those
without stalling: at a v1 limit they fail with ENOMEM). Above that, a call with no share left is capped where it
stands plus ``slack`` (less than the step a cap must move by to be written again: no ratchet past the budget).
"""

from __future__ import annotations

from ..._record import Frozen

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (the per-call path: _record.py)
if TYPE_CHECKING:
    from collections.abc import Sequence

#: a cap that moved less than this part of the budget is not written again (the kernel write costs, the event log)
STEP_OF_BUDGET = 64


class Share(Frozen):
    """One running call under a budget, as the caps see it. ``capped`` False: never capped (high priority); its
    weight keeps its share of the headroom free."""

    FIELDS = ("id", "rank", "usage", "capped")
    id: str
    rank: int
    usage: int
    capped: bool

    def __init__(self, id: str, rank: int, usage: int, capped: bool) -> None:
        self._set("id", id)
        self._set("rank", rank)
        self._set("usage", usage)
        self._set("capped", capped)


def weight(rank: int) -> int:
    return max(0, rank) + 1


def fair_caps(room: int, calls: Sequence[Share], floor: int, slack: int) -> dict[str, int]:
    """The cap of every ``capped`` call: its usage plus its weighted share of ``room`` (bytes the budget may still
    grow by before its line), plus at least ``slack``, and never under ``floor``."""
    total = sum(weight(c.rank) for c in calls)
    if total == 0:
        return {}
    free = max(0, room)
    return {c.id: max(floor, c.usage + max(slack, free * weight(c.rank) // total)) for c in calls if c.capped}


def moved(old: int | None, new: int | None, budget: int) -> bool:
    """Worth writing: set or lifted, or moved by a step of the budget either way."""
    if old is None or new is None:
        return old != new
    return abs(new - old) >= max(1, budget // STEP_OF_BUDGET)
