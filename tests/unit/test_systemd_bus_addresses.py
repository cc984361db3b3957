"""Where agentcgroup looks for systemd (as systemctl does: the manager's private socket first, then the bus),
and what doctor says on a host without systemd. Pure: environment and paths only."""

from __future__ import annotations

from agentcgroup.detect import HostLayout
from agentcgroup.systemd.bus import addresses, runtime_dir
from agentcgroup.systemd.owner import systemd_owns_tree
from agentcgroup.systemd.report import describe


def test_user_manager_private_socket_first_then_the_session_bus(monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1001")
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/tmp/custom-bus,guid=abc")
    assert addresses(user=True) == [
        ("/run/user/1001/systemd/private", False),
        ("/tmp/custom-bus", True),
        ("/run/user/1001/bus", True),
    ]


def test_runtime_dir_falls_back_to_run_user_uid(monkeypatch):
    import os

    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)  # su / runuser drop it
    assert runtime_dir() == f"/run/user/{os.geteuid()}"


def test_system_manager_private_socket_first_then_the_system_bus(monkeypatch):
    monkeypatch.delenv("DBUS_SYSTEM_BUS_ADDRESS", raising=False)
    assert addresses(user=False) == [("/run/systemd/private", False), ("/run/dbus/system_bus_socket", True)]


def test_owner_needs_both_pid1_systemd_and_run_systemd_system(tmp_path):
    proc, run = tmp_path / "proc", tmp_path / "run"
    (proc / "1").mkdir(parents=True)
    (proc / "1/comm").write_text("systemd\n")
    assert not systemd_owns_tree(str(proc), str(run))  # no /run/systemd/system: not booted with systemd
    (run / "systemd/system").mkdir(parents=True)
    assert systemd_owns_tree(str(proc), str(run))
    (proc / "1/comm").write_text("init\n")  # a container whose /run shows the host's
    assert not systemd_owns_tree(str(proc), str(run))


def test_doctor_without_systemd(tmp_path):
    info = describe(HostLayout("hybrid"), "hybrid", proc_root=str(tmp_path))
    assert info["owner"] == "no systemd" and "not PID 1" in info["why"]


def test_hybrid_and_v1_hosts_under_systemd_keep_their_old_placement():
    from agentcgroup.systemd import delegated_base

    # whatever the owner: only a cgroup v2 tree is placed inside a delegated unit; v1/hybrid stay as they were
    assert delegated_base(HostLayout("hybrid")) is None
    assert delegated_base(HostLayout("v1")) is None
    assert delegated_base(HostLayout("none")) is None
