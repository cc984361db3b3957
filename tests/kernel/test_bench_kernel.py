"""`agentcg bench` on the real kernel, small: three replays of the project's synthetic session at once, under
no isolation and under agentcgroup, with the budget sized by the calibration run. agentcgroup must keep every
agent and leave the high-priority session's calls alone; the figures come out as JSON; nothing is left."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import DATA, SLOW, kernel_skip_reason, leftovers

pytestmark = [pytest.mark.kernel]

TRACE = DATA / "replay" / "synthetic-agent.jsonl"


@pytest.mark.host_only(reason="35 s of replays here, ~10 min under TCG; the guest runs replay and controller")
def test_bench_agentcgroup_keeps_agents_and_the_high_session(root_name, tmp_path) -> None:
    if kernel_skip_reason():
        pytest.skip(kernel_skip_reason())
    cmd = [
        sys.executable, "-m", "agentcgroup", "bench", str(TRACE),
        "--sessions", "3", "--runs", "1", "--duration", "4", "--peak", "200M",
        "--arms", "none,agentcgroup", "--root", root_name, "--json", "--out", str(tmp_path / "out"),
    ]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300 * SLOW, env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert [a["arm"] for a in doc["arms"]] == ["none", "agentcgroup"]
    assert doc["budget"] > 0 and [s["priority"] for s in doc["sessions"]] == ["high", "low", "normal"]
    ours = next(run for run in doc["runs"] if run["arm"] == "agentcgroup")
    assert ours["agents_lost"] == 0, ours
    assert all("kernel_oom_kills" in run for run in doc["runs"]) and all("kernel_oom_kills" in a for a in doc["arms"])
    for run in doc["runs"]:  # the killed calls counted apart are among the killed ones, each session's by index
        assert max(run["calls_over"], run["calls_over_agents"]) <= run["calls_killed"], run
        assert all(len(s["killed_calls"]) == s["calls_killed"] for s in run["sessions"]), run
    assert all("calls_killed_over_budget_beside_agents" in a for a in doc["arms"])
    high = ours["sessions"][0]
    assert high["calls_run"] == high["calls"] and high["calls_killed"] == 0, high
    assert doc["alone_s"]["median"] > 0
    for f in ("bench.json", "bench.md", "bench.png"):
        assert (tmp_path / "out" / f).stat().st_size > 0
    assert leftovers(root_name) == []
