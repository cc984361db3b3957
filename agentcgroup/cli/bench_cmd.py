"""``agentcg bench``: the same replayed sessions under each policy, side by side, over repeated runs."""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import TYPE_CHECKING, Any

import click

from ..cgroupfs import check_name
from ..errors import AgentCgroupError
from ..units import MAX_DURATION, format_size, parse_size
from .errors import fail

if TYPE_CHECKING:
    from ..bench.arms import Arm
    from ..bench.driver import RunResult
    from ..replay.plan import ReplayPlan

PRIORITY_CYCLE = ("low", "normal")
MAX_SESSIONS = 64
MAX_RUNS = 1000


def _check_out_dir(out_dir: str) -> None:
    """--out names a directory we can write into (made now if missing), checked before any run."""
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        fail(f"invalid out {out_dir!r}: exists and is not a directory")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except (OSError, ValueError) as exc:
        fail(f"invalid out {out_dir!r}: {getattr(exc, 'strerror', None) or exc}")
    if not os.access(out_dir, os.W_OK | os.X_OK):
        fail(f"invalid out {out_dir!r}: not writable")


@click.command()
@click.argument("traces", nargs=-1, required=True)
@click.option("--sessions", "n_sessions", type=int, default=4, show_default=True, help="Sessions replayed at once.")
@click.option("--runs", type=int, default=10, show_default=True, help="Runs per policy.")
@click.option("--arms", default="none,static,high,psi-kill,agentcgroup", show_default=True, help="Policies.")
@click.option("--budget", default="auto", show_default=True, help="Memory for all sessions (the root's limit).")
@click.option("--duration", type=float, default=15.0, show_default=True, help="Seconds each replay is scaled to.")
@click.option(
    "--peak", "peak_text", default="768M", show_default=True, help="Memory scale: the largest session peaks here."
)
@click.option(
    "--call-procs", type=int, default=4, show_default=True, help="Processes each tool call's load is spread over."
)
@click.option("--root", default=None, help="Root cgroup name (default agentcg-bench).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@click.option("--out", "out_dir", default=None, help="Also write bench.json, bench.md and bench.png here.")
def bench(
    traces: tuple[str, ...],
    n_sessions: int,
    runs: int,
    arms: str,
    budget: str,
    duration: float,
    peak_text: str,
    call_procs: int,
    root: str | None,
    as_json: bool,
    out_dir: str | None,
) -> None:
    """Replay TRACES as N sessions at once (the first high priority, the rest low and normal) under each policy.

    \b
    --budget auto: half of the sessions' joint peak, measured in a first run without a budget, but no less
    than what the agents and the high-priority session need together (+10 %).
    Per policy: agent runtimes lost, tool calls killed, the high-priority session's slowdown against it
    running alone (median, P95), total completion time and memory use, with 95 % confidence intervals.
    """
    from ..bench.arms import parse_arms
    from ..replay.plan import plan
    from ..traces import discover

    if not 2 <= n_sessions <= MAX_SESSIONS:
        fail(f"invalid sessions {n_sessions!r}: expected 2 (one high priority and another) to {MAX_SESSIONS}")
    if not 1 <= runs <= MAX_RUNS:
        fail(f"invalid runs {runs!r}: expected 1 to {MAX_RUNS}")
    if not 1 <= call_procs <= 64:
        fail(f"invalid call-procs {call_procs!r}: expected 1 to 64")
    if not 0 < duration <= MAX_DURATION:
        fail(f"invalid duration {duration!r}: expected more than 0 and at most {MAX_DURATION:g} seconds")
    if out_dir is not None:  # before the runs, not after an hour of them
        _check_out_dir(out_dir)
    try:
        arm_list = parse_arms(arms)
        peak = parse_size(peak_text, "peak")
        fixed_budget = None if budget == "auto" else parse_size(budget, "budget")
        if root is not None:
            check_name(root, "root")
    except AgentCgroupError as exc:
        fail(str(exc))
    for path in traces:
        if not os.path.exists(path):
            fail(f"invalid trace {path!r}: no such file or directory")
    tasks = []
    try:
        for src in discover(list(traces)):
            task = src.load()
            if task.error is None and len(task.samples) >= 10 and task.calls:
                tasks.append(task)
    except (OSError, ValueError) as exc:
        fail(f"invalid traces {' '.join(traces)!r}: {exc}")
    if not tasks:
        fail(f"invalid traces {' '.join(traces)!r}: no trace with resource samples and tool calls")
    chosen = [tasks[i % len(tasks)] for i in range(n_sessions)]
    raw_peak = max(max(t.samples.mem_bytes) for t in chosen)
    mscale = peak / raw_peak if raw_peak else 1.0
    plans = []
    for t in chosen:
        span = t.samples.span_s or duration
        plans.append(plan(t, time_scale=max(span / duration, 1e-3), memory_scale=mscale))
    priorities = ["high", *(PRIORITY_CYCLE[i % 2] for i in range(n_sessions - 1))]

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt  # the runs' finally blocks kill what they started and remove their cgroups

    signal.signal(signal.SIGTERM, interrupted)
    try:
        _bench(plans, priorities, fixed_budget, arm_list, runs, root, call_procs, as_json, out_dir)
    except KeyboardInterrupt:
        fail("interrupted: the runs so far are dropped, nothing is left behind", 130)


def _bench(
    plans: list[ReplayPlan],
    priorities: list[str],
    fixed_budget: int | None,
    arm_list: list[Arm],
    runs: int,
    root: str | None,
    call_procs: int,
    as_json: bool,
    out_dir: str | None,
) -> None:
    from ..bench.arms import ARMS

    n_sessions = len(plans)
    if fixed_budget is None:
        if not as_json:
            click.echo("calibrating: one run of all sessions without a budget, to size it", err=True)
        chosen_budget = auto_budget(plans, priorities, root or "agentcg-bench", call_procs)
    else:
        chosen_budget = fixed_budget
    info = {
        "budget": chosen_budget,
        "sessions": [
            {"task": p.task, "priority": pr, "peak": p.trace_peak, "calls": len(p.calls), "duration_s": p.duration}
            for p, pr in zip(plans, priorities, strict=True)
        ],
    }
    if not as_json:
        click.echo(
            f"budget {format_size(chosen_budget)} for {n_sessions} sessions (peaks "
            + ", ".join(format_size(p.trace_peak) for p in plans)
            + f"); {runs} runs x {len(arm_list)} policies, plus the high-priority session alone",
            err=True,
        )
    all_runs, alone = _run_all(
        arm_list, plans, priorities, chosen_budget, runs, root or "agentcg-bench", ARMS, call_procs
    )
    _report(all_runs, alone, info, as_json, out_dir)


#: ``--budget auto``: this share of what the sessions use together at their peak when nothing limits them
AUTO_SHARE = 0.5


def auto_budget(plans: list[Any], priorities: list[str], root: str, call_procs: int = 1) -> int:
    """Tight, measured in one run without a budget: half of the sessions' joint peak, so that every policy has
    to take memory from someone; but never below what must fit for any policy to lose no agent and slow no
    high-priority call (every agent's memory plus the whole high-priority session, at their joint peak), +10 %."""
    from ..bench.arms import ARMS
    from ..bench.driver import run_once

    free = run_once(ARMS["none"], plans, priorities, None, root=root, call_procs=call_procs)
    return max(int(AUTO_SHARE * free.mem_peak_bytes), int(free.protected_peak_bytes * 1.1) + (32 << 20))


def _run_all(
    arm_list: list[Arm],
    plans: list[ReplayPlan],
    priorities: list[str],
    budget: int,
    runs: int,
    root: str,
    arms: dict[str, Arm],
    call_procs: int,
) -> tuple[list[RunResult], list[float]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..bench.driver import run_once

    results = []
    alone: list[float] = []
    total = runs * (len(arm_list) + 1)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        disable=not sys.stderr.isatty(),
    ) as progress:
        bar = progress.add_task("bench", total=total)
        for r in range(runs):
            order = arm_list[r % len(arm_list) :] + arm_list[: r % len(arm_list)]  # rotate: no arm always first
            progress.update(bar, description=f"run {r + 1}/{runs}: alone")
            solo = run_once(arms["none"], plans[:1], priorities[:1], None, root=root, run=r, call_procs=call_procs)
            if solo.sessions[0].completion_s is not None:
                alone.append(solo.sessions[0].completion_s)
            progress.advance(bar)
            for arm in order:
                progress.update(bar, description=f"run {r + 1}/{runs}: {arm.name}")
                res = run_once(arm, plans, priorities, budget, root=root, run=r, call_procs=call_procs)
                results.append(res)
                progress.advance(bar)
                if progress.disable:  # not a terminal: a line per run instead of the bar
                    click.echo(
                        f"run {r + 1}/{runs} {arm.name}: {res.agents_lost} agents lost, {res.calls_killed} calls "
                        f"killed ({res.calls_over} traced over the budget alone), {res.makespan_s:.1f} s",
                        err=True,
                    )
    return results, alone


def _report(
    all_runs: list[RunResult], alone: list[float], info: dict[str, Any], as_json: bool, out_dir: str | None
) -> None:
    from ..bench.stats import median
    from ..bench.summary import figures, markdown_table, plot, table_rows

    figs = figures(all_runs, alone)
    doc = {
        **info,
        "alone_s": {"median": median(alone), "runs": alone},
        "arms": [f.to_dict() for f in figs],
        "runs": [r.to_dict() for r in all_runs],
    }
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "bench.json"), "w") as f:
            json.dump(doc, f, indent=1)
        with open(os.path.join(out_dir, "bench.md"), "w") as f:
            f.write(markdown_table(figs) + "\n")
        try:
            plot(figs, os.path.join(out_dir, "bench.png"))
        except ImportError:
            click.echo("agentcg bench: no matplotlib: no plot (pip install 'agentcgroup[report]')", err=True)
    if as_json:
        click.echo(json.dumps(doc))
        return
    from rich.console import Console
    from rich.table import Table

    head, rows = table_rows(figs)
    table = Table(title=f"agentcg bench: budget {info['budget'] >> 20} MiB, high-priority alone {median(alone):.2f} s")
    for h in head:
        table.add_column(h)
    for row in rows:
        table.add_row(*row)
    Console().print(table)
