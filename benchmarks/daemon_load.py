#!/usr/bin/env python3
"""The daemon under load: many clients running ``/bin/true`` calls at once, or many idle sessions and connections.

Starts ``agentcg daemon`` on a socket and state dir of its own (root cgroup ``agentcg-bench-load``), then:

* ``--clients N --calls M``: N clients, each with a session of its own, run M calls of ``/bin/true`` in a row
  (``--pause LO-HI``: with a pause between calls, as an agent's calls come). The clients are coroutines of one
  event loop in this one process (``--driver async``, the default: each call a connection of its own, the
  request :meth:`Client.run` sends, its reply read as Client reads it), so that they leave the CPU to what is
  measured; ``--driver threads``: a thread and a Client each. Every outcome is checked (exit 0, not killed);
  a call that fails or ends otherwise is an error. The daemon's CPU is its utime+stime across the run
  (/proc/<pid>/stat), this process's its getrusage. On stderr, where the CPU went a call (the daemon, the load
  generator, the calls' cgroups, the host's busy and idle time), the latency histogram, each client's first
  call (they all come at once) against the later ones, and the daemon's busiest threads. Last line:
  ``calls_per_s=412 p50_ms=3.1 p99_ms=41 daemon_cpu_ms_per_call=0.9 client_cpu_ms_per_call=0.3 errors=0
  clients=50``
* ``--sessions K``: K sessions opened and left idle, then K idle connections held open; what they cost the
  daemon in fds, threads, memory and helper processes. Last line:
  ``sessions=1000 idle_fds_per_session=2.1 daemon_threads=6 daemon_rss_mib=61 helpers=0 idle_connections=1000
  conn_threads=6 fds_per_connection=1.0``

Everything is removed afterwards (SIGTERM: the daemon closes its sessions). Preliminary figures on a shared
machine are noisy: compare runs made side by side.

Usage: python benchmarks/daemon_load.py [--clients 50 --calls 20 [--warmup 1100] [--pause 0.2-1]
       [--driver async|threads] | --sessions 1000]
       [--root agentcg-bench-load]
       [--agentcg "python /other/build/agentcg"]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
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

from agentcgroup.daemon.client import Client, Unreachable, _raise, check_listener, outcome_from
from agentcgroup.daemon.wire import encode_request
from agentcgroup.outcome import Outcome

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user+system) of each thread of ``pid`` so far, by tid."""
    out = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a thread that just ended
            continue
        out[int(task)] = (int(fields[11]) + int(fields[12])) / TICK
    return out


class Probe:
    """Samples, every ``every`` seconds on a thread of its own, the daemon's children by state (``Z``: the call's
    command exited and the daemon has not reaped it yet) and its threads by what they wait on (wchan: ``futex``,
    a lock or the GIL; ``epoll``, nothing to do; ``0``, running or runnable)."""

    def __init__(self, pid: int, every: float = 0.02) -> None:
        self.pid, self.every = pid, every
        self.children: collections.Counter[str] = collections.Counter()
        self.threads: collections.Counter[str] = collections.Counter()
        self.samples = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _state(self, path: str) -> str | None:
        try:
            with open(path) as f:
                return f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return None

    def _run(self) -> None:
        while not self.stopping.wait(self.every):
            try:
                tasks = os.listdir(f"/proc/{self.pid}/task")
            except OSError:
                return
            kids: list[str] = []
            for t in tasks:
                try:
                    with open(f"/proc/{self.pid}/task/{t}/children") as f:
                        kids += f.read().split()
                    with open(f"/proc/{self.pid}/task/{t}/wchan") as f:
                        w = f.read()
                except OSError:
                    continue
                self.threads["futex" if "futex" in w else "epoll" if "epoll" in w else w or "0"] += 1
            for k in kids:
                st = self._state(f"/proc/{k}/stat")
                if st is not None:
                    self.children[st] += 1
            self.samples += 1

    def stop(self) -> str:
        self.stopping.set()
        self.thread.join()
        n = max(self.samples, 1)
        kids = " ".join(f"{k}:{v / n:.1f}" for k, v in self.children.most_common())
        ths = " ".join(f"{k}:{v / n:.1f}" for k, v in self.threads.most_common(5))
        return (
            f"(probe, {self.samples} samples, mean: the daemon's children by state {kids}; its threads by wait {ths})"
        )


