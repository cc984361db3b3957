"""`agentcg run` and `agentcg doctor` as a user runs them: a real process, real cgroups."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import kernel_skip_reason, leftovers

pytestmark = [pytest.mark.kernel, pytest.mark.v2]


@pytest.fixture(autouse=True)
def _need_kernel() -> None:
    if kernel_skip_reason():
        pytest.skip(kernel_skip_reason())


def agentcg(root: str, *args: str, **kw) -> subprocess.CompletedProcess:
    # tables at a width of their own: not the terminal's (rich asks stdin too) nor a COLUMNS a test left behind
    env = {**os.environ, "AGENTCG_ROOT": root, "COLUMNS": "120"}
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run([sys.executable, "-m", "agentcgroup", *args], capture_output=True, env=env, **kw)


def test_the_readme_example(root_name) -> None:
    r = agentcg(root_name, "run", "--memory", "256M", "--", sys.executable, "-c", "bytearray(1 << 30)")
    assert r.returncode == 137
    err = r.stderr.decode()
    assert "agentcg: killed: out of memory" in err and "256 MiB memory limit" in err and "peak 256 MiB" in err
    assert err.count("\n") == 1  # one short message
    assert leftovers(root_name) == []


def test_json_outcome_is_the_last_line(root_name) -> None:
    r = agentcg(
        root_name,
        "run",
        "--json",
        "--memory",
        "64M",
        "--",
        "sh",
        "-c",
        f"printf no-newline; {sys.executable} -c 'bytearray(1 << 28)'",
    )
    assert r.returncode == 137
    lines = r.stdout.decode().splitlines()
    assert lines[0] == "no-newline"
    out = json.loads(lines[-1])
    assert out["killed_by"] == "memory" and out["returncode"] == 137 and out["memory_limit"] == 64 << 20
    assert r.stderr.decode().count("agentcg:") == 0  # with --json the feedback is in the object
    assert leftovers(root_name) == []


def test_output_and_exit_code_pass_through(root_name) -> None:
    r = agentcg(root_name, "run", "--", "sh", "-c", "printf 'a\\0b'; echo err >&2; exit 7")
    assert (r.returncode, r.stdout, r.stderr) == (7, b"a\0b", b"err\n")


def test_timeout_and_cpu_from_the_cli(root_name) -> None:
    r = agentcg(root_name, "run", "--timeout", "500ms", "--cpu", "50%", "--pids", "16", "--", "sleep", "30")
    assert r.returncode == 137
    assert "time limit (0.5 s)" in r.stderr.decode()
    assert leftovers(root_name) == []


def test_missing_command_is_127_and_creates_nothing(root_name) -> None:
    r = agentcg(root_name, "run", "--memory", "64M", "--", "no-such-command-xyz")
    assert r.returncode == 127 and "command not found: no-such-command-xyz" in r.stderr.decode()
    assert leftovers(root_name) == []


def test_doctor(root_name) -> None:
    r = agentcg(root_name, "doctor", "--json")
    assert r.returncode == 0
    d = json.loads(r.stdout)
    assert d["backend"] in ("v2", "hybrid") and d["kill"] and d["enforce_memory"] is True
    assert leftovers(root_name) == []
    table = agentcg(root_name, "doctor")
    assert b"kill a tree" in table.stdout and table.returncode == 0
