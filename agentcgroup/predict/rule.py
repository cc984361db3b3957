"""The prediction rule: a call's peak memory, CPU and duration from what similar calls used before.

Fixed and written down here; its constants were chosen on the first half (by time) of the AgentCgroup paper's
haiku traces only, and are not fitted to anything (the same rule runs on sessions never seen). Per figure:

1. **The call's own history.** This session's earlier calls with the same command (literal), else the same
   signature, else the same program + subcommand, are pooled until one of them is *informative*: at or above
   the figure's floor (:data:`FLOORS`: 8 MiB, 0.1 s, 0.05 cores). Below it, a call either did nothing (it
   failed at once: a missing module, a wrong flag) or a once-a-second sample missed it; either way it says
   little about the next run. With an informative one, the reservation is the :data:`QUANTILE` (p95, linear
   between order statistics: the largest value below 20 observations) of the pool times :data:`MARGIN` (1.25,
   the slack the controller gives a declared peak).
2. **Priors, for a call new to its session.** Otherwise the reservation is the larger of what the pool did
   show, times :data:`MARGIN`, and a prior times :data:`PRIOR_MARGIN` (2: borrowed from other calls, it is less
   certain than a call's own history). The prior is the host's when it has one: :data:`HOST_QUANTILE` (p75) of
   what each *other* session used at most for the same signature in the same directory (when the call's is
   known), else the same signature, else program + subcommand, else program,
   from at least :data:`MIN_HOST_SESSIONS` sessions; else the session's typical informative call
   (:data:`SESSION_QUANTILE`, the median of them), whatever its command.
3. **Last resorts.** The session's calls of the same program (their largest, times the margin); else, with at
   least :data:`SESSION_WIDE_MIN` calls, the p95 of everything the session ran, times the margin.
4. **No history, no prediction**: ``None``.

**Calibrated margins.** With enough history (:meth:`Rule.calibrated`), the margins above are not fixed: each
basis's estimate (taken without margin) is stretched by a multiplier measured on the history by split
conformal prediction at 95 % coverage (:mod:`.calibrate`); the fixed margins remain for what the history
cannot calibrate.

**The gate.** A figure whose estimate rests only on what says nothing about the call's *kind* (:data:`GATED`:
the session's typical call, its calls of the same program, everything it ran, or other sessions' calls of the
same program whatever its subcommand) is not predicted: ``None`` for that figure. A reservation sized from
``python``'s or ``bash``'s anything is a guess; no reservation (as with no history) is honest about it.

Memory is never predicted below its floor. The **confidence** (0-1) is the weight of what the memory figure
rested on (:data:`WEIGHTS`) times ``n / (n + 1)`` for the ``n`` observations (or sessions) behind it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .calibrate import POOLED, Multipliers, multipliers, ratios
from .history import FIGURES, History, Observation
from .signature import Signature, signature

QUANTILE = 0.95
MARGIN = 1.25
PRIOR_MARGIN = 2.0
SESSION_QUANTILE = 0.5
HOST_QUANTILE = 0.75
MIN_HOST_SESSIONS = 3
SESSION_WIDE_MIN = 3
FLOORS = {"memory": float(8 << 20), "duration": 0.1, "cpu": 0.05}
#: the session's own levels, most specific first
OWN_LEVELS = ("literal", "signature", "command")
#: the host's levels, most specific first
HOST_LEVELS = ("signature@cwd", "signature", "command", "program")
WEIGHTS = {
    "session literal": 1.0,
    "session signature": 0.9,
    "session command": 0.8,
    "host signature@cwd": 0.7,
    "host signature": 0.6,
    "host command": 0.5,
    "host program": 0.4,
    "session typical": 0.3,
    "session program": 0.3,
    "session all": 0.2,
}
#: bases that say nothing about the call's kind: not predicted (see the module's text)
GATED = frozenset({"session typical", "session program", "session all", "host program"})


@dataclass(frozen=True)
class Prediction:
    """What a call is expected to use: ``memory`` (bytes to reserve), ``cpu`` (cores), ``duration`` (s); each
    None when nothing observed has it. ``basis`` names what the memory figure rests on (``"session
    signature"``, ``"host command"``...), ``n`` how many observations (or sessions) are behind it."""

    memory: int | None
    cpu: float | None
    duration: float | None
    confidence: float
    basis: str
    n: int
    key: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "memory": self.memory,
            "cpu": None if self.cpu is None else round(self.cpu, 3),
            "duration": None if self.duration is None else round(self.duration, 3),
            "confidence": round(self.confidence, 3),
            "basis": self.basis,
            "n": self.n,
            "key": self.key,
        }


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile, linear between order statistics (numpy's default)."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass(frozen=True)
class Estimate:
    value: float
    basis: str
    n: int
    key: str


@dataclass(frozen=True)
class Rule:
    """The rule's constants. The defaults are the rule; other values exist for experiments and tests."""

    quantile: float = QUANTILE
    margin: float = MARGIN
    prior_margin: float = PRIOR_MARGIN
    session_quantile: float = SESSION_QUANTILE
    host_quantile: float = HOST_QUANTILE
    min_host_sessions: int = MIN_HOST_SESSIONS
    gate: bool = True
    #: figure -> basis (or "*", pooled) -> multiplier of the un-margined estimate; None: the fixed margins
    calibration: Multipliers | None = field(default=None, hash=False)

    def calibrated(self, observations: Iterable[Observation]) -> Rule:
        """This rule with its margins measured on ``observations`` (:mod:`.calibrate`); unchanged when they
        are too few to calibrate anything."""
        found = multipliers(ratios(observations, self._raw()), GATED)
        return replace(self, calibration=found or None)

    def _raw(self) -> Rule:
        return replace(self, margin=1.0, prior_margin=1.0, calibration=None)

    def _margined(self, sig: Signature, session: str | None, history: History, figure: str) -> Estimate | None:
        """The figure's estimate with its margin: calibrated when the calibration knows the figure."""
        mult = None if self.calibration is None else self.calibration.get(figure)
        if not mult:
            return self.estimate(sig, session, history, figure)
        est = self._raw().estimate(sig, session, history, figure)
        if est is None:
            return None
        m = mult.get(est.basis, mult.get(POOLED))
        if m is None:
            return self.estimate(sig, session, history, figure)
        return Estimate(est.value * m, est.basis, est.n, est.key)

    def estimate(self, sig: Signature, session: str | None, history: History, figure: str) -> Estimate | None:
        """One figure's estimate (before the memory floor), or None."""
        keys = dict(sig.history_keys())
        floor = FLOORS[figure]
        pool: list[float] = []
        seen: set[int] = set()
        basis = ("", "")
        if session is not None:
            for level in OWN_LEVELS:
                key = keys.get(level)
                if key is None:
                    continue
                fresh = [o for o in history.lookup(level, key, session) if id(o) not in seen]
                values = [v for v in (o.value(figure) for o in fresh) if v is not None]
                seen.update(id(o) for o in fresh)
                if values:
                    pool += values
                    basis = (f"session {level}", key)
                if any(v >= floor for v in pool):
                    return Estimate(quantile(pool, self.quantile) * self.margin, basis[0], len(pool), basis[1])
        found: list[Estimate] = []
        if pool:
            found.append(Estimate(max(pool) * self.margin, basis[0], len(pool), basis[1]))
        host = self._host(keys, session, history, figure)
        if host is not None:
            found.append(host)
        elif session is not None:  # nothing of its kind elsewhere: what this session's real calls take
            typical = [v for v in _values(history.session_calls(session), figure) if v >= floor]
            if typical:
                value = quantile(typical, self.session_quantile) * self.prior_margin
                found.append(Estimate(value, "session typical", len(typical), "*"))
        if found:
            return max(found, key=lambda e: e.value)
        return self._last_resort(keys, session, history, figure)

    def _host(self, keys: dict[str, str], session: str | None, history: History, figure: str) -> Estimate | None:
        for level in HOST_LEVELS:
            key = keys.get(level)
            if key is None:
                continue
            per_session = history.host(level, key)
            most = [s.most[figure] for name, s in per_session.items() if name != session and figure in s.most]
            if len(most) >= self.min_host_sessions:
                value = quantile(most, self.host_quantile) * self.prior_margin
                return Estimate(value, f"host {level}", len(most), key)
        return None

    def _last_resort(self, keys: dict[str, str], session: str | None, history: History, figure: str) -> Estimate | None:
        if session is None:
            return None
        program = keys.get("program")
        if program is not None:
            same = list(_values(history.lookup("program", program, session), figure))
            if same:
                return Estimate(max(same) * self.margin, "session program", len(same), program)
        every = list(_values(history.session_calls(session), figure))
        if len(every) >= SESSION_WIDE_MIN:
            return Estimate(quantile(every, self.quantile) * self.margin, "session all", len(every), "*")
        return None

    def predict(self, sig: Signature, session: str | None, history: History) -> Prediction | None:
        """The prediction for a call of signature ``sig`` in ``session`` (None: no session), or None."""
        est = {f: self._margined(sig, session, history, f) for f in FIGURES}
        if self.gate:
            est = {f: None if e is None or e.basis in GATED else e for f, e in est.items()}
        lead = est["memory"] or est["duration"] or est["cpu"]
        if lead is None:
            return None
        mem, cpu, dur = est["memory"], est["cpu"], est["duration"]
        return Prediction(
            memory=None if mem is None else max(int(FLOORS["memory"]), round(mem.value)),
            cpu=None if cpu is None else cpu.value,
            duration=None if dur is None else dur.value,
            confidence=WEIGHTS.get(lead.basis, 0.1) * lead.n / (lead.n + 1),
            basis=lead.basis,
            n=lead.n,
            key=lead.key,
        )


def _values(observations: Sequence[Observation], figure: str) -> list[float]:
    return [v for v in (o.value(figure) for o in observations) if v is not None]


DEFAULT_RULE = Rule()


def predicted_intent(
    argv: str | Sequence[str],
    cwd: str | None,
    session: str | None,
    history: History,
    rule: Rule = DEFAULT_RULE,
) -> Prediction | None:
    """The seam for admission: what a call about to start is expected to use, or None without history.

    Pure (reads ``history``, changes nothing). A prediction is a *reservation*, not a limit: admission may hold
    ``memory`` for the call against the session's and the host's budgets, but must not turn it into the leaf's
    soft or hard limit (docs/predict.md, "Admission")."""
    return rule.predict(signature(argv, cwd), session, history)
