"""A fake cgroupfs in a temp dir: directories get the control files the kernel would give them.

Installed through the two test seams of :mod:`agentcgroup.cgroupfs` (``MKDIR_HOOK``, ``RMDIR_HOOK``); the
backends cannot tell. Values written stay in the files, so tests read back what a backend wrote.
"""

from __future__ import annotations

import os
from pathlib import Path

from agentcgroup.detect import Hierarchy, HostLayout

V2_FILES = {
    "cgroup.procs": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "cgroup.freeze": "0\n",
    "cgroup.kill": "",
    "cgroup.subtree_control": "",
    "memory.max": "max\n",
    "memory.high": "max\n",
    "memory.low": "0\n",
    "memory.oom.group": "0\n",
    "memory.current": "0\n",
    "memory.peak": "0\n",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    "memory.pressure": (
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    ),
    "cpu.weight": "100\n",
    "cpu.max": "max 100000\n",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
    "pids.max": "max\n",
    "pids.current": "0\n",
    "pids.events": "max 0\n",
}
UNIFIED_ONLY = {k: v for k, v in V2_FILES.items() if k.startswith("cgroup.") or k in ("cpu.stat", "memory.pressure")}
V1_FILES = {
    "memory": {
        "cgroup.procs": "",
        "cgroup.event_control": "",
        "memory.limit_in_bytes": "9223372036854771712\n",
        "memory.soft_limit_in_bytes": "9223372036854771712\n",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        "memory.usage_in_bytes": "0\n",
        "memory.max_usage_in_bytes": "0\n",
        "memory.failcnt": "0\n",
    },
    "cpu": {
        "cgroup.procs": "",
        "cpu.cfs_quota_us": "-1\n",
        "cpu.cfs_period_us": "100000\n",
        "cpu.shares": "1024\n",
        "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
        "cpuacct.usage": "0\n",  # cpu,cpuacct co-mounted, as distributions mount them
    },
    "pids": {"cgroup.procs": "", "pids.max": "max\n", "pids.current": "0\n", "pids.events": "max 0\n"},
    "freezer": {"cgroup.procs": "", "freezer.state": "THAWED\n"},
}


class FakeCgroupFS:
    def __init__(self, tmp: Path, mode: str) -> None:
        self.tmp, self.mode = tmp, mode
        self.kind_of: dict[str, str] = {}  # mount dir -> "v2" | "unified" | v1 controller
        if mode == "v2":
            self._mount("v2", tmp / "unified")
            (tmp / "unified" / "cgroup.controllers").write_text("cpu memory pids io\n")
        else:
            self._mount("unified", tmp / "unified")
            for ctrl in ("memory", "cpu", "pids", "freezer"):
                self._mount(ctrl, tmp / ctrl)
            (tmp / "memory" / "started-here").mkdir()
            self.populate(str(tmp / "memory" / "started-here"))

    def _mount(self, kind: str, path: Path) -> None:
        path.mkdir(parents=True)
        self.kind_of[str(path)] = kind
        (path / "cgroup.procs").write_text("")
        if kind == "v2":
            (path / "cgroup.subtree_control").write_text("")

    def _kind(self, path: str) -> str:
        for mount, kind in self.kind_of.items():
            if path.startswith(mount + "/"):
                return kind
        raise AssertionError(f"{path} is outside the fake mounts")

    def populate(self, path: str) -> None:
        kind = self._kind(path)
        files = V2_FILES if kind == "v2" else UNIFIED_ONLY if kind == "unified" else V1_FILES[kind]
        for name, text in files.items():
            Path(path, name).write_text(text)
        if kind == "v2":  # the fake cannot track "+ctrl" writes: every child is offered every controller
            Path(path, "cgroup.controllers").write_text("cpu memory pids io\n")

    def unpopulate(self, path: str) -> None:
        for entry in os.scandir(path):
            if entry.is_file():
                os.unlink(entry.path)

    def layout(self) -> HostLayout:
        t = str(self.tmp)
        if self.mode == "v2":
            u = Hierarchy(2, ("cpu", "memory", "pids", "io"), f"{t}/unified", f"{t}/unified", f"{t}/unified")
            return HostLayout("v2", u, {})
        u = Hierarchy(2, (), f"{t}/unified", f"{t}/unified", f"{t}/unified")
        v1 = {
            "memory": Hierarchy(1, ("memory",), f"{t}/memory", f"{t}/memory/started-here", f"{t}/memory/started-here"),
            "cpu": Hierarchy(1, ("cpu",), f"{t}/cpu", f"{t}/cpu", f"{t}/cpu"),
            "pids": Hierarchy(1, ("pids",), f"{t}/pids", f"{t}/pids", f"{t}/pids"),
            "freezer": Hierarchy(1, ("freezer",), f"{t}/freezer", f"{t}/freezer", f"{t}/freezer"),
        }
        return HostLayout("hybrid", u, v1)


def read(path: Path) -> str:
    return path.read_text().strip()
