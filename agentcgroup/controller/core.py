"""The controller: one face over its rooms, one event loop.

Embedded (``Controller()`` inside the agent's process, its loop on a background thread) or inside the daemon
(``agentcg daemon``). The rooms, each a file named for what it holds:

    budget.py     the root: host budget, host PSI, budget thresholds, agents' protection
    sessions.py   the open sessions, built one way (open and adoption), written down, removed last-one-out
    admission.py  declared memory against the budgets: admit, queue or refuse
    dispatch.py   the loop's side: a call's start, its events, the policies (apply.py), its end
    adoption.py   what a previous controller left, taken over after a restart
    outcomes.py   the last outcomes and who may read them; status
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from .._lazy import lazy_logger
from ..backends import Manager, get_manager
from ..backends.base import Cgroup
from ..errors import AgentCgroupError, NotFound
from ..limits import Limits
from ..outcome import Outcome
from ..spawn import Process, can_lower_oom_adj
from ..toolcall import Launcher
from .actions import Actuator
from .admission import Admission, load_predictor
from .adoption import Adoption
from .budget import RootBudget
from .callspec import CallSpec
from .config import ControllerConfig
from .dispatch import Dispatch
from .events import EventBus
from .fdlimit import raise_fd_limit
from .handle import CallHandle
from .intent import Intent
from .loop import Loop
from .outcomes import Outcomes, status
from .persist import StateDir
from .policies.base import Policy
from .policies.oomgroup import OomGroupPolicy
from .policies.pressure import PressurePolicy
from .policies.softlimit import SoftLimitPolicy
from .policies.timeout import TimeoutPolicy
from .sessions import ROOT_UID, AccessDenied, Sessions
from .snapshot import Snapshot
from .state import CallState, SessionState

log = lazy_logger("agentcgroup")

__all__ = ["ROOT_UID", "AccessDenied", "CallHandle", "Controller", "default_policies"]


#: how often a controller with a state dir stamps it (see Adoption)
HEARTBEAT_S = 1.0


def default_policies() -> list[Policy]:
    return [TimeoutPolicy(), OomGroupPolicy(), SoftLimitPolicy(), PressurePolicy()]


class Controller:
    def __init__(
        self,
        manager: Manager | None = None,
        *,
        root: str | None = None,
        backend: str | None = None,
        config: ControllerConfig | None = None,
        policies: list[Policy] | None = None,
        actuator: Actuator | None = None,
        start: bool = True,
        state_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.config = config or ControllerConfig()
        raise_fd_limit()
        self._own_manager = manager is None
        self.manager = manager or get_manager(root, backend=backend)
        self.policies = policies if policies is not None else default_policies()
        self.actuator = actuator or Actuator()
        self.loop = Loop()
        self.closed = False
        try:
            self.state = StateDir(state_dir) if state_dir is not None else None
        except BaseException:
            if self._own_manager:
                self.manager.close()
            raise
        self.root = RootBudget(self.manager, self.config, self.loop, lambda: self.dispatch.pressure())
        self.sessions = Sessions(self.manager, self.config, self.root, self.state)
        learned = load_predictor(state_dir) if self.config.predict else None  # admission by prediction
        self.admission = Admission(
            self.config, self.sessions.lock, self.snapshot, self.sessions.calls, self.manager.kind, learned
        )
        self.outcomes = Outcomes(self.sessions, self.state)
        self.events = EventBus()  # every step, for the event log, metrics and top (controller/events.py)
        self.dispatch = Dispatch(
            self.loop,
            self.manager,
            self.config,
            self.policies,
            self.actuator,
            self.snapshot,
            self.admission,
            self.outcomes,
            self.state,
            self.events,
        )
        try:
            self.root.setup()
            if self.state is not None:
                Adoption(self.manager, self.state, self.sessions, self.dispatch).run()
        except BaseException:
            self._close_backend()
            raise
        if self.state is not None:
            self._heartbeat()
        if start:
            self.loop.start()

    def _heartbeat(self) -> None:
        """Stamp the state dir every second: a successor knows when this controller last ran."""
        assert self.state is not None
        self.state.touch_alive()
        self.loop.call_later(HEARTBEAT_S, self._heartbeat)

    @property
    def root_cg(self) -> Cgroup | None:
        return self.root.cg

    def snapshot(self) -> Snapshot:
        """What policies see now: the budgets, the running calls, their figures."""
        return Snapshot(self.manager, self.config, self.sessions.all(), self.root.cg, self.root.last_psi)

    # --- sessions ---------------------------------------------------------------------------------------
    def open_session(
        self,
        name: str,
        *,
        uid: int = ROOT_UID,
        priority: str = "normal",
        limits: Limits | None = None,
        agent_memory: int | None = None,
    ) -> SessionState:
        """Create a session (or join one of the same owner). Its budget is ``limits.memory_max``."""
        if self.closed:
            raise AgentCgroupError("the controller is closed")
        s = self.sessions.open(name, uid, priority, limits, agent_memory)
        self.events.emit("session-open", s.name, s.uid, priority=s.priority, budget=s.budget)
        return s

    def session(self, name: str, uid: int = ROOT_UID) -> SessionState:
        return self.sessions.get(name, uid)

    def session_states(self) -> list[SessionState]:
        return self.sessions.all()

    def calls(self) -> list[CallState]:
        return self.sessions.calls()

    def close_session(self, name: str, uid: int = ROOT_UID) -> None:
        """Kill the session's calls and agent, remove its cgroups, then forget its state file (in that order: a
        close that fails half-way leaves what a restarted controller needs to finish it)."""
        s = self.sessions.take(name, uid)
        self.dispatch.end_session_calls(s, "its session was closed")
        self.sessions.drop(s)
        self.sessions.forget(name)
        log.info("event=session-close session=%s", name)
        self.events.emit("session-close", s.name, s.uid, priority=s.priority)

    # --- the agent runtime ------------------------------------------------------------------------------
    def spawn_agent(self, session: str, argv: Sequence[str], *, uid: int = ROOT_UID, **kwargs: Any) -> Process:
        s = self.session(session, uid)
        adj = self.config.agent_adj()
        if adj is not None and "oom_score_adj" not in kwargs and can_lower_oom_adj():
            kwargs["oom_score_adj"] = adj  # below every tool: the kernel's OOM killer takes calls first
        return self.manager.spawn(self.sessions.agent_leaf(s), argv, **kwargs)

    def attach_agent(self, session: str, pid: int, *, uid: int = ROOT_UID) -> None:
        s = self.session(session, uid)
        self.manager.attach(self.sessions.agent_leaf(s), pid)

    # --- calls ------------------------------------------------------------------------------------------
    def submit(
        self,
        session: str,
        argv: Sequence[str],
        *,
        limits: Limits | None = None,
        intent: Intent | None = None,
        timeout: float | None = None,
        call_id: str | None = None,
        uid: int = ROOT_UID,
        run_as: tuple[int, int] | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stdin: Any = None,
        stdout: Any = None,
        stderr: Any = None,
        capture_output: bool = False,
        relay_stdout: int | None = None,
        keep_background: bool = False,
        new_session: bool = False,
        launcher: Launcher | None = None,
        parent: tuple[str, ...] | None = None,
        capture_limit: int | None = None,
    ) -> CallHandle:
        """Admit (or queue, or refuse) and start a tool call; its outcome comes from ``wait()``. The keywords
        are :class:`~.callspec.CallSpec`'s."""
        spec = CallSpec.of(
            argv,
            limits=limits,
            intent=intent,
            timeout=timeout,
            call_id=call_id,
            run_as=run_as,
            env=env,
            cwd=cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            capture_output=capture_output,
            relay_stdout=relay_stdout,
            keep_background=keep_background,
            new_session=new_session,
            launcher=launcher,
            parent=parent,
            capture_limit=capture_limit,
        )
        return self.submit_spec(session, spec, uid=uid)

    def submit_spec(self, session: str, spec: CallSpec, *, uid: int = ROOT_UID) -> CallHandle:
        if self.closed:
            raise AgentCgroupError("the controller is closed")
        s = self.session(session, uid)
        spec = spec.resolved()
        admitted = self.admission.admit(s, spec)
        if isinstance(admitted, Outcome):
            self.events.emit("refuse", s.name, s.uid, admitted.call_id, priority=s.priority, reason=admitted.feedback)
            return CallHandle.refused(admitted)
        queued, token = admitted
        self.events.emit("admit", s.name, s.uid, priority=s.priority, queued_s=round(queued, 6))
        cs = self.dispatch.start(s, spec, queued, token)
        return CallHandle(cs, self.dispatch.kill)

    def run(self, session: str, argv: Sequence[str], **kwargs: Any) -> Outcome:
        out = self.submit(session, argv, **kwargs).wait()
        assert out is not None
        return out

    def kill_call(self, session: str, call_id: str, reason: str = "killed on request", uid: int = ROOT_UID) -> None:
        s = self.session(session, uid)
        cs = s.calls.get(call_id)
        if cs is None:
            raise NotFound(f"no running call {call_id!r} in session {session!r}", call_id)
        self.dispatch.kill(cs, reason)

    # --- outcomes and status ----------------------------------------------------------------------------
    def outcome(self, call_id: str, uid: int = ROOT_UID) -> Outcome | None:
        """The outcome of a finished call (the last 1000 are kept), ``None`` while it runs; raises NotFound."""
        return self.outcomes.get(call_id, uid)

    def status(self, uid: int = ROOT_UID) -> dict[str, Any]:
        """Sessions (those ``uid`` may see) with their running calls, and the host budget."""
        return status(self.snapshot, self.sessions, self.manager.kind, self.config.budget, uid)

    # --- shutdown ---------------------------------------------------------------------------------------
    def close(self, keep_calls: bool = False) -> None:
        """Kill running calls, remove every session this controller created, stop the loop.

        ``keep_calls``: leave sessions and running calls as they are (their state is in the state dir) for a
        successor to adopt, e.g. across an upgrade of the daemon; only the spare leaves go."""
        if self.closed:
            return
        for s in self.session_states():
            try:
                if not keep_calls:
                    self.close_session(s.name)
                elif s.pool is not None:
                    s.pool.close()
                    s.pool = None
            except AgentCgroupError as exc:
                log.warning("event=close-failed session=%s error=%r", s.name, str(exc))
        self.closed = True
        self.loop.stop()
        if self.loop.thread is not None and self.loop.thread is not threading.current_thread():
            self.loop.thread.join(5)
        self._close_backend()
        self.loop.close()
        self.admission.close()

    def _close_backend(self) -> None:
        self.root.close(sessions_left=bool(self.sessions.all()))
        if self._own_manager:
            self.manager.close()
        if self.state is not None:
            self.state.close()

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
