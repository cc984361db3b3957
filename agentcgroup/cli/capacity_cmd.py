"""``agentcg capacity``: how many replayed sessions a memory budget holds under each policy (docs/capacity.md)."""

from __future__ import annotations

import json
import os
import signal
import sys
from typing import Any

import click

from .errors import fail


@click.command()
@click.argument("traces", nargs=-1, required=True)
@click.option("--budget", "budget_text", required=True, help="Memory for all sessions together (the root's limit).")
@click.option("--arms", default="static,agentcgroup", show_default=True, help="Policies: static, agentcgroup, learned.")
@click.option(
    "--history",
    "history_paths",
    multiple=True,
    help="What the learned arm knows beforehand: traces, a state dir or a history store (the replayed tasks "
    "themselves are left out).",
)
@click.option("--duration", type=float, default=15.0, show_default=True, help="Seconds each replay is scaled to.")
@click.option(
    "--peak", "peak_text", default="512M", show_default=True, help="Memory scale: the largest session peaks here."
)
@click.option("--cpu-scale", type=float, default=1.0, show_default=True, help="Scale of the replayed CPU load.")
@click.option("--call-procs", type=int, default=4, show_default=True, help="Processes per tool call's load.")
@click.option("--runs", type=int, default=1, show_default=True, help="Runs per probe (the median slowdown counts).")
@click.option(
    "--max-slowdown",
    "max_slowdown_text",
    default="5%",
    show_default=True,
    help="The high-priority session's allowed slowdown (the issue's criterion is 5%).",
)
@click.option("--max-sessions", type=int, default=16, show_default=True, help="The most sessions tried.")
@click.option("--start", type=int, default=1, show_default=True, help="The first number of sessions tried (doubled).")
@click.option(
    "--alone",
    type=click.Choice(["each", "once"]),
    default="each",
    show_default=True,
    help="Measure the high-priority session alone before each probe, or once per run for all (quiet machines).",
)
@click.option("--root", default=None, help="Root cgroup name (default agentcg-capacity).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
def capacity(
    traces: tuple[str, ...],
    budget_text: str,
    arms: str,
    history_paths: tuple[str, ...],
    duration: float,
    peak_text: str,
    cpu_scale: float,
    call_procs: int,
    runs: int,
    max_slowdown_text: str,
    max_sessions: int,
    start: int,
    alone: str,
    root: str | None,
    as_json: bool,
) -> None:
    """The largest number of TRACES replayed at once (cycled; the first high priority, the others low and
    normal) that --budget holds with no agent lost, the high-priority session at most 5 % slower than alone
    and at most one call killed per 10 sessions: per policy, found by doubling then bisecting.

    Prints capacity_static=, capacity_agentcgroup=, capacity_learned= and the ratios to static, and what ran
    out first (memory, or CPU: mind the machine's CPUs when choosing --duration and --cpu-scale).
    """
    from ..bench.capacity import CAPACITY_ARMS, LEARNED_SEAM
    from ..cgroupfs import check_name
    from ..errors import AgentCgroupError
    from ..units import parse_size

    try:
        budget = parse_size(budget_text, "budget")
        peak = parse_size(peak_text, "peak")
        if root is not None:
            check_name(root, "root")
    except AgentCgroupError as exc:
        fail(str(exc))
    if not 0 < budget < 1 << 60:
        fail(f"invalid budget {budget_text!r}: expected a size such as 2G")
    if not 0 < peak < 1 << 60:
        fail(f"invalid peak {peak_text!r}: expected a size such as 512M")
    names = [a.strip() for a in arms.split(",") if a.strip()]
    for a in names:
        if a not in CAPACITY_ARMS:
            fail(f"invalid arm {a!r}: expected some of {', '.join(CAPACITY_ARMS)}")
        if a == "learned" and LEARNED_SEAM:
            fail(f"invalid arm 'learned': not yet: {LEARNED_SEAM}")
    if not names:
        fail(f"invalid arms {arms!r}: expected some of static, agentcgroup")
    if not duration > 0:
        fail(f"invalid duration {duration!r}: must be above zero seconds")
    if not cpu_scale > 0:
        fail(f"invalid cpu-scale {cpu_scale!r}: must be above zero")
    if not 1 <= call_procs <= 64:
        fail(f"invalid call-procs {call_procs!r}: expected 1 to 64")
    if runs < 1:
        fail(f"invalid runs {runs!r}: need at least 1")
    max_slowdown = _fraction(max_slowdown_text)
    if not 1 <= max_sessions <= 256:
        fail(f"invalid max-sessions {max_sessions!r}: expected 1 to 256")
    if not 1 <= start <= max_sessions:
        fail(f"invalid start {start!r}: expected 1 to max-sessions ({max_sessions})")
    for t in traces:
        if not os.path.exists(t):
            fail(f"invalid trace {t!r}: no such file or directory")
    plans, mscale = _plans(traces, duration, peak, cpu_scale)
    history = _history(history_paths, {p.task for p in plans}, mscale) if "learned" in names else []

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt  # the run's finally blocks kill what they started and remove their cgroups

    signal.signal(signal.SIGTERM, interrupted)
    try:
        doc = _search(
            plans,
            names,
            budget,
            root or "agentcg-capacity",
            call_procs,
            runs,
            max_slowdown,
            max_sessions,
            history,
            start=start,
            alone_once=alone == "once",
        )
    except KeyboardInterrupt:
        fail("interrupted: the probes so far are dropped, nothing is left behind", 130)
    doc.update(duration_s=duration, peak=peak, cpu_scale=cpu_scale, call_procs=call_procs, runs=runs)
    doc.update(start=start, alone=alone)
    doc["max_slowdown"] = max_slowdown
    doc["sessions"] = [{"task": p.task, "peak": p.trace_peak, "calls": len(p.calls)} for p in plans]
    if "learned" in names:
        doc["history_calls"] = len(history)
    if as_json:
        click.echo(json.dumps(doc))
    else:
        _print(doc)


def _history(paths: tuple[str, ...], replayed: set[str], mscale: float) -> list[Any]:
    """The learned arm's history: observations from ``paths``, the replayed tasks' own left out (it would know
    the future), memory scaled as the replay scales it."""
    import dataclasses

    from ..errors import AgentCgroupError
    from ..predict.sources import load_history

    try:
        obs, _ = load_history(paths)
    except (AgentCgroupError, OSError, ValueError) as exc:
        fail(f"invalid history {' '.join(paths)!r}: {exc}")
    return [
        dataclasses.replace(o, memory=None if o.memory is None else int(o.memory * mscale))
        for o in obs
        if o.session not in replayed
    ]


def _plans(traces: tuple[str, ...], duration: float, peak: int, cpu_scale: float) -> tuple[list[Any], float]:
    from ..replay.plan import plan
    from ..traces import discover

    try:
        tasks = [t for t in (s.load() for s in discover(list(traces))) if t.error is None]
    except (ValueError, FileNotFoundError) as exc:
        fail(f"invalid traces: {exc}")
    tasks = [t for t in tasks if len(t.samples) >= 10 and t.calls]
    if not tasks:
        fail(f"invalid traces {' '.join(traces)!r}: no trace with resource samples and tool calls")
    raw_peak = max(max(t.samples.mem_bytes) for t in tasks)
    mscale = peak / raw_peak if raw_peak else 1.0
    return [
        plan(t, time_scale=max((t.samples.span_s or duration) / duration, 1e-3), memory_scale=mscale,
             cpu_scale=cpu_scale)
        for t in tasks
    ], mscale  # fmt: skip


def _fraction(text: str) -> float:
    """``5%`` or ``0.05`` -> 0.05; anything else is a usage error."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        fail(f"invalid max-slowdown {text!r}: expected a percentage such as 5% (or a fraction, 0.05)")
    if not 0 <= value <= 100:
        fail(f"invalid max-slowdown {text!r}: expected 0% to 10000%")
    return value


def _search(
    plans: Any,
    names: Any,
    budget: Any,
    root: Any,
    call_procs: Any,
    runs: Any,
    max_slowdown: Any,
    max_sessions: Any,
    history: Any = (),
    *,
    start: int = 1,
    alone_once: bool = False,
) -> Any:
    from ..bench.capacity import kernel_probe, max_sessions_for, search, summary

    alone_cache: dict[int, float] | None = {} if alone_once else None

    def say(text: str) -> None:  # progress, on stderr (stdout stays the figures, JSON or not)
        click.echo(f"capacity: {text}", err=True)

    results = {}
    for name in names:
        probe = kernel_probe(
            name,
            plans,
            budget,
            root=root,
            call_procs=call_procs,
            runs=runs,
            max_slowdown=max_slowdown,
            on_run=say,
            history=history,
            alone_cache=alone_cache,
        )

        def logged(n: int, probe=probe) -> Any:  # type: ignore[no-untyped-def]
            p = probe(n)
            say(f"{p.arm}: {n} sessions {'held' if p.held else 'failed: ' + p.reason}")
            return p

        peaks = [p.trace_peak for p in plans]
        most = max_sessions_for(name, max_sessions, peaks, budget)
        results[name] = search(logged, most, start=min(start, most))
    return summary(results, budget, [p.trace_peak for p in plans])


def _print(doc: dict[str, Any]) -> None:
    from ..bench.capacity import LEARNED_SEAM
    from ..units import format_size

    click.echo(
        f"agentcg capacity: budget {format_size(doc['budget'])}, {len(doc['sessions'])} traces (largest peak "
        f"{format_size(doc['peak'])}), each replayed in {doc['duration_s']:g} s"
    )
    for arm, a in doc["arms"].items():
        click.echo(f"\n{arm}: capacity {a['capacity']}" + (f"; at more, {a['reason']}" if a["reason"] else ""))
        head = f"{'held':>5} {'agents lost':>11} {'killed':>6} {'high slowdown':>13} {'CPU busy':>8} {'queued':>12}"
        click.echo(f"  {'sessions':>8} {head}")
        for p in a["probes"]:
            slow = "-" if p["high_slowdown"] is None else f"{p['high_slowdown']:+.1%}"
            queued = f"{p['queued_calls']} / {p['queued_s']:.1f} s"
            click.echo(
                f"  {p['n']:>8} {'yes' if p['held'] else 'no':>5} {p['agents_lost']:>11} {p['calls_killed']:>6} "
                f"{slow:>13} {p['cpu_busy']:>8.0%} {queued:>12}"
            )
            for k in p.get("kill_details", [])[:5]:
                click.echo("           killed: " + _kill_line(k, format_size))
    parts = [f"capacity_{a}={doc.get('capacity_' + a, '-')}" for a in ("static", "agentcgroup")]
    parts.append("capacity_learned=-" if LEARNED_SEAM else f"capacity_learned={doc.get('capacity_learned', '-')}")
    parts += [f"{k}={v}" for k, v in doc.items() if k.startswith("ratio_")]
    parts.append(f"static_by_peak={doc['static_by_peak']}")
    click.echo("\n" + " ".join(parts))
    if LEARNED_SEAM:
        click.echo(f"learned: not yet: {LEARNED_SEAM}", err=True)
    sys.stdout.flush()


def _kill_line(k: dict[str, Any], size: Any) -> str:
    """One killed call: ``pytest -x (low) by policy: peak 300 MiB, predicted 200 MiB (session literal ...
    (3)), queued 2.0 s``: the prediction with what it rested on (basis, key, how many calls or sessions)."""
    parts = [f"peak {size(k['memory_peak'])}" if k.get("memory_peak") else "peak ?"]
    if k.get("predicted"):
        basis = f" ({k['predicted_basis']})" if k.get("predicted_basis") else ""
        parts.append(f"predicted {size(k['predicted'])}{basis}")
    if k.get("queued_s"):
        parts.append(f"queued {k['queued_s']:.1f} s")
    return f"`{k.get('command') or '?'}` ({k.get('priority')}) by {k.get('killed_by')}: " + ", ".join(parts)
