"""What policies see at one event: the budgets, the running calls and their figures, read at most once each.

A :class:`Snapshot` is built from plain data (the manager to read figures with, the sessions and calls, the
root cgroup, the time of the last host PSI event); it implements the :class:`~.policies.base.View` protocol
and holds no reference to the controller.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..backends.base import Cgroup, Manager, Stats
from ..errors import CgroupError
from ..units import MAX_BYTES
from .config import ControllerConfig
from .policies.base import Budget
from .state import CallState, SessionState


class Snapshot:
    def __init__(
        self,
        manager: Manager,
        config: ControllerConfig,
        sessions: Sequence[SessionState],
        root_cg: Cgroup | None = None,
        last_psi: float | None = None,
    ) -> None:
        self._manager = manager
        self._config = config
        self._sessions = list(sessions)
        self._root_cg = root_cg
        self._last_psi = last_psi
        self._kept: dict[int, int] = {}
        self._now = time.monotonic()
        self._kernel_oom_group = manager.features.oom_group == "memory.oom.group"
        self._cache: dict[int, Stats] = {}
        self._usage: dict[int, int] = {}

    @property
    def now(self) -> float:
        return self._now

    @property
    def config(self) -> ControllerConfig:
        return self._config

    @property
    def root(self) -> Cgroup | None:
        return self._root_cg

    @property
    def kernel_oom_group(self) -> bool:
        return self._kernel_oom_group

    def cgroup_stats(self, cg: Cgroup) -> Stats:
        """All of ``cg``'s figures (one read of each file for this event; empty if it is gone)."""
        key = id(cg)
        if key not in self._cache:
            try:
                self._cache[key] = self._manager.stats(cg)
            except CgroupError:
                self._cache[key] = Stats()
        return self._cache[key]

    def stats(self, call: CallState) -> Stats:
        cg = call.call.cg
        return Stats() if cg is None else self.cgroup_stats(cg)

    def usage(self, cg: Cgroup) -> int:
        """Memory in use by ``cg`` (one file read, cached for this event)."""
        key = id(cg)
        if key in self._cache:
            return self._cache[key].memory_current or 0
        if key not in self._usage:
            try:
                self._usage[key] = self._manager.memory_current(cg)
            except CgroupError:
                self._usage[key] = 0
        return self._usage[key]

    def call_usage(self, call: CallState) -> int:
        cg = call.call.cg
        return 0 if cg is None else self.usage(cg)

    def running(self) -> list[CallState]:
        return [
            cs for s in self._sessions for cs in list(s.calls.values()) if cs.phase != "done" and cs.call.cg is not None
        ]

    def rank_of(self, call: CallState) -> int:
        return call.rank

    def budgets(self) -> list[Budget]:
        """(scope, usage, budget, running calls) for the global budget ("") and each session's."""
        out: list[Budget] = []
        calls = self.running()
        if self._config.budget is not None and self._root_cg is not None:
            out.append(("", self.usage(self._root_cg), self._config.budget, calls))
        for s in self._sessions:
            b = s.budget
            if b is not None and b < MAX_BYTES:
                mine = [cs for cs in calls if cs.session is s]
                out.append((s.name, self.usage(s.cg), b, mine))
        return out

    def headroom(self, call: CallState) -> int:
        """Memory the call could still get: the least of what the global and its session's budgets have left."""
        room = MAX_BYTES
        for scope, usage, budget, _ in self.budgets():
            if scope in ("", call.session.name):
                room = min(room, int(budget * self._config.pressure_on) - usage)
        return room

    def kept_for(self, rank: int) -> int:
        """Memory the running calls of higher priority than ``rank`` were admitted to grow into and have not used
        yet: what admission reserved for each (a declared or predicted peak) less its usage. 0 without
        reservations."""
        if rank not in self._kept:
            self._kept[rank] = sum(
                max(0, cs.reserved - self.call_usage(cs)) for cs in self.running() if cs.rank > rank and cs.reserved
            )
        return self._kept[rank]

    def psi_recent(self) -> bool:
        last = self._last_psi
        return last is not None and self._now - last < self._config.psi_window_ms / 1000
