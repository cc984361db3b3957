"""Which tasks a characterization uses. The paper's rule (analysis/filter_valid_tasks.py): a task is valid
when its resource sampling lasted at least 60 s with at least 10 samples; figures use valid tasks only."""

from __future__ import annotations

from dataclasses import dataclass

from ..traces.model import Task

MIN_DURATION_S = 60.0
MIN_SAMPLES = 10


@dataclass(frozen=True)
class Thresholds:
    min_duration_s: float = MIN_DURATION_S
    min_samples: int = MIN_SAMPLES


def drop_reason(task: Task, thresholds: Thresholds) -> str | None:
    """Why ``task`` is not usable, or None when it is. Reasons are short and stable (they are counted)."""
    n = len(task.samples)
    if n == 0:
        return f"run failed: {task.error}" if task.error else "no resource samples"
    if n < thresholds.min_samples:
        return f"too few samples ({n} < {thresholds.min_samples})"
    if task.sampled_s < thresholds.min_duration_s:
        return f"sampled too briefly ({task.sampled_s:.0f} s < {thresholds.min_duration_s:g} s)"
    return None


def select(tasks: list[Task], thresholds: Thresholds) -> tuple[list[Task], list[tuple[Task, str]]]:
    """Split ``tasks`` into (valid, [(dropped task, reason)]), keeping their order."""
    valid: list[Task] = []
    dropped: list[tuple[Task, str]] = []
    for t in tasks:
        reason = drop_reason(t, thresholds)
        if reason is None:
            valid.append(t)
        else:
            dropped.append((t, reason))
    return valid, dropped


def reason_kind(reason: str) -> str:
    """The counted kind of a reason: the text before any parenthesis or colon."""
    return reason.split("(")[0].split(":")[0].strip()
