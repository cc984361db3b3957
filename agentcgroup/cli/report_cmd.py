"""``agentcg report PATH...``: the AgentCgroup paper's characterization of recorded agent sessions."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..report.paper import BATCH18, HAIKU
from ..report.run import report_data, to_json, write_report
from ..report.selection import MIN_DURATION_S, MIN_SAMPLES, Thresholds
from .errors import finite_range, safe_path

if TYPE_CHECKING:
    from rich.console import Console


def _progress_console() -> Console:
    """Progress goes to stderr, so stdout stays one JSON object (or the Markdown)."""
    from rich.console import Console

    return Console(stderr=True)


@click.command("report")
@click.argument("paths", nargs=-1, required=True, type=safe_path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object with every figure on stdout.")
@click.option(
    "--out",
    "out_dir",
    type=safe_path(file_okay=False, path_type=Path),
    help="Write report.md, report.json and PNG plots into this directory.",
)
@click.option(
    "--min-duration",
    type=finite_range(0, 1e9),
    default=MIN_DURATION_S,
    show_default=True,
    help="A valid task was sampled for at least this many seconds.",
)
@click.option(
    "--min-samples",
    type=click.IntRange(min=1, max=2**31),
    default=MIN_SAMPLES,
    show_default=True,
    help="A valid task has at least this many resource samples.",
)
@click.option(
    "--burst-mb",
    type=finite_range(0, 1e12),
    default=300.0,
    show_default=True,
    help="Samples above this many MB (decimal) count as high-memory bursts.",
)
@click.option(
    "--host-gb",
    type=finite_range(0, 1e9, min_open=True),
    default=128.0,
    show_default=True,
    help="Host memory (decimal GB) for the sessions-per-host estimate.",
)
@click.option(
    "--paper",
    "reference",
    type=click.Choice(["auto", HAIKU, BATCH18, "none"]),
    default="auto",
    show_default=True,
    help="Which of the paper's figures to compare with.",
)
@click.option(
    "--timelines",
    type=click.IntRange(min=0, max=1000),
    default=6,
    show_default=True,
    help="Per-task timeline plots to draw (highest peak-to-average first).",
)
@click.option("--no-plots", is_flag=True, help="Do not draw plots.")
def report(
    paths: tuple[Path, ...],
    as_json: bool,
    out_dir: Path | None,
    min_duration: float,
    min_samples: int,
    burst_mb: float,
    host_gb: float,
    reference: str,
    timelines: int,
    no_plots: bool,
) -> None:
    """Characterize agent sessions as the AgentCgroup paper does.

    PATH is a task attempt directory of the paper's published format, a tree of them, or an agentcg
    recording (.jsonl); directories are searched recursively. Only valid tasks (sampled long enough,
    with enough samples) enter the figures; the report says which were dropped and why. Without --out
    and --json the Markdown report is printed.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    if out_dir is not None:  # before the work: a directory we cannot make is bad input, said at once
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except (OSError, ValueError) as exc:
            why = getattr(exc, "strerror", None) or exc
            raise click.BadParameter(f"{str(out_dir)!r}: {why}", param_hint="'--out'") from None
    thresholds = Thresholds(min_duration_s=min_duration, min_samples=min_samples)
    with Progress(
        TextColumn("loading traces"),
        BarColumn(),
        MofNCompleteColumn(),
        console=_progress_console(),
        transient=True,
        disable=not sys.stderr.isatty(),  # a blank line otherwise, before any error line
    ) as progress:
        bar = progress.add_task("load", total=None)
        try:
            result, valid = report_data(
                paths,
                thresholds,
                on_found=lambda n: progress.update(bar, total=n),
                advance=lambda _src: progress.advance(bar),
                burst_bytes=int(burst_mb * 1e6),
                host_bytes=int(host_gb * 1e9),
                reference=reference,
            )
        except (FileNotFoundError, ValueError) as e:
            raise click.UsageError(str(e)) from e  # a path or a file that is not a trace: bad input, exit 2
    if out_dir is not None:
        path = write_report(result, valid, out_dir, plots=not no_plots, timelines=timelines)
        click.echo(f"report: {path} ({result['tasks']} of {result['tasks_found']} tasks valid)", err=True)
        if result.get("plots_note") and not no_plots:
            click.echo(result["plots_note"], err=True)
    if as_json:
        click.echo(to_json(result))
    elif out_dir is None:
        from ..report.markdown import render

        sys.stdout.write(render(result, result["sources"], [], "Plots are written with --out DIR."))
