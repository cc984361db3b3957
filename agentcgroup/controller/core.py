"""The controller: sessions, admission, tool calls, kernel events, policies, in one event loop.

Embedded (``Controller()`` inside the agent's process, its loop on a background thread) or inside the daemon
(``agentcg daemon``). Calls are started on the caller's thread (spawn is fast and its errors belong to the
caller); from then on everything about them happens on the loop's thread: exits, kernel notifications,
timers, policy decisions, outcomes.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from ..backends import Manager, get_manager
from ..backends.base import Cgroup, EventSource
from ..cgroupfs import check_name
from ..errors import AgentCgroupError, CgroupError, InvalidValue, NotFound
from ..feedback import command_text
from ..limits import Limits
from ..outcome import Outcome
from ..toolcall import Launcher, ToolCall
from ..units import MAX_BYTES, format_size
from ..warm import WarmPool
from .actions import Action, Actuator
from .config import PRIORITIES, ControllerConfig, check_priority
from .intent import Intent, declared_memory, default_timeout, size_limits
from .loop import READ, Loop
from .persist import StateDir
from .policies.base import Policy
from .policies.oomgroup import OomGroupPolicy
from .policies.pressure import PressurePolicy
from .policies.softlimit import SoftLimitPolicy
from .policies.timeout import TimeoutPolicy
from .state import CallFuture, CallState, SessionState
from .view import View

log = logging.getLogger("agentcgroup")

ROOT_UID = 0


class AccessDenied(AgentCgroupError):
    """A session belongs to another user."""


def default_policies() -> list[Policy]:
    return [TimeoutPolicy(), OomGroupPolicy(), SoftLimitPolicy(), PressurePolicy()]


class CallHandle:
    """A submitted call: ``wait()`` returns its :class:`Outcome`."""

    def __init__(self, ctl: Controller, cs: CallState | None, future: CallFuture, call_id: str) -> None:
        self._ctl, self._cs, self.future, self.call_id = ctl, cs, future, call_id

    def wait(self, timeout: float | None = None) -> Outcome | None:
        return self.future.wait(timeout)

    def done(self) -> bool:
        return self.future.done()

    def kill(self, reason: str = "killed on request") -> None:
        if self._cs is not None:
            self._ctl.kill_call(self._cs.session.name, self.call_id, reason)

    @property
    def call(self) -> ToolCall | None:
        return None if self._cs is None else self._cs.call


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
        _raise_fd_limit()
        self._own_manager = manager is None
        self.manager = manager or get_manager(root, backend=backend)
        self.policies = policies if policies is not None else default_policies()
        self.actuator = actuator or Actuator()
        self.loop = Loop()
        self._lock = threading.RLock()
        self._admission = threading.Condition(self._lock)
        self._sessions: dict[str, SessionState] = {}
        self._reserved: dict[str, int] = {}  # call id (or pending token) -> declared bytes (admission)
        self._tokens = itertools.count()
        self.root_cg: Cgroup | None = None
        self._root_sources: list[EventSource] = []
        self.last_psi: float | None = None
        self.closed = False
        self._outcomes: collections.OrderedDict[str, tuple[int, Outcome]] = collections.OrderedDict()
        self.state = StateDir(state_dir) if state_dir is not None else None
        try:
            self._setup_root()
            if self.state is not None:
                self._adopt()
        except BaseException:
            self._teardown_manager()
            raise
        if start:
            self.loop.start()

    # --- root, budget, host pressure --------------------------------------------------------------------
    def _setup_root(self) -> None:
        m = self.manager
        if not hasattr(m, "root_cgroup"):
            return
        self.root_cg = m.root_cgroup()
        budget = self.config.budget
        if budget is not None:
            m.set_limits(self.root_cg, Limits(memory_max=budget))
            self._watch_budget(self.root_cg, budget, self._root_sources)
        psi = m.psi_trigger(None, "memory", self.config.psi_stall_ms * 1000, self.config.psi_window_ms * 1000)
        if psi is not None:
            self._root_sources.append(psi)
            self.loop.add(psi.fd, psi.events, lambda fd, ev: self._on_psi())

    def _watch_budget(self, cg: Cgroup, budget: int, into: list[EventSource]) -> None:
        """Usage thresholds at the pressure levels (v1); v2 relies on the calls' checkpoints and PSI."""
        for frac in sorted({self.config.pressure_on, self.config.pressure_off, self.config.urgent_at}):
            src = self.manager.usage_threshold(cg, int(budget * frac))
            if src is None:
                return
            into.append(src)
            self.loop.add(src.fd, src.events, lambda fd, ev, s=src: self._on_threshold(s))

    def _on_threshold(self, src: EventSource) -> None:
        src.drain()
        self._dispatch_pressure()

    def _on_psi(self) -> None:
        self.last_psi = time.monotonic()
        self._dispatch_pressure()

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
        check_name(name, "session")
        check_priority(priority)
        limits = limits or Limits()
        weight = limits.cpu_weight or PRIORITIES[priority][1]
        limits = limits.merged(Limits(cpu_weight=weight))
        with self._lock:
            s = self._sessions.get(name)
            if s is not None:
                self._check_owner(s, uid)
                return s
            m = self.manager
            created = True
            try:
                cg = m.open((name,))
                created = False
                m.set_limits(cg, limits)
            except NotFound:
                cg = m.create((name,), limits)
            s = SessionState(name, uid, priority, limits, cg, created=created)
            try:
                low = agent_memory if agent_memory is not None else self.config.agent_memory_low
                s.agent_cg = m.create((name, "agent"), Limits(memory_low=low) if low else None)
                s.protected = low or 0
                if low and (limits.memory_low is None or limits.memory_low < low):
                    # protection counts only as far as every ancestor grants it (cgroup v2 memory.low)
                    m.set_limits(cg, Limits(memory_low=low))
                    s.limits = s.limits.merged(Limits(memory_low=low))
                self._protect_root(extra=s.protected)
                m.create((name, "tools"))
                if self.config.warm and WarmPool.supported(m):
                    s.pool = WarmPool(m, (name, "tools"), self.config.warm)
                if s.budget is not None and s.budget < MAX_BYTES:
                    self._watch_budget(cg, s.budget, s.sources)
            except BaseException:
                self._drop_session(s)
                raise
            self._sessions[name] = s
            if self.state is not None:
                self.state.save_session(name, {"uid": uid, "priority": priority, "limits": asdict(limits)})
            log.info(
                "event=session-open session=%s uid=%d priority=%s limits=%s", name, uid, priority, limits.to_dict()
            )
            return s

    def _check_owner(self, s: SessionState, uid: int) -> None:
        if uid != ROOT_UID and uid != s.uid:
            raise AccessDenied(f"session {s.name} belongs to uid {s.uid}, not {uid}")

    def session(self, name: str, uid: int = ROOT_UID) -> SessionState:
        with self._lock:
            s = self._sessions.get(name)
        if s is None:
            raise NotFound(f"no session {name!r}", name)
        self._check_owner(s, uid)
        return s

    def session_states(self) -> list[SessionState]:
        with self._lock:
            return list(self._sessions.values())

    def calls(self) -> list[CallState]:
        with self._lock:
            return [cs for s in self._sessions.values() for cs in s.calls.values()]

    def close_session(self, name: str, uid: int = ROOT_UID) -> None:
        """Kill the session's calls and agent, and remove its cgroups."""
        s = self.session(name, uid)
        with self._lock:
            self._sessions.pop(name, None)
        if self.state is not None:
            self.state.drop_session(name)
        done = threading.Event()

        def in_loop() -> None:
            try:
                for cs in list(s.calls.values()):
                    self._kill_now(cs, "policy", "its session was closed")
                    self._finish(cs)
            finally:
                done.set()

        if self.loop.thread is not None and self.loop.thread.is_alive() and not self.loop.in_loop():
            self.loop.call_soon_threadsafe(in_loop)
            done.wait(30)
        else:
            in_loop()
        self._drop_session(s)
        log.info("event=session-close session=%s", name)

    def _protect_root(self, extra: int = 0) -> None:
        """The root protects what its sessions' agents are promised (their sum)."""
        if self.root_cg is None:
            return
        total = extra + sum(x.protected for x in self._sessions.values())
        try:
            self.manager.set_limits(self.root_cg, Limits(memory_low=total))
        except AgentCgroupError as exc:
            log.warning("event=protect-failed reason=%r", str(exc))

    def _drop_session(self, s: SessionState) -> None:
        if s.pool is not None:
            s.pool.close()
            s.pool = None
        with self._lock:
            self._sessions.pop(s.name, None)
        self._protect_root()
        for src in s.sources:
            self.loop.remove(src.fd)
            src.close()
        s.sources.clear()
        # the last one out removes the session: another process may have joined it by name and still run
        # calls in it (an agent of ours in the agent leaf goes with it; another's keeps it alive)
        m = self.manager
        try:
            foreign_calls = m.children((s.name, "tools"))
            agent_pids = m.pids(s.agent_cg) if s.agent_cg else []
        except AgentCgroupError:
            foreign_calls, agent_pids = [], []
        agent_busy = bool(agent_pids) and (not s.created or os.getpid() in agent_pids)  # never kill ourselves
        if foreign_calls or agent_busy:
            log.info(
                "event=session-left session=%s reason='still in use by another process' calls=%d",
                s.name,
                len(foreign_calls),
            )
            return
        m.destroy(s.cg)

    # --- the agent runtime ------------------------------------------------------------------------------
    def spawn_agent(self, session: str, argv: Sequence[str], *, uid: int = ROOT_UID, **kwargs: Any):  # type: ignore[no-untyped-def]
        s = self.session(session, uid)
        assert s.agent_cg is not None
        return self.manager.spawn(s.agent_cg, argv, **kwargs)

    def attach_agent(self, session: str, pid: int, *, uid: int = ROOT_UID) -> None:
        s = self.session(session, uid)
        assert s.agent_cg is not None
        self.manager.attach(s.agent_cg, pid)

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
        launcher: Launcher | None = None,
        parent: tuple[str, ...] | None = None,
        new_session: bool = False,
        capture_limit: int | None = None,
    ) -> CallHandle:
        """Admit (or queue, or refuse) and start a tool call; its outcome comes from ``wait()``.

        ``launcher`` and ``parent`` are for calls that run elsewhere than a host process of ours (a
        ``docker exec`` into a container whose cgroup, ``parent``, is beneath the session's)."""
        if self.closed:
            raise AgentCgroupError("the controller is closed")
        if not argv:
            raise InvalidValue("command", list(argv), "must not be empty")
        s = self.session(session, uid)
        intent = intent or Intent()
        limits = size_limits(intent, limits or Limits())
        timeout = default_timeout(intent, timeout)
        if call_id is not None:
            check_name(call_id, "call id")
        admitted = self._admit(s, intent, limits, list(argv))
        if isinstance(admitted, Outcome):
            fut = CallFuture()
            fut.set(admitted)
            return CallHandle(self, None, fut, admitted.call_id)
        queued, token = admitted
        soft = limits.memory_high
        leaf_limits = self._with_checkpoint(limits, soft)
        call = ToolCall(
            _SessionRef(s, self),
            argv,
            limits=limits,
            leaf_limits=leaf_limits,
            timeout=timeout,
            call_id=call_id,
            env=env,
            cwd=cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            capture_output=capture_output,
            relay_stdout=relay_stdout,
            keep_background=keep_background,
            run_as=run_as,
            oom_score_adj=self._tool_adj(s),
            launcher=launcher,
            parent=parent,
            new_session=new_session,
            capture_limit=capture_limit,
        )
        cs = CallState(call, s, intent, CallFuture(), soft=soft, queued_s=queued)
        try:
            call.start()
        except BaseException:
            self._release_reservation(token)
            raise
        with self._lock:
            if token in self._reserved:
                self._reserved[call.call_id] = self._reserved.pop(token)
        cs.checkpoint = leaf_limits.memory_high if leaf_limits.memory_high != soft else None
        with self._lock:
            s.calls[call.call_id] = cs
        if self.state is not None:
            self._save_call(cs, run_as)
        if self.loop.in_loop() or self.loop.thread is None:
            self._register(cs)
        else:
            self.loop.call_soon_threadsafe(lambda: self._register(cs))
        return CallHandle(self, cs, cs.future, call.call_id)

    def _tool_adj(self, s: SessionState) -> int:
        """Tools go first to the kernel's OOM killer; a high-priority session's tools after the others'."""
        adj = self.config.tool_oom_score_adj
        return adj // 2 if s.priority == "high" and adj > 0 else adj

    def _save_call(self, cs: CallState, run_as: tuple[int, int] | None) -> None:
        call = cs.call
        assert self.state is not None and call.proc is not None
        self.state.save_call(
            cs.id,
            {
                "session": cs.session.name,
                "argv": call.argv,
                "pid": call.proc.pid,
                "started": call.started_wall,
                "timeout": call.timeout,
                "limits": asdict(call.limits),
                "intent": cs.intent.to_dict(),
                "soft": cs.soft,
                "keep_background": call.keep_background,
                "run_as": run_as,
            },
        )

    def run(self, session: str, argv: Sequence[str], **kwargs: Any) -> Outcome:
        handle = self.submit(session, argv, **kwargs)
        out = handle.wait()
        assert out is not None
        return out

    def _with_checkpoint(self, limits: Limits, soft: int | None) -> Limits:
        """v2 has no usage thresholds: a growing call's memory.high doubles as one (raised as it is crossed)."""
        if self.manager.kind != "v2" or self.config.budget is None:
            return limits
        step = self.config.checkpoint_step
        return limits.merged(Limits(memory_high=step if soft is None else min(soft, step)))

    # --- admission --------------------------------------------------------------------------------------
    def _admit(self, s: SessionState, intent: Intent, limits: Limits, argv: list[str]) -> tuple[float, str] | Outcome:
        """(seconds spent queued, reservation token), or a refusal outcome."""
        token = f"pending-{next(self._tokens)}"
        decl = declared_memory(intent, limits)
        if decl is None:
            return 0.0, token
        cmd = command_text(argv)
        for scope, budget in (("the session's budget", s.budget), ("the host budget", self.config.budget)):
            if budget is not None and budget < MAX_BYTES and decl > budget:
                return self._refusal(
                    s,
                    argv,
                    f"`{cmd}` declares {format_size(decl)} but {scope} is "
                    f"{format_size(budget)}; declare less or split the work",
                )
        t0 = time.monotonic()
        deadline = t0 + self.config.admission_wait
        with self._admission:
            while True:
                free = self._free_for(s)
                if decl <= free:
                    self._reserved[token] = decl
                    return time.monotonic() - t0, token
                left = deadline - time.monotonic()
                if left <= 0:
                    return self._refusal(
                        s,
                        argv,
                        f"`{cmd}` declares {format_size(decl)} but only {format_size(max(free, 0))} "
                        f"was free after waiting {self.config.admission_wait:g} s; retry later or declare less",
                    )
                self._admission.wait(min(left, 0.5))

    def _free_for(self, s: SessionState) -> int:
        """What a new call may count on: each budget's room, less what admitted calls declared but have not
        used yet (their usage is already in the budget's)."""
        view = View(self)
        running = {cs.id: cs for cs in self.calls()}
        free = MAX_BYTES
        for scope, usage, budget, _ in view.budgets():
            if scope not in ("", s.name):
                continue
            owed = 0
            for key, decl in self._reserved.items():
                cs = running.get(key)
                if scope and cs is not None and cs.session is not s:
                    continue
                used = (view.stats(cs).memory_current or 0) if cs is not None else 0
                owed += max(0, decl - used)
            free = min(free, int(budget * self.config.pressure_on) - usage - owed)
        return free

    def _release_reservation(self, key: str) -> None:
        with self._admission:
            self._reserved.pop(key, None)
            self._admission.notify_all()

    def _refusal(self, s: SessionState, argv: list[str], reason: str) -> Outcome:
        from ..warm import new_call_id

        out = Outcome(
            session=s.name,
            call_id=new_call_id(),
            command=command_text(argv),
            argv=argv,
            backend=self.manager.kind,
            refused=True,
            feedback=f"not run: {reason}.",
        )
        log.info("event=refuse session=%s reason=%r", s.name, reason)
        return out

    # --- the loop's side --------------------------------------------------------------------------------
    def _register(self, cs: CallState) -> None:
        call = cs.call
        proc = call.proc
        assert proc is not None
        if proc.pidfd >= 0:
            self.loop.add(proc.pidfd, READ, lambda fd, ev: self._on_exit(cs))
        else:  # no pidfd (old kernel): poll the process
            self._poll_exit(cs)
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                fd = f.fileno()
                os.set_blocking(fd, False)
                cs.pipes[fd] = f
                self.loop.add(fd, READ, lambda fd, ev: self._on_pipe(cs, fd))
        if call.cg is not None:
            try:
                src = self.manager.memory_events(call.cg)
            except CgroupError as exc:
                log.warning("event=watch-failed call=%s error=%r", cs.label, str(exc))
                src = None
            if src is not None:
                cs.sources.append(src)
                self.loop.add(src.fd, src.events, lambda fd, ev: self._on_memory(cs, src))
        self._apply(View(self), [a for p in self.policies for a in p.on_start(View(self), cs)], cs)

    def _poll_exit(self, cs: CallState) -> None:
        if cs.phase == "done":
            return
        proc = cs.call.proc
        if proc is not None and (proc.poll() is not None or getattr(proc, "exited", False)):
            self._on_exit(cs)
        else:
            cs.timers["poll"] = self.loop.call_later(0.01, lambda: self._poll_exit(cs))

    def _on_pipe(self, cs: CallState, fd: int) -> None:
        if cs.call._read_pipe(fd) is False:
            self.loop.remove(fd)
            cs.pipes.pop(fd, None)

    def _on_memory(self, cs: CallState, src: EventSource | None) -> None:
        if src is not None:
            src.drain()
            if src.kind == "oom":
                # v1 notifies *before* its OOM killer picks a victim: look again once it has
                for delay in (0.005, 0.05, 0.25):
                    self.loop.call_later(delay, lambda: self._on_memory(cs, None))
        if cs.phase == "done" or cs.call.cg is None:
            return
        view = View(self)
        st = view.stats(cs)
        actions = [a for p in self.policies for a in p.on_memory(view, cs, st)]
        self._apply(view, actions, cs)
        self._raise_checkpoint(cs, st.memory_current or 0)

    def _raise_checkpoint(self, cs: CallState, usage: int) -> None:
        if cs.checkpoint is None or cs.phase != "running" or cs.call.cg is None:
            return
        if usage < cs.checkpoint * 0.9:
            return
        nxt = usage + self.config.checkpoint_step
        level = nxt if cs.soft is None or nxt < cs.soft else cs.soft
        cs.checkpoint = None if level == cs.soft else nxt
        try:
            self.manager.set_soft_limit(cs.call.cg, level)
        except CgroupError as exc:
            log.warning("event=checkpoint-failed call=%s error=%r", cs.label, str(exc))

    def _dispatch_pressure(self) -> None:
        view = View(self)
        actions = [a for p in self.policies for a in p.on_pressure(view)]
        self._apply(view, actions, None)

    def _apply(self, view: View, actions: list[Action], cs: CallState | None) -> None:
        for a in actions:
            if a.call.phase == "done":
                continue
            if a.call.call.killed_by is not None and a.verb != "note":
                continue  # killed and draining: no thaw, release or second kill for it
            if a.verb == "timer":
                policy = self._policy_for(a)
                old = a.call.timers.pop(a.key, None)
                if old is not None:
                    old.cancel()
                a.call.timers[a.key] = self.loop.call_later(
                    a.delay, lambda p=policy, c=a.call, k=a.key: self._on_timer(p, c, k)
                )
                continue
            if a.verb == "freeze":
                a.call.phase, a.call.frozen_at = "frozen", view.now
            self.actuator.execute(a)

    def _policy_for(self, action: Action) -> Policy:
        key = action.key
        for p in self.policies:
            if key.startswith(p.name) or (p.name == "soft-limit" and key.startswith("soft-")):
                return p
        return self.policies[0]

    def _on_timer(self, policy: Policy, cs: CallState, key: str) -> None:
        cs.timers.pop(key, None)
        if cs.phase == "done":
            return
        view = View(self)
        self._apply(view, policy.on_timer(view, cs, key), cs)

    def _on_exit(self, cs: CallState) -> None:
        if cs.phase == "done":
            return
        self._finish(cs)
        self._dispatch_pressure()

    def _kill_now(self, cs: CallState, by: str, reason: str) -> None:
        if cs.call.cg is not None:
            self.actuator.execute(Action("kill", cs, reason, by=by))

    def kill_call(self, session: str, call_id: str, reason: str = "killed on request", uid: int = ROOT_UID) -> None:
        s = self.session(session, uid)
        cs = s.calls.get(call_id)
        if cs is None:
            raise NotFound(f"no running call {call_id!r} in session {session!r}", call_id)
        self.loop.call_soon_threadsafe(lambda: self._kill_now(cs, "policy", reason))

    def _finish(self, cs: CallState) -> None:
        """The command ended (or its session closes): build the outcome, clean up, tell the waiter."""
        cs.phase = "done"
        for t in cs.timers.values():
            t.cancel()
        cs.timers.clear()
        proc = cs.call.proc
        if proc is not None and proc.pidfd >= 0:
            self.loop.remove(proc.pidfd)
        for fd in list(cs.pipes):
            self.loop.remove(fd)
        for src in cs.sources:
            self.loop.remove(src.fd)
            src.close()
        cs.sources.clear()
        view = View(self)
        for p in self.policies:
            p.on_end(view, cs)
        out: Outcome | None = None
        try:
            out = cs.call.finish(cs.pipes)
            out.queued_s = round(cs.queued_s, 6)
            out.intent = cs.intent.to_dict()
        except BaseException as exc:  # the outcome cannot be built: the waiter gets the error
            log.exception("event=finish-failed call=%s", cs.label)
            cs.future.fail(exc)
            out = None
        finally:
            with self._lock:  # remembered before it leaves the running set: outcome() never finds neither
                if out is not None:
                    self._remember(cs.session.uid, out)
                cs.session.calls.pop(cs.id, None)
            self._release_reservation(cs.id)
        if self.state is not None:
            self.state.drop_call(cs.id)
        if out is not None:
            if self.state is not None:
                self.state.save_outcome(cs.session.uid, out)
            log.info(
                "event=call-end session=%s call=%s rc=%s killed_by=%s peak=%s duration=%.3f",
                cs.session.name,
                cs.id,
                out.returncode,
                out.killed_by,
                out.memory_peak,
                out.duration_s,
            )
            cs.future.set(out)

    # --- adoption after a restart ----------------------------------------------------------------------
    def _adopt(self) -> None:
        """Take over what a previous controller (same root, same state dir) left: its sessions, its running
        calls (watched again; their outcomes completed), its stored outcomes. Leaves nobody recorded (a dead
        controller's spare leaves) are killed and removed."""
        assert self.state is not None
        m = self.manager
        for owner, out in self.state.outcomes():
            self._outcomes[out.call_id] = (owner, out)
        calls = self.state.calls()
        for name, rec in self.state.sessions().items():
            try:
                cg = m.open((name,))
            except NotFound:
                self.state.drop_session(name)
                continue
            limits = Limits(**rec.get("limits", {}))
            s = SessionState(name, int(rec["uid"]), rec["priority"], limits, cg, created=True)
            s.agent_cg = m.create((name, "agent"))
            m.create((name, "tools"))
            if s.budget is not None and s.budget < MAX_BYTES:
                self._watch_budget(cg, s.budget, s.sources)
            self._sessions[name] = s
            for leaf in m.children((name, "tools")):
                leaf_cg = m.open((name, "tools", leaf))
                crec = calls.pop(leaf, None)
                if crec is None or crec.get("session") != name:
                    log.info(
                        "event=adopt-remove session=%s leaf=%s reason='no record (a spare or torn call)'", name, leaf
                    )
                    m.destroy(leaf_cg)
                    continue
                self._adopt_call(s, leaf_cg, crec)
            if self.config.warm and WarmPool.supported(m):
                s.pool = WarmPool(m, (name, "tools"), self.config.warm)
            log.info("event=adopt-session session=%s calls=%d", name, len(s.calls))
        for call_id in calls:
            self.state.drop_call(call_id)

    def _adopt_call(self, s: SessionState, cg: Cgroup, rec: dict[str, Any]) -> None:
        from ..spawn import ForeignProcess

        argv = list(rec["argv"])
        pid = int(rec["pid"])
        call = ToolCall(
            _SessionRef(s, self),
            argv,
            limits=Limits(**rec.get("limits", {})),
            timeout=rec.get("timeout"),
            call_id=cg.path[-1],
            keep_background=bool(rec.get("keep_background")),
        )
        call.cg = cg
        proc = ForeignProcess(pid, argv)
        if pid not in self.manager.pids(cg):  # it ended while nobody watched (or the pid is someone else's now)
            proc.close()
            proc.exited, proc.ended = True, time.monotonic()
        call.proc = proc
        call.started_wall = float(rec["started"])
        call._t0 = time.monotonic() - max(0.0, time.time() - call.started_wall)
        call.step("note", "adopted after a controller restart: exit status unknown, output not captured")
        cs = CallState(call, s, Intent(**rec.get("intent", {})), CallFuture(), soft=rec.get("soft"))
        s.calls[call.call_id] = cs
        self.loop.call_soon_threadsafe(lambda: self._register(cs))
        log.info("event=adopt-call session=%s call=%s pid=%d alive=%s", s.name, cs.id, pid, not proc.exited)

    # --- outcomes and status ----------------------------------------------------------------------------
    KEEP_OUTCOMES = 1000

    def _remember(self, owner: int, out: Outcome) -> None:
        with self._lock:
            self._outcomes[out.call_id] = (owner, out)
            while len(self._outcomes) > self.KEEP_OUTCOMES:
                self._outcomes.popitem(last=False)

    def outcome(self, call_id: str, uid: int = ROOT_UID) -> Outcome | None:
        """The outcome of a finished call (the last 1000 are kept), ``None`` while it runs; raises NotFound."""
        with self._lock:
            found = self._outcomes.get(call_id)
            running = next((cs for cs in self.calls() if cs.id == call_id), None)
        if found is not None:
            owner, out = found
            if uid not in (ROOT_UID, owner):
                raise AccessDenied(f"call {call_id} belongs to uid {owner}, not {uid}")
            return out
        if running is not None:
            self._check_owner(running.session, uid)
            return None
        raise NotFound(f"no call {call_id!r} (unknown, or its outcome is no longer kept)", call_id)

    def status(self, uid: int = ROOT_UID) -> dict[str, Any]:
        """Sessions (those ``uid`` may see) with their running calls, and the host budget."""
        view = View(self)
        sessions = []
        for s in self.session_states():
            if uid not in (ROOT_UID, s.uid):
                continue
            info = s.info()
            info["memory_current"] = view._stats(s.cg).memory_current
            info["calls"] = [
                {
                    "call_id": cs.id,
                    "command": command_text(cs.call.argv),
                    "phase": cs.phase,
                    "memory_current": view.stats(cs).memory_current,
                    "elapsed_s": round(cs.call.elapsed(), 3),
                }
                for cs in list(s.calls.values())
            ]
            sessions.append(info)
        out: dict[str, Any] = {"backend": self.manager.kind, "sessions": sessions}
        if self.config.budget is not None and self.root_cg is not None:
            out["budget"] = self.config.budget
            out["memory_current"] = view._stats(self.root_cg).memory_current
        return out

    # --- shutdown ---------------------------------------------------------------------------------------
    def close(self, keep_calls: bool = False) -> None:
        """Kill running calls, remove every session this controller created, stop the loop.

        ``keep_calls``: leave sessions and running calls as they are (their state is in the state dir) for a
        successor to adopt, e.g. across an upgrade of the daemon; only the spare leaves go."""
        if self.closed:
            return
        for s in self.session_states():
            try:
                if keep_calls:
                    if s.pool is not None:
                        s.pool.close()
                        s.pool = None
                else:
                    self.close_session(s.name)
            except AgentCgroupError as exc:
                log.warning("event=close-failed session=%s error=%r", s.name, str(exc))
        self.closed = True
        self.loop.stop()
        if self.loop.thread is not None and self.loop.thread is not threading.current_thread():
            self.loop.thread.join(5)
        for src in self._root_sources:
            src.close()
        self._teardown_manager()
        self.loop.close()

    def _teardown_manager(self) -> None:
        if self.root_cg is not None and self.config.budget is not None and not self._sessions:
            try:
                self.manager.set_limits(self.root_cg, Limits(memory_max=MAX_BYTES))
            except AgentCgroupError:
                pass
        if self._own_manager:
            self.manager.close()

    def __enter__(self) -> Controller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _SessionRef:
    """What a ToolCall needs of its session: name, path, manager, warm pool."""

    def __init__(self, s: SessionState, ctl: Controller) -> None:
        self._s, self.manager = s, ctl.manager

    @property
    def name(self) -> str:
        return self._s.name

    @property
    def path(self) -> tuple[str, ...]:
        return self._s.path

    @property
    def pool(self) -> WarmPool | None:
        return self._s.pool


def _raise_fd_limit() -> None:
    """Each watched cgroup keeps a few fds open (control files, eventfds, pidfds): lift the soft limit to the
    hard one, as servers do."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))
        except (ValueError, OSError):
            pass
