"""The bench's per-arm figures from hand-made runs (no cgroups): what is counted, and how."""

import json
import math

import pytest

from agentcgroup.bench.arms import ARMS, parse_arms
from agentcgroup.bench.driver import RunResult, SessionRun
from agentcgroup.bench.summary import figures, markdown_table, plot
from agentcgroup.errors import InvalidValue


def _run(arm: str, i: int, high_s: float | None, lost_low: int, killed: int, mem: float) -> RunResult:
    sessions = [SessionRun("s0", "high", 3, 3, 0, high_s is None, high_s)]
    for k in range(3):
        lost = k < lost_low
        sessions.append(SessionRun(f"s{k + 1}", "low", 3, 3, killed if k == 0 else 0, lost, None if lost else 9.0))
    return RunResult(arm, i, 1000, sessions, 10.0 + i, mem, int(mem * 1.2), kernel_oom_kills=3 if arm == "none" else 0)


def test_figures_count_losses_kills_and_slowdown_against_alone() -> None:
    runs = [_run("none", i, None if i == 0 else 12.0, 2, 1, 900) for i in range(4)]
    runs += [_run("agentcgroup", i, 10.0 + 0.1 * i, 0, 2, 800) for i in range(4)]
    none, ours = figures(runs, alone_s=[10.0, 10.0, 10.0])
    assert none.arm == "none" and none.runs == 4
    assert none.agents_lost.value == 2 + 0.25  # two low agents every run, the high one in one run of four
    assert none.high_lost_runs == 1
    assert math.isclose(none.high_slowdown_median.value, 0.2)
    assert ours.agents_lost.value == 0 and ours.high_lost_runs == 0
    assert ours.calls_killed.value == 2
    assert math.isclose(ours.high_slowdown_median.value, 0.015, abs_tol=1e-9)  # median of 0, .01, .02, .03
    assert math.isclose(ours.high_slowdown_p95, 0.0285, abs_tol=1e-9)
    assert math.isclose(ours.mem_util.value, 0.8)
    json.dumps([f.to_dict() for f in (none, ours)])  # serialisable
    assert none.kernel_oom_kills.value == 3 and ours.kernel_oom_kills.value == 0
    assert [f.to_dict()["kernel_oom_kills"]["value"] for f in (none, ours)] == [3, 0]
    table = markdown_table([none, ours])
    assert "| no isolation | 4 |" in table and "agentcgroup" in table and "kernel OOM kills / run" in table


def test_plot_writes_a_png(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    runs = [_run("none", i, 12.0, 1, 1, 900) for i in range(3)] + [_run("agentcgroup", 0, 10.0, 0, 1, 700)]
    path = plot(figures(runs, [10.0]), str(tmp_path / "b.png"))
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_arms_parse_and_size_their_limits() -> None:
    assert [a.name for a in parse_arms("none, agentcgroup,none")] == ["none", "agentcgroup"]
    with pytest.raises(InvalidValue, match="'oomd'"):
        parse_arms("none,oomd")
    with pytest.raises(InvalidValue):
        parse_arms(" , ")
    assert ARMS["static"].session_limits(1000, 4000, 4).memory_max == 1100
    assert ARMS["high"].session_limits(1000, 4000, 4).memory_high == 1000
    assert ARMS["none"].session_limits(1000, 4000, 4).is_empty()
    base, ours = ARMS["none"].config(4000), ARMS["agentcgroup"].config(4000)
    assert base.tool_oom_score_adj == 0 and base.agent_memory_low == 0 and base.budget == 4000
    assert ours.tool_oom_score_adj == 1000 and ours.agent_memory_low > 0
    assert [p.name for p in ARMS["none"].policies()] == ["timeout", "oom-group"]
    assert "pressure" in [p.name for p in ARMS["agentcgroup"].policies()]


def test_the_learned_arm_is_the_controller_with_prediction() -> None:
    learned, ours = ARMS["learned"], ARMS["agentcgroup"]
    assert learned.config(4000).predict and not ours.config(4000).predict
    assert learned.config(4000).with_(predict=False) == ours.config(4000)
    assert [p.name for p in learned.policies()] == [p.name for p in ours.policies()]
