"""``agentcg doctor``: which backend this host gets and what it can do."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..backends import get_manager
from ..errors import AgentCgroupError
from .errors import RUNNER_FAILED, fail

_ROWS = [
    ("backend", "backend"),
    ("enforce memory", "enforce_memory"),
    ("enforce CPU", "enforce_cpu"),
    ("enforce pids", "enforce_pids"),
    ("soft memory limit", "memory_high"),
    ("freeze", "freeze"),
    ("kill a tree", "kill"),
    ("peak memory", "memory_peak"),
    ("OOM group", "oom_group"),
    ("events", "events"),
    ("PSI", "psi"),
    ("PSI min window", "psi_min_window_us"),
    ("fast spawn (C)", "fast_spawn"),
]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.option("--root", metavar="NAME", help="Root cgroup name to probe under (default agentcg).")
@click.option("--backend", type=click.Choice(["auto", "v2", "hybrid", "none"]), help="Force a backend.")
def doctor(as_json: bool, root: str | None, backend: str | None) -> None:
    """Show which backend this host gets and which cgroup features it has."""
    if root is not None:
        from ..cgroupfs import check_name
        from ..errors import InvalidValue

        try:
            check_name(root, "root")
        except InvalidValue as exc:
            fail(str(exc))
    try:
        m = get_manager(root, backend=backend)
    except AgentCgroupError as exc:
        fail(str(exc), RUNNER_FAILED)
    try:
        f = m.features
        layout = m.layout
        placed = _systemd(layout, f.backend)
        if as_json:
            out = {"host": layout.describe(), "mode": layout.mode, **f.to_dict(), "systemd": placed}
            out["notes"] = list(f.notes)
            sys.stdout.write(json.dumps(out, indent=2) + "\n")
            return
        from rich.console import Console
        from rich.table import Table

        console = Console()
        console.print(f"host: {layout.describe()}", highlight=False)
        console.print(f"systemd: {placed['path']} ({placed['why']})", highlight=False)
        table = Table(show_header=True)
        table.add_column("feature")
        table.add_column("here")
        for label, key in _ROWS:
            value = getattr(f, key)
            if key == "psi_min_window_us":
                value = f"{value / 1e6:g} s" if value else "-"
            elif isinstance(value, bool):
                value = "yes" if value else "[red]no[/red]"
            elif value == "":
                value = "[red]none[/red]"
            table.add_row(label, str(value))
        console.print(table)
        for note in f.notes:
            console.print(f"- {note}", highlight=False)
    finally:
        m.close()


def _systemd(layout: object, backend: str) -> dict[str, Any]:
    """Which path this host and user get under systemd, and why (agentcgroup.systemd)."""
    from ..systemd.report import describe

    return describe(layout, backend)  # type: ignore[arg-type]
