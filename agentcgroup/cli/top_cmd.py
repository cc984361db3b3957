"""``agentcg top``: a live view over the daemon (your sessions; all, as root), or over recordings at a moment.

Keys: ``q`` quits, ``s`` cycles the sort (memory, cpu, name, priority), ``e`` expands or collapses the calls.
``--once`` prints one snapshot and exits (for scripts and tests)."""

from __future__ import annotations

import os
import select
import sys
import termios
import time
import tty
from collections.abc import Callable
from typing import Any

import click

from ..errors import AgentCgroupError, InvalidValue
from ..units import MAX_DURATION
from .errors import RUNNER_FAILED, fail


@click.command()
@click.option("--once", is_flag=True, help="Print one snapshot and exit.")
@click.option("--interval", metavar="SEC", type=click.FloatRange(0.1, 60), default=1.0, show_default=True)
@click.option(
    "--sort", "order", type=click.Choice(["memory", "cpu", "name", "priority"]), default="memory", show_default=True
)
@click.option("--collapse", is_flag=True, help="Start with the calls hidden (e shows them).")
@click.option("--recording", "recordings", metavar="FILE", multiple=True, help="Look at recordings instead.")
@click.option("--at", "at", metavar="SECONDS", type=float, default=None, help="With --recording: when, from its start.")
@click.option("--socket", "socket_path", metavar="PATH", help="The daemon's socket ($AGENTCG_SOCKET).")
def top(
    once: bool,
    interval: float,
    order: str,
    collapse: bool,
    recordings: tuple[str, ...],
    at: float | None,
    socket_path: str | None,
) -> None:
    """Sessions with their priority, budget, memory now and peak, CPU, PSI and calls (command, age, memory,
    state), and the controller's last actions with their reasons."""
    from ..observe.screen import render

    fetch: Callable[[], dict[str, Any]]
    if recordings:
        from ..observe.recorded import recorded_view

        when = 0.0 if at is None else at
        if not 0 <= when <= MAX_DURATION:  # also NaN; a larger time has no clock time to show (time_t)
            fail(str(InvalidValue("--at", at, f"seconds from the recording's start, 0..{MAX_DURATION:g}")))
        try:
            fixed = recorded_view(list(recordings), when)
        except InvalidValue as exc:
            fail(str(exc))
        source = f"recording +{when:g}s"

        def fetch() -> dict[str, Any]:
            return fixed
    else:
        if at is not None:
            fail("--at looks back in a recording: give --recording FILE too")
        from ..daemon.client import Client

        client = Client(socket_path)
        source = ""

        def fetch() -> dict[str, Any]:
            return client.top()

    try:
        view = fetch()
    except AgentCgroupError as exc:
        fail(str(exc), RUNNER_FAILED)
    from rich.console import Console

    if once or not sys.stdin.isatty():
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)  # a script's or a test's: wide enough for every column
        console.print(render(view, order, not collapse, source))
        return
    _live(fetch, view, order, not collapse, source, interval)


def _live(
    fetch: Callable[[], dict[str, Any]], view: dict[str, Any], order: str, expanded: bool, source: str, interval: float
) -> None:
    from rich.live import Live

    from ..observe.screen import SORTS, render

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    error = ""
    try:
        tty.setcbreak(fd)
        with Live(render(view, order, expanded, source), screen=True, auto_refresh=False) as live:
            next_at = time.monotonic() + interval
            while True:
                ready, _, _ = select.select([fd], [], [], max(0.0, next_at - time.monotonic()))
                if ready:
                    key = os.read(fd, 32).decode(errors="replace")
                    if "q" in key or not key:
                        return
                    if "s" in key:
                        order = SORTS[(SORTS.index(order) + 1) % len(SORTS)]
                    if "e" in key:
                        expanded = not expanded
                else:
                    next_at = time.monotonic() + interval
                    try:
                        view = fetch()
                    except AgentCgroupError as exc:
                        error = str(exc)
                        return
                live.update(render(view, order, expanded, source), refresh=True)
    except KeyboardInterrupt:
        pass
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        if error:
            fail(error, RUNNER_FAILED)
