"""What ``agentcg run`` does, without click: the click command (run_cmd.py) and the parser of the common
forms (fast_run.py) both end here.

A process per tool call pays for what it imports: the embedded path imports the controller's one-call part,
the daemon's path only the client and its wire (tests/unit/test_cli_imports.py keeps them so).
"""

from __future__ import annotations

import os
import signal
import sys

from ..errors import AgentCgroupError, InvalidValue
from ..limits import Limits
from ..units import parse_duration
from .errors import CANNOT_EXECUTE, NOT_FOUND, RUNNER_FAILED, bad_input, check_command_line, command_argv, fail

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (a process per call pays for it)

if TYPE_CHECKING:
    from ..outcome import Outcome
    from ..session import Session
    from ..supervise import Supervisor


class _Terminated(BaseException):
    def __init__(self, signum: int) -> None:
        self.signum = signum


def _on_signal(signum: int, _frame: object) -> None:
    raise _Terminated(signum)


def run_call(
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
    command: tuple[str, ...] | list[str],
) -> None:
    """Validate, run COMMAND (embedded, or through the daemon), report; exits with the outcome's code."""
    argv = command_argv(command, "agentcg run [OPTIONS] -- COMMAND...")
    # validate everything before anything is created
    with bad_input():
        limits = Limits.parse(memory=memory, memory_high=memory_high, cpu=cpu, pids=pids)
        tmo = parse_duration(timeout, "timeout") if timeout is not None else None
        check_command_line(session_name, root, argv)

    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGHUP)}
    sys.stdout.flush()
    socket_path = socket_path or os.environ.get("AGENTCG_SOCKET")
    try:
        if socket_path:
            outcome, ended_nl = _via_daemon(socket_path, session_name, argv, limits, tmo, as_json, keep_background)
        else:
            outcome, ended_nl = _embedded(session_name, root, backend, argv, limits, tmo, as_json, keep_background)
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
    except AgentCgroupError as exc:
        fail(str(exc), RUNNER_FAILED)
    except OSError as exc:
        spawn = sys.modules.get("agentcgroup.spawn")  # imported by the embedded path only
        if spawn is None or not isinstance(exc, spawn.SpawnError):
            raise
        fail(str(exc), RUNNER_FAILED)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)

    if as_json:
        if not ended_nl:
            sys.stdout.write("\n")
        sys.stdout.write(outcome.to_json() + "\n")
        sys.stdout.flush()
    elif outcome.feedback:
        sys.stderr.write(f"agentcg: {outcome.feedback}\n")
    if outcome.background_kept and not as_json:
        if socket_path and not session_name:
            kept = "were stopped when its session (made for this call alone) closed: give --session NAME to keep them"
        else:
            kept = "kept running in the call's cgroup, with its limits, until they end or the session is closed"
        sys.stderr.write(f"agentcg: note: {outcome.background_kept} background process(es) {kept}\n")
    if not outcome.enforced and not as_json and not limits.is_empty():
        sys.stderr.write(
            "agentcg: note: no cgroups here; limits were applied per process only (see `agentcg doctor`)\n"
        )
    raise SystemExit(outcome.returncode)


def _embedded(
    session_name: str | None,
    root: str | None,
    backend: str | None,
    argv: list[str],
    limits: Limits,
    tmo: float | None,
    as_json: bool,
    keep_background: bool,
) -> tuple[Outcome, bool]:
    """In this process: a private controller, no warm pool (one call). A supervisor, forked before the
    controller's threads start, ends the call if this process dies without doing so (SIGKILL)."""
    from .. import supervise
    from ..session import Session
    from ..warm import new_call_id

    sup = supervise.start()
    try:
        with Session(session_name, root=root, backend=backend, warm=0) as s:
            call_id = new_call_id()
            if sup is not None:
                _tell_supervisor(sup, s, call_id)
            call = s.start(
                argv,
                limits=limits,
                timeout=tmo,
                relay_stdout=sys.stdout.fileno() if as_json else None,
                keep_background=keep_background,
                call_id=call_id,
            )
            outcome = call.wait()
            assert outcome is not None
            if outcome.background_kept and sup is not None:
                # kept beyond this process: the session's close leaves the leaf, the supervisor removes it
                # (then the session, if nothing else uses it) once the last kept process has ended
                s.controller.session(s.name).kept.clear()
                sup.keep()
                sup = None
            return outcome, call.call is None or call.call.stdout_ended_with_newline
    finally:
        if sup is not None:
            sup.done()


def _tell_supervisor(sup: Supervisor, s: Session, call_id: str) -> None:
    """The call's directories in every hierarchy (known before it starts: its id is ours), the session's when
    this runner made it, and the root."""
    m = s.manager
    roles = getattr(m, "roles", ())
    if not roles or not hasattr(m, "root_path"):
        return  # no cgroups (the no-cgroup backend): nothing a supervisor could remove
    roots = [m.root_path(role) for role in roles]
    sup.own(f"{r}/{s.name}/tools/{call_id}" for r in roots)
    if s.controller.session(s.name).created:
        sup.remove_session(f"{r}/{s.name}" for r in roots)
    sup.remove_if_empty(roots)


def _via_daemon(
    socket_path: str,
    session_name: str | None,
    argv: list[str],
    limits: Limits,
    tmo: float | None,
    as_json: bool,
    keep_background: bool,
) -> tuple[Outcome, bool]:
    """Through the daemon: our stdio fds go with the request, so the command writes to them directly (with
    --json its stdout comes back through a pipe, to know whether a newline must precede the JSON)."""
    from ..daemon.client import Client

    client = Client(socket_path)
    name = session_name or f"run-{os.getpid()}"
    # as embedded: a session that does not exist is made for this call, and the daemon closes it after the
    # call, or as soon as this client goes away (even SIGKILLed)
    relay = _Relay() if as_json else None
    try:
        out = client.run(
            name,
            argv,
            limits=limits,
            timeout=tmo,
            stdin=0,
            stdout=relay.write_fd if relay else 1,
            stderr=2,
            keep_background=keep_background,
            on_started=(lambda _id: relay.start()) if relay else None,
            own_session=True,
        )
    finally:
        if relay is not None:
            relay.finish()
    return out, relay.last == b"\n" if relay else True


class _Relay:
    """Copy a pipe to our stdout, untouched, remembering the last byte."""

    def __init__(self) -> None:
        import threading

        self.read_fd, self.write_fd = os.pipe2(os.O_CLOEXEC)
        self.last = b"\n"
        self._thread = threading.Thread(target=self._copy, daemon=True)

    def start(self) -> None:
        os.close(self.write_fd)  # the command has its copy now
        self.write_fd = -1
        self._thread.start()

    def _copy(self) -> None:
        while chunk := os.read(self.read_fd, 65536):
            self.last = chunk[-1:]
            view = memoryview(chunk)
            while view:
                view = view[os.write(1, view) :]

    def finish(self) -> None:
        if self.write_fd >= 0:
            os.close(self.write_fd)
        if self._thread.is_alive() or self._thread.ident is not None:
            self._thread.join(30)
        os.close(self.read_fd)
