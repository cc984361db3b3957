"""mini-swe-agent's environment contract: ``AgentcgroupEnvironment`` next to mini's own ``LocalEnvironment`` on
the same inputs, embedded and through the daemon. Everything mini's agent loop reads (output, returncode,
exception_info, extra.exception_type, the ``Submitted`` exit) must be the same; ours only adds the feedback line
and ``extra.agentcgroup``."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.conftest import SLOW, kernel_skip_reason, leftovers, wait_for

pytest.importorskip("minisweagent", reason="mini-swe-agent is not installed (pip install 'agentcgroup[mini]')")

from minisweagent.environments.local import LocalEnvironment
from minisweagent.exceptions import Submitted

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.host_only(reason="mini's result shapes are the same on every kernel; the guest runs test_mini_e2e"),
]

FEEDBACK = "[agentcgroup] "


@pytest.fixture(params=["embedded", "daemon"])
def ours(request, tmp_path, root_name, monkeypatch):
    """A factory of AgentcgroupEnvironment (embedded, or through a daemon of the test's own)."""
    if kernel_skip_reason():
        pytest.skip(kernel_skip_reason())
    from agentcgroup.integrations.mini import AgentcgroupEnvironment

    monkeypatch.setenv("AGENTCG_ROOT", root_name)
    monkeypatch.delenv("AGENTCG_SOCKET", raising=False)
    daemon = None
    extra = {}
    if request.param == "daemon":
        from tests.kernel.daemon_fixtures import start_daemon

        daemon = start_daemon(tmp_path, root_name)
        extra["socket"] = daemon.sock
    made = []

    def make(**kw):
        env = AgentcgroupEnvironment(session=f"mini-contract-{len(made)}", **extra, **kw)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()
    if daemon is not None:
        from tests.kernel.daemon_fixtures import stop_daemon

        stop_daemon(daemon, root_name)
    assert leftovers(root_name) == []


def _mini_view(result: dict) -> dict:
    """What mini's own environment would have returned: ours without what it adds."""
    view = dict(result)
    extra = {k: v for k, v in view.pop("extra", {}).items() if k != "agentcgroup"}
    if extra:
        view["extra"] = extra
    return view


def _both(ours_env, local_env, command: str, **kw) -> tuple[dict, dict]:
    mine = ours_env.execute({"command": command}, **kw)
    theirs = local_env.execute({"command": command}, **kw)
    assert "agentcgroup" in mine["extra"], mine  # ours is there, always
    return mine, theirs


@pytest.mark.parametrize(
    "command",
    [
        "echo o1; echo e1 >&2; echo o2; echo e2 >&2",  # one pipe: the order as written
        "printf 'a\\r\\nb\\rc'",  # universal newlines, as mini's text mode reads them
        "printf 'caf\\303\\251 \\377 end'",  # UTF-8, and a bad byte replaced
        "echo $0; exit 3",  # /bin/sh, as mini's shell=True; the exit code
        "for i in 1 2 3; do echo out$i; echo err$i >&2; done",
    ],
)
def test_output_and_returncode_are_minis(ours, command) -> None:
    mine, theirs = _both(ours(), LocalEnvironment(), command)
    assert _mini_view(mine) == theirs


def test_env_and_cwd_are_minis(ours, tmp_path) -> None:
    sub = tmp_path / "sub dir"
    sub.mkdir()
    mine_env = ours(env={"FOO": "bar baz"}, cwd=str(tmp_path))
    local_env = LocalEnvironment(env={"FOO": "bar baz"}, cwd=str(tmp_path))
    os.environ["AGENTCG_MINI_CONTRACT"] = "inherited"
    expected = ["bar baz inherited\n", f"{tmp_path}\n", f"{sub}\n"]
    try:
        for (command, kw), want in zip(
            [
                ("echo $FOO $AGENTCG_MINI_CONTRACT", {}),
                ("pwd", {}),  # the config's cwd
                ("pwd", {"cwd": str(sub)}),  # the call's cwd wins
            ],
            expected,
            strict=True,
        ):
            mine, theirs = _both(mine_env, local_env, command, **kw)
            assert theirs["output"] == want
            assert _mini_view(mine) == theirs
    finally:
        del os.environ["AGENTCG_MINI_CONTRACT"]


def test_a_missing_cwd_is_an_error_result_not_a_raise(ours, tmp_path) -> None:
    missing = str(tmp_path / "gone")
    mine, theirs = _both(ours(), LocalEnvironment(), "pwd", cwd=missing)
    assert theirs["returncode"] == -1 and theirs["extra"]["exception_type"] == "FileNotFoundError"
    assert _mini_view(mine) == theirs
    assert mine["extra"]["agentcgroup"]["error"]


def test_a_spawn_error_is_an_error_result_with_minis_type(ours, tmp_path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    mine, theirs = _both(ours(), LocalEnvironment(), "pwd", cwd=str(a_file))
    assert theirs["returncode"] == mine["returncode"] == -1 and mine["output"] == theirs["output"] == ""
    assert mine["extra"]["exception_type"] == theirs["extra"]["exception_type"] == "NotADirectoryError"
    assert mine["exception_info"].startswith("An error occurred while executing the command: [Errno 20] ")


def test_a_timeout_is_minis_timeout(ours) -> None:
    command = "echo $((111*9)); sleep 30"
    t0 = time.monotonic()
    mine, theirs = _both(ours(timeout=1), LocalEnvironment(timeout=1), command)
    assert time.monotonic() - t0 < 20 * SLOW
    assert theirs["returncode"] == -1 and "timed out" in theirs["exception_info"]
    view = _mini_view(mine)
    head, sep, feedback = view.pop("output").partition(FEEDBACK)
    assert sep and "time limit" in feedback  # ours: the feedback line after the output so far
    assert head == theirs.pop("output") == "999\n"
    assert view == theirs  # returncode -1, exception_info, extra.exception_type "TimeoutExpired", exception
    assert mine["extra"]["agentcgroup"]["killed_by"] == "timeout"


def test_submitted_is_minis(ours) -> None:
    command = "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT; echo the answer; echo more >&2"
    raised = []
    for env in (ours(), LocalEnvironment()):
        with pytest.raises(Submitted) as info:
            env.execute({"command": command})
        raised.append(info.value.messages)
    assert raised[0] == raised[1]
    assert raised[0][0]["extra"]["submission"] == "the answer\nmore\n"


def test_a_failed_submission_is_not_submitted(ours) -> None:
    mine, theirs = _both(ours(), LocalEnvironment(), "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT; exit 1")
    assert _mini_view(mine) == theirs and theirs["returncode"] == 1


def test_a_memory_kill_adds_our_feedback(ours) -> None:
    env = ours(memory="64M")
    r = env.execute({"command": f"echo before; {sys.executable} -c 'bytearray(1 << 30)'"})
    assert r["returncode"] == 137 and r["exception_info"] == ""
    assert r["output"].startswith("before\n")
    assert f"\n{FEEDBACK}killed: out of memory" in r["output"]
    assert r["extra"]["agentcgroup"]["killed_by"] == "memory"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


def test_background_processes_end_with_the_call_unless_kept(ours, tmp_path) -> None:
    pid_file = tmp_path / "bg.pid"
    started = f"sleep 300 > /dev/null 2>&1 & echo $! > {pid_file}"
    r = ours().execute({"command": started})
    assert r["returncode"] == 0 and r["extra"]["agentcgroup"]["leftover_killed"] >= 1
    assert not _alive(int(pid_file.read_text()))
    env = ours(keep_background=True)
    r = env.execute({"command": started})
    assert r["returncode"] == 0 and r["extra"]["agentcgroup"]["leftover_killed"] == 0
    assert r["extra"]["agentcgroup"]["background_kept"] == 1  # the outcome says so
    pid = int(pid_file.read_text())
    assert _alive(pid)  # kept, as mini's own environment keeps it
    assert env.execute({"command": "echo next"})["output"] == "next\n"
    assert _alive(pid)
    env.close()  # the session's end ends it
    wait_for(lambda: not _alive(pid), "the kept background process to end with the session", 10)


def test_a_scripted_mini_run_matches_local(tmp_path, root_name) -> None:
    """mini's DefaultAgent with a scripted model, once per class (resolved by name, as `mini --environment-class`
    does): the same result and the same observations, ours with the feedback added to the timeout's."""
    if kernel_skip_reason():
        pytest.skip(kernel_skip_reason())
    script = r"""
import json, sys
from minisweagent.agents.default import DefaultAgent
from minisweagent.environments import get_environment_class
from minisweagent.models.test_models import DeterministicModel, make_output

outputs = [
    make_output("look", [{"command": "echo o1; echo e1 >&2; echo o2"}]),
    make_output("slow", [{"command": "echo partial; sleep 30"}]),
    make_output("nowhere", [{"command": "pwd"}]),
    make_output("done", [{"command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT; echo the answer"}]),
]
Env = get_environment_class(sys.argv[2])
env = Env(timeout=1, **({"session": "mini-cli"} if "agentcgroup" in sys.argv[2] else {}))
real = env.execute
def execute(action, cwd="", **kw):  # the third command in a directory that is not there
    return real(action, cwd="/nonexistent-agentcg" if action["command"] == "pwd" else cwd, **kw)
env.execute = execute
agent = DefaultAgent(DeterministicModel(outputs=outputs), env, system_template="You are a test.",
                     instance_template="{{task}}", step_limit=10, cost_limit=0)
result = agent.run("test task")
with open(sys.argv[1], "w") as f:
    json.dump({"result": result, "messages": agent.messages}, f)
"""
    import json

    runs = {}
    env = {**os.environ, "AGENTCG_ROOT": root_name, "MSWEA_SILENT_STARTUP": "1"}
    env.pop("AGENTCG_SOCKET", None)
    for cls in ("local", "agentcgroup.integrations.mini.AgentcgroupEnvironment"):
        out = tmp_path / f"{len(runs)}.json"
        r = subprocess.run(
            [sys.executable, "-c", script, str(out), cls], capture_output=True, text=True, env=env, timeout=120 * SLOW
        )
        assert r.returncode == 0, r.stderr[-2000:]
        runs[cls] = json.loads(out.read_text())
    local, mine = runs.values()
    assert mine["result"] == local["result"] and local["result"]["exit_status"] == "Submitted"
    obs_local = [m["content"] for m in local["messages"] if m.get("role") in ("user", "tool")]
    obs_mine = [m["content"] for m in mine["messages"] if m.get("role") in ("user", "tool")]
    assert len(obs_mine) == len(obs_local)
    assert obs_mine[1] == obs_local[1] and "o1\ne1\no2" in obs_local[1]
    assert "timed out" in obs_local[2] and "timed out" in obs_mine[2] and "partial" in obs_mine[2]
    assert FEEDBACK in obs_mine[2]  # ours adds the feedback to the timeout's observation
    assert obs_mine[3] == obs_local[3] and "No such file or directory" in obs_local[3]
    assert leftovers(root_name) == []
