"""cgroup v1 controllers, plus the controller-less cgroup2 mount where there is one (hybrid hosts).

Roles: ``memory`` (always), ``unified`` (cgroup2, always when mounted: freeze, kill, events, PSI, CPU time),
``freezer`` (always when there is no ``cgroup.freeze``), ``cpuacct`` (always when there is no cgroup2 and it is
mounted apart from ``cpu``), ``cpu`` and ``pids`` (only where a limit asks for them).

v1 has no ``memory.high``. Its equivalent: ``memory.limit_in_bytes`` at the soft limit with
``oom_kill_disable=1``; at the limit the tasks stall (no OOM kill), an eventfd on ``memory.oom_control`` fires,
and the controller lifts it (:meth:`set_soft_limit` ``None``) or freezes and kills the call, within a
deadline. v1 has no ``memory.oom.group`` either: the controller kills the whole cgroup when it sees an OOM kill.
"""

from __future__ import annotations

import os
import select
import signal
import time

from ..cgroupfs import Dir
from ..detect import HostLayout
from ..errors import Busy, CgroupError, LimitRejected, Unsupported
from ..limits import Limits
from ..parsers import parse_flat_keyed, parse_pids, parse_usage_usec
from ..reap import release_memory
from ..units import MAX_BYTES
from ._tree import TreeManager
from .base import Cgroup, EventSource, Stats
from .probe import probe_features

CFS_PERIOD_US = 100_000


