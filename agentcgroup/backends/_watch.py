"""What the tree base (v2 and hybrid) waits for and watches in the kernel: PSI triggers, ``cgroup.events``
(frozen, populated), a kill's stragglers, and where a process is (``/proc/<pid>/cgroup``)."""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Callable, Iterable

from ..cgroupfs import Dir, read_proc_cgroup
from ..detect import HostLayout
from ..errors import CgroupError, FreezeTimeout
from ..parsers import parse_flat_keyed, parse_psi_avg10, proc_cgroup_path
from .base import Cgroup, EventSource, Features


class TreeWatch:
    """Mixed into :class:`~._tree.TreeManager` (which gives ``pids``, ``layout``, ``features``, ``main_role``)."""

    layout: HostLayout
    features: Features
    main_role: str

    def pids(self, cg: Cgroup) -> list[int]:
        raise NotImplementedError

    # --- notifications shared by v2 and hybrid ----------------------------------------------------------
    def psi_trigger(self, cg: Cgroup | None, resource: str, stall_us: int, window_us: int) -> EventSource | None:
        if resource not in ("memory", "cpu", "io"):
            raise ValueError(f"PSI resource {resource!r}")
        step = self.features.psi_min_window_us
        window = max(step, -(-window_us // step) * step) if step > 500_000 else max(500_000, window_us)
        window = min(window, 10_000_000)
        stall = min(stall_us, window)
        if cg is None:
            path = f"/proc/pressure/{resource}"
            if not os.path.exists(path):
                return None
            fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        else:
            d: Dir | None = cg.backend_data["dirs"].get("unified")
            if d is None or not d.has(f"{resource}.pressure"):
                return None
            fd = d.open_file(f"{resource}.pressure", os.O_RDWR | os.O_NONBLOCK)
        try:
            os.write(fd, f"some {stall} {window}\0".encode())
        except OSError:
            os.close(fd)
            raise
        return EventSource(fd, select.EPOLLPRI | select.EPOLLERR, "psi", lambda: None, level=stall)

    # --- where a process is, when a cgroup emptied, its memory pressure --------------------------------------
    def _proc_role(self, cg: Cgroup) -> str:
        """The hierarchy /proc/<pid>/cgroup is read in: cgroup2 where we have it (it names an exiting task's
        cgroup too), else the main one."""
        return "unified" if "unified" in cg.backend_data["dirs"] else self.main_role

    def holds(self, cg: Cgroup, pid: int) -> bool | None:
        text = read_proc_cgroup(pid)
        role = self._proc_role(cg)
        d = cg.backend_data["dirs"].get(role)
        if text is None or d is None:
            return None
        mount = self.layout.unified if role == "unified" else self.layout.v1.get(role)
        if mount is None or not d.path.startswith(mount.mountpoint):
            return None
        rel = d.path[len(mount.mountpoint) :]
        path = proc_cgroup_path(text, None if role == "unified" else role)
        if path is None or (role != "unified" and path == "/"):
            return None  # v1 shows an exiting task at "/": cannot tell
        return path.endswith(rel) or f"{rel}/" in path

    def memory_pressure(self, cg: Cgroup) -> tuple[float | None, float | None]:
        d = cg.backend_data["dirs"].get("unified")
        text = d.read_optional("memory.pressure") if d is not None else None
        if not text:
            return None, None
        psi = parse_psi_avg10(text)
        return psi.get("some"), psi.get("full")

    # --- waiting for the kernel, shared by v2 and hybrid ------------------------------------------------------
    def wait_empty(self, cg: Cgroup, before: list[int], timeout: float) -> int:
        """After a kill: wait until no process is left in ``cg`` (``cgroup.events`` where there is one),
        SIGKILLing stragglers (forks racing the kill, or no ``cgroup.kill``); ``len(before)``."""
        u = cg.backend_data["dirs"].get("unified")
        if u is not None and u.has("cgroup.events") and self.wait_file(u, "cgroup.events", "populated", 0, timeout):
            return len(before)
        deadline = time.monotonic() + timeout
        delay = 0.0002
        while left := self.pids(cg):
            if time.monotonic() > deadline:
                raise CgroupError(f"{cg.name}: {len(left)} processes still alive {timeout:g} s after kill", cg.name)
            self.kill_pids(left, signal.SIGKILL)
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        return len(before)

    @staticmethod
    def wait_frozen(
        cg: Cgroup, frozen: Callable[[float], bool], timeout: float, excused: Callable[[], bool] | None = None
    ) -> None:
        """After a freeze was asked: wait until ``frozen(wait_s)`` says so, or ``excused()`` (a task the freezer
        cannot reach now stops as soon as it wakes); past ``timeout``, :class:`FreezeTimeout`."""
        deadline = time.monotonic() + timeout
        while not frozen(max(0.0, min(0.05, deadline - time.monotonic()))):
            if excused is not None and excused():
                return
            if time.monotonic() >= deadline:
                raise FreezeTimeout(f"{cg.name}: not frozen after {timeout:g} s", cg.name)

    @staticmethod
    def wait_file(d: Dir, fname: str, key: str, want: int, timeout: float) -> bool:
        """Wait until flat-keyed ``fname`` (cgroup.events) shows ``key`` == ``want``, by POLLPRI."""
        deadline = time.monotonic() + timeout
        fd = d.open_file(fname)
        try:
            poller = select.poll()
            poller.register(fd, select.POLLPRI | select.POLLERR)
            while True:
                os.lseek(fd, 0, os.SEEK_SET)
                values = parse_flat_keyed(os.read(fd, 4096).decode())
                if values.get(key) == want:
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                poller.poll(min(left, 0.05) * 1000)
        finally:
            os.close(fd)

    @staticmethod
    def kill_pids(pids: Iterable[int], sig: int) -> int:
        """Signal each pid of a cgroup of ours; never pid 0/1 (process groups, init) nor ourselves."""
        n = 0
        me = os.getpid()
        for pid in pids:
            if pid <= 1 or pid == me:
                continue
            try:
                os.kill(pid, sig)
                n += 1
            except ProcessLookupError:
                pass
        return n
