"""Loader for the AgentCgroup paper's published traces: one task attempt directory -> :class:`Task`.

An attempt directory (``<task>/attempt_<n>/``) holds any of ``resources.json`` (samples + summary),
``tool_calls.json`` and ``results.json`` (``claude_time`` and other metadata, plus copies of the samples
and tool calls, used when the separate files are missing). Missing or unreadable files are quirks, not
errors: the task is loaded with what there is and the report decides whether it is usable.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .model import PAPER_FORMAT, Task
from .paper_calls import parse_calls
from .paper_samples import parse_samples

FILES = ("resources.json", "tool_calls.json", "results.json")
_ATTEMPT = re.compile(r"^attempt_(\d+)$")


def is_attempt_dir(path: str | Path) -> bool:
    """True when the directory holds at least one of the paper's per-attempt files."""
    p = Path(path)
    return p.is_dir() and any((p / f).is_file() for f in FILES)


def _read_json(path: Path, task: Task) -> Any:
    if not path.is_file():
        return None
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        task.note(f"{path.name} unreadable: {e}")
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _raw_samples(resources: Any, results: Any, task: Task) -> list[dict[str, Any]]:
    if isinstance(resources, dict) and isinstance(resources.get("samples"), list):
        summary = resources.get("summary")
        if isinstance(summary, dict):
            task.meta["paper_summary"] = summary
        samples: list[dict[str, Any]] = resources["samples"]
        return samples
    copy = results.get("resource_samples") if isinstance(results, dict) else None
    if isinstance(copy, dict) and isinstance(copy.get("samples"), list) and copy["samples"]:
        task.note("no resources.json: samples taken from the copy in results.json")
        copied: list[dict[str, Any]] = copy["samples"]
        return copied
    task.note("no resources.json")
    return []


def _raw_calls(tool_calls: Any, results: Any, task: Task) -> list[Any] | None:
    if isinstance(tool_calls, list):
        return tool_calls
    traces = results.get("traces") if isinstance(results, dict) else None
    copy = traces.get("tool_calls") if isinstance(traces, dict) else None
    if isinstance(copy, list) and copy:
        task.note("no tool_calls.json: tool calls taken from the copy in results.json")
        return copy
    task.note("no tool_calls.json")
    return None


def _metadata(results: dict[str, Any], task: Task) -> None:
    error = results.get("error")
    if error:
        task.error = str(error).strip().splitlines()[0][:200]
    image = results.get("image_info")
    if isinstance(image, dict) and _number(image.get("size_mb")) is not None:
        task.meta["image_size_mb"] = image["size_mb"]
    for key in ("pull_time", "permission_fix_time", "total_time"):
        if _number(results.get(key)) is not None:
            task.meta[key] = results[key]
    if isinstance(results.get("model"), str):
        task.meta["model"] = results["model"]


def load_attempt(path: str | Path) -> Task:
    """Load one attempt directory of the paper's format."""
    p = Path(path)
    m = _ATTEMPT.match(p.name)
    name, attempt = (p.parent.name, int(m.group(1))) if m else (p.name, None)
    task = Task(name=name, source=str(p), fmt=PAPER_FORMAT, attempt=attempt)
    results = _read_json(p / "results.json", task)
    if not (p / "results.json").is_file():
        task.note("no results.json")
    results = results if isinstance(results, dict) else {}
    _metadata(results, task)

    resources = _read_json(p / "resources.json", task)
    task.samples = parse_samples(_raw_samples(resources, results, task), task)
    if len(task.samples) >= 2:
        gaps = sorted(b - a for a, b in zip(task.samples.t, task.samples.t[1:], strict=False))
        task.interval_s = gaps[len(gaps) // 2]

    raw_calls = _raw_calls(_read_json(p / "tool_calls.json", task), results, task)
    task.calls_known = raw_calls is not None
    task.calls = parse_calls(raw_calls or [], task)

    task.agent_wall_s = _number(results.get("claude_time"))
    if task.agent_wall_s is not None and task.sampled_s > 0:
        task.startup_s = max(0.0, task.agent_wall_s - task.sampled_s)
        task.note("start-up is not sampled: estimated as claude_time minus the sampled duration")
    _check_clocks(task)
    return task


def _check_clocks(task: Task) -> None:
    """Note tool calls far outside the sampled window: a sign of a time-zone mix-up."""
    if not task.calls or len(task.samples) < 2:
        return
    t0, t1 = task.samples.t[0], task.samples.t[-1]
    outside = sum(1 for c in task.calls if c.start < t0 - 60 or c.start > t1 + 60)
    if outside:
        task.note(f"{outside} tool calls start more than 60 s outside the sampled window (clock or zone?)")
