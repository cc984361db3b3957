"""The root's room: the host budget (the root cgroup's hard limit), host memory pressure (a PSI trigger), the
usage thresholds of each budget (v1), and the protection the root grants its sessions' agents."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from .._lazy import lazy_logger
from ..backends.base import Cgroup, EventSource, Manager
from ..errors import AgentCgroupError
from ..limits import Limits
from ..units import MAX_BYTES
from .config import ControllerConfig
from .loop import Loop

log = lazy_logger("agentcgroup")


class RootBudget:
    """``on_pressure`` is called (on the loop) when a budget threshold or the host's PSI trigger fires."""

    def __init__(self, manager: Manager, config: ControllerConfig, loop: Loop, on_pressure: Callable[[], None]) -> None:
        self.manager, self.config, self.loop = manager, config, loop
        self._on_pressure = on_pressure
        self.cg: Cgroup | None = None
        self.sources: list[EventSource] = []
        self.last_psi: float | None = None
        self._psi: EventSource | None = None
        self._psi_tried = False
        self._psi_lock = threading.Lock()  # sessions are opened on callers' threads

    def setup(self) -> None:
        m = self.manager
        if not m.has_root:
            return
        self.cg = m.root_cgroup()
        budget = self.config.budget
        if budget is not None:
            m.set_limits(self.cg, Limits(memory_max=budget))
            self.watch(self.cg, budget, self.sources)

    def _watch_psi(self) -> None:
        """The host's PSI trigger, once there is a budget for it to hasten (the host's or a session's). Without
        one nothing reads it, and closing a trigger waits for an RCU grace period (~10 ms here): a one-call
        controller (``agentcg run``) neither makes nor closes one."""
        with self._psi_lock:
            if self._psi_tried:
                return
            self._psi_tried = True
            cfg = self.config
            psi = self.manager.psi_trigger(None, "memory", cfg.psi_stall_ms * 1000, cfg.psi_window_ms * 1000)
            if psi is not None:
                self._psi = psi
                self.sources.append(psi)
                self.loop.add(psi.fd, psi.events, lambda fd, ev: self._on_psi())

    def watch(self, cg: Cgroup, budget: int, into: list[EventSource]) -> None:
        """Usage thresholds at the pressure levels (v1); v2 relies on the calls' checkpoints and PSI."""
        if budget >= MAX_BYTES:
            return
        if self.cg is not None:
            self._watch_psi()
        for frac in sorted({self.config.pressure_on, self.config.pressure_off, self.config.urgent_at}):
            src = self.manager.usage_threshold(cg, int(budget * frac))
            if src is None:
                return
            into.append(src)
            self.loop.add(src.fd, src.events, self._threshold_handler(src))

    def unwatch(self, sources: list[EventSource]) -> None:
        for src in sources:
            self.loop.remove(src.fd)
            src.close()
        sources.clear()

    def _threshold_handler(self, src: EventSource) -> Callable[[int, int], None]:
        def on_threshold(fd: int, ev: int) -> None:
            src.drain()
            self._on_pressure()

        return on_threshold

    def _on_psi(self) -> None:
        self.last_psi = time.monotonic()
        self._on_pressure()

    def protect(self, total: int) -> None:
        """The root protects what its sessions' agents are promised (their sum)."""
        if self.cg is None:
            return
        try:
            self.manager.set_limits(self.cg, Limits(memory_low=total))
        except AgentCgroupError as exc:
            log.warning("event=protect-failed reason=%r", str(exc))

    def close(self, sessions_left: bool) -> None:
        """Stop watching; lift the budget unless sessions stay for a successor."""
        for src in self.sources:
            src.close()
        self.sources.clear()
        self._psi = None
        if self.cg is not None and self.config.budget is not None and not sessions_left:
            try:
                self.manager.set_limits(self.cg, Limits(memory_max=MAX_BYTES))
            except AgentCgroupError:
                pass
