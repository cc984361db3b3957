"""What policies see: the controller's sessions and calls, and their figures read at most once per event."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..backends.base import Stats
from ..errors import CgroupError
from ..units import MAX_BYTES

if TYPE_CHECKING:
    from .core import Controller
    from .state import CallState


class View:
    def __init__(self, ctl: Controller) -> None:
        self.ctl = ctl
        self.config = ctl.config
        self.now = time.monotonic()
        self.kernel_oom_group = ctl.manager.features.oom_group == "memory.oom.group"
        self._cache: dict[int, Stats] = {}
        self._usage: dict[int, int] = {}

    def _stats(self, cg) -> Stats:  # type: ignore[no-untyped-def]
        key = id(cg)
        if key not in self._cache:
            try:
                self._cache[key] = self.ctl.manager.stats(cg)
            except CgroupError:
                self._cache[key] = Stats()
        return self._cache[key]

    def stats(self, cs: CallState) -> Stats:
        if cs.call.cg is None:
            return Stats()
        return self._stats(cs.call.cg)

    def usage(self, cg) -> int:  # type: ignore[no-untyped-def]
        """Memory in use by ``cg`` (one file read, cached for this event)."""
        key = id(cg)
        if key in self._cache:
            return self._cache[key].memory_current or 0
        if key not in self._usage:
            try:
                self._usage[key] = self.ctl.manager.memory_current(cg)
            except CgroupError:
                self._usage[key] = 0
        return self._usage[key]

    def call_usage(self, cs: CallState) -> int:
        return 0 if cs.call.cg is None else self.usage(cs.call.cg)

    def running(self) -> list[CallState]:
        return [cs for cs in self.ctl.calls() if cs.phase != "done" and cs.call.cg is not None]

    def rank_of(self, cs: CallState) -> int:
        return cs.rank

    def budgets(self) -> list[tuple[str, int, int, list[CallState]]]:
        """(scope, usage, budget, running calls) for the global budget ("") and each session's."""
        out = []
        calls = self.running()
        if self.config.budget is not None and self.ctl.root_cg is not None:
            out.append(("", self.usage(self.ctl.root_cg), self.config.budget, calls))
        for s in self.ctl.session_states():
            b = s.budget
            if b is not None and b < MAX_BYTES:
                mine = [cs for cs in calls if cs.session is s]
                out.append((s.name, self.usage(s.cg), b, mine))
        return out

    def headroom(self, cs: CallState) -> int:
        """Memory the call could still get: the least of what the global and its session's budgets have left."""
        room = MAX_BYTES
        for scope, usage, budget, _ in self.budgets():
            if scope in ("", cs.session.name):
                room = min(room, int(budget * self.config.pressure_on) - usage)
        return room

    def psi_recent(self) -> bool:
        last = self.ctl.last_psi
        return last is not None and self.now - last < self.config.psi_window_ms / 1000
