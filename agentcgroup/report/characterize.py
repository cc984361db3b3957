"""The paper's characterization over a list of tasks: pure functions, one JSON-ready dict out.

Top-level keys are flat and stable (``tasks``, ``os_share``, ``tool_share_mean``, ``bash_mean_s``,
``peak_to_avg_max``, ``burst_in_tool_share``...); shares are fractions in [0, 1], memory is bytes, time is
seconds. Sections with detail sit under their own keys (``time``, ``tools``, ``categories``, ``memory``,
``bursts``, ``retries``, ``repeats``, ``quirks``, ``paper``).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict
from typing import Any

from ..traces.model import Task
from . import paper
from .memory import BURST_BYTES, HOST_BYTES, bursts, memory_profile
from .repeats import repeats
from .retries import retry_summary
from .selection import Thresholds, reason_kind, select
from .timeshare import time_shares
from .tool_stats import per_category, per_tool, shell_durations

REPORT_VERSION = 1


def quirk_counts(tasks: list[Task]) -> dict[str, int]:
    """How many tasks showed each kind of quirk (numbers in the text replaced by N)."""
    counts: Counter[str] = Counter()
    for t in tasks:
        counts.update({re.sub(r"\b\d+(\.\d+)?\b", "N", q) for q in t.quirks})
    return dict(counts.most_common())


def characterize(
    tasks: list[Task],
    thresholds: Thresholds | None = None,
    *,
    burst_bytes: int = BURST_BYTES,
    host_bytes: int = HOST_BYTES,
    reference: str = "auto",
) -> dict[str, Any]:
    """Characterize ``tasks``: select the valid ones, compute every figure, compare with the paper."""
    thresholds = thresholds or Thresholds()
    valid, dropped = select(tasks, thresholds)
    time = time_shares(valid)
    shell = shell_durations(valid)
    mem = memory_profile(valid, host_bytes) if valid else {}
    burst = bursts(valid, burst_bytes)
    retry = retry_summary(valid)
    reps = repeats(valid)
    cats = per_category(valid)
    conc = mem.get("concurrency", {})
    p2a = mem.get("peak_to_avg", {})
    result: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "thresholds": asdict(thresholds),
        "tasks_found": len(tasks),
        "tasks": len(valid),
        "tasks_dropped": len(dropped),
        "drop_reasons": dict(Counter(reason_kind(r) for _, r in dropped).most_common()),
        "dropped": [{"task": t.label, "source": t.source, "reason": r} for t, r in dropped],
        "valid": [t.label for t in valid],
        "os_share": time["os_share"],
        "llm_share": time["llm_share"],
        "startup_share": time["startup_share"],
        "tool_share_of_wall": time["tool_share_wall"],
        "os_share_union": time["os_share_union"],
        "tool_share_mean": time["tool_share_active"]["mean"],
        "tool_share_median": time["tool_share_active"]["median"],
        "tool_share_union_mean": time["tool_share_active_union"]["mean"],
        "time_share_tasks": time["n"],
        "bash_mean_s": shell["mean"],
        "bash_calls": shell["count"],
        "bash_timed": shell["n"],
        "peak_to_avg_max": p2a.get("max"),
        "peak_to_avg_mean": p2a.get("mean"),
        "peak_to_avg_median": p2a.get("median"),
        "peak_to_avg_max_task": mem.get("peak_to_avg_max_task"),
        "peak_max_bytes": mem.get("peak_bytes", {}).get("max"),
        "burst_in_tool_share": burst["in_tool_share"],
        "tool_sample_share": burst["tool_sample_share"],
        "rise_max_bytes_per_s": mem.get("rise_max_bytes_per_s"),
        "fall_max_bytes_per_s": mem.get("fall_max_bytes_per_s"),
        "sessions_by_peak": conc.get("by_peak"),
        "sessions_by_avg": conc.get("by_avg"),
        "paper_group_task_share": retry["paper_group_task_share"],
        "paper_group_time_share": retry["paper_group_time_share"],
        "retry_loop_task_share": retry["loop_task_share"],
        "repeat_wall_ratio_max": max((r["wall_ratio"] for r in reps if r["wall_ratio"]), default=None),
        "repeat_wall_ratio": {r["task"]: r["wall_ratio"] for r in reps},
        "test_mem_delta_p95_bytes": cats.get("test", {}).get("mem_delta_p95_bytes"),
        "time": time,
        "tools": per_tool(valid),
        "shell": shell,
        "categories": cats,
        "memory": mem,
        "bursts": burst,
        "retries": retry,
        "repeats": reps,
        "quirks": quirk_counts(tasks),
    }
    ref = paper.choose_reference(valid, reference)
    result["paper"] = {
        **paper.compare(result, ref),
        "method_notes": list(paper.METHOD_NOTES),
        "data_notes": data_notes(valid, time, burst, shell),
    }
    return result


def data_notes(valid: list[Task], time: dict[str, Any], burst: dict[str, Any], shell: dict[str, Any]) -> list[str]:
    """Differences that come from this input (figures it cannot support), in words."""
    notes: list[str] = []
    skipped = Counter(time["skipped"].values())
    for reason, n in skipped.items():
        notes.append(f"{n} valid task(s) left out of the time shares: {reason}.")
    if valid and burst["tasks"] < len(valid):
        notes.append(
            f"High-memory samples inside tool calls use {burst['tasks']} of {len(valid)} valid tasks "
            "(the others have no tool-call end times or no tool calls)."
        )
    if shell["without_command"]:
        notes.append(
            f"{shell['without_command']} of {shell['count']} shell calls carry no command text: "
            "no command categories, per-category memory or retry loops for them."
        )
    if valid and all(t.startup_s is None for t in valid):
        notes.append("No start-up time is known, so the OS-level share of wall time is not computed.")
    return notes
