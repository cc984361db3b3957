"""The characterization's figures, checked by hand against the project's synthetic traces.

Task ``quirky__task-1`` (13 samples, 6 s apart, 72 s sampled, claude_time 100 s) has tool calls of
0.05 + 15 + 18 + 5 + 2 = 40.05 s, 35.05 s once the Bash call inside the Task call is counted once.
Three samples exceed 300 MB: 400 MB and 1.2 GB inside the failing pytest call, 350 MB between calls.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentcgroup.quantile import quantile
from agentcgroup.report.characterize import characterize
from agentcgroup.report.distribution import describe, union_length
from agentcgroup.report.memory import concurrency
from agentcgroup.report.paper import BATCH18, HAIKU, choose_reference
from agentcgroup.report.retries import loops, normalize, paper_groups, similar
from agentcgroup.report.selection import Thresholds, drop_reason
from agentcgroup.traces import Samples, Task, ToolCall, discover

DATA = Path(__file__).resolve().parents[1] / "data" / "traces"
QUIRKY_MEM = [
    12.5e6,
    185e6,
    190e6,
    190e6,
    200e6,
    400e6,
    1.2e9,
    350e6,
    190e6,
    190e6,
    268_435_456,
    195e6,
    190e6,
]


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    return [s.load() for s in discover([DATA])]


@pytest.fixture(scope="module")
def result(tasks: list[Task]) -> dict:
    return characterize(tasks)


def test_valid_tasks_and_drop_reasons(result: dict) -> None:
    assert (result["tasks_found"], result["tasks"], result["tasks_dropped"]) == (5, 2, 3)
    assert result["valid"] == ["quirky__task-1", "retry__task-2#2"]
    assert result["drop_reasons"] == {"run failed": 1, "too few samples": 1, "sampled too briefly": 1}
    reasons = {d["task"]: d["reason"] for d in result["dropped"]}
    assert reasons["short__task-3"] == "too few samples (5 < 10)"
    assert reasons["demo-session"] == "sampled too briefly (1 s < 60 s)"
    assert reasons["failed__task-4"].startswith("run failed: Failed to start container")


def test_thresholds_change_what_is_kept(tasks: list[Task]) -> None:
    loose = characterize(tasks, Thresholds(min_duration_s=0, min_samples=2))
    assert loose["tasks"] == 4 and loose["drop_reasons"] == {"run failed": 1}
    strict = characterize(tasks, Thresholds(min_duration_s=71, min_samples=10))
    assert strict["valid"] == ["quirky__task-1"]


def test_time_shares(result: dict) -> None:
    # only quirky: retry__task-2 has a call without an end time
    assert result["time_share_tasks"] == 1
    assert result["time"]["skipped"] == {"retry__task-2#2": "tool calls without end times"}
    assert result["startup_share"] == pytest.approx(0.28)
    assert result["tool_share_of_wall"] == pytest.approx(0.4005, abs=1e-6)
    assert result["os_share"] == pytest.approx(0.6805, abs=1e-6)
    assert result["llm_share"] == pytest.approx(0.3195, abs=1e-6)
    assert result["os_share_union"] == pytest.approx(0.6305, abs=1e-6)
    assert result["tool_share_mean"] == pytest.approx(40.05 / 72, abs=1e-6)
    assert result["tool_share_union_mean"] == pytest.approx(35.05 / 72, abs=1e-6)


def test_tools_and_shell_commands(result: dict) -> None:
    tools = result["tools"]
    assert tools["Bash"]["count"] == 6 and tools["Bash"]["timed"] == 6
    assert tools["Bash"]["total_s"] == pytest.approx(15 + 5 + 2 + 6 + 6 + 6, abs=1e-3)
    assert tools["Read"] == {**tools["Read"], "count": 1, "timed": 0, "mean_s": None}
    assert result["bash_calls"] == 6
    assert result["bash_mean_s"] == pytest.approx(40 / 6, abs=1e-3)
    assert next(iter(tools)) == "Bash"  # ordered by total time


def test_memory_added_per_command_kind(result: dict) -> None:
    test, install = result["categories"]["test"], result["categories"]["install"]
    # quirky pytest: peak 1.2 GB inside over 200 MB before; the 2 s pytest has no sample inside
    assert test["count"] == 5 and test["mem_observed"] == 4
    assert test["mem_delta_max_bytes"] == pytest.approx(1.0e9)
    assert install["count"] == 1
    assert install["mem_delta_max_bytes"] == pytest.approx(-160e6)  # 190 MB inside, 350 MB before
    assert install["share_of_shell_time"] == pytest.approx(5 / 40, abs=1e-4)


def test_peak_to_average_bursts_and_rates(result: dict) -> None:
    avg = sum(QUIRKY_MEM) / len(QUIRKY_MEM)
    quirky = result["memory"]["per_task"]["quirky__task-1"]
    assert quirky["peak_to_avg"] == pytest.approx(1.2e9 / avg)
    assert result["peak_to_avg_max"] == pytest.approx(1.2e9 / avg)
    assert result["peak_to_avg_max_task"] == "quirky__task-1"
    assert quirky["spike_s"] == 6.0  # one sample at >= 80 % of the peak, one 6 s interval
    assert result["burst_in_tool_share"] == pytest.approx(2 / 3)
    assert result["bursts"]["tasks"] == 1  # retry__task-2 has a call without an end
    assert result["tool_sample_share"] == pytest.approx(5 / 13)  # samples at 30, 36, 48, 54, 60 s
    assert result["rise_max_bytes_per_s"] == pytest.approx(800e6 / 6)
    assert result["fall_max_bytes_per_s"] == pytest.approx(850e6 / 6)
    assert result["memory"]["rise_max_task"] == "quirky__task-1"


def test_sessions_per_host() -> None:
    c = concurrency([2_000_000_000, 1_000_000_000], [200e6, 300e6], host_bytes=128 * 10**9)
    assert (c["by_peak"], c["by_mean_peak"], c["by_avg"]) == (64, 85, 512)
    assert c["avg_over_peak"] == pytest.approx(8.0)


def test_retry_loops_and_the_papers_groups(result: dict) -> None:
    r = result["retries"]
    assert (r["loops"], r["retries"], r["longest_loop"], r["tasks_with_loops"]) == (1, 2, 3, 1)
    assert r["retry_s"] == pytest.approx(12.0, abs=1e-3)
    assert result["retry_loop_task_share"] == 0.5
    assert r["paper_groups"] == 0 and result["paper_group_time_share"] is None


def _call(i: int, command: str | None, failed: bool | None, tool: str = "Bash") -> ToolCall:
    return ToolCall(
        call_id=f"c{i}",
        tool=tool,
        start=float(i),
        end=i + 0.5,
        command=command,
        shell=tool == "Bash",
        failed=failed,
    )


def test_retry_definitions() -> None:
    assert normalize("cd /testbed && python -m pytest tests/ -x 2>&1 | tail -20") == "python -m pytest tests/ -x"
    assert similar("pytest tests/a.py", "cd /x && pytest tests/a.py -x | head -5")
    assert similar("python -m pytest tests/a.py::t1", "python -m pytest tests/b.py")
    assert not similar("pytest tests/a.py", "pip install -e .")
    calls = [
        _call(0, "pytest a", True),
        _call(1, None, None, tool="Edit"),
        _call(2, "pytest a -x", True),
        _call(3, "pytest a -x", False),
        _call(4, "pytest a -x", None),
        _call(5, "ls /nope", True),
        _call(6, "ls /nope/", False),
    ]
    found = loops(calls)
    assert [[c.call_id for c in lp] for lp in found] == [["c0", "c2", "c3"], ["c5", "c6"]]
    groups = paper_groups(calls)
    assert [[c.call_id for c in g] for g in groups] == [["c2", "c3", "c4", "c5", "c6"]]


def test_distribution_helpers() -> None:
    assert quantile([1, 2, 3, 4], 0.5) == 2.5
    assert quantile([1, 2, 3, 4, 5], 0.95) == pytest.approx(4.8)  # numpy's 'linear'
    assert describe([])["median"] is None
    assert describe([3, None, 1]) == {
        "n": 2,
        "mean": 2.0,
        "median": 2.0,
        "p95": pytest.approx(2.9),
        "min": 1.0,
        "max": 3.0,
    }
    assert union_length([(0, 10), (2, 5), (12, 13), (12.5, 14)]) == 12.0
    assert union_length([]) == 0.0


def test_drop_reason_order() -> None:
    empty = Task(name="e", source="-", fmt="x", error="boom")
    assert drop_reason(empty, Thresholds()) == "run failed: boom"
    one = Task(name="o", source="-", fmt="x", samples=Samples((0.0,), (1,), (None,)))
    assert drop_reason(one, Thresholds()) == "too few samples (1 < 10)"
    assert drop_reason(one, Thresholds(min_duration_s=0, min_samples=1)) is None


def test_paper_reference_is_chosen_by_names(tasks: list[Task], result: dict) -> None:
    paper_tasks = [t for t in tasks if t.fmt == "agentcgroup-paper"]
    assert choose_reference(paper_tasks) == HAIKU
    assert choose_reference(tasks) is None  # a recording is not the paper's data
    assert choose_reference(tasks, "batch18") == BATCH18 and choose_reference(paper_tasks, "none") is None
    rows = {r["figure"]: r for r in result["paper"]["rows"]}
    assert rows["bash_mean_s"]["paper"] == 3.76 and rows["bash_mean_s"]["ours"] == result["bash_mean_s"]
    assert any("without end times" in n for n in result["paper"]["data_notes"])
    assert any("trace.jsonl" in n for n in result["paper"]["method_notes"])


def test_quirks_are_counted_per_kind(result: dict) -> None:
    q = result["quirks"]
    assert q["no tool_calls.json"] == 2
    assert q["start-up is not sampled: estimated as claude_time minus the sampled duration"] == 3
    assert q["N samples after the container exited ('0B / 0B') dropped"] == 1
