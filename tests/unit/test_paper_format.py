"""The AgentCgroup paper's published format, on the project's own hand-made task directories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentcgroup.traces import PAPER_FORMAT, discover, is_attempt_dir, load_attempt

DATA = Path(__file__).resolve().parents[1] / "data" / "traces"
PAPER = DATA / "paper"
T0 = 1770000000.0


@pytest.fixture(scope="module")
def quirky():
    return load_attempt(PAPER / "quirky__task-1" / "attempt_1")


def test_name_attempt_and_metadata(quirky) -> None:
    assert (quirky.name, quirky.attempt, quirky.label, quirky.fmt) == (
        "quirky__task-1",
        1,
        "quirky__task-1",
        PAPER_FORMAT,
    )
    assert quirky.agent_wall_s == 100.0
    assert quirky.meta["image_size_mb"] == 3500.0 and quirky.meta["model"] == "haiku"
    assert quirky.error is None


def test_samples_use_epoch_mixed_decimal_units_and_drop_the_exited_sample(quirky) -> None:
    s = quirky.samples
    assert len(s) == 13  # the trailing "0B / 0B" sample is gone
    assert s.t == tuple(T0 + 6 * i for i in range(13))  # sample 5 had no epoch: local time, zone learnt
    assert s.mem_bytes[0] == 12_500_000
    assert s.mem_bytes[3] == 190_000_000  # 190000kB
    assert s.mem_bytes[4] == 200_000_000  # 0.2GB
    assert s.mem_bytes[6] == 1_200_000_000  # 1.2GB, decimal
    assert s.mem_bytes[10] == 268_435_456  # 256MiB
    assert quirky.sampled_s == 72.0
    assert quirky.interval_s == 6.0
    joined = " | ".join(quirky.quirks)
    assert "1 samples after the container exited ('0B / 0B') dropped" in joined
    assert "local timestamp used, with the zone learnt" in joined
    assert "mixed memory units GB, MB, MiB, kB" in joined


def test_cpu_since_start_average_is_differenced(quirky) -> None:
    cores = quirky.samples.cpu_cores
    assert cores[0] == pytest.approx(0.5)
    assert cores[5] == pytest.approx(2.0, abs=0.01)
    assert cores[6] == pytest.approx(1.0, abs=0.01)
    assert cores[2] == pytest.approx(0.1, abs=0.01)
    assert any("average since container start" in q for q in quirky.quirks)


def test_tool_calls_utc_sorted_with_overlap_category_and_failure(quirky) -> None:
    calls = quirky.calls
    assert [c.call_id for c in calls] == ["toolu_a1", "toolu_a2", "toolu_a3", "toolu_a4", "toolu_a5"]
    assert calls[1].start == T0 + 25 and calls[1].end == T0 + 40
    assert calls[1].duration_s == pytest.approx(15.0)
    assert (calls[1].shell, calls[1].category, calls[1].failed) == (True, "test", True)
    assert (calls[3].category, calls[3].failed) == ("install", False)
    assert (calls[0].shell, calls[0].category, calls[0].failed) == (False, None, None)
    assert calls[4].failed is False
    assert "1 tool calls overlap an earlier call (sub-agents or parallel calls)" in quirky.quirks


def test_startup_is_wall_time_minus_the_sampled_window(quirky) -> None:
    assert quirky.startup_s == pytest.approx(28.0)


def test_copies_in_results_json_calls_without_end_and_attempt_number() -> None:
    task = load_attempt(PAPER / "retry__task-2" / "attempt_2")
    assert (task.name, task.attempt, task.label) == ("retry__task-2", 2, "retry__task-2#2")
    assert len(task.samples) == 11 and task.sampled_s == 70.0
    assert "no resources.json: samples taken from the copy in results.json" in task.quirks
    assert "1 of 5 tool calls have no end time (durations unknown)" in task.quirks
    read = next(c for c in task.calls if c.tool == "Read")
    assert read.end is None and read.duration_s is None
    assert len(task.timed_calls) == 4


def test_missing_files_and_failed_runs_are_quirks_not_errors() -> None:
    failed = load_attempt(PAPER / "failed__task-4" / "attempt_1")
    assert failed.error == "Failed to start container: Error: creating container storage"
    assert len(failed.samples) == 0 and not failed.calls_known
    assert {"no resources.json", "no tool_calls.json"} <= set(failed.quirks)
    short = load_attempt(PAPER / "short__task-3" / "attempt_1")
    assert len(short.samples) == 5 and not short.calls_known and short.calls == []
    assert "only 5 resource samples" in short.quirks


def test_unreadable_json_and_bad_samples(tmp_path: Path) -> None:
    d = tmp_path / "broken__task-9" / "attempt_1"
    d.mkdir(parents=True)
    (d / "results.json").write_text("{not json")
    samples = [
        {"epoch": 10.0, "mem_usage": "185MB / 1GB", "cpu_percent": "5%"},
        {"epoch": 11.0, "mem_usage": "lots", "cpu_percent": "5%"},
        {"epoch": 12.0, "mem_usage": "186MB / 1GB"},
    ]
    (d / "resources.json").write_text(json.dumps({"samples": samples}))
    (d / "tool_calls.json").write_text(json.dumps([{"tool": "Bash"}, "junk"]))
    task = load_attempt(d)
    assert len(task.samples) == 1
    assert "2 resource samples unreadable (skipped)" in task.quirks
    assert "2 tool calls unreadable (skipped)" in task.quirks
    assert any(q.startswith("results.json unreadable") for q in task.quirks)
    assert task.agent_wall_s is None and task.startup_s is None


def test_discover_finds_attempts_and_recordings_recursively() -> None:
    sources = discover([DATA])
    kinds = sorted((s.path.relative_to(DATA).as_posix(), s.kind) for s in sources)
    assert kinds == [
        ("paper/failed__task-4/attempt_1", "paper"),
        ("paper/quirky__task-1/attempt_1", "paper"),
        ("paper/retry__task-2/attempt_2", "paper"),
        ("paper/short__task-3/attempt_1", "paper"),
        ("recording/demo-session.jsonl", "recording"),
    ]
    # an attempt dir or one of its files given directly, without duplicates
    one = PAPER / "quirky__task-1" / "attempt_1"
    assert [s.path for s in discover([one, one / "resources.json"])] == [one]
    assert is_attempt_dir(one) and not is_attempt_dir(PAPER)


def test_discover_rejects_missing_and_foreign_paths(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        discover([tmp_path / "nope"])
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(ValueError, match="neither"):
        discover([other])
    assert discover([tmp_path]) == []
