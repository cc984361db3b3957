"""Where the root goes on a systemd host, on a fake cgroup tree with a fake manager: the decisions, the move
into the ``supervisor`` leaf, and what is asked of systemd (the real thing runs in the systemd guest)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentcgroup.errors import Unsupported
from agentcgroup.systemd.bus import BusError
from agentcgroup.systemd.placement import place

PID = 4242


class FakeBus:
    """A manager: knows which units delegate; a started scope gets its dir and the process moves in."""

    def __init__(self, mount: Path, proc: Path, delegating=(), refuse: str | None = None) -> None:
        self.mount, self.proc, self.delegating, self.refuse = mount, proc, set(delegating), refuse
        self.calls: list[tuple] = []
        self.scope = "system"

    def __call__(self, user: bool):
        self.calls.append(("connect", user))
        return self

    def delegates(self, unit: str) -> bool:
        self.calls.append(("delegates", unit))
        return unit in self.delegating

    def start_scope(self, name, pids, *, slice_name, description):
        self.calls.append(("start_scope", name, pids, slice_name))
        if self.refuse:
            raise BusError(self.refuse)
        path = f"/{slice_name}/{name}"
        cgroup(self.mount, path, procs=pids)
        (self.proc / "self/cgroup").write_text(f"0::{path}\n")
        return "/org/freedesktop/systemd1/job/7"

    def close(self) -> None:
        self.calls.append(("close",))


def cgroup(mount: Path, path: str, procs=(), delegate: bool = False) -> Path:
    d = mount / path.strip("/")
    d.mkdir(parents=True, exist_ok=True)
    (d / "cgroup.procs").write_text("".join(f"{p}\n" for p in procs))
    (d / "cgroup.subtree_control").write_text("")
    if delegate:
        os.setxattr(d, "user.delegate", b"1")
    return d


@pytest.fixture
def tree(tmp_path, monkeypatch):
    from agentcgroup import cgroupfs

    monkeypatch.setattr(cgroupfs, "MKDIR_HOOK", lambda path: cgroup(Path(path), "/"))
    mount, proc = tmp_path / "cg", tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    mount.mkdir()
    return mount, proc


def run_place(tree, own: str, bus: FakeBus, **kw):
    mount, proc = tree
    (proc / "self/cgroup").write_text(f"0::{own}\n")
    return place(str(mount), own, pid=PID, user=False, bus_factory=bus, proc_root=str(proc), **kw)


def test_in_a_delegated_units_root_moves_into_its_supervisor_leaf(tree):
    mount, proc = tree
    unit = cgroup(mount, "/system.slice/agentcg.service", procs=[PID], delegate=True)
    bus = FakeBus(mount, proc)
    p = run_place(tree, "/system.slice/agentcg.service", bus)
    assert p.base == f"{mount}/system.slice/agentcg.service" and p.unit == "agentcg.service"
    assert "delegated" in p.how
    assert (unit / "supervisor/cgroup.procs").read_text() == str(PID)
    assert bus.calls == []  # the xattr said so: no question to systemd


def test_a_leaf_below_a_delegated_unit_is_used_as_it_is(tree):
    mount, proc = tree
    cgroup(mount, "/system.slice/job.service", delegate=True)
    cgroup(mount, "/system.slice/job.service/job", procs=[PID, 17])
    p = run_place(tree, "/system.slice/job.service/job", FakeBus(mount, proc))
    assert p.base == f"{mount}/system.slice/job.service"
    assert not (mount / "system.slice/job.service/supervisor").exists()


def test_without_the_xattr_the_manager_is_asked(tree):
    mount, proc = tree
    cgroup(mount, "/user.slice/user-1000.slice/user@1000.service/app.slice/my.service", procs=[PID])
    bus = FakeBus(mount, proc, delegating={"my.service"})
    p = run_place(tree, "/user.slice/user-1000.slice/user@1000.service/app.slice/my.service", bus)
    assert p.unit == "my.service"
    assert ("delegates", "my.service") in bus.calls


def test_a_shared_unit_root_or_a_login_session_gets_a_scope_of_its_own(tree):
    mount, proc = tree
    cgroup(mount, "/system.slice/shared.service", procs=[PID, 99], delegate=True)
    bus = FakeBus(mount, proc)
    p = run_place(tree, "/system.slice/shared.service", bus)
    start = next(c for c in bus.calls if c[0] == "start_scope")
    assert start[1].startswith(f"agentcg-{PID}-") and start[1].endswith(".scope")
    assert start[2:] == ([PID], "agentcg.slice")
    assert p.unit == start[1] and p.base == f"{mount}/agentcg.slice/{start[1]}"
    assert (mount / f"agentcg.slice/{start[1]}/supervisor/cgroup.procs").read_text() == str(PID)
    assert not (mount / "system.slice/shared.service/supervisor").exists()  # never moved within the shared unit

    cgroup(mount, "/user.slice/user-0.slice/session-4.scope", procs=[PID])
    bus = FakeBus(mount, proc)
    p = run_place(tree, "/user.slice/user-0.slice/session-4.scope", bus)
    assert [c[0] for c in bus.calls] == ["connect", "start_scope", "close"]  # a session scope: no question
    assert "transient scope" in p.how


def test_inside_one_of_our_leaves_joins_that_tree_and_changes_nothing(tree):
    mount, proc = tree
    bus = FakeBus(mount, proc)
    p = run_place(tree, "/agentcg.slice/agentcg-1-aa.scope/agentcg/s1/tools/c3", bus)
    assert p.base == f"{mount}/agentcg.slice/agentcg-1-aa.scope"
    assert bus.calls == []


def test_create_false_changes_nothing(tree):
    mount, proc = tree
    unit = cgroup(mount, "/system.slice/agentcg.service", procs=[PID], delegate=True)
    assert run_place(tree, "/system.slice/agentcg.service", FakeBus(mount, proc), create=False) is None
    assert not (unit / "supervisor").exists()
    assert run_place(tree, "/user.slice/user-0.slice/session-4.scope", FakeBus(mount, proc), create=False) is None


def test_a_refusal_is_unsupported_and_names_the_reason(tree):
    mount, proc = tree
    bus = FakeBus(mount, proc, refuse="systemd (user) refused StartTransientUnit: Access denied")
    with pytest.raises(Unsupported, match="Access denied"):
        run_place(tree, "/user.slice/user-0.slice/session-4.scope", bus)
    assert bus.calls[-1] == ("close",)
