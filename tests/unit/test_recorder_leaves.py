"""What a tool-call leaf holds, read from a fake /proc: empty, a warm spare, a command about to exec, a call."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentcgroup.record import leaves


class FakeProc:
    def __init__(self, root: Path) -> None:
        self.root = root

    def add(self, pid: int, argv: list[str], ppid: int) -> None:
        d = self.root / str(pid)
        d.mkdir(exist_ok=True)
        (d / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
        (d / "stat").write_text(f"{pid} (a (weird) name) S {ppid} {pid} {pid} 0 -1 4194304\n")

    @property
    def path(self) -> str:
        return str(self.root)


@pytest.fixture
def proc(tmp_path: Path) -> FakeProc:
    p = FakeProc(tmp_path)
    p.add(1, ["init"], 0)
    p.add(100, ["python3", "-m", "agentcgroup", "run", "--", "pytest"], 1)
    return p


def test_cmdline_and_parent(proc: FakeProc) -> None:
    assert leaves.cmdline(100, proc.path) == ["python3", "-m", "agentcgroup", "run", "--", "pytest"]
    assert leaves.parent(100, proc.path) == 1  # the name in parentheses may hold spaces and parentheses
    assert leaves.cmdline(999, proc.path) is None and leaves.parent(999, proc.path) is None


def test_empty_and_gone(proc: FakeProc) -> None:
    assert leaves.classify([], proc.path).state == leaves.EMPTY
    assert leaves.classify([999], proc.path).state == leaves.EMPTY  # exited meanwhile


def test_a_warm_spare_is_not_a_call(proc: FakeProc) -> None:
    proc.add(200, ["/usr/lib/python3/site-packages/agentcgroup/agentcg-stub", "7"], 100)
    assert leaves.classify([200], proc.path).state == leaves.SPARE


def test_placed_but_not_yet_exec_is_pending(proc: FakeProc) -> None:
    proc.add(300, ["python3", "-m", "agentcgroup", "run", "--", "pytest"], 100)  # its parent's image
    leaf = leaves.classify([300], proc.path)
    assert (leaf.state, leaf.pid) == (leaves.PENDING, 300)


def test_a_call_is_named_by_its_first_process(proc: FakeProc) -> None:
    proc.add(400, ["bash", "-c", "pytest -x | tail"], 100)
    proc.add(401, ["pytest", "-x"], 400)
    proc.add(402, ["tail"], 400)
    leaf = leaves.classify([401, 402, 400], proc.path)
    assert (leaf.state, leaf.argv, leaf.pid) == (leaves.CALL, ["bash", "-c", "pytest -x | tail"], 400)


def test_a_zombie_root_is_pending(proc: FakeProc) -> None:
    proc.add(500, [], 100)
    assert leaves.classify([500], proc.path).state == leaves.PENDING
