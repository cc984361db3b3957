"""The backend factory: decides once which Manager this host gets.

``AGENTCG_BACKEND`` (or ``backend=``) forces one: ``v2``, ``hybrid`` (also for pure v1), ``none``.
``AGENTCG_ROOT`` names the root cgroup (default ``agentcg``); ``AGENTCG_PARENT`` puts the v2 root beneath a
delegated cgroup instead of the mount's root. Where systemd owns the v2 tree, the root goes beneath a subtree it
delegated to this process (agentcgroup.systemd), never beside its units.
"""

from __future__ import annotations

import os

from ..detect import HostLayout, detect
from ..errors import InvalidValue, PermissionDenied, Unsupported
from .base import Cgroup, Features, Manager, Stats

DEFAULT_ROOT = "agentcg"
BACKENDS = ("auto", "v2", "hybrid", "none")


def get_manager(
    root_name: str | None = None,
    *,
    backend: str | None = None,
    layout: HostLayout | None = None,
    proc_root: str = "/proc",
) -> Manager:
    """A Manager for this host, rooted at ``root_name``. Falls back to ``none`` (saying why) when cgroups
    are there but not writable, unless a backend was asked for explicitly."""
    root_name = root_name or os.environ.get("AGENTCG_ROOT") or DEFAULT_ROOT
    choice = (backend or os.environ.get("AGENTCG_BACKEND") or "auto").lower()
    if choice not in BACKENDS:
        raise InvalidValue("backend", choice, f"expected one of {', '.join(BACKENDS)}")
    detected = layout is None
    layout = layout or detect(proc_root)
    mode = layout.mode if choice == "auto" else choice
    if mode == "v1":
        mode = "hybrid"
    try:
        if mode == "v2":
            from .v2 import V2Manager

            base = os.environ.get("AGENTCG_PARENT") or (_systemd_base(layout, proc_root) if detected else None)
            return V2Manager(layout, root_name, base=base)
        if mode == "hybrid":
            from .hybrid import HybridManager

            return HybridManager(layout, root_name)
    except (PermissionDenied, Unsupported) as exc:
        if choice != "auto":
            raise
        layout = HostLayout("none", layout.unified, layout.v1, f"cgroups not writable here: {exc}")
    from .nocgroup import NoCgroupManager

    return NoCgroupManager(layout, root_name)


def _systemd_base(layout: HostLayout, proc_root: str) -> str | None:
    """Where the root goes when systemd owns the tree: inside a subtree it delegated to us (issue 17)."""
    from ..systemd import delegated_base

    placement = delegated_base(layout, proc_root)
    return placement.base if placement else None


__all__ = ["BACKENDS", "DEFAULT_ROOT", "Cgroup", "Features", "Manager", "Stats", "get_manager"]
