"""A root daemon runs its event loop and its controller loop at a raised priority (``--control-nice``, -5 by
default), and every tool it starts runs at the daemon's own nice value: started directly by a worker, or exec'ed
from a warm spare's stub (the refiller makes those)."""

from __future__ import annotations

import os
import time

import pytest

from agentcgroup.daemon.client import Client
from tests.kernel.daemon_fixtures import start_daemon, stop_daemon, wait_for

pytestmark = [pytest.mark.kernel]

TOOL_NICE = ["sh", "-c", "cut -d')' -f2- /proc/self/stat"]  # after the command's name: nice is the 17th field


def _nice_of_stat(text: str) -> int:
    return int(text.split()[16])


def _task_nices(pid: int) -> dict[int, int]:
    out = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                out[int(task)] = _nice_of_stat(f.read().split(")", 1)[1])
        except FileNotFoundError:  # a thread that just ended
            pass
    return out


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
        except FileNotFoundError:
            pass
    return out


def _tool_nice(c: Client, session: str) -> int:
    o = c.run(session, TOOL_NICE, capture_output=True)
    assert o.exit_code == 0, o
    return _nice_of_stat(o.stdout)


@pytest.mark.skipif(os.geteuid() != 0, reason="raising a thread's priority needs root (CAP_SYS_NICE)")
@pytest.mark.parametrize("warm", ["2", "0"])
def test_control_threads_raised_tools_at_the_daemons_own_nice(tmp_path, root_name, warm) -> None:
    assert os.getpriority(os.PRIO_PROCESS, 0) == 0, "run the test at nice 0"
    d = start_daemon(tmp_path, root_name, "--warm", warm)
    try:
        c = Client(d.sock)
        c.open_session("s")
        # the first two calls start directly (the daemon makes spares for the sessions that make calls)
        nices = [_tool_nice(c, "s"), _tool_nice(c, "s")]
        if warm != "0":  # then spares: each a stub forked by the refiller, waiting in its leaf for a command
            wait_for(lambda: len(_children(d.pid)) >= 1, "a spare's stub")
            stubs = _children(d.pid)
            for pid in stubs:
                with open(f"/proc/{pid}/stat") as f:
                    assert _nice_of_stat(f.read().split(")", 1)[1]) == 0, f"stub {pid}"
        for _ in range(4):
            nices.append(_tool_nice(c, "s"))
            time.sleep(0.05)  # the refiller makes the next spare
        assert nices == [0] * 6, nices
        tasks = _task_nices(d.pid)
        # the event loop (the main thread) and the controller's loop; the closer thread at 10; the rest at 0
        assert tasks[d.pid] == -5, tasks
        assert sorted(n for n in tasks.values() if n < 0) == [-5, -5], tasks
        assert set(tasks.values()) <= {-5, 0, 10}, tasks
        c.close_session("s")
    finally:
        stop_daemon(d, root_name)


def test_control_nice_off_and_bad_values(tmp_path, root_name) -> None:
    d = start_daemon(tmp_path, root_name, env={"AGENTCG_CONTROL_NICE": "0"})
    try:
        c = Client(d.sock)
        c.open_session("s")
        assert _tool_nice(c, "s") == 0
        assert min(_task_nices(d.pid).values()) == 0
        c.close_session("s")
    finally:
        stop_daemon(d, root_name)
