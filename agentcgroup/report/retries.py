"""Retry loops: an agent running the same (or a similar) command again after it failed.

Two measures:

* ours: a *loop* is a chain of shell calls where each follows a failed, similar one (other tools, such as
  edits, may come between). Failure comes from the outcome (exit code, killed) in our recordings and is
  guessed from the result text in the paper's data. Similar: the same command once ``cd ... &&``, ``2>&1``
  and ``| head``/``| tail`` are stripped, or the same first three words, or a difflib ratio >= 0.8.
* the paper's: a *retry group* is a run of three or more consecutive Bash calls, failed or not
  (analysis/analyze_extended_insights.py). Its time share is the group's call time over agent wall time,
  averaged over tasks that have groups.
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import Any

from ..traces.model import Task, ToolCall
from .distribution import mean

_CD_PREFIX = re.compile(r"^\s*cd\s+\S+\s*&&\s*")
_TAILS = re.compile(r"\s*(2>&1|\|\s*(head|tail)(\s+-n)?\s+-?\d+|\|\s*(head|tail))\s*$")
PAPER_GROUP = 3


def normalize(command: str) -> str:
    """The command without a leading ``cd X &&`` and trailing redirections / head / tail."""
    text = _CD_PREFIX.sub("", command.strip())
    while True:
        stripped = _TAILS.sub("", text)
        if stripped == text:
            break
        text = stripped
    return " ".join(text.split())


def similar(a: str, b: str) -> bool:
    na, nb = normalize(a), normalize(b)
    if na == nb or (na.split()[:3] == nb.split()[:3] and len(na.split()) >= 3):
        return True
    return SequenceMatcher(None, na, nb).ratio() >= 0.8


def loops(calls: list[ToolCall]) -> list[list[ToolCall]]:
    """Retry loops of one task: chains of >= 2 shell calls, each after a failed similar one."""
    shell = [c for c in calls if c.command]
    found: list[list[ToolCall]] = []
    chain: list[ToolCall] = []
    for c in shell:
        prev = chain[-1] if chain else None
        if prev is not None and prev.failed and similar(prev.command or "", c.command or ""):
            chain.append(c)
            continue
        if len(chain) >= 2:
            found.append(chain)
        chain = [c]
    if len(chain) >= 2:
        found.append(chain)
    return found


def paper_groups(calls: list[ToolCall]) -> list[list[ToolCall]]:
    """Runs of ``PAPER_GROUP`` or more consecutive shell calls (the paper's retry groups)."""
    groups: list[list[ToolCall]] = []
    run: list[ToolCall] = []
    for c in [*calls, None]:
        if c is not None and c.shell:
            run.append(c)
            continue
        if len(run) >= PAPER_GROUP:
            groups.append(run)
        run = []
    return groups


def _call_time(calls: list[ToolCall]) -> float:
    return sum(c.duration_s or 0.0 for c in calls)


def _timed(calls: list[ToolCall]) -> bool:
    return all(c.duration_s is not None for c in calls)


def retry_summary(tasks: list[Task]) -> dict[str, Any]:
    """Counts of both measures over ``tasks`` (only tasks with a tool-call record count)."""
    known = [t for t in tasks if t.calls_known]
    per_task: dict[str, dict[str, Any]] = {}
    group_shares: list[float] = []
    examples: list[dict[str, Any]] = []
    for t in known:
        found, groups = loops(t.calls), paper_groups(t.calls)
        per_task[t.label] = {
            "loops": len(found),
            "retries": sum(len(lp) - 1 for lp in found),
            "longest": max((len(lp) for lp in found), default=0),
            "retry_s": sum(_call_time(lp[1:]) for lp in found),
            "paper_groups": len(groups),
        }
        if groups and t.agent_wall_s and all(_timed(g) for g in groups):
            group_shares.append(sum(_call_time(g) for g in groups) / t.agent_wall_s)
        examples.extend(
            {"task": t.label, "calls": len(lp), "command": normalize(lp[0].command or "")[:120]} for lp in found
        )
    with_loops = sum(1 for v in per_task.values() if v["loops"])
    with_groups = sum(1 for v in per_task.values() if v["paper_groups"])
    n = len(per_task)
    # without any command text or failure information, "no loops" would be a claim the data cannot make
    judged = any(c.command and c.failed is not None for t in known for c in t.calls)
    return {
        "tasks": n,
        "failures_known": judged,
        "tasks_with_loops": with_loops,
        "loop_task_share": with_loops / n if n and judged else None,
        "loops": sum(v["loops"] for v in per_task.values()),
        "retries": sum(v["retries"] for v in per_task.values()),
        "longest_loop": max((v["longest"] for v in per_task.values()), default=0),
        "retry_s": sum(v["retry_s"] for v in per_task.values()),
        "tasks_with_paper_groups": with_groups,
        "paper_group_task_share": with_groups / n if n else None,
        "paper_groups": sum(v["paper_groups"] for v in per_task.values()),
        "paper_group_time_share": mean(group_shares),
        "examples": sorted(examples, key=lambda e: -e["calls"])[:5],
        "per_task": per_task,
    }
