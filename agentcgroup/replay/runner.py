"""The replay runner: a :class:`~agentcgroup.replay.plan.ReplayPlan` played as real load in an open session.

The agent baseline runs in the session's agent leaf (``Session.spawn_agent``), each tool call in a tool-call
leaf of its own (``Session.start``, so the session's controller admits, limits and enforces it like any call),
each as a :mod:`load worker <agentcgroup.replay.worker>` following its schedule. Meanwhile the session's memory
is sampled; the result compares it with the trace (:mod:`.fidelity`).

The runner creates no cgroup itself and leaves nothing running: what it started is killed if it is interrupted.
Several replays can run at once (threads, one session each) from the same ``start_at``.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from ..controller.core import CallHandle
from ..controller.intent import Intent
from ..limits import Limits
from ..session import Session
from ..spawn import DEVNULL
from .fidelity import fidelity
from .plan import CallPlan, Point, ReplayPlan
from .result import CallResult, ReplayResult

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
#: default time between now and the replay's start: the agent's worker starts meanwhile
LEAD_S = 0.3
#: how long after the planned end the runner waits for workers before killing them
GRACE_S = 10.0
TICK_S = 0.01
#: a call's worker is started this long before its planned start (an interpreter starts in ~16 ms): its load
#: begins on time
CALL_LEAD_S = 0.05
#: calls planned with less load of their own than this are just a worker process: the agent makes room for them
LIGHT_BYTES = 8 << 20

PerCall = Callable[[CallPlan], Any]


def session_for(
    plan: ReplayPlan,
    *,
    name: str | None = None,
    priority: str = "normal",
    limits: Limits | None = None,
    **session_kwargs: Any,
) -> Session:
    """A (not yet open) session to replay ``plan`` in, named after its task unless ``name`` is given.

    ``priority`` and ``limits`` are the session's; other keywords go to :class:`~agentcgroup.Session`
    (``root``, ``backend``, ``controller``, ``manager``, ``warm``, ``config``)."""
    if name is None:
        label = re.sub(r"[^A-Za-z0-9_.:-]+", "-", plan.task).strip("-.") or "task"
        name = f"replay-{os.getpid()}-{next(_names)}-{label}"[:128].replace("..", ".")
    return Session(name, priority=priority, limits=limits, **session_kwargs)


_names = itertools.count(1)


def _per_call(value: Any, call: CallPlan) -> Any:
    return value(call) if callable(value) else value


class _Sampler(threading.Thread):
    """Samples the session's memory every ``interval`` from offset 0 until stopped."""

    def __init__(
        self,
        session: Session,
        mono0: float,
        interval: float,
        progress: Callable[[float, float], None] | None,
        total: float,
    ) -> None:
        super().__init__(name="agentcg-replay-sampler", daemon=True)
        self.manager = session.manager
        self.cg = session.manager.open(session.path)
        self.mono0, self.interval, self.progress, self.total = mono0, interval, progress, total
        self.times: list[float] = []
        self.memory: list[int] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        wait = self.mono0 - time.monotonic()
        if wait > 0 and self.stop_event.wait(wait):
            return
        nxt = self.mono0
        while not self.stop_event.is_set():
            t = time.monotonic() - self.mono0
            try:
                mem = self.manager.memory_current(self.cg)
            except Exception:  # the session went away under us: stop sampling
                return
            self.times.append(t)
            self.memory.append(mem)
            if self.progress is not None:
                self.progress(t, self.total)
            nxt += self.interval
            delay = nxt - time.monotonic()
            if delay < 0:  # fell behind (a busy host): keep the cadence from now
                nxt, delay = time.monotonic(), 0.0
            self.stop_event.wait(delay)


