"""Per-arm figures over repeated runs: the table, the JSON and the plot of ``agentcg bench``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .arms import ARMS
from .driver import RunResult
from .stats import Estimate, estimate, median, p95


@dataclass(frozen=True)
class ArmFigures:
    arm: str
    title: str
    runs: int
    agents_lost: Estimate  # per run
    calls_killed: Estimate  # per run
    calls_over: Estimate  # per run, of calls_killed: those traced over the budget alone (bench/fit.py)
    calls_over_agents: Estimate  # per run, of calls_killed: traced over the budget beside the agents then alive
    high_lost_runs: int  # runs in which the high-priority session's agent was lost
    high_slowdown_median: Estimate  # (completion / alone) - 1, over the runs it completed
    high_slowdown_p95: float
    completion_s: Estimate  # makespan
    mem_util: Estimate  # mean memory in use / budget
    oomd_kills: int
    kernel_oom_kills: Estimate  # per run: processes the kernel's OOM killer took inside the budget

    def to_dict(self) -> dict[str, Any]:
        return {
            "arm": self.arm,
            "title": self.title,
            "runs": self.runs,
            "agents_lost": self.agents_lost.to_dict(),
            "calls_killed": self.calls_killed.to_dict(),
            "calls_killed_over_budget_alone": self.calls_over.to_dict(),
            "calls_killed_over_budget_beside_agents": self.calls_over_agents.to_dict(),
            "high_lost_runs": self.high_lost_runs,
            "high_slowdown_median": self.high_slowdown_median.to_dict(),
            "high_slowdown_p95": _num(self.high_slowdown_p95),
            "completion_s": self.completion_s.to_dict(),
            "mem_util": self.mem_util.to_dict(),
            "oomd_kills": self.oomd_kills,
            "kernel_oom_kills": self.kernel_oom_kills.to_dict(),
        }


def _num(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 4)


def figures(runs: Sequence[RunResult], alone_s: Sequence[float], high_index: int = 0) -> list[ArmFigures]:
    """One :class:`ArmFigures` per arm, in the order the arms first appear in ``runs``."""
    alone = median(list(alone_s))
    out = []
    for name in dict.fromkeys(r.arm for r in runs):
        rs = [r for r in runs if r.arm == name]
        slow = []
        lost_high = 0
        for r in rs:
            s = r.sessions[high_index]
            if s.completion_s is None:
                lost_high += 1
            elif alone and not math.isnan(alone):
                slow.append(s.completion_s / alone - 1.0)
        util = [r.mem_mean_bytes / r.budget for r in rs if r.budget]
        out.append(
            ArmFigures(
                arm=name,
                title=ARMS[name].title if name in ARMS else name,
                runs=len(rs),
                agents_lost=estimate([r.agents_lost for r in rs]),
                calls_killed=estimate([r.calls_killed for r in rs]),
                calls_over=estimate([r.calls_over for r in rs]),
                calls_over_agents=estimate([r.calls_over_agents for r in rs]),
                high_lost_runs=lost_high,
                high_slowdown_median=estimate(slow, median),
                high_slowdown_p95=p95(slow),
                completion_s=estimate([r.makespan_s for r in rs]),
                mem_util=estimate(util),
                oomd_kills=sum(r.oomd_kills for r in rs),
                kernel_oom_kills=estimate([r.kernel_oom_kills for r in rs]),
            )
        )
    return out


def _pct(e: Estimate) -> str:
    return e.text("{:+.1%}") if not math.isnan(e.value) else "-"


def table_rows(figs: Sequence[ArmFigures]) -> tuple[list[str], list[list[str]]]:
    head = [
        "policy",
        "runs",
        "agents lost / run",
        "calls killed / run",
        "of them, traced over the budget alone",
        "of them, traced over it beside the agents",
        "kernel OOM kills / run",
        "high: lost runs",
        "high slowdown median",
        "high slowdown P95",
        "completion s",
        "memory used / budget",
    ]
    rows = []
    for f in figs:
        rows.append(
            [
                f.title,
                str(f.runs),
                f.agents_lost.text(),
                f.calls_killed.text(),
                f.calls_over.text(),
                f.calls_over_agents.text(),
                f.kernel_oom_kills.text(),
                str(f.high_lost_runs),
                _pct(f.high_slowdown_median),
                "-" if math.isnan(f.high_slowdown_p95) else f"{f.high_slowdown_p95:+.1%}",
                f.completion_s.text("{:.1f}"),
                f.mem_util.text("{:.0%}"),
            ]
        )
    return head, rows


def markdown_table(figs: Sequence[ArmFigures]) -> str:
    head, rows = table_rows(figs)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def plot(figs: Sequence[ArmFigures], path: str) -> str:
    """Bars with 95 % intervals: agents lost, calls killed, high-priority slowdown, memory use; a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("agents lost per run", [f.agents_lost for f in figs], 1.0),
        ("tool calls killed per run", [f.calls_killed for f in figs], 1.0),
        ("high-priority slowdown, median (%)", [f.high_slowdown_median for f in figs], 100.0),
        ("memory in use / budget (%)", [f.mem_util for f in figs], 100.0),
    ]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6))
    names = [f.arm for f in figs]
    for ax, (title, ests, k) in zip(axes, panels, strict=True):
        vals = [0.0 if math.isnan(e.value) else e.value * k for e in ests]
        lo = [0.0 if math.isnan(e.lo) else max(0.0, (e.value - e.lo) * k) for e in ests]
        hi = [0.0 if math.isnan(e.hi) else max(0.0, (e.hi - e.value) * k) for e in ests]
        colors = ["#2b8a3e" if n == "agentcgroup" else "#868e96" for n in names]
        ax.bar(names, vals, yerr=[lo, hi], color=colors, capsize=4)
        ax.set_ylim(bottom=0, top=max(1.0, *(v + h for v, h in zip(vals, hi, strict=True))) * 1.1)
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
