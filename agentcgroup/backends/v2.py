"""Pure cgroup v2: one tree, one role (``unified``).

Controllers (memory, cpu, pids) are enabled in ``cgroup.subtree_control`` of every cgroup of ours that gets
children. The cgroup our root goes beneath must have them too: when it is the mount's root and lacks them we
enable them there (as systemd does at boot); a delegated base must already be set up so by its owner.
"""

from __future__ import annotations

import os
import select
import signal

from ..cgroupfs import Dir
from ..detect import HostLayout
from ..errors import CgroupError, Unsupported
from ..limits import Limits
from ..parsers import parse_flat_keyed, parse_list, parse_usage_usec
from ..reap import release_memory
from ..units import MAX_BYTES
from ._tree import TreeManager
from .base import Cgroup, EventSource, Stats
from .probe import probe_features

CFS_PERIOD_US = 100_000
WANTED = ("memory", "cpu", "pids")


def _max(value: int) -> str:
    return "max" if value >= MAX_BYTES else str(value)


class V2Manager(TreeManager):
    main_role = "unified"
    always_roles = ("unified",)

    def __init__(self, layout: HostLayout, root_name: str = "agentcg", base: str | None = None) -> None:
        if layout.unified is None:
            raise Unsupported("no cgroup2 mount")
        self.layout = layout
        self.kind = "v2"
        self._prepared: set[str] = set()
        super().__init__({"unified": base or layout.unified.base}, root_name)
        self.features = probe_features(self)

    def prepare_parent(self, role: str, parent: Dir, depth: int) -> None:
        if parent.path in self._prepared:
            return
        available = set(parse_list(parent.read("cgroup.controllers")))
        enabled = set(parse_list(parent.read("cgroup.subtree_control")))
        for ctrl in WANTED:
            if ctrl in available and ctrl not in enabled:
                try:
                    parent.write("cgroup.subtree_control", f"+{ctrl}")
                except CgroupError as exc:
                    if depth == 0:
                        raise Unsupported(
                            f"cannot enable the {ctrl} controller below {parent.path} ({exc}); run as root, or "
                            "give agentcgroup a delegated cgroup (AGENTCG_PARENT) whose processes live in a leaf",
                            parent.path,
                        ) from None
                    raise
        self._prepared.add(parent.path)

    def on_removed(self, role: str, path: str) -> None:
        # a cgroup made again under the same name starts with an empty subtree_control: prepare it again
        self._prepared = {p for p in self._prepared if p != path and not p.startswith(path + "/")}

    # --- limits ----------------------------------------------------------------------------------------
    def set_limits(self, cg: Cgroup, limits: Limits) -> None:
        if cg.closed:
            raise CgroupError(f"cgroup {cg.name} is closed", cg.name)
        d = cg.backend_data["dirs"]["unified"]
        if limits.memory_max is not None:
            d.write("memory.max", _max(limits.memory_max))
        if limits.memory_high is not None:
            d.write("memory.high", _max(limits.memory_high))
        if limits.memory_low is not None:
            d.write("memory.low", _max(limits.memory_low) if limits.memory_low < MAX_BYTES else "max")
        if limits.oom_group is not None:
            if not d.has("memory.oom.group"):
                raise Unsupported("memory.oom.group is not available on this kernel", cg.name)
            d.write("memory.oom.group", "1" if limits.oom_group else "0")
        if limits.cpu is not None:
            self._need(d, "cpu.max", "cpu", cg)
            d.write("cpu.max", f"{max(1000, round(limits.cpu * CFS_PERIOD_US))} {CFS_PERIOD_US}")
        if limits.cpu_weight is not None:
            self._need(d, "cpu.weight", "cpu", cg)
            d.write("cpu.weight", str(limits.cpu_weight))
        if limits.pids_max is not None:
            self._need(d, "pids.max", "pids", cg)
            d.write("pids.max", _max(limits.pids_max))
        cg.limits = cg.limits.merged(limits)

    @staticmethod
    def _need(d: Dir, fname: str, ctrl: str, cg: Cgroup) -> None:
        if not d.has(fname):
            raise Unsupported(f"the {ctrl} controller is not enabled for {d.path}: cannot set {fname}", cg.name)

    # --- figures ---------------------------------------------------------------------------------------
    def memory_current(self, cg: Cgroup) -> int:
        return int(cg.backend_data["dirs"]["unified"].read("memory.current"))

    def stats(self, cg: Cgroup) -> Stats:
        d = cg.backend_data["dirs"]["unified"]
        s = Stats()
        if self._memory(cg, d, s):
            ev = parse_flat_keyed(d.read("memory.events"))
            s.oom_kills = int(ev.get("oom_kill", 0))
            s.memory_max_events = int(ev.get("max", 0))
            s.memory_high_events = int(ev.get("high", 0))
        cpu = parse_flat_keyed(d.read("cpu.stat"))
        s.cpu_usec = int(cpu.get("usage_usec", 0))
        if "nr_throttled" in cpu:
            s.nr_throttled = int(cpu["nr_throttled"])
            s.cpu_throttled_usec = int(cpu.get("throttled_usec", 0))
        pc = d.read_optional("pids.current")
        if pc is not None:
            s.pids_current = int(pc)
            s.pids_denied = int(parse_flat_keyed(d.read("pids.events")).get("max", 0))
        ev = parse_flat_keyed(d.read("cgroup.events"))
        s.populated = bool(ev.get("populated", 0))
        s.frozen = bool(ev.get("frozen", 0))
        return s

    def usage_stats(self, cg: Cgroup) -> Stats:
        d = cg.backend_data["dirs"]["unified"]
        s = Stats()
        self._memory(cg, d, s)
        s.cpu_usec = parse_usage_usec(d.read("cpu.stat"))
        return s

    @staticmethod
    def _memory(cg: Cgroup, d: Dir, s: Stats) -> bool:
        """memory.current and the peak into ``s`` (False: no memory controller here)."""
        cur = d.read_optional("memory.current")
        if cur is None:
            return False
        s.memory_current = int(cur)
        peak = d.read_optional("memory.peak")
        seen = max(cg.backend_data.get("peak_seen", 0), s.memory_current)
        cg.backend_data["peak_seen"] = seen
        s.memory_peak = int(peak) if peak is not None else seen
        return True

    # --- the controller's verbs --------------------------------------------------------------------------
    def set_soft_limit(self, cg: Cgroup, value: int | None) -> None:
        d = cg.backend_data["dirs"]["unified"]
        d.write("memory.high", "max" if value is None else _max(value))

    def memory_events(self, cg: Cgroup) -> EventSource:
        d = cg.backend_data["dirs"]["unified"]
        fd = d.open_file("memory.events")

        def drain() -> None:  # kernfs re-arms POLLPRI when the file is read again
            os.lseek(fd, 0, os.SEEK_SET)
            os.read(fd, 4096)

        drain()
        return EventSource(fd, select.EPOLLPRI | select.EPOLLERR, "memory-events", drain)

    # --- freeze / thaw / kill --------------------------------------------------------------------------
    def freeze(self, cg: Cgroup, timeout: float = 1.0) -> None:
        d = cg.backend_data["dirs"]["unified"]
        if not d.has("cgroup.freeze"):
            raise Unsupported("cgroup.freeze needs Linux 5.2 or later", cg.name)
        d.write("cgroup.freeze", "1")
        self.wait_frozen(cg, lambda t: self.wait_file(d, "cgroup.events", "frozen", 1, t), timeout)

    def thaw(self, cg: Cgroup) -> None:
        d = cg.backend_data["dirs"]["unified"]
        if d.has("cgroup.freeze"):
            d.write("cgroup.freeze", "0")

    def kill(self, cg: Cgroup, timeout: float = 5.0) -> int:
        d = cg.backend_data["dirs"]["unified"]
        before = self.pids(cg)
        if not before:
            return 0
        if d.has("cgroup.kill"):
            d.write("cgroup.kill", "1")
        elif d.has("cgroup.freeze"):
            try:
                self.freeze(cg, timeout=min(1.0, timeout))
            except CgroupError:
                pass
            self.kill_pids(self.pids(cg), signal.SIGKILL)
            d.write("cgroup.freeze", "0")
        release_memory(before)
        return self.wait_empty(cg, before, timeout)
