"""``agentcg status``: the daemon's sessions and running calls."""

from __future__ import annotations

import json

import click

from ..daemon.client import Client
from ..errors import AgentCgroupError
from ..units import format_size
from .errors import RUNNER_FAILED, fail


@click.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@click.option("--socket", "socket_path", metavar="PATH", help="The daemon's socket ($AGENTCG_SOCKET).")
def status(as_json: bool, socket_path: str | None) -> None:
    """Sessions you may see (all, as root) and their running calls."""
    try:
        st = Client(socket_path).status()
    except AgentCgroupError as exc:
        fail(str(exc), RUNNER_FAILED)
    if as_json:
        click.echo(json.dumps(st, indent=2))
        return
    budget = (
        f", budget {format_size(st['budget'])} ({format_size(st.get('memory_current'))} used)" if "budget" in st else ""
    )
    click.echo(f"backend {st['backend']}{budget}; {len(st['sessions'])} session(s)")
    for s in st["sessions"]:
        click.echo(
            f"  {s['name']}  priority {s['priority']}  uid {s['uid']}  memory {format_size(s.get('memory_current'))}"
        )
        for c in s["calls"]:
            click.echo(
                f"    {c['call_id']}  {c['phase']:9s}  {format_size(c.get('memory_current')):>10s}  "
                f"{c['elapsed_s']:.1f} s  {c['command'][:60]}"
            )
