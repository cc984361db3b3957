"""Observations from what this host and others wrote down: traces (the paper's format, our recordings) and the
daemon's/controller's persisted outcomes (``<state_dir>/outcomes/*.json``).

A call's memory is the memory *of its own*: in our recordings, the peak of its cgroup leaf (the outcome's
``peak_bytes``, else its leaf's samples); in the paper's traces, which sample the whole container once a
second, the rise above the agent's level while the call ran, split off exactly as the replay planner does
(:func:`agentcgroup.replay.plan.plan`), so the figures match what a replay of the trace loads. Other tools
(file reads, sub-agents) run inside the agent and are left out of that split. A paper call
with no sample inside it has an unknown peak (not 0); every sampled peak is a lower bound. Only shell calls
count (the others run inside the agent's own process).
"""

from __future__ import annotations

import dataclasses
import os
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..traces.model import PAPER_FORMAT, Task, ToolCall
from .history import Observation


@dataclasses.dataclass
class TaskCalls:
    """One session's shell calls as observations, in start order, and what was noted while reading them."""

    session: str
    label: str
    start: float | None  # the session's first known time (orders sessions)
    calls: list[Observation]
    inferred_ends: int = 0  # calls whose end the trace lacks: taken as the next call's start
    no_command: int = 0  # shell calls whose command the trace lacks


def notes(sessions: Iterable[TaskCalls]) -> list[str]:
    """What to say about how the calls were read (summed over sessions)."""
    sessions = list(sessions)
    out = []
    inferred = sum(s.inferred_ends for s in sessions)
    if inferred:
        out.append(f"{inferred} calls without an end time: ended at the next call's start (an over-estimate)")
    no_command = sum(s.no_command for s in sessions)
    if no_command:
        out.append(f"{no_command} shell calls without a command: only session-wide history can size them")
    return out


def infer_ends(task: Task) -> int:
    """Give calls without an end the next call's start (the agent waits for a result before its next call, so
    the call ended before it; a sub-agent's parallel calls make this an over-estimate). Returns how many."""
    calls = sorted(task.calls, key=lambda c: c.start)
    n = 0
    for c, nxt in zip(calls, [*calls[1:], None], strict=True):
        if c.end is None and nxt is not None and nxt.start > c.start:
            c.end = nxt.start
            n += 1
    return n


def _paper_figures(task: Task, calls: list[ToolCall]) -> dict[str, tuple[int | None, float | None]]:
    """call id -> (peak bytes, CPU seconds) from the replay planner's split; None where no sample is inside."""
    from ..replay.plan import plan

    s = task.samples
    if len(s) == 0:
        return {}
    # only shell calls have leaves of their own: a sub-agent (``Task``) or a file read runs in the agent, and
    # would otherwise take the rise of the shell calls it overlaps
    p = plan(dataclasses.replace(task, calls=calls))
    by_id = {c.call_id: c for c in p.calls}
    out: dict[str, tuple[int | None, float | None]] = {}
    for c in calls:
        cp = by_id.get(c.call_id)
        if cp is None or c.end is None:
            continue
        inside = bisect_right(s.t, c.end) - bisect_left(s.t, c.start)
        if inside <= 0:
            out[c.call_id] = (None, None)
        else:
            out[c.call_id] = (cp.peak_bytes, cp.cpu_s)
    return out


def _recording_figures(c: ToolCall) -> tuple[int | None, float | None]:
    o = c.outcome or {}
    peak = o.get("peak_bytes")
    cpu_usec = o.get("cpu_usec")
    if not isinstance(peak, int) and c.samples is not None and len(c.samples):
        peaks = [p for p in (c.samples.mem_peak_bytes or ()) if p is not None]
        peak = max([*c.samples.mem_bytes, *peaks])
    cpu_s = cpu_usec / 1e6 if isinstance(cpu_usec, (int, float)) and not isinstance(cpu_usec, bool) else None
    if cpu_s is None and isinstance(o.get("cpu_s"), (int, float)):
        cpu_s = float(o["cpu_s"])
    if cpu_s is None and c.samples is not None and len(c.samples) >= 2:
        t, cores = c.samples.t, c.samples.cpu_cores
        cpu_s = sum((b - a) * (k or 0.0) for a, b, k in zip(t, t[1:], cores[1:], strict=False))
    return (peak if isinstance(peak, int) and not isinstance(peak, bool) else None), cpu_s


