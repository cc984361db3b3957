"""A call whose command has ended before the controller's loop takes it (``true``, ``ls``: the usual case for a
short command through the daemon) is finished in that same turn, without watching its pidfd or its memory
notifications; its outcome says all it says on the watched path: exit status, memory kill, output, figures, and
nothing is left behind (kernel tests: the manager fixture asserts the tree is gone)."""

from __future__ import annotations

import os
import select
import sys

import pytest

from agentcgroup import Session
from agentcgroup.controller import dispatch as dispatch_mod

pytestmark = [pytest.mark.kernel, pytest.mark.v2]

PY = sys.executable


@pytest.fixture
def ended_first(monkeypatch) -> list[bool]:
    """The loop takes each call only once its command has ended; the list says, per call, whether the loop
    found it ended (the path under test) or not."""
    seen: list[bool] = []
    real_register = dispatch_mod.Dispatch.register
    real_has_exited = dispatch_mod._has_exited

    def register(self, cs) -> None:  # type: ignore[no-untyped-def]
        proc = cs.call.proc
        assert proc is not None and proc.pidfd >= 0
        ready, _, _ = select.select([proc.pidfd], [], [], 60)
        assert ready, "the command did not end"
        real_register(self, cs)

    def has_exited(pidfd: int) -> bool:
        r = real_has_exited(pidfd)
        seen.append(r)
        return r

    monkeypatch.setattr(dispatch_mod.Dispatch, "register", register)
    monkeypatch.setattr(dispatch_mod, "_has_exited", has_exited)
    return seen


def test_an_ended_command_is_finished_at_once_with_its_status_and_output(session: Session, ended_first) -> None:
    out = session.run(["sh", "-c", "echo out; echo err >&2; exit 3"], capture_output=True)
    assert ended_first == [True]
    assert out.exit_code == 3 and out.returncode == 3 and out.killed_by is None
    assert out.stdout == b"out\n" and out.stderr == b"err\n"  # the pipes drained at the finish
    assert out.memory_peak is not None and out.memory_peak > 0
    assert out.cpu_s is not None
    assert out.escaped is False or out.escaped is None


def test_an_ended_memory_kill_is_still_reported_as_one(session: Session, ended_first) -> None:
    """No memory notification was watched: the kill is read from the leaf's figures at the finish."""
    out = session.run([PY, "-c", "bytearray(1 << 30)"], memory="256M")
    assert ended_first == [True]
    assert out.killed_by == "memory"
    assert out.signal == 9 and out.returncode == 137
    assert out.oom_kills >= 1
    assert 200 << 20 <= out.memory_peak <= 257 << 20
    assert "out of memory" in out.feedback and "256 MiB" in out.feedback


def test_an_ended_command_with_a_background_child_still_has_its_tree_killed(
    session: Session, ended_first, tmp_path
) -> None:
    pidfile = tmp_path / "pid"
    out = session.run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}"])
    assert ended_first == [True]
    assert out.exit_code == 0
    pid = int(pidfile.read_text())
    try:
        os.kill(pid, 0)
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        assert state in ("Z", "X"), f"the background sleep {pid} outlived its call"
    except ProcessLookupError:
        pass


def test_a_running_command_is_watched_as_before(session: Session, monkeypatch) -> None:
    seen: list[bool] = []
    real = dispatch_mod._has_exited
    monkeypatch.setattr(dispatch_mod, "_has_exited", lambda fd: (seen.append(real(fd)), seen[-1])[1])
    out = session.run(["sleep", "0.3"])
    assert seen == [False]
    assert out.ok and out.duration_s >= 0.3
