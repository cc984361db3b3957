"""Faults the controller meets and survives (issue 10, its controller side), on the real kernel:

* the loop outlives any exception: a failing handler fails its one call (an error outcome), durations of any
  length are waited for (``--timeout 720h``);
* a state dir that fills up refuses new work with a clear error, leaves no process, leaf or temp file;
* close kills first and forgets last; a failed close leaves what a restart needs;
* a root tool that makes a cgroup in its leaf (even ``.hidden``), or leaves its leaf, gets a normal outcome that
  says so, and nothing leaks; a nested ``agentcg run`` with a custom ``--root`` joins its session.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from agentcgroup import Controller, ControllerConfig
from agentcgroup.controller.actions import Action
from agentcgroup.controller.core import default_policies
from agentcgroup.controller.persist import StateWriteError
from agentcgroup.controller.policies.base import CallInfo, Policy, View
from agentcgroup.errors import Busy
from tests.conftest import SLOW, leftovers, remove_leftovers, test_root_name, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.v2]

PY = sys.executable


class Boom(Policy):
    """A policy with a bug: it raises for calls whose command mentions 'boom'."""

    name = "boom"

    def on_start(self, view: View, call: CallInfo) -> list[Action]:
        if any("boom" in a for a in call.call.argv):  # type: ignore[attr-defined]  # policies get CallStates
            raise RuntimeError("a bug in a policy")
        return []


def zombies() -> set[int]:
    """Our children that ended and were not reaped."""
    found = set()
    for c in psutil.Process().children():
        try:
            if c.status() == psutil.STATUS_ZOMBIE:
                found.add(c.pid)
        except psutil.NoSuchProcess:
            pass
    return found


# --- item 2: the loop serves on ------------------------------------------------------------------------------
def test_a_failing_handler_fails_its_call_only(manager) -> None:
    with Controller(manager, config=ControllerConfig(warm=0), policies=[*default_policies(), Boom()]) as ctl:
        ctl.open_session("s")
        out = ctl.run("s", ["sh", "-c", "sleep 30 # boom"])
        assert out.error is not None and "a bug in a policy" in out.error, out
        assert out.killed_by == "error" and out.returncode == 137 and "controller failed" in out.feedback
        assert out.duration_s < 10 * SLOW
        assert ctl.run("s", ["true"]).exit_code == 0  # the loop served on
        assert ctl.loop.thread is not None and ctl.loop.thread.is_alive()


def test_durations_beyond_what_epoll_can_wait(manager) -> None:
    """A 720 h timeout and a 1e9 s intent: epoll takes at most ~24.8 days; the loop waits in steps."""
    from agentcgroup import Intent

    with Controller(manager, config=ControllerConfig(warm=0)) as ctl:
        ctl.open_session("s")
        t0 = time.monotonic()
        assert ctl.run("s", ["true"], timeout=720 * 3600.0).exit_code == 0
        assert ctl.run("s", ["true"], intent=Intent(duration=1e9)).exit_code == 0
        assert time.monotonic() - t0 < 10 * SLOW
        assert ctl.loop.thread is not None and ctl.loop.thread.is_alive()


def test_agentcg_run_with_a_720h_timeout_does_not_hang(root_name: str) -> None:
    """Beyond the longest duration the CLI takes (7 days): one line naming the value, exit 2, nothing made."""
    env = {**os.environ, "AGENTCG_ROOT": root_name}
    r = subprocess.run(
        [PY, "-m", "agentcgroup", "run", "--timeout", "720h", "--", "true"],
        env=env,
        timeout=60 * SLOW,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "720h" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = subprocess.run([PY, "-m", "agentcgroup", "run", "--timeout", "168h", "--", "true"], env=env, timeout=60 * SLOW)
    assert r.returncode == 0
    assert leftovers(root_name) == []


# --- item 7: a full state dir ---------------------------------------------------------------------------------
@pytest.fixture
def small_state(tmp_path: Path):  # type: ignore[no-untyped-def]  # yields a Path
    """A 64 KiB tmpfs for the state dir (unmounted afterwards)."""
    d = tmp_path / "state"
    d.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=700", "tmpfs", str(d)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def fill(d: Path) -> Path:
    """Fill the file system of ``d`` to the last byte."""
    filler = d / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"x" * 512):
            pass
    except OSError:  # ENOSPC: full
        pass
    finally:
        os.close(fd)
    return filler


def test_a_full_state_dir_refuses_new_work_and_leaves_nothing(manager, small_state: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"  # beside the full state dir: the running call ends when the test says, not after a time
    with Controller(manager, config=ControllerConfig(warm=0), state_dir=small_state) as ctl:
        ctl.open_session("s")
        # written down while there was room; alive through the checks below, so that its own end (a zombie
        # until the controller reaps it) is never taken for the refused call's process left unreaped
        running = ctl.submit("s", ["sh", "-c", f"until [ -e {go} ]; do sleep 0.01; done"])
        filler = fill(small_state)
        zombies_before = zombies()  # (another test's, if any: not this one's business)
        with pytest.raises(StateWriteError, match=r"cannot write .*calls/.*is the state dir full"):
            ctl.submit("s", ["sleep", "30"])
        with pytest.raises(StateWriteError, match="sessions/t2"):
            ctl.open_session("t2")
        assert manager.children(("s", "tools")) == [running.call_id]  # the refused call's leaf is gone
        assert "t2" not in manager.children(())
        assert not list(small_state.rglob("*.tmp"))
        assert zombies() <= zombies_before  # the refused call's process was reaped
        go.touch()
        out = running.wait(10 * SLOW)  # its outcome cannot be written down: its waiter has it all the same
        assert out is not None and out.exit_code == 0
        filler.unlink()
        assert ctl.run("s", ["true"]).exit_code == 0  # room again: work again


# --- item 6: close kills first, forgets last -------------------------------------------------------------------
def test_a_failed_close_leaves_the_state_a_restart_cleans(manager, tmp_path: Path, monkeypatch) -> None:
    state = tmp_path / "state"
    ctl = Controller(manager, config=ControllerConfig(warm=0), state_dir=state)
    try:
        ctl.open_session("s", uid=1000)
        h = ctl.submit("s", ["sleep", "30"], uid=1000)
        real_destroy = manager.destroy

        def failing(cg, timeout=5.0):  # type: ignore[no-untyped-def]  # as Manager.destroy
            if cg.path == ("s",):
                raise Busy("rmdir: still busy (injected)", "s")
            real_destroy(cg, timeout)

        monkeypatch.setattr(manager, "destroy", failing)
        with pytest.raises(Busy):
            ctl.close_session("s", uid=1000)
        out = h.wait(5)
        assert out is not None and out.killed_by == "policy"  # the call was killed first
        assert (state / "sessions" / "s.json").exists()  # and the session not forgotten
        monkeypatch.undo()
    finally:
        ctl.close()
    with Controller(manager, config=ControllerConfig(warm=0), state_dir=state) as again:
        assert again.session("s", uid=1000).uid == 1000  # adopted, with its owner
        again.close_session("s", uid=1000)
        assert not (state / "sessions" / "s.json").exists()
    assert "s" not in manager.children(())


# --- item 8: root tools that make cgroups or leave theirs -----------------------------------------------------
#: the call's own leaf in the memory hierarchy (v1) and in cgroup2, as directories
OWN_LEAF = """
import os
dirs = []
for line in open("/proc/self/cgroup"):
    num, ctrls, path = line.rstrip("\\n").split(":", 2)
    if num == "0":
        mnt = "/sys/fs/cgroup/unified" if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup"
    elif "memory" in ctrls.split(","):
        mnt = "/sys/fs/cgroup/memory"
    else:
        continue
    dirs.append(mnt + path)