def task_calls(task: Task, *, infer_missing_ends: bool = True) -> TaskCalls:
    """The shell calls of one loaded trace as observations (calls without an end are inferred or dropped)."""
    inferred = 0
    if infer_missing_ends and any(c.end is None for c in task.calls):
        endless = {c.call_id for c in task.calls if c.end is None and c.shell}
        task = dataclasses.replace(task, calls=[dataclasses.replace(c) for c in task.calls])
        infer_ends(task)
        inferred = sum(1 for c in task.calls if c.call_id in endless and c.end is not None)
    shell = [c for c in task.calls if c.shell and c.end is not None and c.end >= c.start]
    figures = _paper_figures(task, shell) if task.fmt == PAPER_FORMAT else {}
    out = []
    no_command = 0
    for c in shell:
        if task.fmt == PAPER_FORMAT:
            peak, cpu_s = figures.get(c.call_id, (None, None))
        else:
            peak, cpu_s = _recording_figures(c)
        if c.command is None:
            no_command += 1
        out.append(
            Observation(
                session=task.label,
                command=c.command if c.command is not None else "",
                start=c.start,
                end=float(c.end),  # type: ignore[arg-type]
                memory=peak,
                cpu_s=cpu_s,
                failed=c.failed,
                source=task.fmt,
            )
        )
    first = task.samples.t[0] if len(task.samples) else (task.calls[0].start if task.calls else None)
    return TaskCalls(task.label, task.label, first, out, inferred, no_command)


def from_traces(
    paths: Iterable[str | os.PathLike[str]], on_load: Callable[[int, int], None] | None = None
) -> list[TaskCalls]:
    """Every session under ``paths`` (see :func:`agentcgroup.traces.discover`), in the order they started.
    ``on_load(done, total)`` is called after each trace is read (progress)."""
    from ..traces import discover

    out = []
    sources = discover(paths)
    for i, src in enumerate(sources, 1):
        task = src.load()
        if on_load is not None:
            on_load(i, len(sources))
        out.append(task_calls(task))
    out.sort(key=lambda t: (t.start is None, t.start or 0.0, t.label))
    return out


def from_outcome(o: dict[str, Any], end: float) -> Observation | None:
    """An :meth:`Outcome.to_dict <agentcgroup.Outcome.to_dict>` as an observation (None for a refused call,
    which never ran). ``end``: when it ended (an outcome has its duration, not its start)."""
    if o.get("refused"):
        return None
    dur = float(o.get("duration_s") or 0.0)
    argv = o.get("argv") or []
    peak, cpu_s = o.get("memory_peak"), o.get("cpu_s")
    return Observation(
        session=str(o["session"]),
        command=tuple(str(a) for a in argv) if argv else str(o.get("command", "")),
        start=end - dur,
        end=end,
        memory=int(peak) if isinstance(peak, (int, float)) and not isinstance(peak, bool) else None,
        cpu_s=float(cpu_s) if isinstance(cpu_s, (int, float)) and not isinstance(cpu_s, bool) else None,
        failed=not (o.get("exit_code") == 0 and o.get("killed_by") is None),
        source="outcome",
    )


def from_outcomes(state_dir: str | os.PathLike[str]) -> list[Observation]:
    """The calls a daemon (or a controller with ``state_dir``) kept outcomes of, oldest first; an outcome's end
    is when it was written down. Torn or foreign records are skipped."""
    from ..controller.persist import outcome_records

    out = []
    for rec, ended in outcome_records(state_dir):
        try:
            obs = from_outcome(rec["outcome"], ended)
        except (ValueError, KeyError, TypeError):
            continue
        if obs is not None:
            out.append(obs)
    out.sort(key=lambda o: o.start)
    return out


def load_history(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[Observation], int]:
    """Observations from each path, and how many sessions they are from. A path is a history store (or a
    state directory holding one), a state directory with ``outcomes/``, or traces (see :func:`from_traces`).

    Raises ``FileNotFoundError`` for a path that does not exist, ``ValueError`` for one that holds none of these."""
    from .store import HistoryStore, is_store

    out: list[Observation] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise FileNotFoundError(f"no such file or directory: {p}")
        if is_store(p):
            with HistoryStore(p) as store:
                out += store.load()
        elif p.is_dir() and (p / "outcomes").is_dir():
            out += from_outcomes(p)
        else:
            found = from_traces([p])
            if not found:
                raise ValueError(f"{p}: no traces, history store or outcomes/ in it")
            out += [o for t in found for o in t.calls]
    return out, len({o.session for o in out})
