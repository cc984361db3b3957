"""The replay planner: a recorded session (a :class:`~agentcgroup.traces.Task`) turned into load schedules.

Pure: no cgroups, no processes. The session's memory ``M(t)`` is split into

* the **agent baseline** ``B(t)``: ``M`` itself outside tool calls; inside a run of calls, the level of the
  last sample before the run, held (never above ``M``: ``B = min(level before, M)``);
* one **delta** per tool call: ``M - B`` (never negative) while it runs. Where calls overlap, the whole delta
  goes to the call that started first (``overlap="first"``) or is shared equally (``"split"``).

So ``B + sum(deltas) == M`` at every sample. CPU (cores, per interval) is split the same way. Each series is
then cut to the replayed window, time-scaled (``time_scale=10``: ten times faster; CPU stays a rate, so the
CPU *work* shrinks with the time), memory-scaled and CPU-scaled. Offsets are seconds of replay time.

Calls whose duration the trace does not know are left out (noted); calls without a sample inside keep their
start and duration with no load of their own.
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ..errors import InvalidValue
from ..traces.model import Task

OVERLAP = ("first", "split")


class Point(NamedTuple):
    """One point of a load schedule: memory is linear between points, CPU holds until the next point."""

    t: float  # seconds (replay time): since the replay's start, or, for a call, since the call's start
    bytes: int
    cpu: float  # cores


@dataclass(frozen=True)
class CallPlan:
    """One tool call to replay: started at ``start``, ended at ``end`` (replay seconds), its load on the way."""

    index: int  # position among the plan's calls
    call_id: str  # the trace's id
    command: str | None
    start: float
    end: float
    points: tuple[Point, ...]  # offsets since ``start``
    tool: str | None = None  # the agent-side tool (the paper's "Bash", "Read", ...)

    @property
    def duration(self) -> float:
        return self.end - self.start

    @property
    def peak_bytes(self) -> int:
        """The most memory of its own it is to hold (0 when the trace saw it use none)."""
        return max((p.bytes for p in self.points), default=0)

    @property
    def cpu_s(self) -> float:
        """CPU seconds it is to burn (before the one-core-per-worker cap)."""
        pts = self.points
        return sum(a.cpu * (b.t - a.t) for a, b in itertools.pairwise(pts))


@dataclass(frozen=True)
class ReplayPlan:
    """Everything a runner needs to re-create a session as load, and the trace to compare it with."""

    task: str
    source: str
    time_scale: float
    memory_scale: float
    cpu_scale: float
    duration: float  # replay seconds
    trace: tuple[Point, ...]  # the whole session as the trace has it (scaled): the reference
    baseline: tuple[Point, ...]  # the agent leaf's load
    calls: tuple[CallPlan, ...]
    interval_s: float  # median spacing of the trace's samples, in replay seconds
    notes: tuple[str, ...] = field(default=())

    @property
    def trace_peak(self) -> int:
        return max((p.bytes for p in self.trace), default=0)

    @property
    def max_rise_rate(self) -> float:
        """The fastest the session's memory must grow (bytes per second of replay time) between two samples.
        Past what the host can fault in (a few GB/s) the replay lags behind its trace."""
        pts = self.trace
        return max(
            ((b.bytes - a.bytes) / (b.t - a.t) for a, b in itertools.pairwise(pts) if b.t > a.t),
            default=0.0,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "source": self.source,
            "time_scale": self.time_scale,
            "memory_scale": self.memory_scale,
            "cpu_scale": self.cpu_scale,
            "duration_s": round(self.duration, 6),
            "trace_peak_bytes": self.trace_peak,
            "max_rise_rate_bytes_s": round(self.max_rise_rate),
            "samples": len(self.trace),
            "calls": len(self.calls),
            "notes": list(self.notes),
        }


def _positive(what: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise InvalidValue(what, value, "must be a number above zero")
    return float(value)


def lerp(ts: Sequence[float], vs: Sequence[float], t: float) -> float:
    """Linear interpolation of ``vs`` over ascending ``ts`` at ``t``, held flat outside."""
    if not ts:
        return 0.0
    if t <= ts[0]:
        return float(vs[0])
    if t >= ts[-1]:
        return float(vs[-1])
    hi = bisect.bisect_right(ts, t)
    lo = hi - 1
    t0, t1 = ts[lo], ts[hi]
    return float(vs[lo]) if t1 <= t0 else vs[lo] + (vs[hi] - vs[lo]) * (t - t0) / (t1 - t0)


def _share_at(ts: Sequence[float], mem: dict[int, float], cpu: dict[int, float], t: float) -> tuple[float, float]:
    """A call's (memory, cores) at ``t`` from its shares at the samples (0 where it has none): memory linear
    between the samples around ``t``, cores those of the sample at or before it."""
    hi = bisect.bisect_right(ts, t)
    lo = hi - 1
    if lo < 0:
        return mem.get(0, 0.0), cpu.get(0, 0.0)
    m0, c0 = mem.get(lo, 0.0), cpu.get(lo, 0.0)
    if hi >= len(ts) or ts[hi] <= ts[lo]:
        return m0, c0
    return m0 + (mem.get(hi, 0.0) - m0) * (t - ts[lo]) / (ts[hi] - ts[lo]), c0


class _Window(NamedTuple):
    t: list[float]
    mem: list[float]
    cpu: list[float]  # cores over [t[i], t[i+1])


def _window(task: Task, max_trace_s: float | None, notes: list[str]) -> _Window:
    s = task.samples
    cores = [c if c is not None else 0.0 for c in s.cpu_cores]
    # a sample's cores are the rate over the interval ending at it: shift to "from this point on"
    ahead = [*cores[1:], 0.0] if len(cores) > 1 else list(cores)
    t, mem, cpu = list(s.t), [float(m) for m in s.mem_bytes], ahead
    if max_trace_s is not None and t[-1] - t[0] > max_trace_s:
        limit = t[0] + max_trace_s
        keep = sum(1 for x in t if x <= limit)
        end_mem = lerp(t, mem, limit)
        t, mem, cpu = t[:keep], mem[:keep], cpu[:keep]
        if t[-1] < limit:
            t.append(limit)
            mem.append(end_mem)
            cpu.append(0.0)
        notes.append(f"cut to the first {max_trace_s:g} s of the trace")
    return _Window(t, mem, cpu)


def _calls(task: Task, lo: float, hi: float, notes: list[str]) -> list[tuple[float, float, Any]]:
    out = []
    unknown = outside = 0
    for c in task.calls:
        if c.end is None or c.end < c.start:
            unknown += 1
            continue
        if c.end < lo or c.start > hi:
            outside += 1
            continue
        out.append((max(c.start, lo), min(c.end, hi), c))
    if unknown:
        notes.append(f"{unknown} calls without a known end left out")
    if outside:
        notes.append(f"{outside} calls outside the replayed window left out")
    out.sort(key=lambda x: (x[0], -x[1]))
    return out


def _baseline(w: _Window, busy: list[list[int]]) -> tuple[list[float], list[float]]:
    """Memory and CPU of the agent alone: the series outside calls, the level before each run of calls
    inside them (capped by the series)."""
    n = len(w.t)
    idle = [i for i in range(n) if not busy[i]]
    base_m, base_c = list(w.mem), list(w.cpu)
    prev: int | None = None
    nxt = 0
    for i in range(n):
        if not busy[i]:
            prev = i
            continue
        while nxt < len(idle) and idle[nxt] < i:
            nxt += 1
        anchor = prev if prev is not None else (idle[nxt] if nxt < len(idle) else None)
        if anchor is not None:
            base_m[i] = min(w.mem[anchor], w.mem[i])
            base_c[i] = min(w.cpu[anchor], w.cpu[i])
    return base_m, base_c


def plan(
    task: Task,
    time_scale: float = 1.0,
    memory_scale: float = 1.0,
    *,
    cpu_scale: float = 1.0,
    max_duration: float | None = None,
    overlap: str = "first",
) -> ReplayPlan:
    """Plan the replay of ``task``. ``max_duration``: replay at most this many seconds (of replay time).

    Raises :class:`~agentcgroup.errors.InvalidValue` for a scale or duration that is not above zero, an unknown
    ``overlap``, or a task without resource samples.
    """
    time_scale = _positive("time scale", time_scale)
    memory_scale = _positive("memory scale", memory_scale)
    cpu_scale = _positive("CPU scale", cpu_scale)
    if max_duration is not None:
        max_duration = _positive("max duration", max_duration)
    if overlap not in OVERLAP:
        raise InvalidValue("overlap", overlap, f"expected one of {', '.join(OVERLAP)}")
    if len(task.samples) == 0:
        raise InvalidValue("trace", task.source, "has no resource samples to replay")
    notes: list[str] = []
    w = _window(task, None if max_duration is None else max_duration * time_scale, notes)
    t0 = w.t[0]
    calls = _calls(task, t0, w.t[-1], notes)
    n = len(w.t)
    busy: list[list[int]] = [[] for _ in range(n)]
    for k, (a, b, _) in enumerate(calls):
        for i in range(bisect.bisect_left(w.t, a), bisect.bisect_right(w.t, b)):
            busy[i].append(k)
    base_m, base_c = _baseline(w, busy)
    # each call's share of the delta, at the samples where it has one (sparse: recordings are long)
    own_m: list[dict[int, float]] = [{} for _ in calls]
    own_c: list[dict[int, float]] = [{} for _ in calls]
    overlapped = 0
    for i, active in enumerate(busy):
        if not active:
            continue
        overlapped += len(active) > 1
        owners = active[:1] if overlap == "first" else active
        for k in owners:
            own_m[k][i] = (w.mem[i] - base_m[i]) / len(owners)
            own_c[k][i] = (w.cpu[i] - base_c[i]) / len(owners)
    if overlapped:
        how = "the call that started first" if overlap == "first" else "shares split equally"
        notes.append(f"{overlapped} samples fall in overlapping calls: their delta goes to {how}")

    def scaled(t: float, mem: float, cpu: float, origin: float = t0) -> Point:
        return Point((t - origin) / time_scale, max(0, round(mem * memory_scale)), max(0.0, cpu * cpu_scale))

    call_plans = []
    for k, (a, b, c) in enumerate(calls):
        inside = range(bisect.bisect_right(w.t, a), bisect.bisect_left(w.t, b))
        times = [a, *(w.t[i] for i in inside), *([b] if b > a else [])]
        pts = tuple(scaled(x, *_share_at(w.t, own_m[k], own_c[k], x), origin=a) for x in times)
        call_plans.append(
            CallPlan(k, c.call_id, c.command, (a - t0) / time_scale, (b - t0) / time_scale, pts, tool=c.tool)
        )
    gaps = [b - a for a, b in itertools.pairwise(w.t) if b > a]
    return ReplayPlan(
        task=task.label,
        source=task.source,
        time_scale=time_scale,
        memory_scale=memory_scale,
        cpu_scale=cpu_scale,
        duration=(w.t[-1] - t0) / time_scale,
        trace=tuple(scaled(w.t[i], w.mem[i], w.cpu[i]) for i in range(n)),
        baseline=tuple(scaled(w.t[i], base_m[i], base_c[i]) for i in range(n)),
        calls=tuple(call_plans),
        interval_s=(statistics.median(gaps) if gaps else 1.0) / time_scale,
        notes=tuple(notes),
    )
