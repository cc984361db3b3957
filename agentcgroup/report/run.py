"""Load traces, characterize them, write ``report.md`` / ``report.json`` / plots: what
``agentcg report`` does, without the command-line parsing."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..traces.discover import Source, discover
from ..traces.model import Task
from . import markdown
from .characterize import characterize
from .selection import Thresholds

Progress = Callable[[Source], None]


def load(sources: Sequence[Source], advance: Progress | None = None) -> list[Task]:
    """Load every source, calling ``advance`` after each (for a progress bar). Tasks whose labels collide
    (the same task found twice) get their source appended to the name."""
    tasks: list[Task] = []
    seen: set[str] = set()
    for src in sources:
        task = src.load()
        if task.label in seen:
            task.name = f"{task.name} [{task.source}]"
        seen.add(task.label)
        tasks.append(task)
        if advance:
            advance(src)
    return tasks


def report_data(
    paths: Sequence[str | os.PathLike[str]],
    thresholds: Thresholds,
    *,
    advance: Progress | None = None,
    on_found: Callable[[int], None] | None = None,
    **options: Any,
) -> tuple[dict[str, Any], list[Task]]:
    """Discover, load and characterize; return (result, valid tasks). ``options`` go to characterize."""
    sources = discover(paths)
    if not sources:
        raise FileNotFoundError("no traces found under " + ", ".join(str(p) for p in paths))
    if on_found:
        on_found(len(sources))
    tasks = load(sources, advance)
    result = characterize(tasks, thresholds, **options)
    result["sources"] = [str(p) for p in paths]
    valid = set(result["valid"])
    return result, [t for t in tasks if t.label in valid]


def to_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=2, sort_keys=False, allow_nan=False, default=str)


def write_report(
    result: dict[str, Any], valid: list[Task], out_dir: Path, *, plots: bool = True, timelines: int = 6
) -> Path:
    """Write report.md, report.json and (when matplotlib is there) the PNGs into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    note: str | None = "Plots were not requested (--no-plots)."
    if plots:
        from .plots import write_plots

        files, note = write_plots(valid, result, out_dir, timelines)
    result["plots"], result["plots_note"] = files, note
    (out_dir / "report.json").write_text(to_json(result) + "\n", encoding="utf-8")
    path = out_dir / "report.md"
    path.write_text(markdown.render(result, result.get("sources", []), files, note), encoding="utf-8")
    return path
