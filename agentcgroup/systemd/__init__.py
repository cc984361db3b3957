"""Hosts whose cgroup tree systemd owns (most Linux machines: systemd + cgroup v2).

There, agentcgroup writes only inside a subtree systemd delegated to it (:mod:`.placement`); it talks to
systemd through its D-Bus API (:mod:`.bus`, imported only when needed); the daemon runs as ``agentcg.service``
(:mod:`.unit_file`); Docker's systemd cgroup driver gets a slice per session (:mod:`.naming`).
"""

from __future__ import annotations

from ..detect import HostLayout
from .owner import systemd_owns_tree
from .placement import Placement, own_cgroup, place


def delegated_base(layout: HostLayout, proc_root: str = "/proc", *, create: bool = True) -> Placement | None:
    """Where agentcgroup's root goes on this host when systemd owns its cgroup2 tree, moving this process into a
    delegated scope first if it is in none (``create=False``: only if nothing needs to change). None when
    systemd does not own the tree (then the tree's root is ours to use, as before)."""
    if layout.mode != "v2" or layout.unified is None or not systemd_owns_tree(proc_root):
        return None
    mount = layout.unified.mountpoint
    return place(mount, own_cgroup(proc_root), create=create, proc_root=proc_root)


__all__ = ["Placement", "delegated_base", "own_cgroup", "place", "systemd_owns_tree"]
