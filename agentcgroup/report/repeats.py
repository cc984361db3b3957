"""The same task run more than once: how much its wall time and peak memory vary between attempts."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ..traces.model import Task


def repeats(tasks: list[Task]) -> list[dict[str, Any]]:
    """One entry per task name with two or more attempts: wall times, peaks and their max/min ratios."""
    by_name: dict[str, list[Task]] = defaultdict(list)
    for t in tasks:
        by_name[t.name].append(t)
    out: list[dict[str, Any]] = []
    for name, group in sorted(by_name.items()):
        if len(group) < 2:
            continue
        walls = [t.agent_wall_s for t in group if t.agent_wall_s]
        peaks = [max(t.samples.mem_bytes) for t in group if len(t.samples)]
        out.append(
            {
                "task": name,
                "attempts": len(group),
                "wall_s": walls,
                "peak_bytes": peaks,
                "wall_ratio": max(walls) / min(walls) if len(walls) >= 2 else None,
                "peak_ratio": max(peaks) / min(peaks) if len(peaks) >= 2 and min(peaks) else None,
            }
        )
    return out
