"""Which kind of host is this? Decided once, from text that tests can fake.

Reads ``<proc_root>/self/mountinfo`` and ``<proc_root>/self/cgroup`` and answers with a :class:`HostLayout`:
the mode (``v2``, ``hybrid``, ``v1`` or ``none``), each mounted hierarchy, and where beneath each one this
process may create its cgroups:

* the v1 memory hierarchy: beneath the cgroup this process started in (never in it), or, when that is an
  agent or tool-call leaf of an agentcgroup tree, beneath where that tree's agentcgroup started;
* the other v1 hierarchies and cgroup2: beneath the root of the mount.
"""

from __future__ import annotations

import os
import posixpath
import re
import sys
from collections.abc import Callable
from functools import lru_cache

from ._record import Frozen
from .parsers import Mount, parse_mountinfo, parse_proc_cgroup, v1_controllers

#: the v1 controllers the hybrid/v1 backend drives
V1_USED = ("memory", "cpu", "cpuacct", "pids", "freezer")


class Hierarchy(Frozen):
    """One mounted cgroup hierarchy, as this process sees it."""

    FIELDS = ("version", "controllers", "mountpoint", "own_path", "base")
    version: int  # 1 or 2
    controllers: tuple[str, ...]  # v1: from mount options; v2: from cgroup.controllers of the mount root
    mountpoint: str
    own_path: str  # this process's cgroup, as a directory under mountpoint
    base: str  # where our root may be created (a directory)

    def __init__(self, version: int, controllers: tuple[str, ...], mountpoint: str, own_path: str, base: str) -> None:
        self._set("version", version)
        self._set("controllers", controllers)
        self._set("mountpoint", mountpoint)
        self._set("own_path", own_path)
        self._set("base", base)


class HostLayout(Frozen):
    FIELDS = ("mode", "unified", "v1", "reason")
    mode: str
    unified: Hierarchy | None
    v1: dict[str, Hierarchy]  # controller name -> hierarchy
    reason: str  # why the mode is "none", or remarks

    def __init__(
        self, mode: str, unified: Hierarchy | None = None, v1: dict[str, Hierarchy] | None = None, reason: str = ""
    ) -> None:
        self._set("mode", mode)
        self._set("unified", unified)
        self._set("v1", {} if v1 is None else v1)
        self._set("reason", reason)

    def describe(self) -> str:
        if self.mode == "none":
            return f"none ({self.reason})"
        parts = [self.mode]
        if self.unified:
            ctrl = " ".join(self.unified.controllers) or "no controllers"
            parts.append(f"cgroup2 at {self.unified.mountpoint} ({ctrl})")
        if self.v1:
            parts.append("v1: " + ", ".join(sorted(self.v1)))
        return "; ".join(parts)


def _own_dir(mount: Mount, cg_path: str) -> str:
    """Directory of cgroup ``cg_path`` (as in /proc/self/cgroup) under ``mount``."""
    rel = posixpath.relpath(cg_path, mount.root) if mount.root != "/" else cg_path.strip("/")
    if not rel or rel == ".":
        return mount.mountpoint
    if rel.startswith(".."):
        # our cgroup is not visible under this mount (another namespace); the mount root is all we see
        return mount.mountpoint
    return posixpath.join(mount.mountpoint, rel)


#: an agent or tool-call leaf of an agentcgroup tree, at the end of a path
_OUR_LEAF = re.compile(r"^(.*)/agentcg[^/]*/[^/]+/(agent|tools/[^/]+)$")


def _outside_our_tree(own_dir: str) -> str:
    """Where an agentcgroup started from inside one of its own leaves (an agent's ``agentcg run --session``)
    puts its root: beside the tree it is in, where the agentcgroup that made that leaf started, so that it
    joins the session rather than building a second tree inside the leaf."""
    m = _OUR_LEAF.match(own_dir)
    return m.group(1) if m else own_dir


def layout_from_text(
    mountinfo: str,
    proc_cgroup: str,
    read_controllers: Callable[[str], list[str]] | None = None,
) -> HostLayout:
    """Build the layout from the two texts. ``read_controllers(dir)`` returns a cgroup2 dir's controllers."""
    mounts = parse_mountinfo(mountinfo)
    own = parse_proc_cgroup(proc_cgroup)
    by_ctrl = {c: p.path for p in own for c in p.controllers}
    unified_path = next((p.path for p in own if p.hierarchy_id == 0), None)

    unified: Hierarchy | None = None
    v1: dict[str, Hierarchy] = {}
    seen_points: set[str] = set()
    for m in mounts:
        if m.mountpoint in seen_points:
            continue
        if m.fstype == "cgroup2" and unified is None:
            seen_points.add(m.mountpoint)
            own_dir = _own_dir(m, unified_path or "/")
            ctrls: tuple[str, ...] = ()
            if read_controllers is not None:
                ctrls = tuple(read_controllers(m.mountpoint))
            unified = Hierarchy(2, ctrls, m.mountpoint, own_dir, m.mountpoint)
        elif m.fstype == "cgroup":
            ctrls = v1_controllers(m)
            used = [c for c in ctrls if c in V1_USED]
            if not used:
                continue
            seen_points.add(m.mountpoint)
            path = next((by_ctrl[c] for c in ctrls if c in by_ctrl), "/")
            own_dir = _own_dir(m, path)
            base = _outside_our_tree(own_dir) if "memory" in ctrls else m.mountpoint
            h = Hierarchy(1, ctrls, m.mountpoint, own_dir, base)
            for c in used:
                v1.setdefault(c, h)

    if "memory" in v1:
        mode = "hybrid" if unified is not None else "v1"
        return HostLayout(mode, unified, v1)
    if unified is not None and "memory" in unified.controllers:
        return HostLayout("v2", unified, {})
    if unified is not None:
        return HostLayout("none", unified, v1, "cgroup2 is mounted but has no memory controller")
    return HostLayout("none", None, v1, "no cgroup hierarchy with a memory controller is mounted")


def _read_controllers(mountpoint: str) -> list[str]:
    try:
        with open(os.path.join(mountpoint, "cgroup.controllers")) as f:
            return f.read().split()
    except OSError:
        return []


@lru_cache(maxsize=8)
def detect(proc_root: str = "/proc") -> HostLayout:
    """The layout of this host, read once and cached (per ``proc_root``)."""
    if not sys.platform.startswith("linux"):
        return HostLayout("none", reason=f"cgroups are Linux-only (this is {sys.platform})")
    try:
        with open(os.path.join(proc_root, "self/mountinfo")) as f:
            mountinfo = f.read()
        with open(os.path.join(proc_root, "self/cgroup")) as f:
            proc_cgroup = f.read()
    except OSError as exc:
        return HostLayout("none", reason=f"cannot read {exc.filename}: {exc.strerror}")
    return layout_from_text(mountinfo, proc_cgroup, _read_controllers)
