"""The bash shim on the real kernel: a nested bash -c stays in its call's leaf, and the limit holds."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from agentcgroup.integrations.shim import install
from tests.conftest import kernel_skip_reason, leftovers

pytestmark = [pytest.mark.kernel]

REPORT = "import os\nprint(open('/proc/self/cgroup').read())\nprint(open(f'/proc/{os.getppid()}/cgroup').read())\n"


@pytest.fixture
def shim_env(tmp_path, root_name):
    if kernel_skip_reason():
        pytest.skip(kernel_skip_reason())
    install(str(tmp_path / "shims"))
    env = {
        **os.environ,
        "PATH": f"{tmp_path / 'shims'}:{os.environ['PATH']}",
        "AGENTCG_ROOT": root_name,
        "AGENTCG_SESSION": "agent1",
    }
    env.pop("AGENTCG_SOCKET", None)
    yield env
    assert leftovers(root_name) == []


def leaf_lines(text: str) -> set[str]:
    return {line for line in text.splitlines() if "/tools/" in line}


def test_nested_bash_stays_in_the_calls_leaf(shim_env, root_name, tmp_path) -> None:
    script = tmp_path / "report.py"  # prints its own cgroup and its parent's (the nested bash)
    script.write_text(REPORT)
    inner = f'{sys.executable} "{script}"'
    r = subprocess.run(
        ["bash", "-c", f"bash -c '{inner}'; echo outer-done"], capture_output=True, text=True, env=shim_env
    )
    assert r.returncode == 0, r.stderr
    blocks = [b for b in r.stdout.split("\n\n") if b.strip() and "outer-done" not in b]
    python_cg, nested_bash_cg = leaf_lines(blocks[0]), leaf_lines(blocks[1])
    assert python_cg, f"the command is not in a tool-call leaf: {blocks[0]}"
    assert python_cg == nested_bash_cg, "the nested bash left its call's leaf"
    assert all(f"{root_name}/agent1/tools/" in line for line in python_cg)


def test_the_limit_holds_for_the_whole_nesting(shim_env) -> None:
    env = {**shim_env, "AGENTCG_SHIM_ARGS": "--memory 64M"}
    r = subprocess.run(
        ["bash", "-c", f"bash -c \"{sys.executable} -c 'bytearray(1 << 28)'\"; echo after"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert "out of memory" in r.stderr and "64 MiB" in r.stderr, (r.returncode, r.stdout, r.stderr)
    from agentcgroup.detect import detect

    if detect().mode == "v2":  # memory.oom.group: the kernel takes the whole call, outer bash included, at once
        assert r.returncode == 137 and "after" not in r.stdout, (r.returncode, r.stdout, r.stderr)
    else:  # v1 has no oom group: the controller kills the rest when it sees the OOM kill, and a busy host may
        # let the outer bash finish first; either way the exit status is the outer bash's own
        assert (r.returncode, "after" in r.stdout) in ((137, False), (0, True)), (r.returncode, r.stdout)


def test_concurrent_calls_share_the_session(shim_env) -> None:
    results: list[int] = []

    def one() -> None:
        results.append(subprocess.run(["bash", "-c", "sleep 0.5; true"], env=shim_env).returncode)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [0, 0, 0, 0]  # none was killed when another one's session closed
