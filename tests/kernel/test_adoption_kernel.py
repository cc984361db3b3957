"""Crash safety: a controller killed with SIGKILL; its successor adopts the sessions (as they were: owner,
priority, limits, agent protection) and the calls it left, and completes their outcomes (a call that ended
while nobody watched: its duration without the downtime); nothing leaks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from agentcgroup import Controller, ControllerConfig, get_manager
from tests.conftest import SLOW, kernel_skip_reason, leftovers, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.v2]

PY = sys.executable
MiB = 1 << 20

FIRST = """
import sys, time
from agentcgroup import Controller, ControllerConfig, Limits, get_manager
root, state, idfile, hold, go = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
ctl = Controller(get_manager(root), config=ControllerConfig(warm=1), state_dir=state)
ctl.open_session("s", uid=1000, priority="high", limits=Limits(memory_max=512 << 20), agent_memory=64 << 20)
work = "import os, time; b = bytearray(40 << 20); time.sleep(%s)\\nwhile not os.path.exists(%r): time.sleep(0.01)" % (
    hold,
    go,
)
h = ctl.submit("s", [sys.executable, "-c", work], timeout=120, uid=1000)
open(idfile, "w").write(h.call_id)
time.sleep(600)
"""


def start_first(root: str, tmp_path, hold: float, go) -> tuple[subprocess.Popen, str]:
    """The first controller, its call holding 40 MiB for ``hold`` s and then until the file ``go`` exists."""
    idfile = tmp_path / "call-id"
    p = subprocess.Popen([PY, "-c", FIRST, root, str(tmp_path / "state"), str(idfile), str(hold), str(go)])
    deadline = time.monotonic() + 30 * SLOW
    while not idfile.exists() or not idfile.read_text():
        assert p.poll() is None and time.monotonic() < deadline, "the first controller did not start its call"
        time.sleep(0.05)
    return p, idfile.read_text()


@pytest.fixture(autouse=True)
def _need_kernel() -> None:
    if kernel_skip_reason():
        pytest.skip(kernel_skip_reason())


@pytest.mark.parametrize("when", ["still-running", "ended-meanwhile"])
def test_sigkilled_controller_is_adopted(tmp_path, root_name, when: str) -> None:
    hold = 2.0 * SLOW
    go = tmp_path / "go"  # a call still running at the adoption runs until it is adopted (not for a fixed time:
    if when == "ended-meanwhile":  # a busy host let it end first); one that ends meanwhile ends after hold
        go.touch()
    first, call_id = start_first(root_name, tmp_path, hold, go)
    watch = get_manager(root_name)
    try:
        leaf = watch.open(("s", "tools", call_id))
        # the call holds its 40 MiB and the warm spare is ready
        wait_for(lambda: watch.memory_current(leaf) >= 40 * MiB and len(watch.children(("s", "tools"))) == 2)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        if when == "ended-meanwhile":
            wait_for(lambda: not watch.pids(leaf))
            time.sleep(1.5)  # the controller's downtime, after the call ended
    finally:
        watch.close()  # our handles only: the tree stays for the successor

    m = get_manager(root_name)
    ctl = Controller(m, config=ControllerConfig(warm=0), state_dir=tmp_path / "state")
    try:
        s = ctl.session("s", uid=1000).info()
        assert (s["uid"], s["priority"], s["limits"]["memory_max"], s["agent_memory"]) == (
            1000,
            "high",
            "512M",
            64 * MiB,
        )
        assert ctl.sessions.protected() == 64 * MiB  # the root grants its agents what the first did
        go.touch()  # adopted: the call may end
        wait_for(lambda: ctl.outcome(call_id, uid=1000) is not None, "the adopted call's outcome")
        out = ctl.outcome(call_id, uid=1000)
        assert out.call_id == call_id and out.session == "s"
        assert out.exit_status_known is False and out.exit_code is None
        assert out.memory_peak >= 40 * MiB
        if when == "still-running":
            assert out.duration_s >= hold * 0.9
        else:  # what is known of it (it ran while its controller last stamped the state dir), never the downtime
            assert out.duration_s < hold, out.duration_s
            (window,) = [s.figures for s in out.steps if "no controller watched" in s.reason]
            assert window["ran_at_least_s"] <= hold <= window["ran_at_most_s"] <= hold + 1.5 + 30 * SLOW
        assert any(s.action == "note" and "adopted" in s.reason for s in out.steps)
        # the session itself was adopted: it runs new calls
        assert ctl.run("s", ["true"], uid=1000).exit_code == 0
        # the dead controller's spare leaf was removed, the call's leaf too
        assert ctl.manager.children(("s", "tools")) == []
    finally:
        ctl.close()
        m.close()
    assert leftovers(root_name) == []
    # its outcome survives another restart
    m2 = get_manager(root_name)
    with Controller(m2, state_dir=tmp_path / "state") as again:
        assert again.outcome(call_id, uid=1000).memory_peak == out.memory_peak
    m2.close()
    assert leftovers(root_name) == []
