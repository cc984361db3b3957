"""``agentcg unit``: the daemon as ``agentcg.service``, a systemd unit with delegation."""

from __future__ import annotations

import os
import subprocess

import click

from ..errors import InvalidValue
from ..systemd import systemd_owns_tree
from ..systemd import unit_file as _unit
from ..units import parse_size
from .errors import RUNNER_FAILED, fail


@click.group()
def unit() -> None:
    """The daemon as a systemd service (agentcg.service, Delegate=yes)."""


def _text(socket_path: str | None, budget: str | None) -> str:
    args: list[str] = []
    if budget is not None:
        try:
            parse_size(budget, "budget")
        except InvalidValue as exc:
            fail(str(exc))
        args += ["--budget", budget]
    if socket_path is not None and not os.path.isabs(socket_path):
        fail(f"invalid socket {socket_path!r}: expected an absolute path")
    return _unit.render(socket_path, args)


@unit.command("show")
@click.option("--socket", "socket_path", metavar="PATH", help="Socket the daemon serves (default /run/agentcg.sock).")
@click.option("--budget", metavar="SIZE", help="Memory for all sessions together.")
def show(socket_path: str | None, budget: str | None) -> None:
    """Print agentcg.service (to write it by hand: /etc/systemd/system/agentcg.service)."""
    click.echo(_text(socket_path, budget), nl=False)


@unit.command("install")
@click.option("--socket", "socket_path", metavar="PATH", help="Socket the daemon serves (default /run/agentcg.sock).")
@click.option("--budget", metavar="SIZE", help="Memory for all sessions together.")
@click.option("--unit-dir", default=_unit.UNIT_DIR, show_default=True, help="Where to write the unit.")
@click.option("--now", "start", is_flag=True, help="Start it too (it is enabled for the next boot either way).")
def install(socket_path: str | None, budget: str | None, unit_dir: str, start: bool) -> None:
    """Write agentcg.service, reload systemd and enable the unit (root, on a host booted with systemd)."""
    text = _text(socket_path, budget)
    if not systemd_owns_tree():
        fail("systemd is not running as PID 1 here: there is no manager to install agentcg.service into")
    if os.geteuid() != 0:
        fail("installing agentcg.service needs root (the daemon serves every user)")
    try:
        path = _unit.install(text, unit_dir, start=start)
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        fail(f"cannot install agentcg.service into {unit_dir}: {detail.strip()}", RUNNER_FAILED)
    click.echo(path)
