"""``agentcg predict``: how well each tool call's peak memory (and CPU, duration) is predicted from the calls
before it, on recorded or published traces, beside the naive policies (docs/predict.md)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from .errors import fail

FIGURE_TITLES = {"memory": "peak memory", "duration": "duration", "cpu": "CPU (cores)"}


@click.command()
@click.argument("traces", nargs=-1, required=True)
@click.option(
    "--history",
    "history_paths",
    multiple=True,
    help="Other sessions' history: traces, a state directory (outcomes/ or history.sqlite3) or a history store.",
)
@click.option("--split", is_flag=True, help="Predict the later half of the sessions, from the earlier half.")
@click.option("--online", is_flag=True, help="Each session is history for the ones after it (as on a daemon's host).")
@click.option("--fixed", "fixed_text", default="256M", show_default=True, help="The naive fixed per-call reservation.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--calls", "per_call", is_flag=True, help="With --json: every call's prediction and actual figures.")
def predict(
    traces: tuple[str, ...],
    history_paths: tuple[str, ...],
    split: bool,
    online: bool,
    fixed_text: str,
    as_json: bool,
    per_call: bool,
) -> None:
    """Replay each session's shell calls in order, predicting each from the calls that ended before it (its own
    session's, and other sessions' with --history, --split or --online); report, per policy,

    \b
    calls                  calls whose actual figure the trace knows
    predicted_share        calls with a prediction / calls
    under_predicted_share  actual > predicted, among the calls with a prediction
    median_abs_rel_err     median |predicted - actual| / actual (actual at least 8 MiB, 0.1 s, 0.05 cores)
    reserved_over_actual   sum of predictions / sum of actual figures, among the calls with a prediction

    for the learned rule, the session's peak so far, and a fixed reservation.
    """
    from ..errors import AgentCgroupError
    from ..units import parse_size

    try:
        fixed = parse_size(fixed_text, "fixed")
    except AgentCgroupError as exc:
        fail(str(exc))
    if fixed <= 0 or fixed >= 1 << 60:
        fail(f"invalid fixed {fixed_text!r}: expected a size above zero such as 256M")
    for p in (*traces, *history_paths):
        if not os.path.exists(p):
            fail(f"invalid path {p!r}: no such file or directory")
    if per_call and not as_json:
        fail("--calls needs --json")
    doc = _evaluate(list(traces), list(history_paths), split, online, fixed, per_call, quiet=as_json)
    if as_json:
        click.echo(json.dumps(doc))
    else:
        _print(doc)


def _progress(quiet: bool):  # type: ignore[no-untyped-def]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        transient=True,
        disable=quiet or not sys.stderr.isatty(),
        console=None,
    )


def _evaluate(
    traces: list[str], history_paths: list[str], split: bool, online: bool, fixed: int, per_call: bool, quiet: bool
) -> dict[str, Any]:
    from ..predict.evaluate import evaluate
    from ..predict.evaluate import split as split_sessions
    from ..predict.sources import from_traces, load_history

    with _progress(quiet) as progress:
        bar = progress.add_task("reading traces", total=None)

        def loaded(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total)

        try:
            sessions = from_traces(traces, on_load=loaded)
            progress.update(bar, description="reading history", completed=0, total=None)
            base, base_sessions = load_history(history_paths)
        except (ValueError, FileNotFoundError) as exc:
            fail(f"invalid traces: {exc}")
        if not any(s.calls for s in sessions):
            fail(f"invalid traces {' '.join(traces)!r}: no session with a shell call of known duration")
        mode = "session"
        if split:
            if len(sessions) < 2:
                fail(f"invalid traces {' '.join(traces)!r}: --split needs at least 2 sessions")
            earlier, sessions = split_sessions(sessions)  # halves of the tasks, by start time
            base = [*base, *(o for s in earlier for o in s.calls)]
            base_sessions += sum(1 for s in earlier if s.calls)
            mode = "split"
        elif online:
            mode = "online"
        elif history_paths:
            mode = "history"
        sessions = [s for s in sessions if s.calls]
        progress.update(bar, description=f"predicting {sum(len(s.calls) for s in sessions)} calls")
        ev = evaluate(
            sessions,
            base,
            mode=mode,
            online=online,
            fixed_bytes=fixed,
            history_sessions=base_sessions,
            keep_calls=per_call,
        )
    return ev.to_dict(per_call=per_call)


def _fmt(figure: str, value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "share":
        return f"{value:.1%}"
    return f"{value:.2f}"


def _print(doc: dict[str, Any]) -> None:
    from ..units import format_size

    how = {
        "session": "each session from its own earlier calls only",
        "history": f"each session from its own earlier calls and {doc['history_calls']} calls of "
        f"{doc['history_sessions']} other sessions",
        "split": f"the later {doc['sessions']} sessions from the earlier {doc['history_sessions']} "
        f"({doc['history_calls']} calls) and their own earlier calls",
        "online": "each session from its own earlier calls and every session before it",
    }[doc["mode"]]
    click.echo(f"agentcg predict: {doc['sessions']} sessions, {how}")
    for figure, policies in doc["figures"].items():
        click.echo(f"\n{FIGURE_TITLES[figure]}:")
        head = f"{'calls':>6} {'predicted':>10} {'under':>7} {'median err':>11} {'reserved/actual':>16}"
        click.echo(f"  {'policy':16} {head}")
        for name, f in policies.items():
            label = f"fixed {format_size(doc['fixed_bytes'])}" if name == "fixed" else name
            click.echo(
                f"  {label:16} {f['calls']:>6} {_fmt(figure, f['predicted_share'], 'share'):>10} "
                f"{_fmt(figure, f['under_predicted_share'], 'share'):>7} "
                f"{_fmt(figure, f['median_abs_rel_err'], 'x'):>11} {_fmt(figure, f['reserved_over_actual'], 'x'):>16}"
            )
    mem = doc["figures"]["memory"]["learned"]
    click.echo(
        "\n"
        + " ".join(
            f"{k}={mem[k]}"
            for k in ("calls", "predicted_share", "under_predicted_share", "median_abs_rel_err", "reserved_over_actual")
        )
    )
    if doc["bases"]:
        click.echo("memory predictions rest on: " + ", ".join(f"{k} {v}" for k, v in doc["bases"].items()))
    for note in doc["notes"]:
        click.echo(f"note: {note}")
