"""The replay runner end to end on the no-cgroup backend (processes, no cgroups): what it starts, waits for,
measures and returns; that it needs an open session; the room the agent makes for load-less calls."""

from __future__ import annotations

import os

import pytest

from agentcgroup.replay import plan, replay, session_for
from agentcgroup.replay.runner import _light_calls
from agentcgroup.traces import Samples, Task, ToolCall

MB = 1 << 20


def small_task() -> Task:
    mem = [20, 60, 60, 100, 140, 100, 60, 60, 60]
    return Task(
        name="small",
        source="synthetic",
        fmt="test",
        samples=Samples(
            t=tuple(100.0 + 0.25 * i for i in range(len(mem))),
            mem_bytes=tuple(m * MB for m in mem),
            cpu_cores=(0.0,) * len(mem),
        ),
        calls=[ToolCall("a", "Bash", 100.6, 101.3, command="make"), ToolCall("b", "Bash", 101.6, 101.65)],
    )


def test_a_replay_runs_every_call_and_measures() -> None:
    p = plan(small_task(), time_scale=2)
    seen: list[str] = []
    ticks: list[float] = []
    with session_for(p, backend="none", warm=0) as s:
        r = replay(p, s, on_call=lambda c, h: seen.append(c.call_id), progress=lambda t, total: ticks.append(t))
    assert seen == ["a", "b"]
    assert [c.trace_call_id for c in r.calls] == ["a", "b"]
    assert all(c.outcome is not None and c.outcome.ok and c.error is None for c in r.calls), r.calls
    assert r.agent_returncode == 0 and r.agent_error is None
    assert r.duration_s >= p.duration
    assert len(r.times) == len(r.memory) == len(ticks) > 10
    assert r.fidelity.samples > 10 and r.fidelity.trace_peak == 140 * MB
    d = r.to_dict(timeline=True)
    assert d["calls"] == 2 and len(d["timeline"]["t"]) == len(r.times)
    assert d["call_results"][0]["outcome"]["exit_code"] == 0
    assert r.session.startswith(f"replay-{os.getpid()}-") and r.session.endswith("-small")


def test_replay_opens_nothing() -> None:
    p = plan(small_task())
    s = session_for(p, name="never-opened", backend="none")
    with pytest.raises(ValueError, match="not open"):
        replay(p, s)
    assert not s.is_open


def test_load_less_calls_counted_for_the_agent() -> None:
    p = plan(small_task(), time_scale=1)
    a, b = p.calls
    assert a.peak_bytes > 8 * MB and b.peak_bytes == 0
    assert _light_calls(p, lead=0.1) == [[pytest.approx(b.start - 0.05), 1], [pytest.approx(b.end), 0]]
