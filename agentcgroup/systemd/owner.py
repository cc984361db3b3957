"""Is systemd the owner of this host's cgroup tree? As ``sd_booted()`` says, plus PID 1's name: systemd is PID 1
and ``/run/systemd/system`` exists (a container whose /run shows the host's has the one and not the other)."""

from __future__ import annotations

import os


def systemd_owns_tree(proc_root: str = "/proc", run_root: str = "/run") -> bool:
    if not os.path.isdir(os.path.join(run_root, "systemd/system")):
        return False
    try:
        with open(os.path.join(proc_root, "1/comm")) as f:
            return f.read().strip() == "systemd"
    except OSError:
        return False
