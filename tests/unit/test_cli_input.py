"""Bad input to the CLI: one line naming the value, exit code 2, nothing created. Validation comes before any
cgroup is made, so these need no cgroups (and run unprivileged); they check no root of theirs appeared."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import leftovers

TRACE = Path(__file__).resolve().parents[1] / "data" / "replay" / "synthetic-agent.jsonl"


def agentcg(root: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "AGENTCG_ROOT": root}
    return subprocess.run([sys.executable, "-m", "agentcgroup", *args], capture_output=True, env=env)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--memory", "-5M"], "'-5M'"),
        (["--memory", "12XB"], "'12XB'"),
        (["--session", "../x"], "'../x'"),
        (["--session", "a/b"], "'a/b'"),
        (["--cpu", "0"], "'0'"),
        (["--pids", "-1"], "'-1'"),
        (["--memory", "256M", "--memory-high", "1G"], "'1G'"),
        (["--timeout", "soon"], "'soon'"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_created(root_name, args, named) -> None:
    r = agentcg(root_name, "run", *args, "--", "true")
    assert r.returncode == 2
    err = r.stderr.decode()
    assert err.count("\n") == 1 and err.startswith("agentcg: error: ") and named in err, err
    assert leftovers(root_name) == []


def test_bench_bad_input_is_one_line_and_creates_nothing(root_name) -> None:
    for args, word in (
        (["--sessions", "1"], "sessions 1"),
        (["--arms", "none,fifo"], "'fifo'"),
        (["--budget", "12XB"], "12XB"),
        (["--duration", "0"], "duration 0"),
    ):
        r = subprocess.run(
            [sys.executable, "-m", "agentcgroup", "bench", str(TRACE), "--root", root_name, *args],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 2 and word in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    r = subprocess.run([sys.executable, "-m", "agentcgroup", "bench", "/no/such/trace"], capture_output=True, text=True)
    assert r.returncode == 2 and "/no/such/trace" in r.stderr
    assert leftovers(root_name) == []
