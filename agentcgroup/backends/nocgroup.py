"""No cgroup access (unprivileged, macOS, no memory controller): rlimits and process-tree sampling.

What it does, and says it cannot do:

* memory: ``RLIMIT_DATA`` (Linux) / ``RLIMIT_AS`` per process: an allocation over the limit *fails* (the
  program sees ENOMEM / MemoryError); a tree of processes can use the limit once each. Not a kill.
* CPU quota, pids: not enforced (RLIMIT_NPROC is per user, not per call); reported as such.
* the tree: each call starts a new session; it is found again by process group, by parentage (this process
  becomes a child subreaper on Linux, so double-forked orphans come back to it) and by an environment cookie
  ``AGENTCG_CALL`` that children inherit (as Jenkins finds a build's processes). A process that leaves all
  three (new session, re-parented elsewhere, environment wiped) escapes.
* memory figures are sampled (sum of RSS over the tree): peaks between samples are missed.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from ..cgroupfs import check_name
from ..detect import HostLayout
from ..errors import NotFound, Unsupported
from ..limits import Limits
from ..spawn import FAST_SPAWN, Process
from ..spawn import spawn as _spawn
from ..units import MAX_BYTES
from .base import Cgroup, Features, Manager, Stats

COOKIE = "AGENTCG_CALL"
_PR_SET_CHILD_SUBREAPER = 36


def _set_subreaper(on: bool) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1 if on else 0, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


class NoCgroupManager(Manager):
    kind = "none"

    def __init__(self, layout: HostLayout | None = None, root_name: str = "agentcg") -> None:
        import psutil  # noqa: F401  (fail early and clearly if missing)

        check_name(root_name, "root name")
        self.layout = layout or HostLayout("none", reason="cgroups not used")
        self.root_name = root_name
        self._cgroups: dict[tuple[str, ...], Cgroup] = {}
        self._subreaper = _set_subreaper(True)
        notes = [
            f"no cgroups ({self.layout.reason}): limits are per-process rlimits, not per call",
            "memory: RLIMIT_DATA makes allocations over the limit fail; nothing is OOM-killed",
            "CPU quota and pids limits are not enforced; freeze is SIGSTOP of the known tree",
            "memory figures are sampled, peaks between samples are missed",
        ]
        if not self._subreaper:
            notes.append("not a child subreaper: double-forked processes may escape a kill")
        self.features = Features(
            backend="none",
            enforce_memory=False,
            enforce_cpu=False,
            enforce_pids=False,
            memory_high="",
            freeze="SIGSTOP",
            kill="process-group+cookie",
            memory_peak="sampled",
            oom_group="",
            events="polling",
            psi="",
            psi_min_window_us=0,
            fast_spawn=FAST_SPAWN,
            notes=tuple(notes),
        )

    # --- lifecycle ---------------------------------------------------------------------------------------
    def create(
        self,
        path: Sequence[str],
        limits: Limits | None = None,
        *,
        exist_ok: bool = True,
        full: bool = False,
        shape: Limits | None = None,
    ) -> Cgroup:
        path = tuple(check_name(p) for p in path)
        if path in self._cgroups:
            if not exist_ok:
                raise FileExistsError("/".join(path))
            cg = self._cgroups[path]
        else:
            parent = self.create(path[:-1]) if len(path) > 1 else None
            cg = Cgroup(path, parent, Limits(), {"procs": [], "peak": 0, "cpu_done_usec": 0})
            self._cgroups[path] = cg
        if limits is not None:
            self.set_limits(cg, limits)
        return cg

    def open(self, path: Sequence[str]) -> Cgroup:
        try:
            return self._cgroups[tuple(path)]
        except KeyError:
            raise NotFound(f"no such group {'/'.join(path)} (nothing persists without cgroups)") from None

    def children(self, path: Sequence[str]) -> list[str]:
        n = len(path)
        return sorted({p[n] for p in self._cgroups if len(p) > n and p[:n] == tuple(path)})

    def destroy(self, cg: Cgroup, timeout: float = 5.0) -> None:
        for p in [p for p in self._cgroups if p[: len(cg.path)] == cg.path]:
            self.kill(self._cgroups[p], timeout)
            self._cgroups.pop(p, None)
        cg.closed = True

    def close(self) -> None:
        for cg in list(self._cgroups.values()):
            self.destroy(cg)
        if self._subreaper:
            self._reap_orphans()
            _set_subreaper(False)
            self._subreaper = False

    # --- limits and processes -----------------------------------------------------------------------------
    def set_limits(self, cg: Cgroup, limits: Limits) -> None:
        cg.limits = cg.limits.merged(limits)

    def _rlimits(self, cg: Cgroup) -> list[tuple[int, int, int]]:
        mem = None
        node: Cgroup | None = cg
        while node is not None:  # the tightest memory limit on the path
            for v in (node.limits.memory_max, node.limits.memory_high):
                if v is not None and v < MAX_BYTES:
                    mem = v if mem is None else min(mem, v)
            node = node.parent
        if mem is None:
            return []
        res = resource.RLIMIT_DATA if sys.platform.startswith("linux") else resource.RLIMIT_AS
        return [(res, mem, mem)]

    def spawn(self, cg: Cgroup, argv: Sequence[str], **kwargs: Any) -> Process:
        env = dict(kwargs.pop("env", None) or os.environ)
        env[COOKIE] = f"{self.root_name}/{cg.name}"
        kwargs["new_session"] = True
        proc = _spawn(argv, env=env, rlimits=self._rlimits(cg), **kwargs)
        cg.backend_data["procs"].append(proc)
        return proc

    def attach(self, cg: Cgroup, pid: int) -> None:
        raise Unsupported("without cgroups an existing process cannot be moved into a group", cg.name)

    def _tree(self, cg: Cgroup) -> list[Any]:
        import psutil

        cookie = f"{self.root_name}/{cg.name}"
        found: dict[int, Any] = {}
        roots = []
        for p in cg.backend_data["procs"]:
            if p.returncode is None:
                try:
                    roots.append(psutil.Process(p.pid))
                except psutil.NoSuchProcess:
                    pass
        for r in roots:
            found[r.pid] = r
            try:
                for c in r.children(recursive=True):
                    found[c.pid] = c
            except psutil.NoSuchProcess:
                pass
        # orphans that came back to us (subreaper) or kept the process group / cookie
        pgids = {p.pid for p in cg.backend_data["procs"]}
        try:
            candidates = psutil.Process().children(recursive=True)
        except psutil.NoSuchProcess:  # pragma: no cover
            candidates = []
        for c in candidates:
            if c.pid in found:
                continue
            try:
                if os.getpgid(c.pid) in pgids:
                    found[c.pid] = c
                    continue
                env = c.environ()
                if env.get(COOKIE, "").startswith(cookie):
                    found[c.pid] = c
            except (psutil.Error, OSError):
                continue
        return list(found.values())

    def pids(self, cg: Cgroup) -> list[int]:
        return sorted(p.pid for p in self._tree(cg))

    # --- figures and control -----------------------------------------------------------------------------
    def stats(self, cg: Cgroup) -> Stats:
        import psutil

        rss, cpu = 0, 0.0
        for p in self._tree(cg):
            try:
                with p.oneshot():
                    rss += p.memory_info().rss
                    t = p.cpu_times()
                    cpu += t.user + t.system
            except psutil.Error:
                continue
        done = 0
        for proc in cg.backend_data["procs"]:
            if proc.rusage is not None:
                ru = proc.rusage
                done += int((ru.ru_utime + ru.ru_stime) * 1e6)
                maxrss = ru.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
                cg.backend_data["peak"] = max(cg.backend_data["peak"], maxrss)
        cg.backend_data["peak"] = max(cg.backend_data["peak"], rss)
        live = self.pids(cg)
        return Stats(
            memory_current=rss,
            memory_peak=cg.backend_data["peak"],
            cpu_usec=done + int(cpu * 1e6),
            pids_current=len(live),
            populated=bool(live),
        )

    def freeze(self, cg: Cgroup, timeout: float = 1.0) -> None:
        self._signal_tree(cg, signal.SIGSTOP)

    def thaw(self, cg: Cgroup) -> None:
        self._signal_tree(cg, signal.SIGCONT)

    def _signal_tree(self, cg: Cgroup, sig: int) -> int:
        n = 0
        for p in self._tree(cg):
            try:
                p.send_signal(sig)
                n += 1
            except Exception:
                continue
        return n

    def kill(self, cg: Cgroup, timeout: float = 5.0) -> int:
        deadline = time.monotonic() + timeout
        total = 0
        for proc in cg.backend_data["procs"]:
            if proc.returncode is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        while True:
            n = self._signal_tree(cg, signal.SIGKILL)
            total += n
            for proc in cg.backend_data["procs"]:
                proc.poll()
            self._reap_orphans()
            if n == 0 or time.monotonic() > deadline:
                return total
            time.sleep(0.005)

    def _reap_orphans(self) -> None:
        """As a subreaper we inherit orphans: reap the ones that died (never our tracked children)."""
        if not self._subreaper:
            return
        import psutil

        tracked = {p.pid for cg in self._cgroups.values() for p in cg.backend_data["procs"]}
        for c in psutil.Process().children():
            if c.pid in tracked:
                continue
            try:
                if c.status() == psutil.STATUS_ZOMBIE:
                    os.waitpid(c.pid, os.WNOHANG)
            except (psutil.Error, ChildProcessError):
                continue
