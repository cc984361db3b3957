"""Where a task's wall time goes: container start-up, tool calls, and the LLM (the rest).

Definitions follow the paper (RQ1, analysis/compute_active_time.py):

* ``agent wall`` is ``claude_time``; ``active`` is the agent's own run, without start-up. The paper takes
  it from trace.jsonl (first to last record), which is not published: we use the sampled window.
* ``tool time`` is the sum of tool-call durations, sub-agent calls overlapping their ``Task`` call
  included (as the paper sums them). The union of the intervals is reported next to it.
* OS-level share = (start-up + tool time) / agent wall; LLM share = 1 - OS-level share.
"""

from __future__ import annotations

from typing import Any

from ..traces.model import Task
from .distribution import describe, mean, union_length


def skip_reason(task: Task) -> str | None:
    """Why a task cannot enter the time shares (None when it can)."""
    if not task.calls_known:
        return "no tool-call record"
    if any(c.duration_s is None for c in task.calls):
        return "tool calls without end times"
    if task.sampled_s <= 0:
        return "no sampled duration"
    return None


def task_shares(task: Task) -> dict[str, float | None]:
    """The shares of one task (``None`` where its data does not allow them)."""
    timed = [(c.start, c.end) for c in task.calls if c.end is not None and c.end >= c.start]
    tool_sum = sum(e - s for s, e in timed)
    tool_union = union_length(timed)
    active = task.sampled_s
    out: dict[str, float | None] = {
        "tool_s": tool_sum,
        "tool_union_s": tool_union,
        "active_s": active,
        "tool_share_active": tool_sum / active,
        "tool_share_active_union": tool_union / active,
        "startup_share": None,
        "tool_share_wall": None,
        "os_share": None,
        "os_share_union": None,
    }
    wall = task.agent_wall_s
    if wall and wall > 0 and task.startup_s is not None:
        out["startup_share"] = task.startup_s / wall
        out["tool_share_wall"] = tool_sum / wall
        out["os_share"] = (task.startup_s + tool_sum) / wall
        out["os_share_union"] = (task.startup_s + tool_union) / wall
    return out


def time_shares(tasks: list[Task]) -> dict[str, Any]:
    """Means over tasks (as the paper averages per-task ratios) plus the per-task values."""
    per_task: dict[str, dict[str, float | None]] = {}
    skipped: dict[str, str] = {}
    for t in tasks:
        reason = skip_reason(t)
        if reason:
            skipped[t.label] = reason
        else:
            per_task[t.label] = task_shares(t)

    def col(key: str) -> list[float]:
        return [x for v in per_task.values() if (x := v[key]) is not None]

    os_share = mean(col("os_share"))
    active = describe(col("tool_share_active"))
    return {
        "n": len(per_task),
        "skipped": skipped,
        "os_share": os_share,
        "os_share_union": mean(col("os_share_union")),
        "llm_share": None if os_share is None else 1.0 - os_share,
        "startup_share": mean(col("startup_share")),
        "tool_share_wall": mean(col("tool_share_wall")),
        "n_wall": len(col("os_share")),
        "tool_share_active": active,
        "tool_share_active_union": describe(col("tool_share_active_union")),
        "per_task": per_task,
    }