class HybridManager(TreeManager):
    main_role = "memory"

    def __init__(self, layout: HostLayout, root_name: str = "agentcg") -> None:
        if "memory" not in layout.v1:
            raise Unsupported("no cgroup v1 memory hierarchy is mounted")
        self.layout = layout
        self.kind = layout.mode
        bases = {"memory": beside_our_tree(layout.v1["memory"].base, root_name)}
        unified = layout.unified
        if unified is not None:
            bases["unified"] = unified.base
        for role in ("cpu", "pids", "freezer", "cpuacct"):
            h = layout.v1.get(role)
            if h is None or h.mountpoint == layout.v1["memory"].mountpoint:
                continue
            if role == "cpuacct" and ("cpu" in layout.v1 and layout.v1["cpu"].mountpoint == h.mountpoint):
                continue  # co-mounted cpu,cpuacct: one role
            if role in ("freezer", "cpuacct") and unified is not None:
                continue  # cgroup2 gives freeze and CPU time (added back below if this kernel lacks them)
            bases[role] = h.base
        super().__init__(bases, root_name)
        self.always_roles = tuple(r for r in ("memory", "unified", "freezer", "cpuacct") if r in bases)
        if "unified" not in bases and "cpuacct" not in bases and "cpu" in bases:
            self.always_roles = (*self.always_roles, "cpu")  # co-mounted cpu,cpuacct: a call's CPU time is there
        self.features = probe_features(self)
        if unified is not None and self.features.freeze != "cgroup.freeze" and "freezer" in layout.v1:
            self._bases["freezer"] = layout.v1["freezer"].base  # old kernel: cgroup2 without cgroup.freeze
            self.always_roles = (*self.always_roles, "freezer")

    def full_roles(self) -> list[str]:
        return [r for r in self.roles if r in ("memory", "unified", "cpu", "pids") or r in self.always_roles]

    def roles_for(self, limits: Limits) -> list[str]:
        roles = []
        if limits.cpu is not None or limits.cpu_weight is not None:
            roles.append("cpu")
        if limits.pids_max is not None:
            roles.append("pids")
        return roles

    # --- limits ----------------------------------------------------------------------------------------
    def set_limits(self, cg: Cgroup, limits: Limits) -> None:
        if cg.closed:
            raise CgroupError(f"cgroup {cg.name} is closed", cg.name)
        mem = cg.backend_data["dirs"]["memory"]
        new = cg.limits.merged(limits)
        if limits.memory_max is not None or limits.memory_high is not None:
            hard = new.memory_max if new.memory_max is not None else MAX_BYTES
            soft = new.memory_high if new.memory_high is not None else MAX_BYTES
            if soft < hard:
                self._write_limit(mem, soft)
                mem.write("memory.oom_control", "1")
                cg.backend_data["stall"] = True
            else:
                self._write_limit(mem, hard)
                mem.write("memory.oom_control", "0")
                cg.backend_data["stall"] = False
        if limits.memory_low is not None:
            mem.write(
                "memory.soft_limit_in_bytes",
                "-1" if limits.memory_low >= MAX_BYTES else str(limits.memory_low),
            )
        if limits.cpu is not None or limits.cpu_weight is not None:
            cpu = self._ensure_role(cg, "cpu") if "cpu" in self.roles else None
            if cpu is None:
                raise Unsupported("the cpu controller is not mounted: cannot limit CPU", cg.name)
            if limits.cpu is not None:
                quota = max(1000, round(limits.cpu * CFS_PERIOD_US))
                cpu.write("cpu.cfs_period_us", str(CFS_PERIOD_US))
                cpu.write("cpu.cfs_quota_us", str(quota))
            if limits.cpu_weight is not None:
                cpu.write("cpu.shares", str(max(2, limits.cpu_weight * 1024 // 100)))
        if limits.pids_max is not None:
            if "pids" not in self.roles:
                raise Unsupported("the pids controller is not mounted: cannot limit processes", cg.name)
            self._ensure_role(cg, "pids").write(
                "pids.max", "max" if limits.pids_max >= MAX_BYTES else str(limits.pids_max)
            )
        cg.limits = new

    @staticmethod
    def _write_limit(mem: Dir, value: int) -> None:
        text = "-1" if value >= MAX_BYTES else str(value)
        try:
            mem.write("memory.limit_in_bytes", text)
        except CgroupError as exc:
            if isinstance(exc, Busy):  # EBUSY: usage is above the new limit and cannot be reclaimed
                raise LimitRejected(
                    f"write {mem.path}/memory.limit_in_bytes <- {text!r}: usage is above it and the kernel "
                    "could not reclaim enough",
                    mem.path,
                    text,
                ) from None
            raise

    # --- figures ---------------------------------------------------------------------------------------
    def memory_current(self, cg: Cgroup) -> int:
        return int(cg.backend_data["dirs"]["memory"].read("memory.usage_in_bytes"))

    def stats(self, cg: Cgroup) -> Stats:
        dirs = cg.backend_data["dirs"]
        mem = dirs["memory"]
        s = Stats()
        s.memory_current = int(mem.read("memory.usage_in_bytes"))
        s.memory_peak = int(mem.read("memory.max_usage_in_bytes"))
        oom = parse_flat_keyed(mem.read("memory.oom_control"))
        s.oom_kills = int(oom.get("oom_kill", 0))
        s.under_oom = bool(oom.get("under_oom", 0))
        failcnt = int(mem.read("memory.failcnt"))
        if cg.backend_data.get("stall"):
            s.memory_high_events = failcnt
        else:
            s.memory_max_events = failcnt
        s.cpu_usec = self._cpu_usec(dirs)
        if "unified" in dirs:
            u = dirs["unified"]
            ev = parse_flat_keyed(u.read("cgroup.events"))
            s.populated = bool(ev.get("populated", 0))
            s.frozen = bool(ev.get("frozen", 0))
        if "cpu" in dirs and cg.limits.cpu is not None:  # throttling exists only under a quota
            st = parse_flat_keyed(dirs["cpu"].read("cpu.stat"))
            s.nr_throttled = int(st.get("nr_throttled", 0))
            s.cpu_throttled_usec = int(st.get("throttled_time", 0)) // 1000
        if "pids" in dirs and cg.limits.pids_max is not None:
            p = dirs["pids"]
            s.pids_current = int(p.read("pids.current"))
            ev = parse_flat_keyed(p.read_optional("pids.events") or "")
            s.pids_denied = int(ev.get("max", 0))
        if "freezer" in dirs:
            s.frozen = dirs["freezer"].read("freezer.state").strip() == "FROZEN"
        if s.populated is None:
            s.populated = bool(self.pids(cg))
        return s

    def usage_stats(self, cg: Cgroup) -> Stats:
        dirs = cg.backend_data["dirs"]
        mem = dirs["memory"]
        s = Stats()
        s.memory_current = int(mem.read("memory.usage_in_bytes"))
        s.memory_peak = int(mem.read("memory.max_usage_in_bytes"))
        s.cpu_usec = self._cpu_usec(dirs)
        return s

    @staticmethod
    def _cpu_usec(dirs: dict[str, Dir]) -> int | None:
        if "unified" in dirs:
            return parse_usage_usec(dirs["unified"].read("cpu.stat"))
        if "cpuacct" in dirs or ("cpu" in dirs and dirs["cpu"].has("cpuacct.usage")):
            d = dirs.get("cpuacct") or dirs["cpu"]
            return int(d.read("cpuacct.usage")) // 1000
        return None

    # --- freeze / thaw / kill --------------------------------------------------------------------------
    def freeze(self, cg: Cgroup, timeout: float = 1.0) -> None:
        dirs = cg.backend_data["dirs"]
        if "unified" in dirs and self.features.freeze == "cgroup.freeze":
            u = dirs["unified"]
            u.write("cgroup.freeze", "1")
            # a task stalled at a v1 limit sleeps in the memcg OOM wait, which the freezer cannot interrupt:
            # it is stopped already and freezes as soon as it wakes
            self.wait_frozen(
                cg, lambda t: self.wait_file(u, "cgroup.events", "frozen", 1, t), timeout, lambda: self._stalled(cg)
            )
            return
        if "freezer" in dirs:
            fz = dirs["freezer"]
            fz.write("freezer.state", "FROZEN")

            def frozen(wait: float) -> bool:
                if fz.read("freezer.state").strip() == "FROZEN":
                    return True
                time.sleep(min(wait, 0.001))
                return False

            self.wait_frozen(cg, frozen, timeout)
            return
        raise Unsupported("no freezer on this host (neither cgroup.freeze nor the v1 freezer)", cg.name)

    @staticmethod
    def _stalled(cg: Cgroup) -> bool:
        oom = parse_flat_keyed(cg.backend_data["dirs"]["memory"].read("memory.oom_control"))
        return bool(oom.get("under_oom", 0))

    def thaw(self, cg: Cgroup) -> None:
        dirs = cg.backend_data["dirs"]
        if "unified" in dirs and self.features.freeze == "cgroup.freeze":
            dirs["unified"].write("cgroup.freeze", "0")
        elif "freezer" in dirs:
            dirs["freezer"].write("freezer.state", "THAWED")

    def kill(self, cg: Cgroup, timeout: float = 5.0) -> int:
        dirs = cg.backend_data["dirs"]
        before = self.pids(cg)
        if not before:
            return 0
        if "unified" in dirs and self.features.kill == "cgroup.kill":
            dirs["unified"].write("cgroup.kill", "1")
        elif "freezer" in dirs:
            self._freezer_kill(cg, dirs["freezer"], timeout)
        release_memory(before)
        return self.wait_empty(cg, before, timeout)

    def _freezer_kill(self, cg: Cgroup, fz: Dir, timeout: float) -> None:
        """Freeze so nothing can fork, SIGKILL every task, thaw so they can die."""
        try:
            self.freeze(cg, timeout=min(timeout, 1.0))
        except CgroupError:
            pass
        self.kill_pids(parse_pids(fz.read("cgroup.procs")), signal.SIGKILL)
        fz.write("freezer.state", "THAWED")

    # --- the controller's verbs --------------------------------------------------------------------------
    def set_soft_limit(self, cg: Cgroup, value: int | None) -> None:
        mem = cg.backend_data["dirs"]["memory"]
        hard = cg.limits.memory_max if cg.limits.memory_max is not None else MAX_BYTES
        if value is None or value >= hard:
            self._write_limit(mem, hard)
            mem.write("memory.oom_control", "0")
            cg.backend_data["stall"] = False
            return
        mem.write("memory.oom_control", "1")  # first: a charge racing the new limit stalls, never kills
        for _ in range(8):
            try:
                self._write_limit(mem, value)
                break
            except LimitRejected:
                # it grew past ``value`` since the caller read its usage (anonymous memory cannot be reclaimed
                # without swap): stall it where it stands now
                value = max(value, int(mem.read("memory.usage_in_bytes"))) + (256 << 10)
        else:
            raise LimitRejected(f"{cg.name}: could not set a soft limit under its growing usage", cg.name)
        cg.backend_data["stall"] = True

    def memory_events(self, cg: Cgroup) -> EventSource:
        efd = self.oom_eventfd(cg)
        return EventSource(efd, select.EPOLLIN, "oom", lambda: _drain_eventfd(efd))

    def usage_threshold(self, cg: Cgroup, level: int) -> EventSource:
        efd = self.threshold_eventfd(cg, level)
        return EventSource(efd, select.EPOLLIN, "threshold", lambda: _drain_eventfd(efd), level=level)

    # --- events (v1 eventfds) --------------------------------------------------------------------------
    def oom_eventfd(self, cg: Cgroup) -> int:
        """An eventfd that counts OOM events (stalls or kills) in ``cg``'s memory cgroup."""
        return self._event_control(cg, "memory.oom_control", "")

    def threshold_eventfd(self, cg: Cgroup, threshold: int) -> int:
        """An eventfd signalled when ``cg``'s memory usage crosses ``threshold`` bytes (either way)."""
        return self._event_control(cg, "memory.usage_in_bytes", f" {int(threshold)}")

    @staticmethod
    def _event_control(cg: Cgroup, fname: str, args: str) -> int:
        """Register an eventfd on ``fname`` through cgroup.event_control (v1 notifications)."""
        mem = cg.backend_data["dirs"]["memory"]
        efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        target = mem.open_file(fname)
        try:
            mem.write("cgroup.event_control", f"{efd} {target}{args}")
        except BaseException:
            os.close(efd)
            raise
        finally:
            os.close(target)
        return efd


def beside_our_tree(base: str, root_name: str) -> str:
    """Where the root goes in the v1 memory hierarchy when this process runs in a leaf of a tree of ours named
    ``root_name`` (``agentcg run --root R`` inside a call of root R): beside that tree, so that it joins the
    session (detect() does the same for the default ``agentcg*`` names)."""
    parts = base.split("/")
    if len(parts) > 3 and parts[-3] == root_name and parts[-1] == "agent":
        return "/".join(parts[:-3])
    if len(parts) > 4 and parts[-4] == root_name and parts[-2] == "tools":
        return "/".join(parts[:-4])
    return base


def _drain_eventfd(fd: int) -> None:
    try:
        os.eventfd_read(fd)
    except (BlockingIOError, OSError):
        pass
