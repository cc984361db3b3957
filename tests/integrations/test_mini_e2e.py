"""mini-swe-agent, the real package, with a scripted model: the second command allocates past its limit; the run
goes on, the model's next observation carries the feedback, the agent process survives."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import SLOW, kernel_skip_reason, leftovers

pytestmark = [pytest.mark.kernel]

AGENT = r"""
import json, sys
from minisweagent.agents.default import DefaultAgent
from minisweagent.environments import get_environment_class
from minisweagent.models.test_models import DeterministicModel, make_output

outputs = [
    make_output("look around", [{"command": "echo hello"}]),
    make_output("build it", [{"command": "python3 -c 'bytearray(1 << 30)'"}]),
    make_output("carry on", [{"command": "echo still here"}]),
    make_output("done", [{"command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT; echo the answer"}]),
]
# the class resolves as `mini --environment-class agentcgroup.integrations.mini.AgentcgroupEnvironment` does
Env = get_environment_class("agentcgroup.integrations.mini.AgentcgroupEnvironment")
env = Env(session="mini-e2e", memory="128M", timeout=60)
agent = DefaultAgent(DeterministicModel(outputs=outputs), env, system_template="You are a test.",
                     instance_template="{{task}}", step_limit=10, cost_limit=0)
result = agent.run("test task")
with open(sys.argv[1], "w") as f:
    json.dump({"result": result, "messages": agent.messages}, f)
"""


def test_mini_swe_agent_run_goes_on_after_an_oom(tmp_path, root_name) -> None:
    pytest.importorskip("minisweagent", reason="mini-swe-agent is not installed (pip install 'agentcgroup[mini]')")
    if kernel_skip_reason():
        pytest.skip(kernel_skip_reason())
    out_file = tmp_path / "run.json"
    env = {**os.environ, "AGENTCG_ROOT": root_name, "MSWEA_SILENT_STARTUP": "1"}
    env.pop("AGENTCG_SOCKET", None)
    r = subprocess.run(
        [sys.executable, "-c", AGENT, str(out_file)], capture_output=True, text=True, env=env, timeout=300 * SLOW
    )
    assert r.returncode == 0, r.stderr[-2000:]  # the agent process survived
    data = json.loads(out_file.read_text())
    assert data["result"]["exit_status"] == "Submitted" and "the answer" in data["result"]["submission"]
    observations = [m for m in data["messages"] if m.get("role") in ("user", "tool")][1:]  # after the task
    assert "hello" in observations[0]["content"]
    oom = observations[1]["content"]
    assert "<returncode>137</returncode>" in oom
    assert "[agentcgroup] killed: out of memory" in oom and "128 MiB" in oom
    assert "still here" in observations[2]["content"]  # the run went on
    assert leftovers(root_name) == []
