"""Parsers fed with text copied from real kernels (tests/data/kernel: this CI machine's 6.18 hybrid host,
and the cgroup v2 guest of scripts/vm-test)."""

from __future__ import annotations

from agentcgroup.parsers import (
    parse_cpu_max,
    parse_flat_keyed,
    parse_max,
    parse_mountinfo,
    parse_nested_keyed,
    parse_proc_cgroup,
    parse_psi,
    parse_psi_avg10,
    parse_usage_usec,
    proc_cgroup_path,
    v1_controllers,
)
from agentcgroup.units import MAX_BYTES
from tests.conftest import DATA

K = DATA / "kernel"


def test_v1_oom_control() -> None:
    d = parse_flat_keyed((K / "v1-memory.oom_control.txt").read_text())
    assert d == {"oom_kill_disable": 0, "under_oom": 0, "oom_kill": 0}


def test_v1_memory_stat_keeps_every_key() -> None:
    d = parse_flat_keyed((K / "v1-memory.stat.txt").read_text())
    assert len(d) >= 30
    assert {"cache", "rss", "hierarchical_memory_limit", "total_rss"} <= set(d)
    assert all(isinstance(v, int) for v in d.values())


def test_cpu_stat_both_versions() -> None:
    v1 = parse_flat_keyed((K / "v1-cpu.stat.txt").read_text())
    assert {"nr_periods", "nr_throttled", "throttled_time"} <= set(v1)
    v2 = parse_flat_keyed((K / "v2-cpu.stat.txt").read_text())
    assert {"usage_usec", "user_usec", "system_usec"} <= set(v2)


def test_usage_usec_alone_agrees_with_the_full_parse() -> None:
    text = (K / "v2-cpu.stat.txt").read_text()
    assert parse_usage_usec(text) == parse_flat_keyed(text)["usage_usec"] > 0
    assert parse_usage_usec("user_usec 5\nusage_usec 7\n") == 7 and parse_usage_usec("nr_periods 1\n") == 0


def test_psi_lines() -> None:
    mem = parse_psi((K / "psi-memory.txt").read_text())
    assert set(mem) == {"some", "full"}
    assert mem["some"].avg10 >= 0 and isinstance(mem["full"].total_us, int)
    cpu = parse_psi((K / "psi-cpu.txt").read_text())
    assert "some" in cpu
    text = "some avg10=1.53 avg60=0.87 avg300=0.21 total=1234567\nfull avg10=0.50 avg60=0.10 avg300=0.00 total=99\n"
    p = parse_psi(text)
    assert p["some"].avg10 == 1.53 and p["some"].total_us == 1234567 and p["full"].avg300 == 0.0


def test_psi_lines_malformed_or_extended() -> None:
    text = (
        "\nsome avg10=2.00 avg60=1.00 avg300=0.50 total=7 newkey=1 stray\n"
        "full avg10=x avg60=0 avg300=0 total=0\nweird avg10=1.0\n  full2 avg10=1 avg60=2 avg300=3 total=4\n"
    )
    p = parse_psi(text)
    assert set(p) == {"some", "full2"}  # a bad number or a missing field drops that line alone
    assert p["some"].avg10 == 2.0 and p["some"].total_us == 7 and p["full2"].avg300 == 3.0


def test_psi_avg10_alone_agrees_with_the_full_parse() -> None:
    for name in ("psi-memory.txt", "psi-cpu.txt"):
        text = (K / name).read_text()
        assert parse_psi_avg10(text) == {k: p.avg10 for k, p in parse_psi(text).items()}
    text = "\nsome avg60=1.00 avg10=2.50 total=7 stray\nfull avg10=x avg60=0\nfull2 xavg10=3 total=1\n"
    assert parse_psi_avg10(text) == {"some": 2.5}  # in any place; unreadable or missing: left out
    assert parse_psi_avg10("") == {}


def test_nested_keyed_keeps_unknown_keys() -> None:
    text = "8:0 rbytes=90112 wbytes=0 rios=3 wios=0 dbytes=0 dios=0 newkey=7\n253:0 rbytes=1\n"
    d = parse_nested_keyed(text)
    assert d["8:0"]["rbytes"] == 90112 and d["8:0"]["newkey"] == 7 and d["253:0"] == {"rbytes": 1}


def test_max_values() -> None:
    assert parse_max("max\n") == MAX_BYTES
    assert parse_max("1073741824\n") == 1 << 30
    assert parse_cpu_max("max 100000\n") == (None, 100000)
    assert parse_cpu_max("20000 100000") == (20000, 100000)


def test_proc_cgroup_hybrid() -> None:
    rows = parse_proc_cgroup((K / "hybrid-proc-cgroup.txt").read_text())
    by = {c: r.path for r in rows for c in r.controllers}
    assert by["memory"].startswith("/") and by["memory"] != "/"
    unified = [r for r in rows if r.hierarchy_id == 0]
    assert unified and unified[0].controllers == () and unified[0].path == "/"
    assert any(r.controllers == ("name=systemd",) for r in rows)


def test_proc_cgroup_path_finds_one_hierarchy_as_the_full_parse_does() -> None:
    text = (K / "hybrid-proc-cgroup.txt").read_text()
    rows = parse_proc_cgroup(text)
    for c in ("memory", "cpu", "cpuacct", "pids", "name=systemd"):
        assert proc_cgroup_path(text, c) == next(r.path for r in rows if c in r.controllers), c
    assert proc_cgroup_path(text, None) == "/"
    assert proc_cgroup_path("4:memory:/a/b\n0::/x/y:z\n", None) == "/x/y:z"  # a ':' in the path kept
    assert proc_cgroup_path("4:memory:/a/b\n", None) is None  # no cgroup2 line (pure v1)
    assert proc_cgroup_path("0::/x\n", "memory") is None
    assert proc_cgroup_path("", None) is None


def test_mountinfo_hybrid() -> None:
    mounts = parse_mountinfo((K / "hybrid-mountinfo.txt").read_text())
    cg = {m.mountpoint: m for m in mounts if m.fstype in ("cgroup", "cgroup2")}
    assert cg["/sys/fs/cgroup/unified"].fstype == "cgroup2"
    assert v1_controllers(cg["/sys/fs/cgroup/memory"]) == ("memory",)
    assert cg["/sys/fs/cgroup/memory"].root == "/"


def test_mountinfo_escapes_and_optional_fields() -> None:
    text = (
        "36 35 98:0 /mnt1 /mnt\\040with\\040space rw,noatime master:1 shared:7 - ext3 /dev/root rw,errors=continue\n"
        "40 31 0:37 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
    )
    m = parse_mountinfo(text)
    assert m[0].mountpoint == "/mnt with space" and m[0].fstype == "ext3" and m[0].root == "/mnt1"
    assert v1_controllers(m[1]) == ("cpu", "cpuacct")
