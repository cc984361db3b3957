#!/usr/bin/env python3
"""The daemon under load: many clients running ``/bin/true`` calls at once, or many idle sessions and connections.

Starts ``agentcg daemon`` on a socket and state dir of its own (root cgroup ``agentcg-bench-load``), then:

* ``--clients N --calls M``: N clients (threads of this one process, so that they do not take the CPU being
  measured), each with a session of its own, run M calls of ``/bin/true`` in a row (``--pause LO-HI``: with
  a pause between calls, as an agent's calls come). Every outcome is checked
  (exit 0). The daemon's CPU is its utime+stime across the run (/proc/<pid>/stat). Last line:
  ``calls_per_s=412 p50_ms=3.1 p99_ms=41 daemon_cpu_ms_per_call=0.9 errors=0 clients=50``
* ``--sessions K``: K sessions opened and left idle, then K idle connections held open; what they cost the
  daemon in fds, threads, memory and helper processes. Last line:
  ``sessions=1000 idle_fds_per_session=2.1 daemon_threads=6 daemon_rss_mib=61 helpers=0 idle_connections=1000
  conn_threads=6 fds_per_connection=1.0``

Everything is removed afterwards (SIGTERM: the daemon closes its sessions). Preliminary figures on a shared
machine are noisy: compare runs made side by side.

Usage: python benchmarks/daemon_load.py [--clients 50 --calls 20 [--warmup 1100] [--pause 0.2-1] | --sessions 1000]
       [--root agentcg-bench-load]
       [--agentcg "python /other/build/agentcg"]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from agentcgroup.daemon.client import Client

TICK = os.sysconf("SC_CLK_TCK")


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def cpu_seconds(pid: int) -> float:
    return sum(cpu_split(pid))


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kib / 1024


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def helpers(pid: int) -> int:
    """Child processes of the daemon that are not tool calls (idle sessions have none running)."""
    n = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            n += len(f.read().split())
    return n


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def start_daemon(
    root: str, extra: list[str], agentcg: str | None = None, base: str | None = None
) -> tuple[subprocess.Popen, str, str]:
    """``agentcg daemon`` (``agentcg``: another build's command line, to compare side by side), its socket and
    state dir in a new directory under ``base`` (default: the temp dir)."""
    tmp = tempfile.mkdtemp(prefix="agentcg-bench-load-", dir=base)
    sock = os.path.join(tmp, "agentcg.sock")
    base = shlex.split(agentcg) if agentcg else [sys.executable, "-m", "agentcgroup"]
    cmd = [*base, "daemon", "--socket", sock, "--root", root]
    cmd += ["--state-dir", os.path.join(tmp, "state"), *extra]
    proc = subprocess.Popen(cmd, stderr=open(os.path.join(tmp, "daemon.log"), "w"))  # noqa: SIM115
    deadline = time.monotonic() + 30
    while not os.path.exists(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            with open(os.path.join(tmp, "daemon.log")) as f:
                raise SystemExit(f"the daemon did not start: {f.read()[-2000:]}")
        time.sleep(0.05)
    return proc, sock, tmp


def load(
    sock: str, pid: int, clients: int, calls: int, warmup: int = 0, pause: tuple[float, float] = (0.0, 0.0)
) -> str:
    c = Client(sock)
    for i in range(clients):
        c.open_session(f"load{i}")
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    warmed, start = threading.Barrier(clients + 1), threading.Barrier(clients + 1)

    def one(i: int) -> None:
        cl = Client(sock)
        mine = []
        for _ in range(warmup):  # not measured: the daemon's pools and state dir at their steady state
            out = cl.run(f"load{i}", ["/bin/true"])
            if out.exit_code != 0:
                with lock:
                    errors[0] += 1
        warmed.wait()
        start.wait()
        rnd = random.Random(i)
        for k in range(calls):
            if k and pause[1]:  # an agent's cadence: a pause between calls (not counted in the latency)
                time.sleep(rnd.uniform(*pause))
            t0 = time.perf_counter()
            try:
                out = cl.run(f"load{i}", ["/bin/true"])
                ok = out.exit_code == 0 and out.killed_by is None
            except Exception as exc:  # counted, and the first few shown
                ok = False
                if errors[0] < 3:
                    print(f"error: {exc!r}", file=sys.stderr)
            mine.append(time.perf_counter() - t0)
            if not ok:
                with lock:
                    errors[0] += 1
        with lock:
            lat.extend(mine)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in ts:
        t.start()
    warmed.wait()
    u0, s0 = cpu_split(pid)
    start.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    u1, s1 = cpu_split(pid)
    cpu = (u1 - u0) + (s1 - s0)
    n = clients * calls
    print(
        f"(daemon CPU per call: user {(u1 - u0) / n * 1e3:.2f} ms, system {(s1 - s0) / n * 1e3:.2f} ms; "
        f"p90 {pct(lat, 0.9) * 1e3:.1f} ms)",
        file=sys.stderr,
    )
    for i in range(clients):
        c.close_session(f"load{i}")
    return (
        f"calls_per_s={n / wall:.0f} p50_ms={pct(lat, 0.5) * 1e3:.1f} p99_ms={pct(lat, 0.99) * 1e3:.1f} "
        f"daemon_cpu_ms_per_call={cpu / n * 1e3:.2f} errors={errors[0]} clients={clients}"
    )


def idle(sock: str, pid: int, sessions: int) -> str:
    c = Client(sock)
    time.sleep(0.5)
    fds0, rss0 = fds(pid), rss_mib(pid)
    opened = 0
    for i in range(sessions):
        try:
            c.open_session(f"idle{i}")
            opened += 1
        except Exception as exc:
            print(f"stopped at {opened} sessions: {exc}", file=sys.stderr)
            break
    time.sleep(2)  # warm pools refilled, if any
    fds1, th1, rss1, hl1 = fds(pid), threads(pid), rss_mib(pid), helpers(pid)
    conns = []
    for _ in range(sessions):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect(sock)
        except OSError as exc:
            print(f"stopped at {len(conns)} connections: {exc}", file=sys.stderr)
            s.close()
            break
        conns.append(s)
    time.sleep(1)
    fds2, th2 = fds(pid), threads(pid)
    for s in conns:
        s.close()
    print(f"(rss before {rss0:.0f} MiB; {fds0} fds before)", file=sys.stderr)
    for i in range(opened):
        c.close_session(f"idle{i}")
    return (
        f"sessions={opened} idle_fds_per_session={(fds1 - fds0) / max(opened, 1):.1f} daemon_threads={th1} "
        f"daemon_rss_mib={rss1:.0f} helpers={hl1} idle_connections={len(conns)} conn_threads={th2} "
        f"fds_per_connection={(fds2 - fds1) / max(len(conns), 1):.1f}"
    )


def pause_range(text: str) -> tuple[float, float]:
    """``S`` or ``LO-HI`` (seconds) for --pause."""
    try:
        lo, _, hi = text.partition("-")
        low, high = float(lo), float(hi or lo)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--pause {text!r}: expected S or LO-HI, in seconds") from None
    if not 0 <= low <= high:
        raise argparse.ArgumentTypeError(f"--pause {text!r}: expected 0 <= LO <= HI")
    return low, high


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument(
        "--warmup",
        type=int,
        default=0,
        help="calls each client makes first, not measured (1100 with one client: the state dir keeps 1000 "
        "outcomes, and past them a call creates and removes no file: its steady state)",
    )
    ap.add_argument(
        "--pause",
        type=pause_range,
        default=(0.0, 0.0),
        help="seconds each client waits between its calls, S or LO-HI (uniform; an agent's cadence, e.g. 0.2-1). "
        "The pause is not in the latency; calls_per_s then counts it",
    )
    ap.add_argument("--sessions", type=int, default=0, help="measure K idle sessions and connections instead")
    ap.add_argument("--root", default="agentcg-bench-load")
    ap.add_argument("--daemon-arg", action="append", default=[], help="passed on to agentcg daemon")
    ap.add_argument("--agentcg", help="the agentcg command line whose daemon to measure (default: this one's)")
    ap.add_argument(
        "--state-base",
        help="where the daemon's state dir goes (default: the temp dir). The daemon's own default, /run/agentcg, is "
        "on tmpfs on a systemd host; /tmp here is ext4, where creating and removing a few files per call costs "
        "more CPU than on tmpfs (/dev/shm): docs/performance.md",
    )
    args = ap.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this process holds the idle connections
    proc, sock, tmp = start_daemon(args.root, args.daemon_arg, args.agentcg, args.state_base)
    try:
        line = (
            idle(sock, proc.pid, args.sessions)
            if args.sessions
            else load(sock, proc.pid, args.clients, args.calls, args.warmup, args.pause)
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)
    print(line)


if __name__ == "__main__":
    main()
