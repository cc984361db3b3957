"""The no-cgroup backend: runs, measures, says what it cannot enforce. Needs no privilege."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from agentcgroup import Session
from tests.conftest import wait_for


def test_runs_and_measures_without_cgroups(tmp_path) -> None:
    with Session("nc", backend="none") as s:
        assert s.manager.kind == "none"
        assert not s.manager.features.enforce_memory and s.manager.features.notes
        out = s.run(
            [sys.executable, "-c", "b = bytearray(40 << 20); import time; time.sleep(0.3)"],
            capture_output=True,
        )
    assert out.exit_code == 0 and out.enforced is False
    assert out.memory_peak >= 40 << 20
    assert out.cpu_s is not None


def test_memory_limit_is_an_allocation_failure(tmp_path) -> None:
    with Session("nc", backend="none") as s:
        out = s.run([sys.executable, "-c", "bytearray(1 << 30)"], memory="256M", capture_output=True)
    assert out.exit_code == 1 and b"MemoryError" in out.stderr


def test_timeout_kills_a_double_forked_tree(tmp_path) -> None:
    pidfile = tmp_path / "pid"
    script = (
        "import os, time, sys\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(60)\n"
        "    os._exit(0)\n"
        "time.sleep(60)\n"
    )
    with Session("nc", backend="none") as s:
        out = s.run([sys.executable, "-c", script], timeout=1.5)
    assert out.killed_by == "timeout"
    pid = int(pidfile.read_text())

    def state() -> str:
        try:
            with open(f"/proc/{pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return "gone"

    # sent SIGKILL: it ends as soon as it is given the CPU to (a fixed 0.1 s was not always enough on a busy
    # host); one the backend did not find would sleep on for its 60 s
    wait_for(lambda: state() in ("gone", "Z"), "the double-forked grandchild to end", 10)


def test_cli_says_limits_were_not_enforced() -> None:
    env = {**os.environ, "AGENTCG_BACKEND": "none"}
    r = subprocess.run(
        [sys.executable, "-m", "agentcgroup", "run", "--json", "--memory", "64M", "--", "true"],
        capture_output=True,
        env=env,
    )
    assert r.returncode == 0
    assert json.loads(r.stdout.splitlines()[-1])["enforced"] is False
