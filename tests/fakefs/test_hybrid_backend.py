"""The hybrid/v1 backend writes v1 files, and uses the cgroup2 mount for what v1 lacks."""

from __future__ import annotations

import pytest

from agentcgroup import Limits
from agentcgroup.backends.hybrid import HybridManager

from .fakecgroup import read


@pytest.fixture
def hy(fake_hybrid):
    m = HybridManager(fake_hybrid.layout(), "agentcg")
    yield m
    m.close()


def test_memory_root_goes_beneath_the_cgroup_we_started_in(hy, fake_hybrid) -> None:
    hy.create(("s1",))
    assert (fake_hybrid.tmp / "memory/started-here/agentcg/s1").is_dir()
    assert not (fake_hybrid.tmp / "memory/agentcg").exists()
    assert (fake_hybrid.tmp / "unified/agentcg/s1").is_dir()


def test_hard_limit(hy, fake_hybrid) -> None:
    hy.create(("s1", "c1"), Limits.parse(memory="256M"))
    d = fake_hybrid.tmp / "memory/started-here/agentcg/s1/c1"
    assert read(d / "memory.limit_in_bytes") == str(256 << 20)
    assert read(d / "memory.oom_control") == "0"


def test_soft_limit_is_the_stall(hy, fake_hybrid) -> None:
    cg = hy.create(("s1", "c1"), Limits.parse(memory="1G", memory_high="200M"))
    d = fake_hybrid.tmp / "memory/started-here/agentcg/s1/c1"
    assert read(d / "memory.limit_in_bytes") == str(200 << 20)
    assert read(d / "memory.oom_control") == "1"  # oom_kill_disable: stall, do not kill
    hy.set_soft_limit(cg, None)  # lifted: back to the hard limit, the OOM killer on again
    assert read(d / "memory.limit_in_bytes") == str(1 << 30)
    assert read(d / "memory.oom_control") == "0"


def test_cpu_and_pids_only_where_asked(hy, fake_hybrid) -> None:
    hy.create(("s1", "plain"))
    assert not (fake_hybrid.tmp / "cpu/agentcg/s1/plain").exists()
    hy.create(("s1", "busy"), Limits.parse(cpu="20%", cpu_weight=50, pids=64))
    cpu = fake_hybrid.tmp / "cpu/agentcg/s1/busy"
    assert read(cpu / "cpu.cfs_quota_us") == "20000"
    assert read(cpu / "cpu.cfs_period_us") == "100000"
    assert read(cpu / "cpu.shares") == "512"
    assert read(fake_hybrid.tmp / "pids/agentcg/s1/busy/pids.max") == "64"


def test_protection_is_the_soft_limit_in_bytes(hy, fake_hybrid) -> None:
    hy.create(("s1", "agent"), Limits.parse(memory_low="512M"))
    d = fake_hybrid.tmp / "memory/started-here/agentcg/s1/agent"
    assert read(d / "memory.soft_limit_in_bytes") == str(512 << 20)


def test_stats_from_v1_and_cgroup2(hy, fake_hybrid) -> None:
    cg = hy.create(("s1",))
    m = fake_hybrid.tmp / "memory/started-here/agentcg/s1"
    (m / "memory.usage_in_bytes").write_text("1000\n")
    (m / "memory.max_usage_in_bytes").write_text("5000\n")
    (m / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    (fake_hybrid.tmp / "unified/agentcg/s1/cpu.stat").write_text("usage_usec 42\nuser_usec 40\nsystem_usec 2\n")
    s = hy.stats(cg)
    assert (s.memory_current, s.memory_peak, s.oom_kills, s.cpu_usec) == (1000, 5000, 2, 42)


def test_placement_uses_the_deepest_dir_in_each_hierarchy(hy, fake_hybrid) -> None:
    hy.create(("s1",), Limits.parse(cpu_weight=300))
    leaf = hy.create(("s1", "tools", "c1"))
    dirs = [d.path for d in hy.placement_dirs(leaf)]
    t = str(fake_hybrid.tmp)
    assert f"{t}/memory/started-here/agentcg/s1/tools/c1" in dirs
    assert f"{t}/unified/agentcg/s1/tools/c1" in dirs
    assert f"{t}/cpu/agentcg/s1" in dirs  # the session's weight applies to the call


def test_pure_v1_with_cpu_and_cpuacct_together_puts_every_leaf_in_cpu(fake_hybrid) -> None:
    """No cgroup2 mount and ``cpu,cpuacct`` mounted as one: a call's CPU time is only in the cpu hierarchy, so a
    leaf without CPU limits is made there too (a spare made for calls without them reports their CPU time)."""
    from agentcgroup.detect import Hierarchy, HostLayout

    full = fake_hybrid.layout()
    v1 = dict(full.v1)
    cpu = v1["cpu"]
    v1["cpu"] = v1["cpuacct"] = Hierarchy(1, ("cpu", "cpuacct"), cpu.mountpoint, cpu.own_path, cpu.base)
    m = HybridManager(HostLayout("v1", None, v1), "agentcg")
    try:
        cg = m.create(("s1", "c1"))
        d = fake_hybrid.tmp / "cpu/agentcg/s1/c1"
        assert d.is_dir()
        (d / "cpuacct.usage").write_text("42000\n")
        assert m.stats(cg).cpu_usec == 42
    finally:
        m.close()
