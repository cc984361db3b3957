"""The ``agentcg`` command: one group, one file per sub-command, each imported only when it is used.

An agent may start a process per tool call (``agentcg run``, the shim, the Claude Code prefix), so what
``agentcg run`` imports is paid on every call: the group knows its commands by module name and imports the
one asked for (``agentcg --help`` imports them all, for their one-line help), and the plain forms of
``agentcg run`` do not import click at all (fast_run.py). The click group is in group.py.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (a process per call pays for it)

if TYPE_CHECKING:
    from typing import Any

    pass

# name -> (module in agentcgroup.cli, attribute); in the order --help lists them
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run_cmd", "run"),
    "doctor": ("doctor_cmd", "doctor"),
    "daemon": ("daemon_cmd", "daemon"),
    "session": ("session_cmd", "session"),
    "status": ("status_cmd", "status"),
    "shim": ("shim_cmd", "shim"),
    "hook": ("shim_cmd", "hook"),
    "record": ("record_cmd", "record"),
    "replay": ("replay_cmd", "replay_cmd"),
    "bench": ("bench_cmd", "bench"),
    "unit": ("unit_cmd", "unit"),  # systemd hosts: agentcg.service
    "predict": ("predict_cmd", "predict"),
    "capacity": ("capacity_cmd", "capacity"),
    "events": ("events_cmd", "events"),
    "top": ("top_cmd", "top"),
    "report": ("report_cmd", "report"),
}


def _logging(verbose: int) -> None:
    level = os.environ.get("AGENTCG_LOG")
    if verbose or level:
        import logging

        logging.basicConfig(
            stream=sys.stderr,
            level=logging.DEBUG if verbose > 1 else (level or logging.INFO),
            format="agentcg: %(message)s",
        )


def _exit_now(done: SystemExit) -> None:
    """End the per-call process as the interpreter would, exit hooks (atexit) included, but without freeing
    every module and object first (~5-20 ms here, for a process that ends anyway). Only when no other thread
    is left (the runner's threads have all been joined) and stdout and stderr are written out; otherwise the
    usual exit."""
    import atexit
    import threading

    code = done.code
    if not (code is None or isinstance(code, int)) or threading.active_count() != 1:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return  # the usual exit reports it
    atexit._run_exitfuncs()  # what Py_Finalize runs first (logging's shutdown, coverage, ...)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        code = 120  # as the interpreter's exit: output lost
    os._exit(code or 0)


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["run"]:  # the per-call verb: its plain forms without click (fast_run.py)
        from .fast_run import parse

        kw = parse(args[1:])
        if kw is not None:
            from .run_call import run_call

            _logging(0)
            try:
                run_call(**kw)  # exits
            except SystemExit as done:
                _exit_now(done)
                raise
    from .group import cli

    cli(prog_name="agentcg")


def __getattr__(name: str) -> Any:
    if name == "cli":  # the click group, imported when asked for (the plain `run` lines never need click)
        from .group import cli

        return cli
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
