from __future__ import annotations

from agentcgroup.detect import layout_from_text
from tests.conftest import DATA

K = DATA / "kernel"

V2_MOUNTINFO = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"


def test_this_ci_machine_is_hybrid() -> None:
    layout = layout_from_text(
        (K / "hybrid-mountinfo.txt").read_text(),
        (K / "hybrid-proc-cgroup.txt").read_text(),
        lambda _: ["hugetlb"],
    )
    assert layout.mode == "hybrid"
    mem = layout.v1["memory"]
    assert mem.base == mem.own_path != mem.mountpoint  # beneath the cgroup we started in
    assert layout.v1["pids"].base == "/sys/fs/cgroup/pids"  # other v1 controllers: beneath the root
    assert layout.unified.base == "/sys/fs/cgroup/unified"
    assert "hybrid" in layout.describe()


def test_pure_v2_from_a_systemd_scope() -> None:
    layout = layout_from_text(
        V2_MOUNTINFO,
        "0::/user.slice/user-1000.slice/session-3.scope\n",
        lambda _: ["cpuset", "cpu", "io", "memory", "pids"],
    )
    assert layout.mode == "v2"
    assert layout.unified.own_path == "/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope"
    assert layout.unified.base == "/sys/fs/cgroup"


def test_cgroup2_without_memory_is_none() -> None:
    layout = layout_from_text(V2_MOUNTINFO, "0::/\n", lambda _: ["pids"])
    assert layout.mode == "none" and "memory" in layout.reason


def test_pure_v1() -> None:
    mi = (
        "32 31 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
    )
    layout = layout_from_text(mi, "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n")
    assert layout.mode == "v1"
    assert layout.v1["cpu"] is layout.v1["cpuacct"]
    assert layout.v1["memory"].base == "/sys/fs/cgroup/memory/docker/abc"


def test_container_view_with_a_mount_root() -> None:
    mi = "32 31 0:29 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    layout = layout_from_text(mi, "4:memory:/docker/abc/inner\n")
    assert layout.v1["memory"].base == "/sys/fs/cgroup/memory/inner"


def test_nothing_mounted() -> None:
    layout = layout_from_text("22 27 0:21 / /proc rw - proc proc rw\n", "")
    assert layout.mode == "none" and layout.reason


def test_started_inside_one_of_our_leaves_the_memory_root_goes_beside_that_tree() -> None:
    mi = (K / "hybrid-mountinfo.txt").read_text()
    start = "/process_api/edeb2caf"
    for leaf in ("agentcg/s1/agent", "agentcg-test-1-2/s1/tools/c0ffee", "agentcg/s1"):
        lines = (K / "hybrid-proc-cgroup.txt").read_text().splitlines()
        cg = "\n".join(f"4:memory:{start}/{leaf}" if ":memory:" in line else line for line in lines) + "\n"
        mem = layout_from_text(mi, cg, lambda _: []).v1["memory"]
        if leaf == "agentcg/s1":  # a session itself is no leaf: an agentcgroup started there nests, as anywhere
            assert mem.base.endswith(f"{start}/{leaf}")
        else:
            assert mem.base == mem.mountpoint + start, (leaf, mem.base)
            assert mem.own_path.endswith(leaf)
