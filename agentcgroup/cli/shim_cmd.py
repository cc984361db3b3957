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


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("event", required=False, default="pre-tool-use")
def hook(event: str) -> None:
    """A Claude Code / Codex PreToolUse hook (EVENT: pre-tool-use): reads the tool call on stdin.

    It never rewrites a command, never blocks (always exit 0, a warning on stderr), and decides a permission
    only with AGENTCG_HOOK_DECISION=ask or allow. It warns when a Bash call runs without agentcgroup, that is
    when CLAUDE_CODE_SHELL_PREFIX is not agentcg-prefix (the Claude Code integration: docs/integrations.md).
    """
    raise SystemExit(_hook.main(event=event))
