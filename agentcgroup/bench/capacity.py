"""How many replayed sessions a memory budget holds, per policy: ``agentcg capacity``.

A **probe** replays ``n`` sessions at once under one arm (:func:`agentcgroup.bench.driver.run_once`: the
first session high priority, the others low and normal, as ``agentcg bench``), right after the high-priority
session alone (its reference time, measured next to the probe so that the machine's load is the same). It
**holds** when:

* no agent runtime was lost (the session's agent process killed);
* the high-priority session finished at most :data:`MAX_SLOWDOWN` (5 %) later than alone (the median over the
  probe's runs: one run's slowdown is noise on a busy host);
* at most one tool call in :data:`SESSIONS_PER_KILL` (10) sessions was killed (rounded down: 0 below 10).

The **capacity** is the largest ``n`` that holds, found by doubling ``n`` until a probe fails, then bisecting
between the last that held and the first that failed (holding is taken to be monotone in ``n``; every probe
is reported). What ran out at the first failing ``n`` is named: memory (agents lost, calls killed by a
memory limit or policy), or CPU (calls killed by their timeouts, or the high-priority session slowed, while
the CPUs were at least 90 % busy; 2 CPUs here: a longer time scale, ``--duration``, or a lower
``--cpu-scale`` moves it), or time (the same with CPUs to spare).

Arms: ``static`` (per-session hard limits at each session's peak, x1.1: what operators do today),
``agentcgroup`` (the controller as shipped) and ``learned`` (the controller reserving each call's predicted
peak at admission, issue 16: its history is what ``history`` gives, grown by the probe's own calls).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

MAX_SLOWDOWN = 0.05
SESSIONS_PER_KILL = 10
#: probes doubling from here
START = 1
#: the arm names ``agentcg capacity`` knows, in report order
CAPACITY_ARMS = ("static", "agentcgroup", "learned")
#: what the learned arm needs and does not have yet (None: it exists)
LEARNED_SEAM: str | None = None


@dataclass
class Probe:
    """One probe of one arm: ``n`` sessions at once."""

    arm: str
    n: int
    held: bool
    reason: str  # why it failed ("" when it held)
    ran_out: str  # "", "memory", "cpu" or "slowdown"
    agents_lost: int
    calls_killed: int
    calls: int
    high_slowdown: float | None  # None: the high-priority session was lost
    alone_s: float
    completion_s: float | None
    cpu_busy: float  # mean share of all CPUs busy during the probe (0-1)
    mem_peak_bytes: int
    kills: list[str] = field(default_factory=list)
    queued_calls: int = 0
    queued_s: float = 0.0
    runs: int = 1
    #: each killed call: its command, what killed it, its peak, its prediction and its wait (driver.SessionRun)
    kill_details: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("high_slowdown", "alone_s", "completion_s", "cpu_busy", "queued_s"):
            if isinstance(d[k], float):
                d[k] = round(d[k], 4)
        return d


def allowed_kills(n: int) -> int:
    """Calls that may be killed among ``n`` sessions: one per :data:`SESSIONS_PER_KILL`."""
    return n // SESSIONS_PER_KILL


#: how a killed call's outcome names what killed it, for "what ran out"
_MEMORY_KILLS = ("memory", "policy", "exit 137", "exit -9")


def judge(
    n: int,
    agents_lost: int,
    calls_killed: int,
    high_slowdown: float | None,
    cpu_busy: float,
    max_slowdown: float = MAX_SLOWDOWN,
    kills: Sequence[str] = (),
) -> tuple[bool, str, str]:
    """(held, reason, what ran out) for one probe's figures; ``high_slowdown`` None: the high session was lost.

    Agents lost are memory (only the OOM killer or a memory policy takes them); killed calls are memory when
    a memory limit, a memory policy or SIGKILL ended one, else their timeouts ran out: CPU when the CPUs were
    at least 90 % busy, time otherwise."""
    if agents_lost:
        return False, f"{agents_lost} agent runtimes lost", "memory"
    if calls_killed > allowed_kills(n):
        why = ", ".join(sorted(set(kills))) or "?"
        reason = f"{calls_killed} calls killed ({why}; at most {allowed_kills(n)} for {n} sessions)"
        if any(k in _MEMORY_KILLS for k in kills) or not kills:
            return False, reason, "memory"
        return False, reason + f" (CPUs {cpu_busy:.0%} busy)", "cpu" if cpu_busy >= 0.9 else "time"
    if high_slowdown is None:
        return False, "the high-priority session did not finish", "memory"
    if high_slowdown > max_slowdown:
        what = "cpu" if cpu_busy >= 0.9 else "slowdown"
        return False, f"high-priority slowdown {high_slowdown:+.1%} (CPUs {cpu_busy:.0%} busy)", what
    return True, "", ""


def search(probe: Callable[[int], Probe], max_n: int, start: int = START) -> tuple[int, list[Probe]]:
    """The largest ``n`` <= ``max_n`` whose probe holds (0 if even ``start`` fails), and every probe made."""
    done: dict[int, Probe] = {}

    def holds(n: int) -> bool:
        if n not in done:
            done[n] = probe(n)
        return done[n].held

    n, good, bad = max(1, start), 0, None
    while n <= max_n:
        if holds(n):
            good = n
            n *= 2
        else:
            bad = n
            break
    if bad is None:
        if good < max_n and holds(max_n):
            good = max_n
        elif good < max_n:
            bad = max_n
    if bad is not None:
        lo, hi = good, bad
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if holds(mid):
                lo = mid
            else:
                hi = mid
        good = lo
    return good, [done[k] for k in sorted(done)]


def first_failure(probes: Sequence[Probe], capacity: int) -> Probe | None:
    """The probe just past the capacity: what ran out there."""
    over = [p for p in probes if p.n > capacity and not p.held]
    return min(over, key=lambda p: p.n) if over else None


class CpuMeter:
    """Share of all CPUs busy between ``start()`` and ``stop()`` (``/proc/stat``, through psutil)."""

    def start(self) -> None:
        import psutil

        self._t0 = psutil.cpu_times()

    def stop(self) -> float:
        import psutil

        t1 = psutil.cpu_times()
        idle = (t1.idle - self._t0.idle) + (getattr(t1, "iowait", 0.0) - getattr(self._t0, "iowait", 0.0))
        total = sum(t1) - sum(self._t0)
        return 0.0 if total <= 0 else max(0.0, min(1.0, 1.0 - idle / total))


def kernel_probe(
    arm_name: str,
    plans: Sequence[Any],
    budget: int,
    *,
    root: str,
    call_procs: int = 1,
    runs: int = 1,
    max_slowdown: float = MAX_SLOWDOWN,
    on_run: Callable[[str], None] | None = None,
    history: Sequence[Any] = (),
    alone_cache: dict[int, float] | None = None,
) -> Callable[[int], Probe]:
    """A probe that replays the first ``n`` of ``plans`` (cycled) for real under ``arm_name``, ``runs`` times,
    each run right after the high-priority session alone. It holds when no run lost an agent or killed too many
    calls and the *median* slowdown of the runs is within ``max_slowdown`` (one run's is noise on a busy host).
    ``alone_cache`` (run index -> seconds): the session alone is measured once per run index and reused by
    every probe given the same dict (on a quiet machine its time does not change; it halves a search's time)."""
    from .arms import ARMS
    from .driver import run_once

    if arm_name not in ARMS:
        raise ValueError(f"unknown arm {arm_name!r}")
    arm = ARMS[arm_name]

    def probe(n: int) -> Probe:
        chosen = [plans[i % len(plans)] for i in range(n)]
        priorities = ["high", *(("low", "normal")[i % 2] for i in range(n - 1))]
        done: list[tuple[float, Any, float]] = []  # (alone s, run result, CPU busy)
        for r in range(runs):
            if alone_cache is not None and r in alone_cache:
                alone = alone_cache[r]
            else:
                if on_run is not None:
                    on_run(f"{arm_name}: {n} sessions, run {r + 1}/{runs}: the high-priority session alone")
                solo = run_once(ARMS["none"], chosen[:1], ["high"], None, root=root, run=r, call_procs=call_procs)
                alone = solo.sessions[0].completion_s or float("nan")
                if alone_cache is not None:
                    alone_cache[r] = alone
            if on_run is not None:
                on_run(f"{arm_name}: {n} sessions, run {r + 1}/{runs}")
            meter = CpuMeter()
            meter.start()
            res = run_once(arm, chosen, priorities, budget, root=root, run=r, call_procs=call_procs, history=history)
            done.append((alone, res, meter.stop()))
            if res.agents_lost or res.calls_killed > allowed_kills(n) or res.sessions[0].completion_s is None:
                break  # failed for memory: more runs cannot save it
        results = [d[1] for d in done]
        highs = [d[1].sessions[0].completion_s for d in done]
        slowdown = None
        if None not in highs:
            slowdown = statistics.median(h / d[0] - 1.0 for h, d in zip(highs, done, strict=True))
        agents_lost = max(r.agents_lost for r in results)
        calls_killed = max(r.calls_killed for r in results)
        busy = statistics.fmean(d[2] for d in done)
        kills = [k for r in results for s in r.sessions for k in s.kills]
        held, reason, ran_out = judge(n, agents_lost, calls_killed, slowdown, busy, max_slowdown, kills)
        return Probe(
            arm=arm_name,
            n=n,
            held=held,
            reason=reason,
            ran_out=ran_out,
            agents_lost=agents_lost,
            calls_killed=calls_killed,
            calls=max(sum(s.calls_run for s in r.sessions) for r in results),
            high_slowdown=slowdown,
            alone_s=statistics.median(d[0] for d in done),
            completion_s=None if None in highs else statistics.median(highs),
            cpu_busy=busy,
            mem_peak_bytes=max(r.mem_peak_bytes for r in results),
            kills=kills,
            queued_calls=max(sum(s.calls_queued for s in r.sessions) for r in results),
            queued_s=max(sum(s.queued_s for s in r.sessions) for r in results),
            runs=len(done),
            kill_details=[d for r in results for s in r.sessions for d in s.kill_details],
        )

    return probe


def static_by_peak(peaks: Sequence[int], budget: int) -> int:
    """How many sessions (cycled) fit if each is given its peak x1.1 (the static arm's limit), summed."""
    total, n = 0, 0
    while peaks and n < 10_000:
        total += int(peaks[n % len(peaks)] * 1.1)
        if total > budget:
            break
        n += 1
    return n


def max_sessions_for(arm: str, max_sessions: int, peaks: Sequence[int], budget: int) -> int:
    """The most sessions ``arm`` is tried with. ``static`` is sizing by peak, what operators do today: a host
    takes a session only while the sessions' peak-sized limits (x1.1) sum within its budget, so it is tried up
    to :func:`static_by_peak` sessions and no further (at least one, to show a budget that holds none).
    Over-committing those limits is no longer sizing by peak; it is the ``none`` arm's bet on peaks not
    coinciding."""
    if arm == "static":
        return min(max_sessions, max(1, static_by_peak(peaks, budget)))
    return max_sessions


#: why static stops at static_by_peak (its next session is not tried)
STATIC_FULL = "sized by peak: one more session's peak x1.1 does not fit the budget beside the others'"


def summary(results: dict[str, tuple[int, list[Probe]]], budget: int, peaks: Sequence[int]) -> dict[str, Any]:
    """The ``--json`` document: capacities, ratios to static, what ran out, every probe."""
    by_peak = static_by_peak(peaks, budget)
    out: dict[str, Any] = {"budget": budget, "static_by_peak": by_peak, "arms": {}}
    for arm, (cap, probes) in results.items():
        fail = first_failure(probes, cap)
        ran_out, reason = (fail.ran_out, fail.reason) if fail else (None, None)
        if fail is None and arm == "static" and cap == by_peak:
            ran_out, reason = "memory", STATIC_FULL
        out["arms"][arm] = {
            "capacity": cap,
            "ran_out": ran_out,
            "reason": reason,
            "probes": [p.to_dict() for p in probes],
        }
        out[f"capacity_{arm.replace('-', '_')}"] = cap
    static = results.get("static", (0, []))[0]
    for arm, (cap, _) in results.items():
        if arm != "static":
            out[f"ratio_{arm}"] = round(cap / static, 3) if static else None
    return out