"""


def test_a_hidden_child_cgroup_in_the_leaf_is_removed_with_its_processes(manager) -> None:
    script = (
        OWN_LEAF
        + """
import subprocess
kid = subprocess.Popen(["sleep", "300"])
for d in dirs:
    os.mkdir(d + "/.hidden")
    os.mkdir(d + "/.hidden/deeper")
    open(d + "/.hidden/deeper/cgroup.procs", "w").write(str(kid.pid))
print("made", len(dirs))
"""
    )
    with Controller(manager, config=ControllerConfig(warm=0)) as ctl:
        ctl.open_session("s")
        out = ctl.run("s", [PY, "-c", script], capture_output=True)
        assert out.exit_code == 0 and out.stdout.startswith(b"made"), out
        assert out.leftover_killed >= 1 and out.error is None
        assert manager.children(("s", "tools")) == []


def test_an_empty_leaf_goes_with_one_rmdir_a_hierarchy_and_a_busy_one_the_careful_way(manager, monkeypatch) -> None:
    """A finished call's empty leaf is removed without listing or reading anything first; a leaf the kernel
    refuses to remove (a process in it, or a child cgroup made in one hierarchy only) still goes whole, its
    process killed, by the careful path."""
    from agentcgroup.cgroupfs import Dir

    leaf = manager.create(("s", "tools", "c0empty"), full=True)
    paths = [d.path for d in leaf.backend_data["dirs"].values()]
    assert len(paths) >= 1 and all(os.path.isdir(p) for p in paths)
    real_children = Dir.children

    def no_listing(self: Dir) -> list[str]:
        raise AssertionError(f"listed {self.path}")

    monkeypatch.setattr(Dir, "children", no_listing)
    manager.destroy(leaf)
    assert leaf.closed and not any(os.path.exists(p) for p in paths)
    monkeypatch.setattr(Dir, "children", real_children)

    busy = manager.create(("s", "tools", "c0busy"), full=True)
    paths = [d.path for d in busy.backend_data["dirs"].values()]
    os.mkdir(paths[-1] + "/made-by-a-tool")  # in the last hierarchy only: the others go first
    kid = manager.spawn(busy, ["sleep", "300"])
    try:
        manager.destroy(busy)
        assert kid.wait(5) is not None and not any(os.path.exists(p) for p in paths)
    finally:
        kid.close()
    manager.destroy(manager.open(("s",)))


def test_a_root_call_that_leaves_its_leaf_is_told(manager) -> None:
    with Controller(manager, config=ControllerConfig(warm=0)) as ctl:
        ctl.open_session("s")
        away = manager.create(("away",))  # a cgroup of this test's tree, outside the call's leaf
        try:
            dirs = [d.path for d in manager.placement_dirs(away)]  # type: ignore[attr-defined]  # a TreeManager
            move = "; ".join(f"echo $$ > {d}/cgroup.procs" for d in dirs)
            out = ctl.run("s", ["sh", "-c", f"{move}; sleep 0.2"])
            assert out.exit_code == 0 and out.escaped, out
            assert "moved itself out of its cgroup" in out.feedback
            assert any(s.action == "escape" for s in out.steps)
            # escaped and past its time limit: the leaf's kill cannot reach it, the controller still ends it
            t0 = time.monotonic()
            out = ctl.run("s", ["sh", "-c", f"{move}; exec sleep 60"], timeout=1.0)
            assert out.killed_by == "timeout" and out.escaped and time.monotonic() - t0 < 20 * SLOW, out
            assert manager.pids(away) == []
        finally:
            manager.destroy(away)


def test_a_nested_run_with_a_custom_root_joins_its_session() -> None:
    root = f"nest-{test_root_name()}"  # not agentcg*: the name detect() recognises by itself
    env = {**os.environ, "AGENTCG_ROOT": root}
    inner = [PY, "-m", "agentcgroup", "run", "--session", "s1", "--", "cat", "/proc/self/cgroup"]
    try:
        r = subprocess.run(
            [PY, "-m", "agentcgroup", "run", "--session", "s1", "--", *inner],
            env=env,
            capture_output=True,
            text=True,
            timeout=60 * SLOW,
        )
        assert r.returncode == 0, r.stderr
        assert f"/{root}/s1/tools/c" in r.stdout  # the inner command ran in a leaf of the same session
        assert all(line.count(f"/{root}/") <= 1 for line in r.stdout.splitlines()), r.stdout  # no tree in a leaf
    finally:
        left = leftovers(root)
        remove_leftovers(left)
    assert left == []


# --- every rollback path of the controller --------------------------------------------------------------------
def test_a_controller_that_cannot_start_leaves_nothing(root_name: str, tmp_path: Path, monkeypatch) -> None:
    from agentcgroup.controller import core

    def broken(self) -> None:  # type: ignore[no-untyped-def]  # as Adoption.run
        raise RuntimeError("adoption failed (injected)")

    (tmp_path / "state").mkdir()
    monkeypatch.setattr(core.Adoption, "run", broken)
    with pytest.raises(RuntimeError, match="injected"):
        Controller(root=root_name, config=ControllerConfig(budget=256 << 20, warm=0), state_dir=tmp_path / "state")
    assert leftovers(root_name) == []  # its own manager closed: the root (with its budget) removed


def test_a_session_that_cannot_be_built_leaves_nothing(manager, monkeypatch) -> None:
    from agentcgroup.errors import LimitRejected

    real_create = manager.create

    def create(path, limits=None, **kw):  # type: ignore[no-untyped-def]  # as Manager.create
        if tuple(path)[-1:] == ("tools",):
            raise LimitRejected("injected", "tools")
        return real_create(path, limits, **kw)

    with Controller(manager, config=ControllerConfig(warm=0)) as ctl:
        monkeypatch.setattr(manager, "create", create)
        with pytest.raises(LimitRejected):
            ctl.open_session("s", agent_memory=64 << 20)
        monkeypatch.undo()
        assert ctl.session_states() == [] and ctl.sessions.protected() == 0
        assert "s" not in manager.children(())
        assert ctl.run(ctl.open_session("s").name, ["true"]).exit_code == 0  # and it can be built after


def test_an_outcome_that_cannot_be_built_is_an_error_outcome(manager, monkeypatch) -> None:
    from agentcgroup.toolcall import ToolCall

    def broken(self, pipes=None):  # type: ignore[no-untyped-def]  # as ToolCall.finish
        raise OSError(5, "the figures could not be read (injected)")

    with Controller(manager, config=ControllerConfig(warm=0)) as ctl:
        ctl.open_session("s")
        monkeypatch.setattr(ToolCall, "finish", broken)
        out = ctl.run("s", ["sh", "-c", "sleep 30 & exit 3"])
        monkeypatch.undo()
        assert out.error is not None and "injected" in out.error and out.exit_code == 3
        assert manager.children(("s", "tools")) == []  # its leaf (and the sleep in it) gone all the same
        assert ctl.run("s", ["true"]).exit_code == 0


def test_a_command_that_cannot_start_leaves_no_leaf_or_stub(manager) -> None:
    """Whether it took a warm spare (its stub dismissed) or a fresh leaf: the leaf goes; only spares stay."""
    from agentcgroup import Session
    from agentcgroup.record import leaves

    with Session("w", manager=manager, warm=1) as s:
        for _ in range(3):
            with pytest.raises(FileNotFoundError):
                s.run(["no-such-command-i13"])

        def only_a_spare() -> bool:
            names = manager.children(("w", "tools"))
            return len(names) == 1 and leaves.classify(manager.pids(manager.open(("w", "tools", names[0])))).state == (
                leaves.SPARE
            )

        wait_for(only_a_spare, "one spare leaf with its stub, and nothing else")


def test_torn_records_are_dropped_at_adoption(manager, tmp_path: Path) -> None:
    import json

    state = tmp_path / "state"
    with Controller(manager, config=ControllerConfig(warm=0), state_dir=state) as ctl:
        ctl.open_session("s")
    (state / "sessions").mkdir(exist_ok=True)
    manager.create(("s", "tools", "c0ffee"))  # a leaf as a dead controller left it
    manager.create(("t", "tools"))
    (state / "sessions" / "s.json").write_text(json.dumps({"uid": 0, "priority": "normal", "limits": {}}))
    (state / "calls" / "c0ffee.json").write_text(json.dumps({"session": "s", "argv": ["x"]}))  # no pid
    (state / "sessions" / "t.json").write_text(json.dumps({"priority": "normal"}))  # no owner
    (state / "sessions" / "gone.json").write_text(json.dumps({"uid": 0, "priority": "normal"}))  # no cgroup
    with Controller(manager, config=ControllerConfig(warm=0), state_dir=state) as ctl:
        assert [s.name for s in ctl.session_states()] == ["s"]
        assert manager.children(("s", "tools")) == []  # the torn call's leaf removed
        assert not (state / "sessions" / "gone.json").exists() and not (state / "calls" / "c0ffee.json").exists()
    manager.destroy(manager.open(("t",)))


def test_a_second_daemon_on_a_live_daemons_state_dir_is_refused(root_name: str, tmp_path: Path) -> None:
    """On another root but the same state dir, a second controller took the first one's running call for ended
    and wiped its records, so a crash of the first would have left the call to nobody."""
    from agentcgroup.errors import AgentCgroupError

    state = tmp_path / "state"
    first = Controller(root=root_name, state_dir=state)
    other = test_root_name()
    try:
        first.open_session("s")
        h = first.submit("s", ["sleep", "30"])
        wait_for(lambda: list((state / "calls").glob("*.json")), "the call written down")
        records = sorted(p.name for p in state.rglob("*.json"))
        with pytest.raises(AgentCgroupError, match="another agentcg daemon uses the state dir"):
            Controller(root=other, state_dir=state)
        assert sorted(p.name for p in state.rglob("*.json")) == records
        assert leftovers(other) == []
        first.kill_call("s", h.call_id)
        assert h.wait().killed_by is not None
    finally:
        first.close()
        remove_leftovers(leftovers(other))  # what a second controller made, if it was not refused
    assert leftovers(root_name) == []
