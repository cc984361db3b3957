"""``agentcg run --keep-background`` keeps what the command leaves running, in the call's cgroup, after the runner
has gone; the outcome says so; the cgroups go once the kept processes have ended. Without it they are stopped."""

from __future__ import annotations

import json
import os
import signal
import subprocess

import pytest

from agentcgroup.integrations.leaf import in_tool_leaf
from tests.conftest import SLOW, kernel_skip_reason, leftovers, wait_for
from tests.kernel.daemon_fixtures import PY

pytestmark = [pytest.mark.kernel]


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _run(tmp_path, root_name: str, *extra: str) -> tuple[dict, int]:
    if kernel_skip_reason():
        pytest.skip(kernel_skip_reason())
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCG_")} | {"AGENTCG_ROOT": root_name}
    pid_file = tmp_path / "bg.pid"
    r = subprocess.run(
        [PY, "-m", "agentcgroup", "run", "--json", "--memory", "256M", *extra, "--", "sh", "-c",
         f"setsid sleep 300 > /dev/null 2>&1 & echo $! > {pid_file}"],
        env=env, capture_output=True, text=True, timeout=60 * SLOW,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1]), int(pid_file.read_text())


@pytest.mark.parametrize("named", [False, True], ids=["own-session", "named-session"])
def test_kept_background_outlives_the_runner_then_its_cgroups_go(tmp_path, root_name, named) -> None:
    out, pid = _run(tmp_path, root_name, "--keep-background", *(["--session", "keep-s"] if named else []))
    try:
        assert out["background_kept"] == 1 and out["leftover_killed"] == 0
        assert _running(pid)  # the runner has exited; it runs on ...
        with open(f"/proc/{pid}/cgroup") as f:
            where = f.read()
        assert in_tool_leaf(where), where  # ... in its call's leaf, with its limits
        assert leftovers(root_name)
    finally:
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not leftovers(root_name), "the kept call's cgroups to go after its last process", 10)


def test_without_keep_background_they_are_stopped(tmp_path, root_name) -> None:
    out, pid = _run(tmp_path, root_name)
    assert out["leftover_killed"] == 1 and out["background_kept"] == 0
    assert not _running(pid)
    assert leftovers(root_name) == []
