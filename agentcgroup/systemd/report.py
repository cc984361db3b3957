"""What ``agentcg doctor`` says about systemd: which path this host and user get, and why."""

from __future__ import annotations

import os
from typing import Any

from ..detect import HostLayout
from .owner import systemd_owns_tree


def describe(layout: HostLayout, backend: str, proc_root: str = "/proc") -> dict[str, Any]:
    """``{"owner": ..., "path": ..., "why": ...}`` for this process (after the factory placed it)."""
    if not systemd_owns_tree(proc_root):
        return {"owner": "no systemd", "path": "as on any host without it", "why": "systemd is not PID 1 here"}
    who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
    if layout.mode in ("hybrid", "v1"):
        return {
            "owner": "systemd",
            "path": "v1 hierarchies, as without systemd",
            "why": f"this host is {layout.mode}: its controllers are on v1 hierarchies",
        }
    if backend == "none":
        return {
            "owner": "systemd",
            "path": "none: nothing is enforced",
            "why": f"as {who}, no delegated subtree could be had: {layout.reason or 'cgroup2 without controllers'}",
        }
    from . import delegated_base

    p = delegated_base(layout, proc_root, create=False)
    if p is None:
        return {"owner": "systemd", "path": "unknown", "why": "this process is in no delegated subtree"}
    try:
        with open(os.path.join(p.base, "cgroup.controllers")) as f:
            ctrls = f.read().split()
    except OSError:
        ctrls = []
    manager = "the system manager" if p.manager == "system" else f"{who}'s own manager (user@{os.geteuid()}.service)"
    return {
        "owner": "systemd",
        "unit": p.unit,
        "base": p.base,
        "path": f"{p.manager} unit {p.unit}",
        "why": f"as {who}, {p.how}, from {manager}; delegated controllers: {' '.join(ctrls) or 'none'}",
    }
