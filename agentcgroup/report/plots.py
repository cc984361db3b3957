"""PNG plots for the report: per-task timelines with tool calls shaded, and CDFs.

matplotlib is optional (``pip install 'agentcgroup[report]'``): it is imported here, lazily, and when it
is missing :func:`write_plots` returns no files and a note saying so.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..traces.model import Task

MISSING = "matplotlib is not installed, so this report has no plots (pip install 'agentcgroup[report]')."


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _timeline(plt: Any, task: Task, path: Path) -> None:
    import numpy as np

    s = task.samples
    t = np.asarray(s.t) - s.t[0]
    fig, (ax_mem, ax_cpu) = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True)
    ax_mem.plot(t, np.asarray(s.mem_bytes) / 1e6, color="tab:green", lw=1)
    cores = np.array([np.nan if c is None else c for c in s.cpu_cores], dtype=float)
    ax_cpu.plot(t, cores, color="tab:blue", lw=1)
    for c in task.calls:
        if c.end is None:
            ax_mem.axvline(c.start - s.t[0], color="tab:red", alpha=0.15, lw=0.8)
            continue
        for ax in (ax_mem, ax_cpu):
            ax.axvspan(c.start - s.t[0], max(c.end, c.start + 0.3) - s.t[0], color="tab:red", alpha=0.12, lw=0)
    ax_mem.set_ylabel("memory (MB)")
    ax_cpu.set_ylabel("CPU (cores)")
    untimed = any(c.end is None for c in task.calls)
    marks = "tool-call starts marked (no end times)" if untimed else "tool calls shaded"
    ax_cpu.set_xlabel(f"seconds since the first sample ({marks})")
    ax_mem.set_title(task.label)
    for ax in (ax_mem, ax_cpu):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _cdf(plt: Any, series: dict[str, list[float]], xlabel: str, path: Path, log: bool = False) -> bool:
    import numpy as np

    series = {k: v for k, v in series.items() if v}
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, values in series.items():
        xs = np.sort(np.asarray(values, dtype=float))
        ax.step(xs, np.arange(1, len(xs) + 1) / len(xs), where="post", label=f"{label} (n={len(xs)})")
    if log:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_plots(
    tasks: list[Task], result: dict[str, Any], out_dir: Path, timelines: int = 6
) -> tuple[list[str], str | None]:
    """Write the PNGs into ``out_dir`` (timelines of the ``timelines`` tasks with the highest
    peak-to-average); return (file names, a note or None)."""
    plt = _pyplot()
    if plt is None:
        return [], MISSING
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    per_task = result["time"]["per_task"]
    mem = result["memory"].get("per_task", {}) if result["memory"] else {}
    cdfs = {
        "cdf_tool_share.png": (
            {
                "summed": [v["tool_share_active"] for v in per_task.values()],
                "union": [v["tool_share_active_union"] for v in per_task.values()],
            },
            "tool share of active time",
            False,
        ),
        "cdf_peak_to_avg.png": (
            {"tasks": [v["peak_to_avg"] for v in mem.values() if v["peak_to_avg"]]},
            "peak-to-average memory",
            False,
        ),
        "cdf_tool_durations.png": (
            {
                tool: [
                    d
                    for c in (c for t in tasks for c in t.calls if c.tool == tool)
                    if (d := c.duration_s) is not None and d > 0
                ]
                for tool in list(result["tools"])[:5]
            },
            "tool-call duration (s)",
            True,
        ),
        "cdf_mem_rise.png": (
            {"largest rise per task": [v["rise_bytes_per_s"] / 1e6 for v in mem.values() if "rise_bytes_per_s" in v]},
            "largest memory rise (MB/s)",
            False,
        ),
    }
    for name, (series, xlabel, log) in cdfs.items():
        if _cdf(plt, series, xlabel, out_dir / name, log):
            files.append(name)
    ranked = sorted(tasks, key=lambda t: -(mem.get(t.label, {}).get("peak_to_avg") or 0))
    for i, task in enumerate(ranked[:timelines], 1):
        name = f"timeline_{i:02d}_{re.sub(r'[^A-Za-z0-9_.-]', '_', task.label)[:60]}.png"
        _timeline(plt, task, out_dir / name)
        files.append(name)
    return files, None
