"""The paper's figures, reproduced from its published traces (read by path, never copied).

They are found as ``../shared/traces`` beside the checkout (``tests/conftest.py``: ``shared_traces``);
``AGENTCG_TRACES`` overrides where they are. Skips, saying why, when they are not on this machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentcgroup.report.characterize import characterize
from agentcgroup.traces import discover
from tests.conftest import CHECKOUT, haiku_traces


def _haiku() -> Path:
    found = haiku_traces()
    if found is None:
        pytest.skip(f"the paper's traces are not in {CHECKOUT.parent}/shared/traces (or $AGENTCG_TRACES)")
    return found


def _characterize(path: Path) -> dict:
    if not path.is_dir():
        pytest.skip(f"the paper's traces are not at {path} (set AGENTCG_TRACES to their directory)")
    return characterize([s.load() for s in discover([path])])


@pytest.fixture(scope="module")
def haiku() -> dict:
    return _characterize(_haiku())


@pytest.fixture(scope="module")
def batch18() -> dict:
    return _characterize(_haiku().parent / "batch18")


def test_haiku_valid_tasks_as_the_paper(haiku: dict) -> None:
    assert (haiku["tasks_found"], haiku["tasks"], haiku["tasks_dropped"]) == (58, 33, 25)
    assert haiku["drop_reasons"] == {"sampled too briefly": 12, "too few samples": 10, "run failed": 3}


def test_haiku_time_shares(haiku: dict) -> None:
    assert haiku["os_share"] == pytest.approx(0.736, abs=0.015)  # paper: 47.7 % start-up + 25.9 % tools
    assert haiku["tool_share_of_wall"] == pytest.approx(0.259, abs=0.002)
    assert haiku["startup_share"] == pytest.approx(0.477, abs=0.015)
    assert haiku["tool_share_mean"] == pytest.approx(0.425, abs=0.01)
    assert haiku["tool_share_median"] == pytest.approx(0.347, abs=0.01)


def test_haiku_tools(haiku: dict) -> None:
    assert haiku["bash_calls"] == 410
    assert haiku["bash_mean_s"] == pytest.approx(3.76, abs=0.01)
    task = haiku["tools"]["Task"]
    assert task["count"] == 17 and task["mean_s"] == pytest.approx(100.47, abs=0.05)
    assert haiku["categories"]["test"]["share_of_shell_time"] == pytest.approx(0.729, abs=0.005)
    assert haiku["categories"]["install"]["share_of_shell_time"] == pytest.approx(0.108, abs=0.005)


def test_haiku_memory(haiku: dict) -> None:
    assert haiku["peak_to_avg_max"] == pytest.approx(6.63, abs=0.02)
    assert haiku["peak_to_avg_max_task"] == "tobymao__sqlglot-4014"
    assert haiku["burst_in_tool_share"] == pytest.approx(0.985, abs=0.003)
    assert haiku["tool_sample_share"] == pytest.approx(0.506, abs=0.005)
    assert 0.8e9 < haiku["rise_max_bytes_per_s"] < 2e9  # the brief: rises of ~0.8-1.8 GB/s


def test_haiku_retry_groups(haiku: dict) -> None:
    assert haiku["paper_group_task_share"] == pytest.approx(28 / 33)
    assert haiku["paper_group_time_share"] == pytest.approx(0.074, abs=0.002)


def test_batch18_largest_burst(batch18: dict) -> None:
    assert batch18["tasks"] == 23
    assert batch18["peak_to_avg_max_task"] == "Medical_Bio_Hard"
    top = batch18["memory"]["top_bursts"][0]
    assert top["peak_bytes"] == pytest.approx(4.06e9, rel=0.001)
    assert top["avg_bytes"] == pytest.approx(264e6, rel=0.01)
    assert batch18["peak_to_avg_max"] == pytest.approx(15.4, abs=0.05)
    assert top["spike_s"] <= 3  # "lasts only 1-2 seconds"
    assert batch18["repeat_wall_ratio"]["DevOps_Build_Hard"] == pytest.approx(1.8, abs=0.02)
    # its tool calls carry neither end times nor commands: those figures are not claimed
    assert batch18["tool_share_mean"] is None and batch18["burst_in_tool_share"] is None
    assert batch18["retry_loop_task_share"] is None
