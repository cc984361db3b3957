"""Offline evaluation: replay recorded sessions' calls in order and predict each from the calls before it.

A call is predicted from what had *ended* before it started: its own session's earlier calls and, when given,
a base history (other sessions: ``--history``, or the first half of the sessions with ``split``). With
``online``, every evaluated session also becomes history for the sessions after it, as on a host whose daemon
keeps its outcomes (and the margins are recalibrated on it every ``RECALIBRATE_EVERY`` calls that ended).
Beside the learned rule, the naive policies on the same calls: the session's peak so far (the largest call of
the session until now), and a fixed per-call reservation.

Figures per policy (memory; duration and CPU likewise, where the naive policies apply):

calls                   calls whose actual figure is known
predicted_share         calls with a prediction / calls
under_predicted_share   calls whose actual figure exceeded the prediction / calls with a prediction
median_abs_rel_err      median of |predicted - actual| / max(actual, floor) (8 MiB, 0.1 s, 0.05 cores)
reserved_over_actual    sum of predictions / sum of actual figures, over the calls with a prediction
"""

from __future__ import annotations

import heapq
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .calibrate import RECALIBRATE_EVERY
from .history import FIGURES, History, Observation
from .rule import DEFAULT_RULE, Rule
from .sources import TaskCalls, notes

#: the denominators' floor of the relative error, per figure (an actual of 0 has no relative error)
ERR_FLOOR = {"memory": 8 << 20, "duration": 0.1, "cpu": 0.05}
#: the fixed per-call reservation of the naive policy (bytes)
FIXED_BYTES = 256 << 20
LEARNED, SESSION_PEAK, FIXED = "learned", "session-peak", "fixed"
MODES = ("session", "history", "split", "online")


@dataclass
class Tally:
    """One policy's figures on one quantity."""

    calls: int = 0
    predicted: int = 0
    under: int = 0
    reserved: float = 0.0
    actual: float = 0.0
    errors: list[float] = field(default_factory=list)

    def add(self, predicted: float | None, actual: float, floor: float) -> None:
        self.calls += 1
        if predicted is None:
            return
        self.predicted += 1
        self.under += actual > predicted
        self.reserved += predicted
        self.actual += actual
        self.errors.append(abs(predicted - actual) / max(actual, floor))

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "predicted": self.predicted,
            "predicted_share": _r(self.predicted / self.calls) if self.calls else None,
            "under_predicted_share": _r(self.under / self.predicted) if self.predicted else None,
            "median_abs_rel_err": _r(statistics.median(self.errors)) if self.errors else None,
            "reserved_over_actual": _r(self.reserved / self.actual) if self.actual > 0 else None,
        }


def _r(x: float) -> float:
    return round(x, 4)


@dataclass
class Evaluation:
    mode: str
    sessions: int
    history_sessions: int
    history_calls: int
    fixed_bytes: int
    tallies: dict[str, dict[str, Tally]]  # figure -> policy -> tally
    bases: dict[str, int]  # what the learned memory predictions rested on
    notes: list[str]
    per_call: list[dict[str, Any]] = field(default_factory=list)
    calibration: dict[str, dict[str, float]] = field(default_factory=dict)  # figure -> basis -> multiplier

    def to_dict(self, per_call: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "mode": self.mode,
            "sessions": self.sessions,
            "history_sessions": self.history_sessions,
            "history_calls": self.history_calls,
            "fixed_bytes": self.fixed_bytes,
            "figures": {f: {p: t.to_dict() for p, t in pol.items()} for f, pol in self.tallies.items()},
            "bases": dict(sorted(self.bases.items(), key=lambda kv: -kv[1])),
            "notes": self.notes,
            "calibration": {f: {b: round(m, 3) for b, m in bm.items()} for f, bm in self.calibration.items()},
        }
        if per_call:
            d["calls"] = self.per_call
        return d


