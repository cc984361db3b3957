"""``agentcg session open|close``: sessions of the daemon."""

from __future__ import annotations

import click

from ..daemon.client import Client, Unreachable
from ..errors import AgentCgroupError, InvalidValue
from ..limits import Limits
from .errors import RUNNER_FAILED, fail

socket_option = click.option("--socket", "socket_path", metavar="PATH", help="The daemon's socket ($AGENTCG_SOCKET).")


@click.group()
def session() -> None:
    """Open or close a session of the daemon."""


@session.command("open")
@click.argument("name")
@click.option("--priority", type=click.Choice(["high", "normal", "low"]), default="normal", show_default=True)
@click.option("--memory", metavar="SIZE", help="The session's memory budget.")
@click.option("--cpu-weight", metavar="N", help="Its CPU weight, 1..10000 (default from the priority).")
@click.option("--agent-memory", metavar="SIZE", help="Protection (memory.low) of its agent leaf.")
@socket_option
def open_(
    name: str,
    priority: str,
    memory: str | None,
    cpu_weight: str | None,
    agent_memory: str | None,
    socket_path: str | None,
) -> None:
    """Open session NAME (owned by you)."""
    try:
        limits = Limits.parse(memory=memory, cpu_weight=cpu_weight)
        info = Client(socket_path).open_session(name, priority=priority, limits=limits, agent_memory=agent_memory)
    except InvalidValue as exc:
        fail(str(exc))
    except Unreachable as exc:
        fail(str(exc), RUNNER_FAILED)
    except AgentCgroupError as exc:
        fail(str(exc), RUNNER_FAILED)
    click.echo(f"session {info['name']} open (priority {info['priority']}, owner uid {info['uid']})")


@session.command("close")
@click.argument("name")
@socket_option
def close(name: str, socket_path: str | None) -> None:
    """Close session NAME: its calls and agent are killed, its cgroups removed."""
    try:
        Client(socket_path).close_session(name)
    except InvalidValue as exc:
        fail(str(exc))
    except AgentCgroupError as exc:
        fail(str(exc), RUNNER_FAILED)
    click.echo(f"session {name} closed")