def host_jiffies() -> tuple[int, int]:
    """(busy, idle) clock ticks of the whole host so far (/proc/stat; iowait counts as idle)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle_ticks = fields[3] + fields[4]
    return sum(fields[:8]) - idle_ticks, idle_ticks


def calls_cgroup_usec(root: str) -> int | None:
    """CPU microseconds the calls' cgroups (the daemon's root cgroup ``root``, its commands and spares) have used
    so far: cgroup2's cpu.stat, which it keeps without the cpu controller. None where there is no such file."""
    for base in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        try:
            with open(f"{base}/{root}/cpu.stat") as f:
                return int(f.readline().split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return None


def run_request(session: str, req_id: int, env: dict[str, str], cwd: str) -> bytes:
    """The request line :meth:`Client.run` sends for ``run(session, ["/bin/true"])`` (tests/unit checks that
    they are the same), for the light client."""
    body = {
        "session": session,
        "argv": ["/bin/true"],
        "limits": {},
        "timeout": None,
        "env": env,
        "cwd": cwd,
        "capture_output": False,
        "keep_background": False,
        "on_disconnect": "kill",
        "stdio": [False, False, False],
    }
    return encode_request({"op": "run", "id": req_id, **body})


async def light_call(loop: asyncio.AbstractEventLoop, path: str, msg: bytes) -> Outcome:
    """One call as :meth:`Client.run` makes it (a connection of its own, the listener checked, the reply's
    events skipped, an error reply raised as the client raises it), on ``loop`` instead of a thread."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        while True:
            try:
                await loop.sock_connect(sock, path)
                break
            except BlockingIOError:  # the backlog is full: wait for room, as Client does
                await asyncio.sleep(0.005)
        check_listener(sock, path)
        await loop.sock_sendall(sock, msg)
        buf = b""
        while True:
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                raise Unreachable(f"the daemon at {path} closed the connection without an answer")
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                reply = json.loads(line)
                if reply.get("ok") is False:
                    _raise(reply.get("error", {}))
                if "event" not in reply:
                    return outcome_from(reply["outcome"])
    finally:
        sock.close()


def right(out: Outcome) -> bool:
    return out.exit_code == 0 and out.killed_by is None


class Tally:
    """Latencies of the measured calls, per client, and the calls that failed or ended wrong."""

    def __init__(self, clients: int) -> None:
        self.per_client: list[list[float]] = [[] for _ in range(clients)]
        self.errors = 0
        self.lock = threading.Lock()

    def failed(self, exc: BaseException | None) -> None:
        with self.lock:
            if exc is not None and self.errors < 3:  # the first few shown
                print(f"error: {exc!r}", file=sys.stderr)
            self.errors += 1

    @property
    def lat(self) -> list[float]:
        return [x for xs in self.per_client for x in xs]


def drive_async(
    sock: str, sessions: list[str], calls: int, warmup: int, pause: tuple[float, float], measure: Any
) -> Tally:
    """All clients as coroutines of one thread (one event loop): ``warmup`` calls each, then ``measure()``
    (start of the measured spell), then ``calls`` calls each."""
    tally = Tally(len(sessions))
    env, cwd = dict(os.environ), os.getcwd()

    async def client(i: int, n: int, measured: bool) -> None:
        loop = asyncio.get_running_loop()
        rnd = random.Random(i)
        ids = itertools.count(1 + (calls if measured else 0))
        for k in range(n):
            if measured and k and pause[1]:
                await asyncio.sleep(rnd.uniform(*pause))
            t0 = time.perf_counter()
            try:
                out = await light_call(loop, sock, run_request(sessions[i], next(ids), env, cwd))
                ok, exc = right(out), None
            except Exception as e:
                ok, exc = False, e
            if measured:
                tally.per_client[i].append(time.perf_counter() - t0)
            if not ok:
                tally.failed(exc)

    async def both() -> None:
        await asyncio.gather(*(client(i, warmup, False) for i in range(len(sessions))))
        measure()
        await asyncio.gather(*(client(i, calls, True) for i in range(len(sessions))))

    asyncio.run(both())
    return tally


def drive_threads(
    sock: str, sessions: list[str], calls: int, warmup: int, pause: tuple[float, float], measure: Any
) -> Tally:
    """A thread and a :class:`Client` per client (the earlier passes' load generator)."""
    clients = len(sessions)
    tally = Tally(clients)
    warmed, start = threading.Barrier(clients + 1), threading.Barrier(clients + 1)

    def one(i: int) -> None:
        cl = Client(sock)
        for _ in range(warmup):  # not measured: the daemon's pools and state dir at their steady state
            try:
                if not right(cl.run(sessions[i], ["/bin/true"])):
                    tally.failed(None)
            except Exception as exc:
                tally.failed(exc)
        warmed.wait()
        start.wait()
        rnd = random.Random(i)
        mine = tally.per_client[i]
        for k in range(calls):
            if k and pause[1]:  # an agent's cadence: a pause between calls (not counted in the latency)
                time.sleep(rnd.uniform(*pause))
            t0 = time.perf_counter()
            try:
                out = cl.run(sessions[i], ["/bin/true"])
                ok, exc = right(out), None
            except Exception as e:
                ok, exc = False, e
            mine.append(time.perf_counter() - t0)
            if not ok:
                tally.failed(exc)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in ts:
        t.start()
    warmed.wait()
    measure()
    start.wait()
    for t in ts:
        t.join()
    return tally


#: latency histogram's upper bounds, ms
BUCKETS = (5, 10, 25, 50, 75, 100, 150, 250, 500)


def histogram(lat: list[float]) -> str:
    counts = [0] * (len(BUCKETS) + 1)
    for x in lat:
        counts[next((i for i, b in enumerate(BUCKETS) if x * 1e3 <= b), len(BUCKETS))] += 1
    labels = [f"<={b}" for b in BUCKETS] + [f">{BUCKETS[-1]}"]
    return " ".join(f"{lab}:{c}" for lab, c in zip(labels, counts, strict=True) if c)


def load(
    sock: str,
    pid: int,
    clients: int,
    calls: int,
    warmup: int = 0,
    pause: tuple[float, float] = (0.0, 0.0),
    driver: str = "async",
    root: str = "agentcg-bench-load",
    probe: bool = False,
) -> str:
    c = Client(sock)
    sessions = [f"load{i}" for i in range(clients)]
    for name in sessions:
        c.open_session(name)
    before: dict[str, Any] = {}
    sampler = Probe(pid) if probe else None

    def measure() -> None:
        if sampler is not None:
            sampler.start()
        before.update(
            daemon=cpu_split(pid),
            threads=thread_cpu(pid),
            me=resource.getrusage(resource.RUSAGE_SELF),
            host=host_jiffies(),
            cg=calls_cgroup_usec(root),
            t=time.perf_counter(),
        )

    tally = (drive_async if driver == "async" else drive_threads)(sock, sessions, calls, warmup, pause, measure)
    wall = time.perf_counter() - before["t"]
    if sampler is not None:
        print(sampler.stop(), file=sys.stderr)
    u1, s1 = cpu_split(pid)
    me = resource.getrusage(resource.RUSAGE_SELF)
    busy1, idle1 = host_jiffies()
    cg1 = calls_cgroup_usec(root)
    th0, th1 = before["threads"], thread_cpu(pid)
    busiest = sorted(((th1[t] - th0.get(t, 0.0), t) for t in th1), reverse=True)[:4]
    (u0, s0), me0, (busy0, idle0), cg0 = before["daemon"], before["me"], before["host"], before["cg"]
    cpu = (u1 - u0) + (s1 - s0)
    mine = (me.ru_utime - me0.ru_utime) + (me.ru_stime - me0.ru_stime)
    n = clients * calls
    lat = tally.lat
    per_ms = 1e3 / n
    cmds = f"{(cg1 - cg0) / 1e3 / n:.2f} ms" if cg0 is not None and cg1 is not None else "n/a"
    means = sorted(sum(xs) / len(xs) for xs in tally.per_client if xs)
    print(
        f"(CPU a call: daemon {cpu * per_ms:.2f} ms (user {(u1 - u0) * per_ms:.2f}, system "
        f"{(s1 - s0) * per_ms:.2f}), load generator {mine * per_ms:.2f} ms, the calls' cgroups {cmds}; host busy "
        f"{(busy1 - busy0) / TICK * per_ms:.2f} ms, idle {(idle1 - idle0) / TICK * per_ms:.2f} ms a call "
        f"({os.cpu_count()} CPUs); p90 {pct(lat, 0.9) * 1e3:.1f} ms, max {max(lat) * 1e3:.1f} ms; "
        f"a client's mean latency {means[0] * 1e3:.1f}-{means[-1] * 1e3:.1f} ms; driver {driver})",
        file=sys.stderr,
    )
    later = [x for xs in tally.per_client for x in xs[1:]]
    if later:  # the clients' first calls come all at once (a burst of N): the rest is the steady state
        first = [xs[0] for xs in tally.per_client if xs]
        print(
            f"(each client's first call: p50 {pct(first, 0.5) * 1e3:.1f} ms, max {max(first) * 1e3:.1f} ms; the "
            f"later calls: p50 {pct(later, 0.5) * 1e3:.1f} ms, p99 {pct(later, 0.99) * 1e3:.1f} ms)",
            file=sys.stderr,
        )
    print(f"(latency, ms: {histogram(lat)})", file=sys.stderr)
    shown = ", ".join(f"{'main' if t == pid else t} {c / wall:.2f}" for c, t in busiest)
    print(f"(the daemon's busiest threads, CPUs: {shown}; over {wall:.2f} s)", file=sys.stderr)
    for name in sessions:
        c.close_session(name)
    return (
        f"calls_per_s={n / wall:.0f} p50_ms={pct(lat, 0.5) * 1e3:.1f} p99_ms={pct(lat, 0.99) * 1e3:.1f} "
        f"daemon_cpu_ms_per_call={cpu * per_ms:.2f} client_cpu_ms_per_call={mine * per_ms:.2f} "
        f"errors={tally.errors} clients={clients}"
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
    ap.add_argument(
        "--driver",
        choices=("async", "threads"),
        default="async",
        help="the clients as coroutines of one event loop (default: light, so that they leave the CPU to what is "
        "measured) or as threads, a Client each (the earlier passes' load generator)",
    )
    ap.add_argument(
        "--probe",
        action="store_true",
        help="sample the daemon's children (exited, not yet reaped: Z) and threads (waiting on a futex: the GIL or "
        "a lock) every 20 ms during the calls (costs this process some CPU)",
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
            else load(
                sock, proc.pid, args.clients, args.calls, args.warmup, args.pause, args.driver, args.root, args.probe
            )
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)
    print(line)


if __name__ == "__main__":
    main()