def _replay(
    sessions: Sequence[TaskCalls],
    base: Sequence[Observation],
    share: bool,
    visit: Callable[[Observation, History], None],
    ended: list[Observation] | None = None,
) -> None:
    """Walk the sessions' calls in start order; before each, the history holds ``base`` and every call that
    ended before it started (its own session's; with ``share``, every evaluated session's)."""
    events = sorted((o for s in sessions for o in s.calls), key=lambda o: (o.start, o.end))
    if share:
        hist = History(base)
        pending: list[tuple[float, int, Observation]] = []
        for i, o in enumerate(events):
            while pending and pending[0][0] <= o.start:
                done = heapq.heappop(pending)[2]
                hist.add(done)
                if ended is not None:
                    ended.append(done)
            visit(o, hist)
            heapq.heappush(pending, (o.end, i, o))
        return
    # each session alone: its calls go to its own scope only, so the others never see them (and what a
    # session sees of the host excludes itself anyway): one history serves all
    hist = History(base)
    for s in sessions:
        pending = []
        for i, o in enumerate(sorted(s.calls, key=lambda o: (o.start, o.end))):
            while pending and pending[0][0] <= o.start:
                hist.add(heapq.heappop(pending)[2], host=False)
            visit(o, hist)
            heapq.heappush(pending, (o.end, i, o))
        while pending:
            hist.add(heapq.heappop(pending)[2], host=False)


def evaluate(
    sessions: Sequence[TaskCalls],
    base: Iterable[Observation] = (),
    *,
    mode: str = "session",
    online: bool = False,
    rule: Rule = DEFAULT_RULE,
    fixed_bytes: int = FIXED_BYTES,
    history_sessions: int = 0,
    keep_calls: bool = False,
    calibrate: bool = True,
) -> Evaluation:
    """Evaluate ``rule`` (and the naive policies) on ``sessions``, each call predicted from ``base`` and the
    calls that ended before it (see the module's text). With ``calibrate``, the rule's margins are measured
    on ``base`` first (:meth:`Rule.calibrated`: never on the sessions evaluated)."""
    base = list(base)
    uncalibrated = rule
    if calibrate and base and rule.calibration is None:
        rule = rule.calibrated(base)
    ended: list[Observation] = []  # online: what has ended so far, recalibrated on as it grows
    calibrated_at = [0]
    tallies = {f: {LEARNED: Tally(), SESSION_PEAK: Tally()} for f in FIGURES}
    tallies["memory"][FIXED] = Tally()
    bases: dict[str, int] = {}
    per_call: list[dict[str, Any]] = []

    def visit(o: Observation, hist: History) -> None:
        nonlocal rule
        if calibrate and online and len(ended) - calibrated_at[0] >= RECALIBRATE_EVERY:
            calibrated_at[0] = len(ended)
            rule = uncalibrated.calibrated([*base, *ended])
        pred = rule.predict(hist.signature_of(o), o.session, hist)
        earlier = hist.session_calls(o.session)
        for figure in FIGURES:
            actual = o.value(figure)
            if actual is None:
                continue
            learned = None if pred is None else getattr(pred, figure)
            tallies[figure][LEARNED].add(learned, actual, ERR_FLOOR[figure])
            seen = [v for v in (e.value(figure) for e in earlier) if v is not None]
            tallies[figure][SESSION_PEAK].add(max(seen) if seen else None, actual, ERR_FLOOR[figure])
            if figure == "memory":
                tallies[figure][FIXED].add(float(fixed_bytes), actual, ERR_FLOOR[figure])
                if pred is not None and pred.memory is not None:
                    bases[pred.basis] = bases.get(pred.basis, 0) + 1
        if keep_calls:
            per_call.append(
                {
                    "session": o.session,
                    "command": o.command if isinstance(o.command, str) else list(o.command),
                    "start": o.start,
                    "actual": {"memory": o.memory, "cpu": o.cpu, "duration": o.duration},
                    "predicted": None if pred is None else pred.to_dict(),
                }
            )

    _replay(sessions, base, online, visit, ended)
    return Evaluation(
        mode=mode,
        sessions=len(sessions),
        history_sessions=history_sessions,
        history_calls=len(base),
        fixed_bytes=fixed_bytes,
        tallies=tallies,
        bases=bases,
        notes=notes(sessions),
        per_call=per_call,
        calibration={f: dict(m) for f, m in (rule.calibration or {}).items()},
    )


def split(sessions: Sequence[TaskCalls]) -> tuple[list[TaskCalls], list[TaskCalls]]:
    """The first half of the sessions (by start time; the earlier half when odd) and the rest."""
    ordered = sorted(sessions, key=lambda t: (t.start is None, t.start or 0.0, t.label))
    half = len(ordered) // 2
    return ordered[:half], ordered[half:]