class _Run:
    """One replay's state: its temp dir, what it started, the results."""

    def __init__(self, plan: ReplayPlan, session: Session, mono0: float, python: str, tick: float, lead: float) -> None:
        self.plan, self.session, self.mono0, self.python, self.tick = plan, session, mono0, python, tick
        self.lead = lead
        self.dir = tempfile.mkdtemp(prefix="agentcg-replay-")
        self.handles: list[tuple[CallResult, CallHandle, str]] = []
        self.agent: Any = None
        self.agent_err = ""

    def schedule(
        self, name: str, start: float, end: float, points: tuple[Point, ...], others: list[list[float]] | None = None
    ) -> tuple[list[str], str]:
        """Write a worker's schedule; return its argv and the path its stderr goes to."""
        path = os.path.join(self.dir, f"{name}.json")
        doc: dict[str, Any] = {
            "start": self.mono0 + start,
            "end": end,
            "points": [list(p) for p in points],
            "tick": self.tick,
        }
        if others:
            doc["others"] = others
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f, separators=(",", ":"))
        return [self.python, "-I", "-S", WORKER, path], os.path.join(self.dir, f"{name}.err")

    def start_agent(self, hold: float, compensate: bool) -> None:
        others = _light_calls(self.plan, self.lead) if compensate else None
        argv, err = self.schedule("agent", 0.0, self.plan.duration + hold, self.plan.baseline, others)
        self.agent_err = err
        with open(err, "wb") as ef:
            self.agent = self.session.spawn_agent(argv, stdin=DEVNULL, stdout=DEVNULL, stderr=ef)

    def start_call(
        self, c: CallPlan, limits: Limits | None, intent: Intent | None, timeout: float | None
    ) -> tuple[CallResult, CallHandle | None]:
        res = CallResult(c.index, c.call_id, c.command, c.start)
        argv, err = self.schedule(f"call-{c.index}", c.start, c.duration, c.points)
        try:
            with open(err, "wb") as ef:
                handle = self.session.start(
                    argv, limits=limits, intent=intent, timeout=timeout, stdin=DEVNULL, stdout=DEVNULL, stderr=ef
                )
        except Exception as exc:  # refused by a limit the kernel rejects, spawn failure: the replay goes on
            res.error = f"not started: {exc}"
            return res, None
        res.started = time.monotonic() - self.mono0
        res.call_id = handle.call_id
        self.handles.append((res, handle, err))
        return res, handle

    def kill_all(self) -> None:
        for _res, handle, _err in self.handles:
            if not handle.done():
                handle.kill("the replay was interrupted")
        if self.agent is not None and self.agent.poll() is None:
            self.agent.send_signal(signal.SIGKILL)

    def close(self) -> None:
        if self.agent is not None:
            self.agent.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def _light_calls(plan: ReplayPlan, lead: float) -> list[list[float]]:
    """How many load-less call workers run at each moment: a step series ``[[t, count], ...]``."""
    edges: list[tuple[float, int]] = []
    for c in plan.calls:
        if c.duration > 0 and c.peak_bytes < LIGHT_BYTES:
            edges += [(c.start - lead / 2, 1), (c.end, -1)]
    out: list[list[float]] = []
    n = 0
    for t, d in sorted(edges):
        n += d
        if out and out[-1][0] == t:
            out[-1][1] = n
        else:
            out.append([t, n])
    return out


def _error_text(path: str) -> str:
    try:
        with open(path, "rb") as f:
            text = f.read()[-2000:].decode(errors="replace").strip()
    except OSError:
        return ""
    return text.splitlines()[-1] if text else ""


