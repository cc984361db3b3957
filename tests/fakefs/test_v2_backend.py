"""The v2 backend writes the right values to the right files (real-v2 proof: tests/kernel, in the VM)."""

from __future__ import annotations

import pytest

from agentcgroup import InvalidValue, Limits, NotFound
from agentcgroup.backends.v2 import V2Manager

from .fakecgroup import read


@pytest.fixture
def v2(fake_v2):
    m = V2Manager(fake_v2.layout(), "agentcg")
    yield m
    m.close()


def test_limits_land_in_the_v2_files(v2, fake_v2) -> None:
    cg = v2.create(
        ("s1", "tools", "c1"),
        Limits.parse(
            memory="512M",
            memory_high="384M",
            memory_low="64M",
            cpu="150%",
            cpu_weight=200,
            pids=32,
            oom_group=True,
        ),
    )
    leaf = fake_v2.tmp / "unified/agentcg/s1/tools/c1"
    assert read(leaf / "memory.max") == str(512 << 20)
    assert read(leaf / "memory.high") == str(384 << 20)
    assert read(leaf / "memory.low") == str(64 << 20)
    assert read(leaf / "memory.oom.group") == "1"
    assert read(leaf / "cpu.max") == "150000 100000"
    assert read(leaf / "cpu.weight") == "200"
    assert read(leaf / "pids.max") == "32"
    assert cg.limits.memory_max == 512 << 20


def test_unlimited_is_written_as_max(v2, fake_v2) -> None:
    cg = v2.create(("s1",), Limits.parse(memory="1G"))
    v2.set_limits(cg, Limits.parse(memory="max", pids="max" if False else 10))
    assert read(fake_v2.tmp / "unified/agentcg/s1/memory.max") == "max"


def test_controllers_enabled_on_every_parent(v2, fake_v2, monkeypatch) -> None:
    """Every write to cgroup.subtree_control is recorded (a file keeps only the last one): each parent of the
    leaf got memory, cpu and pids enabled, one controller per write, and the leaf itself none."""
    from agentcgroup import cgroupfs

    writes: list[tuple[str, str]] = []
    real_write = cgroupfs.Dir.write

    def recording(d, fname: str, value: str) -> None:  # type: ignore[no-untyped-def]  # as Dir.write
        if fname == "cgroup.subtree_control":
            writes.append((d.path, value))
        real_write(d, fname, value)

    monkeypatch.setattr(cgroupfs.Dir, "write", recording)
    v2.create(("s1", "tools", "c1"))
    u = fake_v2.tmp / "unified"
    parents = [str(p) for p in (u / "agentcg", u / "agentcg/s1", u / "agentcg/s1/tools")]
    for parent in parents:
        assert sorted(v for p, v in writes if p == parent) == ["+cpu", "+memory", "+pids"], (parent, writes)
    assert {p for p, _ in writes} == set(parents)  # and nowhere else: not in the leaf
    assert read(u / "cgroup.subtree_control") == "+pids"  # the base, prepared when the manager was made


def test_stats_are_parsed_from_the_files(v2, fake_v2) -> None:
    cg = v2.create(("s1",))
    d = fake_v2.tmp / "unified/agentcg/s1"
    (d / "memory.current").write_text("1048576\n")
    (d / "memory.peak").write_text("4194304\n")
    (d / "memory.events").write_text("low 0\nhigh 7\nmax 2\noom 1\noom_kill 1\noom_group_kill 1\n")
    (d / "cpu.stat").write_text(
        "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\nnr_periods 10\n"
        "nr_throttled 4\nthrottled_usec 300000\n"
    )
    (d / "pids.events").write_text("max 5\n")
    s = v2.stats(cg)
    assert (s.memory_current, s.memory_peak) == (1 << 20, 4 << 20)
    assert (s.memory_high_events, s.memory_max_events, s.oom_kills) == (7, 2, 1)
    assert (s.cpu_usec, s.nr_throttled, s.cpu_throttled_usec) == (2_500_000, 4, 300_000)
    assert s.pids_denied == 5


def test_destroy_removes_the_subtree(v2, fake_v2) -> None:
    v2.create(("s1", "tools", "c1"))
    v2.create(("s1", "agent"))
    v2.destroy(v2.open(("s1",)))
    assert not (fake_v2.tmp / "unified/agentcg/s1").exists()
    with pytest.raises(NotFound):
        v2.open(("s1",))


def test_bad_names_create_nothing(v2, fake_v2) -> None:
    for bad in ("..", "a/b", ".hidden", "", "x\0y", "-rf"):
        with pytest.raises(InvalidValue):
            v2.create(("s1", bad))
    assert not (fake_v2.tmp / "unified/agentcg/s1").exists()


def test_a_failed_limit_leaves_nothing(v2, fake_v2, monkeypatch) -> None:
    """A control file the kernel would refuse (here: missing) fails the create; no directory remains."""
    import os

    import agentcgroup.cgroupfs as cfs

    v2.create(("s1",))
    orig = cfs.MKDIR_HOOK

    def hook(path: str) -> None:
        orig(path)
        if path.endswith("/c1"):
            os.unlink(f"{path}/pids.max")

    monkeypatch.setattr(cfs, "MKDIR_HOOK", hook)
    with pytest.raises(Exception, match="pids"):
        v2.create(("s1", "c1"), Limits(memory_max=1 << 20, pids_max=5))
    assert not (fake_v2.tmp / "unified/agentcg/s1/c1").exists()
    assert (fake_v2.tmp / "unified/agentcg/s1").exists()


def test_a_freeze_the_kernel_has_not_finished_is_a_freeze_timeout(v2, fake_v2) -> None:
    """The fake's cgroup.events never says frozen: the request is written and the wait ends in FreezeTimeout,
    which a tool call records as its freeze (the kernel finishes it as each held task is let go)."""
    from types import SimpleNamespace

    from agentcgroup.controller.callspec import CallSpec
    from agentcgroup.errors import FreezeTimeout
    from agentcgroup.toolcall import ToolCall

    cg = v2.create(("s1", "tools", "c1"))
    with pytest.raises(FreezeTimeout, match=r"s1/tools/c1: not frozen after 0\.05 s"):
        v2.freeze(cg, timeout=0.05)
    assert read(fake_v2.tmp / "unified/agentcg/s1/tools/c1/cgroup.freeze") == "1"

    session = SimpleNamespace(name="s1", path=("s1",), manager=v2, pool=None)
    call = ToolCall(session, CallSpec.of(["true"], call_id="c1"))
    call.cg = cg
    call.freeze("stalled at its soft memory limit")
    assert [s.action for s in call.steps] == ["freeze"]
    assert call._frozen_since is not None


def test_a_cgroup_made_again_under_its_old_name_gets_its_controllers_again(v2, fake_v2, monkeypatch) -> None:
    """The guest found it: a session removed and opened again under the same name kept a stale 'prepared' mark
    and got no controllers, so its agent leaf had no memory.low."""
    from agentcgroup import cgroupfs

    writes: list[str] = []
    real_write = cgroupfs.Dir.write

    def recording(d, fname: str, value: str) -> None:  # type: ignore[no-untyped-def]  # as Dir.write
        if fname == "cgroup.subtree_control":
            writes.append(d.path)
        real_write(d, fname, value)

    v2.create(("s", "tools"))
    v2.destroy(v2.open(("s",)))
    monkeypatch.setattr(cgroupfs.Dir, "write", recording)
    v2.create(("s", "agent"), Limits(memory_low=64 << 20))
    assert writes.count(str(fake_v2.tmp / "unified/agentcg/s")) == 3  # memory, cpu, pids: enabled afresh
