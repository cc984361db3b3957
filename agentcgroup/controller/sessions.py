"""The sessions' room: the open sessions, built one way (by ``open_session`` and by adoption after a restart),
written down with everything a successor needs to adopt them, and removed by the last one out."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from .._lazy import lazy_logger
from ..backends.base import Cgroup, Manager
from ..cgroupfs import check_name
from ..errors import AccessDenied, AgentCgroupError, NotFound
from ..limits import Limits
from ..warm import WarmPool
from .budget import RootBudget
from .config import PRIORITIES, ControllerConfig, check_priority
from .persist import StateDir
from .state import CallState, SessionState

log = lazy_logger("agentcgroup")

ROOT_UID = 0

__all__ = ["ROOT_UID", "AccessDenied", "Sessions"]


class Sessions:
    def __init__(self, manager: Manager, config: ControllerConfig, root: RootBudget, store: StateDir | None) -> None:
        self.manager, self.config, self.root, self.store = manager, config, root, store
        self.lock = threading.RLock()
        self._by_name: dict[str, SessionState] = {}

    # --- lookup ---------------------------------------------------------------------------------------------
    @staticmethod
    def check_owner(s: SessionState, uid: int) -> None:
        if uid != ROOT_UID and uid != s.uid:
            raise AccessDenied(f"session {s.name} belongs to uid {s.uid}, not {uid}")

    def get(self, name: str, uid: int = ROOT_UID) -> SessionState:
        with self.lock:
            s = self._by_name.get(name)
        if s is None:
            raise NotFound(f"no session {name!r}", name)
        self.check_owner(s, uid)
        return s

    def all(self) -> list[SessionState]:
        with self.lock:
            return list(self._by_name.values())

    def calls(self) -> list[CallState]:
        with self.lock:
            return [cs for s in self._by_name.values() for cs in list(s.calls.values())]

    # --- opening ----------------------------------------------------------------------------------------------
    def open(
        self,
        name: str,
        uid: int = ROOT_UID,
        priority: str = "normal",
        limits: Limits | None = None,
        agent_memory: int | None = None,
    ) -> SessionState:
        """Create a session (or join one of the same owner). Its budget is ``limits.memory_max``."""
        check_name(name, "session")
        check_priority(priority)
        limits = limits or Limits()
        limits = limits.merged(Limits(cpu_weight=limits.cpu_weight or PRIORITIES[priority][1]))
        with self.lock:
            s = self._by_name.get(name)
            if s is not None:
                self.check_owner(s, uid)
                return s
            s = self.build(name, uid, priority, limits, agent_memory)
            try:
                self.save(s)
            except BaseException:
                self.drop(s)
                raise
        log.info("event=session-open session=%s uid=%d priority=%s limits=%s", name, uid, priority, limits.to_dict())
        return s

    def build(
        self,
        name: str,
        uid: int,
        priority: str,
        limits: Limits,
        agent_memory: int | None,
        *,
        created: bool | None = None,
        before_pool: Callable[[SessionState], None] | None = None,
    ) -> SessionState:
        """The one way a session comes to be: its cgroup (created, or joined with its limits set again), its
        agent leaf and that leaf's protection (granted up the tree), ``tools/``, its budget's watch, its warm
        spares. ``created``: whether it is ours to remove (None: we create it now, or joined another's).
        ``before_pool`` runs before the spares start (adoption looks at ``tools/`` there). Registered when
        complete; on failure nothing of it is left."""
        m = self.manager
        try:
            cg = m.open((name,))
            m.set_limits(cg, limits)
            made = False
        except NotFound:
            cg = m.create((name,), limits)
            made = True
        s = SessionState(name, uid, priority, limits, cg, created=made if created is None else created)
        try:
            low = agent_memory if agent_memory is not None else self.config.agent_memory_low
            agent = m.create((name, "agent"), Limits(memory_low=low) if low else None)
            s.protected = low or 0
            if low and (limits.memory_low is None or limits.memory_low < low):
                # protection counts only as far as every ancestor grants it (cgroup v2 memory.low)
                m.set_limits(cg, Limits(memory_low=low))
                s.limits = s.limits.merged(Limits(memory_low=low))
            self.root.protect(s.protected + self.protected())
            # the agent leaf and tools/ are opened again when used: an idle session holds only its own dirs
            m.release(agent)
            m.release(m.create((name, "tools")))
            if s.budget is not None:
                self.root.watch(cg, s.budget, s.sources)
            with self.lock:
                self._by_name[name] = s
            if before_pool is not None:
                before_pool(s)
            if self.config.warm and WarmPool.supported(m):
                if self.config.warm_after:
                    s.warm = self.config.warm  # made on demand, by the call that needs it (SessionRef.starting)
                else:
                    s.pool = WarmPool(m, (name, "tools"), self.config.warm, self.config.warm_quiet)
        except BaseException:
            self.drop(s)
            raise
        return s

    def agent_leaf(self, s: SessionState) -> Cgroup:
        """The session's agent leaf (opened on first use: an idle session holds no handle on it)."""
        if s.agent_cg is None or s.agent_cg.closed:
            s.agent_cg = self.manager.open((s.name, "agent"))
        return s.agent_cg

    def protected(self) -> int:
        with self.lock:
            return sum(x.protected for x in self._by_name.values())

    def save(self, s: SessionState) -> None:
        """Write down what adoption needs to build the session again the same way."""
        if self.store is not None:
            self.store.save_session(s.name, self.record(s))

    @staticmethod
    def record(s: SessionState) -> dict[str, Any]:
        return {
            "uid": s.uid,
            "priority": s.priority,
            "limits": s.limits.as_dict(),
            "agent_memory": s.protected,
            "created": s.created,
        }

    # --- closing ----------------------------------------------------------------------------------------------
    def take(self, name: str, uid: int = ROOT_UID) -> SessionState:
        """Unregister a session being closed (no new call finds it); raises NotFound / AccessDenied."""
        s = self.get(name, uid)
        with self.lock:
            self._by_name.pop(name, None)
        return s

    def forget(self, name: str) -> None:
        """Its cgroups are gone: its state file goes last, so a failed close leaves it for a restart to clean."""
        if self.store is not None:
            self.store.drop_session(name)

    def drop(self, s: SessionState) -> None:
        """Stop the session's spares and watches; remove its cgroups unless another process still uses them."""
        with s.lock:
            s.closing = True  # no pool is made after this
        if s.pool is not None:
            s.pool.close()
            s.pool = None
        with self.lock:
            if self._by_name.get(s.name) is s:
                del self._by_name[s.name]
        self.root.protect(self.protected())
        self.root.unwatch(s.sources)
        # the last one out removes the session: another process may have joined it by name and still run
        # calls in it (an agent of ours in the agent leaf goes with it; another's keeps it alive)
        m = self.manager
        for kept in s.kept:  # what our calls kept running ends with the session
            try:
                m.destroy(kept)
            except AgentCgroupError as exc:
                log.warning("event=kept-remove-failed session=%s error=%r", s.name, str(exc))
        s.kept.clear()
        try:
            foreign_calls = m.children((s.name, "tools"))
            agent_pids = m.pids(self.agent_leaf(s))
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
