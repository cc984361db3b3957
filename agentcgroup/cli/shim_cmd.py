"""``agentcg shim install`` and ``agentcg hook``: per-call cgroups for agents that run shell commands."""

from __future__ import annotations

import os

import click

from ..integrations import hook as _hook
from ..integrations import shim as _shim
from .errors import fail


@click.group()
def shim() -> None:
    """A bash shim for PATH: every bash an agent starts runs in its own tool-call cgroup."""


@shim.command("install")
@click.argument("directory")
@click.option("--sh", "with_sh", is_flag=True, help="Also shim sh.")
def install(directory: str, with_sh: bool) -> None:
    """Write the shim(s) into DIRECTORY; put it first on the agent's PATH.

    \b
    Session: $AGENTCG_SESSION (default "shim"); limits: $AGENTCG_SHIM_ARGS, e.g. "--memory 2G --timeout 10m";
    through the daemon when $AGENTCG_SOCKET is set.
    """
    try:
        paths = _shim.install(directory, ("bash", "sh") if with_sh else ("bash",))
    except (OSError, FileNotFoundError) as exc:
        fail(f"cannot install the shim into {directory!r}: {exc}")
    for p in paths:
        click.echo(p)
    click.echo(f'then: export PATH="{os.path.abspath(directory)}:$PATH"', err=True)


@click.command()
@click.argument("event", type=click.Choice(["pre-tool-use"]))
def hook(event: str) -> None:
    """A Claude Code / Codex style hook: reads the tool call on stdin, answers on stdout.

    \b
    In .claude/settings.json:
      {"hooks": {"PreToolUse": [{"matcher": "Bash",
         "hooks": [{"type": "command", "command": "agentcg hook pre-tool-use"}]}]}}
    """
    raise SystemExit(_hook.main())
