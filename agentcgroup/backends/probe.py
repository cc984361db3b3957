"""Probe, once, what this host's cgroups can do. Files are looked for in our own root cgroup."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..spawn import FAST_SPAWN

if TYPE_CHECKING:
    from ._tree import TreeManager
    from .base import Features

CAP_SYS_RESOURCE = 24


def has_cap(cap: int, proc_root: str = "/proc") -> bool:
    try:
        with open(f"{proc_root}/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> cap & 1)
    except OSError:
        pass
    return False


def psi_min_window_us(proc_root: str = "/proc") -> int:
    """Smallest PSI trigger window we may use: 500 ms with CAP_SYS_RESOURCE, else multiples of 2 s."""
    return 500_000 if has_cap(CAP_SYS_RESOURCE, proc_root) else 2_000_000


def system_psi(proc_root: str = "/proc") -> bool:
    return os.path.exists(f"{proc_root}/pressure/memory")


def probe_features(manager: TreeManager, proc_root: str = "/proc") -> Features:
    """Features of a TreeManager (v2 or hybrid), from the files of its root cgroup in each role."""
    from .base import Features

    notes: list[str] = []
    roots = {role: manager._root(role) for role in manager.roles}
    kind = manager.kind
    u = roots.get("unified")
    mem = roots.get("memory")
    if kind == "v2":
        assert u is not None
        memory_high = "memory.high" if u.has("memory.high") else ""
        peak = "memory.peak" if u.has("memory.peak") else "sampled"
        oom_group = "memory.oom.group" if u.has("memory.oom.group") else ""
        events = "cgroup2 notifications"
        psi = "per-cgroup" if u.has("memory.pressure") else ("system" if system_psi(proc_root) else "")
        enforce_cpu, enforce_pids = u.has("cpu.max"), u.has("pids.max")
    else:
        assert mem is not None
        memory_high = "v1-stall" if mem.has("memory.oom_control") else ""
        peak = "max_usage_in_bytes"
        oom_group = "cgroup.kill on OOM" if (u is not None and u.has("cgroup.kill")) else "SIGKILL on OOM"
        events = "eventfd" if mem.has("cgroup.event_control") else "polling"
        psi = (
            "per-cgroup" if u is not None and u.has("memory.pressure") else ("system" if system_psi(proc_root) else "")
        )
        enforce_cpu, enforce_pids = "cpu" in roots, "pids" in roots
        notes.append(
            "v1 has no memory.high: the soft limit stalls at the limit (oom_kill_disable=1) "
            "and the controller releases or kills within a deadline"
        )
        if u is None:
            notes.append("no cgroup2 mount: freeze/kill through the v1 freezer, no per-cgroup PSI")
    if u is not None and u.has("cgroup.freeze"):
        freeze = "cgroup.freeze"
    elif "freezer" in roots or (kind != "v2" and "freezer" in manager.layout.v1):
        freeze = "freezer"
    else:
        freeze = ""
        notes.append("no freezer: graduated enforcement goes from throttle straight to kill")
    if u is not None and u.has("cgroup.kill"):
        kill = "cgroup.kill"
    elif freeze:
        kill = "freezer+SIGKILL"
    else:
        kill = "SIGKILL-loop"
    window = psi_min_window_us(proc_root)
    if psi and window > 500_000:
        notes.append("no CAP_SYS_RESOURCE: PSI trigger windows must be multiples of 2 s")
    if not FAST_SPAWN:
        notes.append("C spawner not built (no compiler at install): each tool call costs ~1-2 ms more")
    return Features(
        backend=kind,
        enforce_memory=True,
        enforce_cpu=enforce_cpu,
        enforce_pids=enforce_pids,
        memory_high=memory_high,
        freeze=freeze,
        kill=kill,
        memory_peak=peak,
        oom_group=oom_group,
        events=events,
        psi=psi,
        psi_min_window_us=window,
        fast_spawn=FAST_SPAWN,
        notes=tuple(notes),
    )
