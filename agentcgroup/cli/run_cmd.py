"""``agentcg run``: run one command in its own tool-call cgroup (the click face; the work is in run_call.py,
and fast_run.py takes the common command lines there without importing click)."""

from __future__ import annotations

import click

from . import run_call as _call


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--session", "session_name", metavar="S", help="Session to run in (joined if it exists).")
@click.option("--memory", metavar="SIZE", help="Hard memory limit: 512M, 2GiB, max. Over it: OOM kill.")
@click.option("--memory-high", metavar="SIZE", help="Soft memory limit: over it the call is throttled.")
@click.option("--cpu", metavar="PCT", help="CPU quota in percent of one core: 50%, 200%.")
@click.option("--pids", metavar="N", help="Most processes/threads at once.")
@click.option("--timeout", metavar="SEC", help="Kill the whole tree after this long: 30, 2.5s, 500ms, 2m.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object on stdout's last line.")
@click.option(
    "--keep-background",
    is_flag=True,
    help="Keep processes the command leaves running, in its cgroup with its limits, until they end.",
)
@click.option("--root", metavar="NAME", help="Root cgroup name (default agentcg, or $AGENTCG_ROOT).")
@click.option("--backend", type=click.Choice(["auto", "v2", "hybrid", "none"]), help="Force a backend.")
@click.option(
    "--socket",
    "socket_path",
    metavar="PATH",
    help="Run through the daemon serving PATH (default: $AGENTCG_SOCKET if set, else embedded).",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    session_name: str | None,
    memory: str | None,
    memory_high: str | None,
    cpu: str | None,
    pids: str | None,
    timeout: str | None,
    as_json: bool,
    keep_background: bool,
    root: str | None,
    backend: str | None,
    socket_path: str | None,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND in its own cgroup, with limits; mirror its exit code (128+signal if killed).

    Its output passes through untouched. When a limit acted, a short explanation goes to stderr
    (or, with --json, the whole outcome goes to stdout's last line).

    \b
    Example:
      agentcg run --memory 256M -- python3 -c "bytearray(1 << 30)"
    """
    """Run COMMAND in its own cgroup, with limits; mirror its exit code (128+signal if killed).

    Its output passes through untouched. When a limit acted, a short explanation goes to stderr
    (or, with --json, the whole outcome goes to stdout's last line).

    \b
    Example:
      agentcg run --memory 256M -- python3 -c "bytearray(1 << 30)"
    """
    _call.run_call(
        session_name,
        memory,
        memory_high,
        cpu,
        pids,
        timeout,
        as_json,
        keep_background,
        root,
        backend,
        socket_path,
        command,
    )
