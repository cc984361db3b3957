"""Per-tool counts and durations, and per-category (shell command kind) durations and memory deltas."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ..traces.categories import CATEGORIES
from ..traces.model import Task
from .distribution import describe
from .windows import memory_delta


def per_tool(tasks: list[Task]) -> dict[str, dict[str, Any]]:
    """``{tool: {count, timed, total_s, mean_s, median_s, p95_s, max_s, share_of_tool_time}}``."""
    counts: dict[str, int] = defaultdict(int)
    durations: dict[str, list[float]] = defaultdict(list)
    for t in tasks:
        for c in t.calls:
            counts[c.tool] += 1
            if c.duration_s is not None:
                durations[c.tool].append(c.duration_s)
    grand = sum(sum(v) for v in durations.values())
    out: dict[str, dict[str, Any]] = {}
    for tool in sorted(counts, key=lambda k: (-sum(durations[k]), -counts[k], k)):
        d = describe(durations[tool])
        out[tool] = {
            "count": counts[tool],
            "timed": d["n"],
            "total_s": sum(durations[tool]),
            "mean_s": d["mean"],
            "median_s": d["median"],
            "p95_s": d["p95"],
            "max_s": d["max"],
            "share_of_tool_time": sum(durations[tool]) / grand if grand else None,
        }
    return out


def shell_durations(tasks: list[Task]) -> dict[str, Any]:
    """Duration summary of all shell commands (the paper's Bash calls), with counts of all of them."""
    shell = [c for t in tasks for c in t.calls if c.shell]
    return {
        **describe(c.duration_s for c in shell),
        "count": len(shell),
        "without_command": sum(1 for c in shell if c.command is None),
    }


def per_category(tasks: list[Task]) -> dict[str, dict[str, Any]]:
    """For each command category: count, time and the memory each call added (see ``memory_delta``)."""
    durations: dict[str, list[float]] = defaultdict(list)
    deltas: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for t in tasks:
        for c in t.calls:
            if c.category is None:
                continue
            counts[c.category] += 1
            if c.duration_s is not None:
                durations[c.category].append(c.duration_s)
            delta = memory_delta(t.samples, c)
            if delta is not None:
                deltas[c.category].append(float(delta))
    grand = sum(sum(v) for v in durations.values())
    out: dict[str, dict[str, Any]] = {}
    for cat in CATEGORIES:
        if not counts[cat]:
            continue
        d, m = describe(durations[cat]), describe(deltas[cat])
        out[cat] = {
            "count": counts[cat],
            "total_s": sum(durations[cat]),
            "mean_s": d["mean"],
            "share_of_shell_time": sum(durations[cat]) / grand if grand else None,
            "mem_observed": m["n"],
            "mem_delta_mean_bytes": m["mean"],
            "mem_delta_p95_bytes": m["p95"],
            "mem_delta_max_bytes": m["max"],
        }
    return out
