"""``agentcg run`` killed with SIGKILL while its call runs a tree with ``setsid`` children: within 1 s nothing of
the call runs and no cgroup of it is left (embedded: the supervisor it forked; ``--socket``: the daemon, which
sees the client's connection end)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from agentcgroup.integrations.leaf import in_tool_leaf
from tests.conftest import SLOW, kernel_skip_reason, leftovers, wait_for
from tests.kernel.daemon_fixtures import PY, start_daemon, stop_daemon

pytestmark = [pytest.mark.kernel]

TREE = """
setsid sleep 300 & echo $! >> "$1"
setsid bash -c 'sleep 300 & echo $! >> "$1"; wait' x "$1" & echo $! >> "$1"
echo $$ >> "$1"
touch "$1.ready"
wait
"""


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"  # a zombie runs nothing (init reaps it)
    except OSError:
        return False


def _cgroup_of(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        return f.read()


def _run_and_kill(tmp_path, env: dict[str, str], extra: list[str]) -> tuple[list[int], str, float]:
    pids_file = tmp_path / "pids"
    runner = subprocess.Popen(
        [PY, "-m", "agentcgroup", "run", *extra, "--", "bash", "-c", TREE, "tree", str(pids_file)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:

        def started() -> bool:
            full = os.path.exists(f"{pids_file}.ready") and len(pids_file.read_text().split()) == 4
            return full or runner.poll() is not None

        wait_for(started, "the tree to start", 60)
        assert runner.poll() is None, runner.stderr.read().decode() if runner.stderr else ""
        pids = [int(p) for p in pids_file.read_text().split()]
        assert len(pids) == 4 and all(_running(p) for p in pids)
        where = _cgroup_of(pids[0])
        assert in_tool_leaf(where), where
        runner.send_signal(signal.SIGKILL)
        runner.wait()
        t0 = time.monotonic()
        return pids, where, t0
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()


def _wait_gone(check, t0: float) -> float:
    while not check():
        assert time.monotonic() - t0 < 5 * SLOW, "still there after 5 s"
        time.sleep(0.005)
    return time.monotonic() - t0


@pytest.mark.parametrize("named", [False, True], ids=["own-session", "named-session"])
def test_sigkilled_embedded_runner_leaves_nothing(tmp_path, root_name, named) -> None:
    if kernel_skip_reason():
        pytest.skip(kernel_skip_reason())
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCG_")} | {"AGENTCG_ROOT": root_name}
    pids, _, t0 = _run_and_kill(tmp_path, env, ["--session", "shim-s1"] if named else [])
    took = _wait_gone(lambda: not any(_running(p) for p in pids) and not leftovers(root_name), t0)
    assert took < 1.0 * SLOW, f"took {took:.3f} s"


def test_sigkilled_runner_through_the_daemon_leaves_nothing(tmp_path, root_name) -> None:
    d = start_daemon(tmp_path, root_name)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCG_")}
        pids, where, t0 = _run_and_kill(tmp_path, env, ["--socket", d.sock])
        sessions = {line.split(":", 2)[2].rsplit("/tools/", 1)[0] for line in where.splitlines() if "/tools/" in line}

        def gone() -> bool:
            if any(_running(p) for p in pids):
                return False
            with open("/proc/self/mountinfo") as f:
                mounts = [line.split()[4] for line in f if "cgroup" in line]
            return not any(os.path.exists(m + part) for m in mounts for part in sessions)

        took = _wait_gone(gone, t0)
        assert took < 1.0 * SLOW, f"took {took:.3f} s"
    finally:
        stop_daemon(d, root_name)