def replay(
    plan: ReplayPlan,
    session: Session,
    *,
    sample_interval: float | None = None,
    start_at: float | None = None,
    call_limits: Limits | PerCall | None = None,
    call_intent: Intent | PerCall | None = None,
    call_timeout: float | PerCall | None = None,
    on_call: Callable[[CallPlan, CallHandle], None] | None = None,
    progress: Callable[[float, float], None] | None = None,
    python: str | None = None,
    tick: float = TICK_S,
    call_lead: float = CALL_LEAD_S,
    compensate: bool = True,
) -> ReplayResult:
    """Replay ``plan`` in ``session`` (already open) and measure how closely its memory follows the trace.

    ``start_at``: the Unix time of replay offset 0 (default: now + 0.3 s), so several replays can start
    together. ``call_limits`` / ``call_intent`` / ``call_timeout``: for every call, or a function of the
    :class:`CallPlan` returning one (or None). ``on_call(call_plan, handle)`` is called as each call starts
    (e.g. ``Recorder.track``); ``progress(elapsed_s, duration_s)`` at each sample. Blocks until every
    worker has ended (killing what is still running ``GRACE_S`` after the planned end).

    ``call_lead``: each call's worker starts this long before its planned start, its load on time.
    ``compensate``: the agent's worker holds back what load-less call workers cost (a few MB each), so the
    session's total follows the trace.
    """
    if not session.is_open:
        raise ValueError(f"replay: session {session.name!r} is not open (open it first: replay opens nothing)")
    now_wall, now_mono = time.time(), time.monotonic()
    if start_at is None:
        start_at = now_wall + LEAD_S
    mono0 = now_mono + (start_at - now_wall)
    if sample_interval is None:
        sample_interval = min(0.1, max(0.02, plan.interval_s / 5))
    sampler = _Sampler(session, mono0, sample_interval, progress, plan.duration)
    run = _Run(plan, session, mono0, python or sys.executable, tick, call_lead)
    results = [CallResult(c.index, c.call_id, c.command, c.start) for c in plan.calls]
    notes: list[str] = []
    try:
        try:
            run.start_agent(hold=min(0.2, 2 * sample_interval), compensate=compensate)
            sampler.start()
            for c in sorted(plan.calls, key=lambda c: (c.start, c.index)):
                delay = mono0 + c.start - call_lead - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                limits, intent = _per_call(call_limits, c), _per_call(call_intent, c)
                res, handle = run.start_call(c, limits, intent, _per_call(call_timeout, c))
                results[c.index] = res
                if handle is not None and on_call is not None:
                    on_call(c, handle)
            _wait_all(run, mono0 + plan.duration + GRACE_S, notes)
        except BaseException:
            run.kill_all()
            _wait_all(run, time.monotonic() + GRACE_S, notes)
            raise
        finally:
            ended = time.monotonic()
            sampler.stop_event.set()
            sampler.join(5)
        for res, handle, err in run.handles:
            res.outcome = out = handle.wait(0)
            if out is None:
                res.error = "did not end"
            elif not out.refused and out.killed_by is None and out.exit_code != 0:
                res.error = _error_text(err) or f"the worker exited {out.returncode}"
        agent_rc = run.agent.poll() if run.agent is not None else None
        agent_error = None if agent_rc == 0 else (_error_text(run.agent_err) or f"the agent worker exited {agent_rc}")
    finally:
        run.close()
    kernel_peak = None
    try:
        kernel_peak = session.manager.stats(sampler.cg).memory_peak
    except Exception:  # the backend cannot tell: the sampled peak stands
        pass
    return ReplayResult(
        plan=plan,
        session=session.name,
        started_at=start_at,
        times=tuple(sampler.times),
        memory=tuple(sampler.memory),
        fidelity=fidelity(plan.trace, sampler.times, sampler.memory),
        duration_s=max(0.0, ended - mono0),
        calls=tuple(results),
        agent_returncode=agent_rc,
        agent_error=agent_error,
        kernel_peak=kernel_peak,
        notes=tuple(notes),
    )


def _wait_all(run: _Run, deadline: float, notes: list[str]) -> None:
    """Wait for the agent worker and every call; past ``deadline`` kill what is left (and say so)."""
    late = False
    for _res, handle, _err in run.handles:
        if handle.wait(max(0.0, deadline - time.monotonic())) is None:
            late = True
    if run.agent is not None and run.agent.wait(max(0.0, deadline - time.monotonic())) is None:
        late = True
    if late:
        notes.append("workers still running after the planned end: killed")
        run.kill_all()
        for _res, handle, _err in run.handles:
            handle.wait(10)
        if run.agent is not None:
            run.agent.wait(10)
