"""``agentcg run``: run one command in its own tool-call cgroup."""

from __future__ import annotations

import signal
import sys

import click

from ..cgroupfs import check_name
from ..errors import AgentCgroupError, InvalidValue
from ..limits import Limits
from ..session import Session
from ..spawn import SpawnError, resolve
from ..units import parse_duration
from .errors import CANNOT_EXECUTE, NOT_FOUND, RUNNER_FAILED, fail


class _Terminated(BaseException):
    def __init__(self, signum: int) -> None:
        self.signum = signum


def _on_signal(signum: int, _frame: object) -> None:
    raise _Terminated(signum)


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--session", "session_name", metavar="S", help="Session to run in (joined if it exists).")
@click.option("--memory", metavar="SIZE", help="Hard memory limit: 512M, 2GiB, max. Over it: OOM kill.")
@click.option("--memory-high", metavar="SIZE", help="Soft memory limit: over it the call is throttled.")
@click.option("--cpu", metavar="PCT", help="CPU quota in percent of one core: 50%, 200%.")
@click.option("--pids", metavar="N", help="Most processes/threads at once.")
@click.option("--timeout", metavar="SEC", help="Kill the whole tree after this long: 30, 2.5s, 500ms, 2m.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object on stdout's last line.")
@click.option("--keep-background", is_flag=True, help="Do not kill processes the command leaves running.")
@click.option("--root", metavar="NAME", help="Root cgroup name (default agentcg, or $AGENTCG_ROOT).")
@click.option("--backend", type=click.Choice(["auto", "v2", "hybrid", "none"]), help="Force a backend.")
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
    command: tuple[str, ...],
) -> None:
    """Run COMMAND in its own cgroup, with limits; mirror its exit code (128+signal if killed).

    Its output passes through untouched. When a limit acted, a short explanation goes to stderr
    (or, with --json, the whole outcome goes to stdout's last line).

    \b
    Example:
      agentcg run --memory 256M -- python3 -c "bytearray(1 << 30)"
    """
    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        fail("no command given (usage: agentcg run [OPTIONS] -- COMMAND...)")
    # validate everything before anything is created
    try:
        limits = Limits.parse(memory=memory, memory_high=memory_high, cpu=cpu, pids=pids)
        tmo = parse_duration(timeout, "timeout") if timeout is not None else None
        if session_name is not None:
            check_name(session_name, "session")
        if root is not None:
            check_name(root, "root")
        resolve(argv)
    except InvalidValue as exc:
        fail(str(exc))
    except FileNotFoundError as exc:
        fail(exc.strerror or str(exc), NOT_FOUND)
    except PermissionError as exc:
        fail(exc.strerror or str(exc), CANNOT_EXECUTE)

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    stdout_fd = sys.stdout.fileno() if as_json else None
    if as_json:
        sys.stdout.flush()
    try:
        with Session(session_name, root=root, backend=backend, warm=0) as s:
            call = s.start(argv, limits=limits, timeout=tmo, relay_stdout=stdout_fd, keep_background=keep_background)
            outcome = call.wait()
            assert outcome is not None
    except _Terminated as t:
        raise SystemExit(128 + t.signum) from None
    except KeyboardInterrupt:
        raise SystemExit(128 + signal.SIGINT) from None
    except FileNotFoundError as exc:
        fail(exc.strerror or str(exc), NOT_FOUND)
    except PermissionError as exc:
        fail(exc.strerror or str(exc), CANNOT_EXECUTE)
    except InvalidValue as exc:
        fail(str(exc))
    except (AgentCgroupError, SpawnError) as exc:
        fail(str(exc), RUNNER_FAILED)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)

    if as_json:
        if call.call is not None and not call.call.stdout_ended_with_newline:
            sys.stdout.write("\n")
        sys.stdout.write(outcome.to_json() + "\n")
        sys.stdout.flush()
    elif outcome.feedback:
        sys.stderr.write(f"agentcg: {outcome.feedback}\n")
    if not outcome.enforced and not as_json and not limits.is_empty():
        sys.stderr.write(
            "agentcg: note: no cgroups here; limits were applied per process only (see `agentcg doctor`)\n"
        )
    raise SystemExit(outcome.returncode)
