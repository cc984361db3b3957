"""Where agentcgroup's root goes on a host whose cgroup tree systemd owns: always inside a subtree systemd
delegated to this process, never beside systemd's own units.

1. Inside an agent or tool-call leaf of an agentcgroup tree: that tree's base (the call joins its session).
2. Inside a unit with ``Delegate=yes`` that this process may write (``agentcg.service``, a job unit, a scope of
   ours): that unit. If the process sits in the unit's own cgroup, it first moves into the unit's
   ``supervisor`` leaf: cgroup v2 lets no cgroup have both processes and controllers for its children.
3. Anywhere else (a login session, a service without delegation, a user's shell): the process asks its
   manager (the system's as root, the user's own otherwise) for a transient scope with delegation,
   ``agentcg.slice/agentcg-<pid>-<tag>.scope`` (as ``systemd-run --scope -p Delegate=yes`` would), waits until
   systemd has moved it there, moves into the scope's ``supervisor`` leaf, and uses the scope. The scope ends by
   itself when its last process exits; systemd then removes its cgroups.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..cgroupfs import Dir
from ..errors import CgroupError, Unsupported
from ..parsers import parse_pids, parse_proc_cgroup
from .bus import BusError, SystemdBus, connected
from .naming import SLICE, SUPERVISOR, our_tree_base, unit_of

#: how long systemd may take to move this process into its new scope (well under 10 ms on a host; an
#: emulated guest is ~20x slower)
MOVE_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Placement:
    base: str  # the directory agentcgroup's root goes beneath
    unit: str  # the unit whose delegated subtree that is
    manager: str  # "system" or "user": whose unit
    how: str  # why there, in words (agentcg doctor prints it)


def own_cgroup(proc_root: str = "/proc") -> str:
    """This process's cgroup v2 path (the ``0::`` line of /proc/self/cgroup)."""
    with open(os.path.join(proc_root, "self/cgroup")) as f:
        for entry in parse_proc_cgroup(f.read()):
            if entry.hierarchy_id == 0:
                return entry.path
    raise Unsupported("this process has no cgroup v2 entry in /proc/self/cgroup")


class _Bus:
    """The manager's connection, opened on first use (most placements need none)."""

    def __init__(self, user: bool, factory: Callable[[bool], SystemdBus]) -> None:
        self.user, self._factory = user, factory
        self._bus: SystemdBus | None = None

    def __call__(self) -> SystemdBus:
        bus = self._bus
        if bus is None:
            bus = self._bus = self._factory(self.user)
        return bus

    def close(self) -> None:
        if self._bus is not None:
            self._bus.close()


def place(
    mount: str,
    own: str,
    *,
    create: bool = True,
    pid: int | None = None,
    user: bool | None = None,
    bus_factory: Callable[[bool], SystemdBus] = connected,
    proc_root: str = "/proc",
) -> Placement | None:
    """Where our root goes, for a process in cgroup ``own`` of the cgroup2 tree mounted at ``mount``. With
    ``create=False`` nothing is changed, and None means a scope (or a move) would be needed."""
    pid = os.getpid() if pid is None else pid
    user = os.geteuid() != 0 if user is None else user
    manager = "user" if user else "system"
    base = our_tree_base(own)
    if base is not None:
        unit = unit_of(base)
        return Placement(mount + base, unit[0] if unit else "", manager, "inside a tool-call leaf of agentcgroup")
    bus = _Bus(user, bus_factory)
    try:
        found = unit_of(own)
        if found is not None:
            found_unit, found_cg = found
            usable = _usable_unit(mount + found_cg, found_unit, own == found_cg, pid, bus)
            if usable is not None:
                if own == found_cg:
                    if not create:
                        return None
                    _into_supervisor(usable, pid)
                usable.close()
                return Placement(
                    mount + found_cg, found_unit, manager, f"in {found_unit}, which systemd delegated to it"
                )
        if not create:
            return None
        scope, scope_cg = _new_scope(mount, pid, bus(), proc_root)
        return Placement(mount + scope_cg, scope, manager, f"in its own transient scope {scope} (Delegate=yes)")
    finally:
        bus.close()


def _usable_unit(unit_dir: str, unit: str, inside_root: bool, pid: int, bus: _Bus) -> Dir | None:
    """The unit's directory if agentcgroup may build its tree there: delegated, writable by us, and (when we
    are in its root) holding no process but ours. None otherwise."""
    if unit.startswith("session-") and unit.endswith(".scope"):
        return None  # logind's session scopes are never delegated
    try:
        d = Dir.open(unit_dir)
    except CgroupError:
        return None
    try:
        if not (d.writable("cgroup.procs") and d.writable("cgroup.subtree_control")):
            raise LookupError
        marked = b"1" in (d.xattr("trusted.delegate"), d.xattr("user.delegate"))
        ours = unit.startswith("agentcg-") and unit.endswith(".scope")  # made by _new_scope, with Delegate=yes
        if not (marked or ours or bus().delegates(unit)):
            raise LookupError
        if inside_root and set(parse_pids(d.read("cgroup.procs"))) - {pid}:
            raise LookupError  # other processes share its root: it cannot get controllers for children
        return d
    except (LookupError, BusError, CgroupError):
        d.close()
        return None


def _into_supervisor(unit_dir: Dir, pid: int) -> None:
    leaf = unit_dir.child(SUPERVISOR, create=True)
    try:
        leaf.write("cgroup.procs", str(pid))
    finally:
        leaf.close()


def _new_scope(mount: str, pid: int, bus: SystemdBus, proc_root: str) -> tuple[str, str]:
    name = f"agentcg-{pid}-{secrets.token_hex(2)}.scope"
    bus.start_scope(name, [pid], slice_name=SLICE, description=f"agentcgroup, process {pid}")
    deadline = time.monotonic() + MOVE_TIMEOUT_S
    delay = 0.0002
    while not (own := own_cgroup(proc_root)).endswith(f"/{name}"):
        if time.monotonic() > deadline:
            raise Unsupported(f"systemd ({bus.scope}) did not move process {pid} into {name} in {MOVE_TIMEOUT_S:g} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.01)
    d = Dir.open(mount + own)
    try:
        _into_supervisor(d, pid)
    finally:
        d.close()
    return name, own
