"""``agentcg daemon``: one controller for the host, serving agent sessions on a Unix socket."""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading

import click

from .. import threadnice
from ..controller.config import ControllerConfig
from ..controller.core import Controller
from ..daemon.client import default_socket
from ..daemon.policy import Policy, parse_caps
from ..daemon.server import Daemon
from ..errors import AgentCgroupError, InvalidValue
from .errors import RUNNER_FAILED, fail
from .observing import Observing

#: the control threads' nice value by default, for a root daemon (an unprivileged one may not lower it)
CONTROL_NICE = -5


@click.command()
@click.option(
    "--socket", "socket_path", metavar="PATH", help="Socket to serve (default $AGENTCG_SOCKET or /run/agentcg.sock)."
)
@click.option("--budget", metavar="SIZE", help="Memory for all sessions together (the root's hard limit).")
@click.option("--pressure-on", metavar="F", help="Fraction of a budget at which lower priorities give way (0.9).")
@click.option("--pressure-off", metavar="F", help="Fraction under which the pressure has passed (0.8).")
@click.option("--stall-grace", metavar="SEC", help="Throttled this long: frozen (1s).")
@click.option("--kill-after", metavar="SEC", help="Frozen this long without relief: killed (2s).")
@click.option(
    "--urgent-level", metavar="F", help="Fraction of a budget at which a waiting higher priority hurries it (0.97)."
)
@click.option("--urgent-grace", metavar="SEC", help="The throttle and freeze deadlines then (100ms).")
@click.option("--admission-wait", metavar="SEC", help="Longest wait in the admission queue (30s).")
@click.option("--warm", metavar="N", help="Spare pre-placed leaves per session (2).")
@click.option(
    "--warm-quiet",
    metavar="SEC",
    help="Spares are made once no call has started for this long; calls back to back spawn directly (20ms; 0: "
    "at once).",
)
@click.option(
    "--predict",
    is_flag=True,
    help="A call that declares no memory reserves its peak predicted from its uid's earlier calls, and waits in "
    "the admission queue while that does not fit (docs/predict.md). Each uid's history is its own.",
)
@click.option(
    "--state-dir",
    metavar="DIR",
    default="/run/agentcg",
    show_default=True,
    help="Where sessions and calls are written down, for a restarted daemon to adopt.",
)
@click.option("--keep-calls", is_flag=True, help="On SIGTERM, leave sessions and calls running for a successor.")
@click.option(
    "--root",
    metavar="NAME",
    default="agentcg-daemon",
    show_default=True,
    help="Root cgroup name (apart from the embedded controllers' agentcg, so they never share sessions).",
)
@click.option("--backend", type=click.Choice(["auto", "v2", "hybrid", "none"]), help="Force a backend.")
@click.option(
    "--policy",
    "policy_file",
    metavar="FILE",
    help="Operator policy (TOML): caps per uid and group (docs/security.md). Default: safe caps for non-root.",
)
@click.option(
    "--metrics",
    "metrics_at",
    metavar="HOST:PORT",
    help="Serve Prometheus metrics (agentcg_*, docs/metrics.md) at http://HOST:PORT/metrics; HOST defaults to "
    "127.0.0.1. Off by default. Needs prometheus-client (pip install 'agentcgroup[metrics]').",
)
@click.option(
    "--events",
    "events_file",
    metavar="FILE",
    help="Write every step the controller takes to FILE as JSON lines (mode 0600), rotated by size.",
)
@click.option("--events-max-size", metavar="SIZE", default="64M", show_default=True, help="Rotate --events past this.")
@click.option("--tenant-max-sessions", metavar="N", help="Sessions a non-root uid may hold at once (16).")
@click.option("--tenant-max-calls", metavar="N", help="Calls a non-root uid may run at once (32).")
@click.option("--tenant-max-connections", metavar="N", help="Connections a non-root uid may hold open (64).")
@click.option("--tenant-max-priority", metavar="P", help="Highest priority a non-root uid may ask for (normal).")
@click.option(
    "--control-nice",
    metavar="N",
    envvar="AGENTCG_CONTROL_NICE",
    help=f"Nice value of the daemon's event loop and controller loop threads, ahead of the tools (they keep the "
    f"daemon's own). Default {CONTROL_NICE} when run as root, else unchanged; the daemon's own value (0): off. "
    "Also $AGENTCG_CONTROL_NICE.",
)
def daemon(
    socket_path: str | None,
    budget: str | None,
    pressure_on: str | None,
    pressure_off: str | None,
    stall_grace: str | None,
    kill_after: str | None,
    urgent_level: str | None,
    urgent_grace: str | None,
    admission_wait: str | None,
    warm: str | None,
    warm_quiet: str | None,
    predict: bool,
    state_dir: str,
    keep_calls: bool,
    root: str | None,
    backend: str | None,
    policy_file: str | None,
    metrics_at: str | None,
    events_file: str | None,
    events_max_size: str,
    tenant_max_sessions: str | None,
    tenant_max_calls: str | None,
    tenant_max_connections: str | None,
    tenant_max_priority: str | None,
    control_nice: str | None,
) -> None:
    """Serve agent sessions on a Unix socket (sessions belong to the uid that opens them; root administers
    all). Killed with SIGKILL and restarted with the same --state-dir, it adopts the calls it left running."""
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="agentcg: %(message)s")
    try:
        cfg = ControllerConfig.parse(
            budget=budget,
            pressure_on=pressure_on,
            pressure_off=pressure_off,
            stall_grace=stall_grace,
            kill_after=kill_after,
            urgent_level=urgent_level,
            urgent_grace=urgent_grace,
            admission_wait=admission_wait,
            warm=warm,
            warm_quiet=warm_quiet,
            predict=predict or None,
        ).with_(warm_after=1)  # spares for the sessions that make calls, none for idle ones
        flags = {
            "max_sessions": tenant_max_sessions,
            "max_calls": tenant_max_calls,
            "max_connections": tenant_max_connections,
            "max_priority": tenant_max_priority,
        }
        tenant_flags = parse_caps({k: v for k, v in flags.items() if v is not None}, "--tenant")
        policy = Policy.load(policy_file, tenant_flags=tenant_flags)
        from ..cgroupfs import check_name

        if root is not None:
            check_name(root, "root")
        observing = Observing.parse(metrics_at, events_file, events_max_size)
        nice = None if control_nice is None else threadnice.parse(control_nice)
    except (InvalidValue, ValueError) as exc:
        fail(str(exc))
    try:
        ctl = Controller(root=root, backend=backend, config=cfg, state_dir=state_dir)
    except AgentCgroupError as exc:
        fail(str(exc), RUNNER_FAILED)
    try:
        observing.start(ctl)
    except (AgentCgroupError, OSError) as exc:
        observing.close()
        ctl.close(keep_calls=True)
        fail(str(exc), RUNNER_FAILED)
    try:
        server = Daemon(socket_path or default_socket(), ctl, policy, eventlog=observing.eventlog)
    except (AgentCgroupError, OSError) as exc:
        observing.close()
        ctl.close(keep_calls=True)
        fail(f"cannot serve {socket_path or default_socket()}: {exc}", RUNNER_FAILED)

    def stop(signum: int, _frame: object) -> None:
        logging.getLogger("agentcgroup").info("event=daemon-stop signal=%s", signal.Signals(signum).name)
        server.stop()

    # the event loop, the controller's loop and the workers share the GIL: hand it over within 1 ms, not 5 ms,
    # so that a worker's or the controller's next step does not wait behind a busy loop (tail latency)
    sys.setswitchinterval(0.001)
    # what start-up made lives as long as the daemon: out of the collector's way, so that a full collection
    # (it stopped every thread for ~15 ms under hostile load) walks only what serving makes
    gc.collect()
    gc.freeze()
    _raise_control_threads(ctl, nice)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever()
    finally:
        server.close()
        observing.stop_metrics()
        ctl.close(keep_calls=keep_calls)
        observing.close()  # the event log last: it records the sessions closing


def _raise_control_threads(ctl: Controller, nice: int | None) -> None:
    """This thread (the event loop's) and the controller's loop at ``nice`` (None: the default; see
    :mod:`agentcgroup.threadnice`). Refused (no CAP_SYS_NICE): a warning, and the daemon serves on as it is."""
    if nice is None:
        if os.geteuid() != 0:
            return
        nice = CONTROL_NICE
    loop_thread = ctl.loop.thread
    tids = [threading.get_native_id()] + ([loop_thread.native_id] if loop_thread and loop_thread.native_id else [])
    if nice == os.getpriority(os.PRIO_PROCESS, 0):
        return
    try:
        for tid in tids:
            threadnice.raise_thread(tid, nice)
    except OSError as exc:
        logging.getLogger("agentcgroup").warning("event=control-nice-refused nice=%d error=%r", nice, str(exc))
