"""``agentcg record``: run an agent command as a session's agent and record the session's resource timeline."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import time
from typing import Any

import click

from ..controller.config import check_priority
from ..errors import AgentCgroupError, InvalidValue
from ..limits import Limits
from ..record import Recorder
from ..record.serve import private_socket
from ..record.tracking import TrackingController
from ..session import Session
from ..spawn import Process, SpawnError
from ..traces.recording import RecordingWriter
from ..units import parse_duration
from .errors import RUNNER_FAILED, bad_input, check_command_line, command_argv, fail


def check_out_path(path: str, what: str = "output file") -> str:
    """A file we may create: its directory exists, it is not a directory itself."""
    parent = os.path.dirname(os.path.abspath(path)) or "."
    if os.path.isdir(path):
        raise InvalidValue(what, path, "is a directory")
    if not os.path.isdir(parent):
        raise InvalidValue(what, path, f"its directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise InvalidValue(what, path, f"its directory {parent} is not writable")
    return path


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--out", "out", metavar="FILE.jsonl", required=True, help="Where the recording goes.")
@click.option("--interval", metavar="SEC", default="0.1", show_default=True, help="Sampling interval: 0.1, 50ms.")
@click.option("--session", "session_name", metavar="S", help="Session name (default: a new unique one).")
@click.option("--memory", metavar="SIZE", help="The session's memory budget: 4G, max.")
@click.option("--cpu", metavar="PCT", help="The session's CPU quota in percent of one core: 200%.")
@click.option("--pids", metavar="N", help="Most processes/threads in the session at once.")
@click.option("--priority", metavar="P", default="normal", show_default=True, help="high, normal or low.")
@click.option("--root", metavar="NAME", help="Root cgroup name (default agentcg, or $AGENTCG_ROOT).")
@click.option("--backend", type=click.Choice(["auto", "v2", "hybrid", "none"]), help="Force a backend.")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def record(
    out: str,
    interval: str,
    session_name: str | None,
    memory: str | None,
    cpu: str | None,
    pids: str | None,
    priority: str,
    root: str | None,
    backend: str | None,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND as the agent of a session and record the session until it exits; mirror its exit code.

    COMMAND runs in the session's agent leaf with $AGENTCG_SESSION, $AGENTCG_ROOT and $AGENTCG_SOCKET (a
    private socket served by this command) set, so the tool calls it makes through the shim or `agentcg run
    --session "$AGENTCG_SESSION"` land in the session and are recorded, each with its command and outcome.
    The file is an agentcg recording (docs/recording-format.md): `agentcg report` reads it, `agentcg replay`
    replays it.

    \b
    Example:
      agentcg record --out s1.jsonl -- bash -c 'agentcg run --session "$AGENTCG_SESSION" -- pytest -x'
    """
    argv = command_argv(command, "agentcg record --out FILE.jsonl [OPTIONS] -- COMMAND...")
    with bad_input():
        interval_s = parse_duration(interval, "sampling interval")
        limits = Limits.parse(memory=memory, cpu=cpu, pids=pids)
        check_priority(priority)
        check_out_path(out)
        check_command_line(session_name, root, argv)

    forwarded: dict[int, Any] = {}
    try:
        rc, summary = _record(out, interval_s, session_name, limits, priority, root, backend, argv, forwarded)
    except InvalidValue as exc:
        fail(str(exc))
    except (AgentCgroupError, SpawnError, OSError) as exc:
        fail(str(exc), RUNNER_FAILED)
    finally:
        for sig, handler in forwarded.items():
            signal.signal(sig, handler)
    sys.stderr.write(f"agentcg: {summary}\n")
    raise SystemExit(rc)


def _record(
    out: str,
    interval_s: float,
    session_name: str | None,
    limits: Limits,
    priority: str,
    root: str | None,
    backend: str | None,
    argv: list[str],
    forwarded: dict[int, Any],
) -> tuple[int, str]:
    """Open the session, serve it on a private socket, run the agent in its agent leaf, record until it exits."""
    t_open = time.time()
    ctl = TrackingController(root=root, backend=backend)
    try:
        s = Session(session_name, limits=limits, priority=priority, controller=ctl)
        ctl.open_session(s.name, uid=os.getuid(), priority=priority, limits=limits)
        with s:
            writer = RecordingWriter(
                out,
                s.name,
                interval_s=interval_s,
                started_at=t_open,
                startup_s=time.time() - t_open,
                meta={"command": shlex.join(argv), "backend": s.manager.kind, "priority": priority},
            )
            rec = Recorder.for_session(s, writer, interval_s=interval_s, tracked=True)
            ctl.recorder = rec
            started = time.time()
            try:
                rec.start()
                with private_socket(ctl) as sock:
                    env = dict(os.environ, AGENTCG_SESSION=s.name, AGENTCG_ROOT=s.manager.root_name)
                    env["AGENTCG_SOCKET"] = sock
                    if backend:
                        env["AGENTCG_BACKEND"] = backend
                    proc = s.spawn_agent(argv, env=env)
                    rc = _wait(proc, forwarded)
            finally:
                ctl.recorder = None
                rec.stop()
                writer.close(agent_wall_s=time.time() - started)
    finally:
        ctl.close()
    unfinished = rec.calls_started - rec.calls_ended
    tail = f" ({unfinished} unfinished)" if unfinished else ""
    return rc, (
        f"recorded {rec.samples} samples, {rec.calls_started} tool calls{tail} "
        f"in {time.time() - started:.1f} s -> {out}"
    )


def _wait(proc: Process, forwarded: dict[int, Any]) -> int:
    """Wait for the agent; Ctrl-C reaches it from the terminal, SIGTERM/SIGHUP are passed on to it."""

    def forward(signum: int, _frame: object) -> None:
        proc.send_signal(signum)

    forwarded[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        forwarded[sig] = signal.signal(sig, forward)
    rc = proc.wait()
    proc.close()
    return 128 - rc if rc is not None and rc < 0 else (rc or 0)
