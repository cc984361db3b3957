"""The replay planner on tiny synthetic tasks: baseline, per-call deltas, overlap, scaling, bad values."""

from __future__ import annotations

import math

import pytest

from agentcgroup.errors import InvalidValue
from agentcgroup.replay import plan
from agentcgroup.replay.plan import lerp
from agentcgroup.traces import Samples, Task, ToolCall

MB = 1 << 20
T0 = 1_000.0


def task(mem_mb: list[float], calls: list[tuple[str, float, float | None]], cpu=None, step: float = 1.0) -> Task:
    n = len(mem_mb)
    return Task(
        name="t",
        source="synthetic",
        fmt="test",
        samples=Samples(
            t=tuple(T0 + i * step for i in range(n)),
            mem_bytes=tuple(int(m * MB) for m in mem_mb),
            cpu_cores=tuple(cpu if cpu is not None else [0.0] * n),
        ),
        calls=[
            ToolCall(cid, "Bash", T0 + a, None if b is None else T0 + b, command=f"cmd {cid}") for cid, a, b in calls
        ],
    )


def total_at(p, t: float) -> float:
    """Baseline plus every call running at ``t``, as the workers would hold it."""
    total = lerp([q.t for q in p.baseline], [q.bytes for q in p.baseline], t)
    for c in p.calls:
        if c.start <= t <= c.end:
            total += lerp([c.start + q.t for q in c.points], [q.bytes for q in c.points], t)
    return total


def test_baseline_plus_calls_is_the_trace_at_every_sample() -> None:
    mem = [20, 150, 150, 300, 450, 400, 160, 160, 500, 170, 170]
    t = task(mem, [("a", 2.5, 5.5), ("b", 7.5, 8.5)])
    p = plan(t)
    for pt in p.trace:
        assert total_at(p, pt.t) == pytest.approx(pt.bytes, abs=2)
    assert [q.bytes // MB for q in p.baseline] == [20, 150, 150, 150, 150, 150, 160, 160, 160, 170, 170]
    a, b = p.calls
    assert (a.start, a.end, b.start, b.end) == (2.5, 5.5, 7.5, 8.5)
    assert a.peak_bytes == 300 * MB and b.peak_bytes == 340 * MB
    assert a.command == "cmd a" and a.call_id == "a" and a.tool == "Bash"
    assert [q.t for q in a.points] == [0.0, 0.5, 1.5, 2.5, 3.0]  # start, the samples inside, end


def test_a_drop_inside_a_call_lowers_the_baseline_not_below_the_trace() -> None:
    p = plan(task([200, 200, 120, 200, 200], [("a", 1.5, 3.5)]))
    assert [q.bytes // MB for q in p.baseline] == [200, 200, 120, 200, 200]
    assert all(q.bytes >= 0 for c in p.calls for q in c.points)


def test_time_memory_and_cpu_scales() -> None:
    t = task([100, 100, 300, 100], [("a", 1.5, 2.5)], cpu=[0.0, 0.5, 1.0, 0.2])
    p = plan(t, time_scale=10, memory_scale=0.5, cpu_scale=2.0)
    assert p.duration == pytest.approx(0.3)
    assert [q.t for q in p.trace] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert p.trace_peak == 150 * MB
    (a,) = p.calls
    assert a.start == pytest.approx(0.15) and a.duration == pytest.approx(0.1)
    assert a.peak_bytes == 100 * MB
    # a sample's cores are the rate over the interval ending at it: the plan holds them from the point before
    assert [q.cpu for q in p.trace] == pytest.approx([1.0, 2.0, 0.4, 0.0])
    assert p.interval_s == pytest.approx(0.1)


def test_cpu_during_a_call_goes_to_it_above_the_agent_level() -> None:
    t = task([100] * 5, [("a", 0.5, 3.5)], cpu=[0.0, 0.1, 0.9, 0.9, 0.1])
    p = plan(t)
    (a,) = p.calls
    assert [q.cpu for q in p.baseline] == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.0])
    assert [q.cpu for q in a.points] == pytest.approx([0.0, 0.8, 0.8, 0.0, 0.0])
    assert a.cpu_s == pytest.approx(1.6)


@pytest.mark.parametrize(("overlap", "share_a", "share_b"), [("first", 1.0, 0.0), ("split", 0.5, 0.5)])
def test_overlapping_calls(overlap: str, share_a: float, share_b: float) -> None:
    t = task([100, 100, 300, 300, 100], [("a", 0.5, 3.5), ("b", 1.5, 3.2)])
    p = plan(t, overlap=overlap)
    a, b = p.calls
    at = {q.t + a.start: q.bytes for q in a.points}
    bt = {q.t + b.start: q.bytes for q in b.points}
    assert at[2.0] == pytest.approx(200 * MB * share_a, abs=1)
    assert bt[2.0] == pytest.approx(200 * MB * share_b, abs=1)
    for pt in p.trace:
        assert total_at(p, pt.t) == pytest.approx(pt.bytes, abs=2)
    assert any("overlapping" in n for n in p.notes)


def test_calls_without_samples_keep_their_time_and_carry_no_load() -> None:
    p = plan(task([100, 100, 100], [("short", 0.2, 0.25)]))
    (c,) = p.calls
    assert (c.start, c.end) == pytest.approx((0.2, 0.25))
    assert [q.bytes for q in c.points] == [0, 0]


def test_unknown_ends_and_calls_outside_are_left_out_and_said() -> None:
    t = task([100, 100, 100], [("open", 0.5, None), ("before", -5.0, -4.0), ("after", 9.0, 10.0), ("ok", 0.5, 1.5)])
    p = plan(t)
    assert [c.call_id for c in p.calls] == ["ok"]
    assert any("without a known end" in n for n in p.notes)
    assert any("outside the replayed window" in n for n in p.notes)


def test_a_call_running_past_the_window_is_clipped() -> None:
    p = plan(task([100, 100, 300, 300], [("a", 1.5, 30.0)]))
    assert p.calls[0].end == pytest.approx(3.0)


def test_max_duration_cuts_in_replay_time() -> None:
    t = task([100, 200, 300, 400, 500], [("a", 0.5, 1.5), ("late", 3.5, 3.9)])
    p = plan(t, time_scale=2, max_duration=1.25)
    assert p.duration == pytest.approx(1.25)
    assert p.trace[-1].bytes == 350 * MB  # interpolated at the cut
    assert [c.call_id for c in p.calls] == ["a"]
    assert any("cut to the first 2.5 s" in n for n in p.notes)


def test_max_rise_rate() -> None:
    p = plan(task([100, 1124, 100], []), time_scale=2)
    assert p.max_rise_rate == pytest.approx(2048 * MB)


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"time_scale": 0}, "time scale"),
        ({"time_scale": -2}, "time scale"),
        ({"memory_scale": math.nan}, "memory scale"),
        ({"cpu_scale": 0.0}, "CPU scale"),
        ({"max_duration": 0}, "max duration"),
        ({"overlap": "random"}, "overlap"),
    ],
)
def test_bad_values_are_named(kwargs: dict, named: str) -> None:
    with pytest.raises(InvalidValue, match=named):
        plan(task([1, 2, 3], []), **kwargs)


def test_a_task_without_samples_is_refused() -> None:
    with pytest.raises(InvalidValue, match="no resource samples"):
        plan(Task(name="empty", source="x.jsonl", fmt="test"))


def test_to_dict_is_plain() -> None:
    d = plan(task([1, 2, 3], [("a", 0.5, 1.5)])).to_dict()
    assert d["calls"] == 1 and d["samples"] == 3 and d["trace_peak_bytes"] == 3 * MB
