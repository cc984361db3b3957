"""One bench run: several replayed sessions at once under one arm, and what became of them.

Each session is driven as an agent works: its agent process (the plan's baseline, in the agent leaf) lives
for the whole session; its tool calls run one after another, each after the agent's think time (the gap the
trace has between calls). The load workers are *elastic*: their schedule advances only as fast as they get to
run, so a call that is throttled, frozen or starved of CPU takes longer, and everything after it in its
session starts later. A session's completion time is therefore what a user waits for; a session whose agent
process is killed is lost and runs no further calls.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..backends.base import Cgroup, Manager
from ..controller.core import Controller
from ..errors import AgentCgroupError
from ..parsers import parse_psi
from ..predict.history import Observation
from ..replay.plan import CallPlan, Point, ReplayPlan
from ..replay.runner import WORKER
from ..spawn import DEVNULL
from .arms import Arm
from .fit import over_budget_alone

#: the oomd-like killer: memory use of the budget, or host memory PSI (some avg10, %), held this long
OOMD_USAGE = 0.90
OOMD_PSI = 10.0
OOMD_HOLD_S = 0.5
OOMD_COOLDOWN_S = 1.0
SAMPLE_S = 0.05


@dataclass
class SessionRun:
    name: str
    priority: str
    calls: int
    calls_run: int = 0
    calls_killed: int = 0
    agent_lost: bool = False
    completion_s: float | None = None  # None when the agent was lost
    kills: list[str] = field(default_factory=list)
    killed_calls: list[int] = field(default_factory=list)  # the plan's indexes of the calls in ``kills``
    calls_queued: int = 0  # calls that waited for admission
    queued_s: float = 0.0  # and how long, together
    oom_kills: int = 0  # processes of its calls the kernel's OOM killer took
    #: of ``calls_killed``, those whose traced peak and their agent alone are over the budget (:mod:`.fit`)
    calls_over: int = 0
    #: such calls that ended well all the same (their processes, slowed, peaked at different times)
    calls_over_done: int = 0
    #: of ``calls_killed``, those whose traced peak and the agents alive when it ended were over the budget (the
    #: agents are never a policy's to take)
    calls_over_agents: int = 0
    #: per killed call: the traced command, what killed it and why, its peak, its prediction (learned arm)
    #: and how long it waited for admission: why a probe failed, not only that it did
    kill_details: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RunResult:
    arm: str
    run: int
    budget: int | None
    sessions: list[SessionRun]
    makespan_s: float
    mem_mean_bytes: float
    mem_peak_bytes: int
    oomd_kills: int = 0
    #: the most that had to fit at once for agentcgroup to keep its promise: every agent's memory and the
    #: whole high-priority (first) session, sampled together
    protected_peak_bytes: int = 0
    #: processes the kernel's OOM killer took inside the budget (tools and agents): the controller's to prevent
    kernel_oom_kills: int = 0

    @property
    def agents_lost(self) -> int:
        return sum(s.agent_lost for s in self.sessions)

    @property
    def calls_killed(self) -> int:
        return sum(s.calls_killed for s in self.sessions)

    @property
    def calls_over(self) -> int:
        """Killed calls whose traced peak and their agent alone are over the budget."""
        return sum(s.calls_over for s in self.sessions)

    @property
    def calls_over_agents(self) -> int:
        """Killed calls whose traced peak and the agents alive when it ended were over the budget."""
        return sum(s.calls_over_agents for s in self.sessions)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["agents_lost"], d["calls_killed"], d["calls_over"] = self.agents_lost, self.calls_killed, self.calls_over
        d["calls_over_agents"] = self.calls_over_agents
        return d


def call_timeout(c: CallPlan) -> float:
    """A generous timeout (10x the call's replayed duration, >= 10 s): what ends a call nothing else ends."""
    return max(10.0, 10 * c.duration)


class _Schedules:
    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="agentcg-bench-")
        self._n = 0

    def write(self, start: float, end: float, points: Sequence[Point], elastic: bool, procs: int = 1) -> list[str]:
        """A worker's argv; with ``procs`` > 1, a shell running that many workers, each with its share of the
        load (as ``pytest -n 4`` or ``make -j4`` spread a call over processes), failing if any of them fails."""
        paths = []
        for _ in range(max(1, procs)):
            self._n += 1
            path = os.path.join(self.dir, f"{self._n}.json")
            share = [[p.t, p.bytes // procs, p.cpu / procs] for p in points] if procs > 1 else [list(p) for p in points]
            doc = {"start": start, "end": end, "points": share, "tick": 0.01, "elastic": elastic}
            with open(path, "w", encoding="utf-8") as f:
                json.dump(doc, f, separators=(",", ":"))
            paths.append(path)
        worker = [sys.executable, "-I", "-S", WORKER]
        if len(paths) == 1:
            return [*worker, paths[0]]
        start_all = f'for s in "$@"; do {shlex.join(worker)} "$s" & pids+=($!); done'
        return [
            "bash",
            "-c",
            start_all + '; rc=0; for p in "${pids[@]}"; do wait "$p" || rc=$?; done; exit $rc',
            "call",
            *paths,
        ]

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _host_psi(proc_root: str = "/proc") -> float:
    try:
        with open(f"{proc_root}/pressure/memory") as f:
            return parse_psi(f.read())["some"].avg10
    except (OSError, KeyError, ValueError):
        return 0.0


def run_once(
    arm: Arm,
    plans: Sequence[ReplayPlan],
    priorities: Sequence[str],
    budget: int | None,
    *,
    root: str,
    run: int = 0,
    call_procs: int = 1,
    on_call: Callable[[], None] | None = None,
    history: Sequence[Observation] = (),
) -> RunResult:
    """Replay ``plans`` at once (session ``i`` with ``priorities[i]``) under ``arm``; leaves nothing behind.
    ``history``: what an arm that predicts knows before the run (each call is predicted as its traced
    command)."""
    ctl = Controller(root=root, config=arm.config(budget), policies=arm.policies())
    predictor = ctl.admission.predictor
    if predictor is not None:
        predictor.seed(history)
    sched = _Schedules()
    stop = threading.Event()
    usage: list[int] = []
    oomd_kills = [0]
    try:
        names = [f"s{i}" for i in range(len(plans))]
        results = []
        for name, p, prio in zip(names, plans, priorities, strict=True):
            limits = arm.session_limits(p.trace_peak, budget, len(plans))
            ctl.open_session(name, priority=prio if arm.priorities else "normal", limits=limits)
            results.append(SessionRun(name, prio, len(p.calls)))
        m = ctl.manager
        root_cg = ctl.root_cg if ctl.root_cg is not None else m.root_cgroup()
        oom_before = _oom_kills(m, root_cg)
        t0 = time.monotonic() + 0.2

        agent_cgs = [ctl.sessions.agent_leaf(ctl.session(n)) for n in names]
        first_cg = ctl.session(names[0]).cg
        protected = [0]

        def sample() -> None:
            while not stop.wait(SAMPLE_S):
                try:
                    usage.append(m.memory_current(root_cg))
                    now = m.memory_current(first_cg)
                    now += sum(m.memory_current(cg) for cg in agent_cgs[1:] if cg is not None)
                    protected[0] = max(protected[0], now)
                except Exception:
                    return

        def oomd() -> None:  # kill the biggest session, agent and all, when pressure holds
            since: float | None = None
            while not stop.wait(0.1):
                try:
                    high = (budget is not None and m.memory_current(root_cg) >= OOMD_USAGE * budget) or (
                        _host_psi() >= OOMD_PSI
                    )
                except Exception:
                    return
                now = time.monotonic()
                if not high:
                    since = None
                    continue
                since = since or now
                if now - since < OOMD_HOLD_S:
                    continue
                sizes = []
                for name in names:
                    try:
                        cg = ctl.session(name).cg
                        sizes.append((m.memory_current(cg), cg))
                    except Exception:
                        pass
                if sizes:
                    _, victim = max(sizes, key=lambda x: x[0])
                    m.kill(victim)
                    oomd_kills[0] += 1
                since = None
                stop.wait(OOMD_COOLDOWN_S)

        def drive(i: int) -> None:
            try:
                _drive(i)
            except AgentCgroupError:
                if not stop.is_set():  # the run was interrupted: its controller closed under us
                    raise

        def _drive(i: int) -> None:
            p, res, name = plans[i], results[i], names[i]
            over = over_budget_alone(p, budget)
            agent = ctl.spawn_agent(
                name, sched.write(t0, 1e9, p.baseline, False), stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL
            )
            try:
                last_end, planned_end = t0, 0.0
                for c in sorted(p.calls, key=lambda c: c.start):
                    start_at = max(time.monotonic(), last_end + max(0.0, c.start - planned_end))
                    while time.monotonic() < start_at and agent.poll() is None:
                        time.sleep(min(0.02, max(0.0, start_at - time.monotonic())))
                    if agent.poll() is not None:
                        break
                    argv = sched.write(time.monotonic(), c.duration, c.points, True, call_procs)
                    predicted, basis = None, None
                    if predictor is not None and c.command:
                        predictor.alias(argv, c.command)
                        guess = predictor.predict_command(c.command, name)
                        if guess is not None:  # what it rested on: "host signature pytest <some> (26)"
                            predicted, basis = guess.memory, f"{guess.basis} {guess.key} ({guess.n})"
                    out = ctl.submit(
                        name, argv, timeout=call_timeout(c), stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL
                    ).wait()
                    assert out is not None
                    res.calls_run += 1
                    res.oom_kills += out.oom_kills
                    if out.queued_s > 0:
                        res.calls_queued += 1
                        res.queued_s += out.queued_s
                    if not out.ok:
                        res.calls_killed += 1
                        res.kills.append(out.killed_by or f"exit {out.returncode}")
                        res.killed_calls.append(c.index)
                        res.calls_over += c.index in over
                        if budget is not None:
                            agents = sum(_usage(m, cg) for cg in agent_cgs if cg is not None)
                            res.calls_over_agents += c.peak_bytes + agents >= budget
                        res.kill_details.append(
                            {
                                "command": (c.command or "")[:80],
                                "killed_by": out.killed_by or f"exit {out.returncode}",
                                "reason": out.kill_reason,
                                "memory_peak": out.memory_peak,
                                "planned_peak": max((pt.bytes for pt in c.points), default=0),
                                "predicted": predicted,
                                "predicted_basis": basis,
                                "queued_s": round(out.queued_s, 3),
                                "priority": res.priority,
                            }
                        )
                    else:
                        res.calls_over_done += c.index in over
                    if on_call is not None:
                        on_call()
                    last_end, planned_end = time.monotonic(), c.end
                    if agent.poll() is not None:
                        break
                if agent.poll() is not None:
                    res.agent_lost = True
                else:
                    res.completion_s = last_end - t0
            finally:
                if agent.poll() is None:
                    agent.send_signal(signal.SIGTERM)
                agent.wait()
                agent.close()

        helpers = [threading.Thread(target=sample, daemon=True)]
        if arm.oomd:
            helpers.append(threading.Thread(target=oomd, daemon=True))
        drivers = [threading.Thread(target=drive, args=(i,), daemon=True) for i in range(len(plans))]
        for t in [*helpers, *drivers]:
            t.start()
        try:
            for t in drivers:
                t.join()
        except BaseException:
            stop.set()
            raise
        makespan = time.monotonic() - t0
        # v2 counts a subtree's OOM kills at its root (removed leaves included); v1 only each cgroup's own: the
        # calls' (read before their leaves went) and the agents' (their leaves are still there)
        agents = sum(_oom_kills(m, cg) for cg in agent_cgs if cg is not None)
        kernel_kills = max(_oom_kills(m, root_cg) - oom_before, agents + sum(r.oom_kills for r in results))
    finally:
        stop.set()
        ctl.close()
        sched.close()
    return RunResult(
        arm.name,
        run,
        budget,
        results,
        round(makespan, 3),
        sum(usage) / len(usage) if usage else 0.0,
        max(usage, default=0),
        oomd_kills[0],
        protected[0],
        kernel_kills,
    )


def _usage(m: Manager, cg: Cgroup) -> int:
    try:
        return m.memory_current(cg)
    except AgentCgroupError:
        return 0


def _oom_kills(m: Manager, cg: Cgroup) -> int:
    try:
        return m.stats(cg).oom_kills
    except AgentCgroupError:
        return 0
