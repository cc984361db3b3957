"""Docker with the systemd cgroup driver (Docker's default on systemd hosts), for
:class:`agentcgroup.integrations.docker.DockerSession`::

    agentcg.slice/agentcg-<session>.slice/       the session: a transient slice made over D-Bus, with the
                                                 session's budget (MemoryMax) and priority (CPUWeight)
      docker-<container id>.scope/               the container: runc makes this scope, with Delegate=yes
        container/                               the container's own processes, moved here so that the scope
                                                 can give controllers to children (cgroup v2: no process may
                                                 sit beside them)
        <root>/<session>/tools/<call id>/        one ``docker exec``: its limits, events, outcome

``docker run --cgroup-parent agentcg-<session>.slice`` puts the container in the session's slice. A ``docker
exec`` cannot join the scope itself any more (it has children with controllers), so runc puts it in the cgroup
of the container's init process, ``container/``: the session finds the call's gate there, as it does beneath
the container's cgroup with the cgroupfs driver, and moves it into the call's leaf before it runs the command.
Closing ends the calls, removes the container (systemd removes its scope), then stops the slice if it made it.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, NoReturn

from ..cgroupfs import Dir
from ..errors import CgroupError
from ..parsers import parse_pids, parse_proc_cgroup
from .bus import connected
from .naming import session_slice, slice_path

if TYPE_CHECKING:
    from ..session import Session

CONTAINER_LEAF = "container"


class SystemdDriver:
    """The session's slice and the container's scope."""

    def __init__(self, session: Session, root_name: str | None) -> None:
        self.session = session
        self.root_name = root_name
        self.slice = session_slice(session.name)
        self.made_slice = False
        self.scope_dir: str | None = None
        self._leaf: Dir | None = None

    def open_slice(self) -> str:
        """Make (or join) the session's slice; the container's ``--cgroup-parent``."""
        from ..controller.config import PRIORITIES

        if os.geteuid() != 0:
            _fail("the systemd cgroup driver needs root's Docker (a rootless Docker has its own manager)")
        limits = self.session.limits
        with connected(user=False) as bus:
            self.made_slice = bus.start_slice(
                self.slice,
                description=f"agentcgroup session {self.session.name}",
                memory_max=limits.memory_max,
                cpu_weight=limits.cpu_weight or PRIORITIES[self.session.priority][1],
            )
        return self.slice

    def adopt(self, container_id: str, init_pid: int) -> Session:
        """Check where runc put the container, give its processes a leaf, and return the session whose tree is
        beneath the container's scope (its calls' leaves)."""
        from ..backends.v2 import V2Manager
        from ..detect import detect
        from ..session import Session

        layout = detect()
        unified = layout.unified
        if unified is None:
            _fail("no cgroup2 mount: the systemd driver needs a cgroup v2 host")
        scope = f"docker-{container_id}.scope"
        want = f"{slice_path(self.slice)}/{scope}"
        with open(f"/proc/{init_pid}/cgroup") as f:
            where = next((e.path for e in parse_proc_cgroup(f.read()) if e.hierarchy_id == 0), "")
        if where != want:
            _fail(f"container {container_id[:12]} is in {where}, not in {want} (--cgroup-parent {self.slice})")
        self.scope_dir = unified.mountpoint + want
        d = Dir.open(self.scope_dir)
        try:
            if d.xattr("trusted.delegate") != b"1":
                _fail(f"runc did not delegate {scope} (no Delegate=yes): its cgroup is not ours to divide")
            self._leaf = d.child(CONTAINER_LEAF, create=True)
            for pid in parse_pids(d.read("cgroup.procs")):
                self._leaf.write("cgroup.procs", str(pid))
        finally:
            d.close()
        s = self.session
        manager = V2Manager(layout, self.root_name or "agentcg", base=self.scope_dir)
        inner = Session(s.name, limits=s.limits, priority=s.priority, manager=manager, warm=0)
        inner.open()
        return inner

    def container_pids(self) -> list[int]:
        """The container's processes outside our calls' leaves (where a new ``docker exec`` lands)."""
        if self._leaf is None:
            return []
        try:
            return parse_pids(self._leaf.read("cgroup.procs"))
        except CgroupError:
            return []

    def close(self) -> None:
        """After the container is gone: stop the session's slice if it was made here and nothing is left in it."""
        if self._leaf is not None:
            self._leaf.close()
            self._leaf = None
        if not self.made_slice:
            return
        self.made_slice = False
        try:
            # `docker rm -f` returns before systemd has removed the container's scope: wait for it (bounded), or
            # the slice looks busy and is left behind
            if self.scope_dir:
                _wait_gone(self.scope_dir, SCOPE_GONE_S)
            d = Dir.open(self.scope_dir.rsplit("/", 1)[0]) if self.scope_dir else None
            busy = d is not None and bool(d.children())
            if d is not None:
                d.close()
            if busy:
                return  # another handle of the same session still has a container in it
            with connected(user=False) as bus:
                bus.stop_unit(self.slice)  # a job: the slice's cgroup goes when it has run
            if self.scope_dir:
                _wait_gone(self.scope_dir.rsplit("/", 1)[0], SCOPE_GONE_S)
        except CgroupError:
            pass


#: how long close() waits for systemd to remove the container's scope, then the session's slice (seconds)
SCOPE_GONE_S = 10.0


def _wait_gone(path: str, timeout: float) -> bool:
    """Whether the cgroup directory ``path`` is gone within ``timeout`` seconds (systemd removes units' cgroups
    asynchronously)."""
    deadline = time.monotonic() + timeout
    while os.path.exists(path):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _fail(message: str) -> NoReturn:
    from ..integrations.docker import DockerError

    raise DockerError(message)
