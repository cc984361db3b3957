#!/usr/bin/env python3
"""The daemon's CPU while it watches many sessions, each with one running tool call.

Starts ``agentcg daemon`` on a socket of its own, opens N sessions (default 100), starts one long tool call
(``sleep``; with ``--busy`` a shell that wakes and forks every second, so that every session's memory and CPU
figures change between scrapes) in each and detaches from it, waits for the daemon to settle (its warm pools
refilled), then reads the daemon's CPU time (utime + stime of the whole process, /proc/<pid>/stat: CPU time,
so the load of other processes does not count) across a window. Then a second window of the same length while
/metrics (``--metrics``, issue 15) is scraped every second with Prometheus's own headers (it prefers OpenMetrics
and takes gzip; ``--plain``: none, as curl): the difference is what the metrics cost. Everything is removed
afterwards.

The daemon does not poll: it sleeps in epoll on pidfds, eventfds and PSI triggers until the kernel has
something to say. Last line, machine-readable, the cost side by side with the no-metrics baseline:
``daemon_cpu_pct=0.100 sessions=100 running_calls=100 window_s=30 scraped_cpu_pct=0.667 metrics_cost_pct=0.567
scrape_ms_p50=11.7 scrape_cpu_ms=5.7 busy=0 headers=prometheus``.

Usage: python benchmarks/daemon_cost.py [--sessions 100] [--window 20] [--busy] [--plain]
       [--root agentcg-bench-daemon]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from agentcgroup.daemon.client import Client

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def status_of(pid: int, key: str) -> str:
    with open(f"/proc/{pid}/status") as f:
        return next(line.split(":", 1)[1].strip() for line in f if line.startswith(key + ":"))


def start_detached(sock: str, session: str, seconds: int, busy: bool = False) -> str:
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    req = {
        "op": "run",
        "id": 1,
        "session": session,
        # busy: a shell that wakes every second and forks, so its session's memory and CPU change between scrapes
        "argv": ["sh", "-c", f"for i in $(seq {seconds}); do sleep 1; done"] if busy else ["sleep", str(seconds)],
        "on_disconnect": "detach",
        "stdio": [False, False, False],
    }
    s.sendall(json.dumps(req).encode() + b"\n")
    reply = json.loads(s.recv(65536).splitlines()[0])
    s.close()
    if reply.get("event") != "started":
        raise SystemExit(f"could not start a call in {session}: {reply}")
    return reply["call_id"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: what Prometheus (2.x) sends with every scrape: it prefers OpenMetrics and takes gzip
PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
}


def scrape_every_second(url: str, stop: threading.Event, took: list[float], headers: dict[str, str]) -> None:
    """Prometheus's part: GET /metrics once a second with its headers, read it all."""
    while not stop.is_set():
        t0 = time.monotonic()
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:
            body = resp.read()
            if resp.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
        if b"agentcg_session_memory_bytes" not in body:
            raise SystemExit(f"/metrics did not answer with the sessions: {body[:200]!r}")
        took.append(time.monotonic() - t0)
        stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--window", type=float, default=20.0)
    ap.add_argument("--root", default="agentcg-bench-daemon")
    ap.add_argument("--busy", action="store_true", help="calls that wake and fork every second (figures change)")
    ap.add_argument("--plain", action="store_true", help="scrape without Prometheus's Accept headers (as curl)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="agentcg-daemon-cost-")
    sock = os.path.join(tmp, "s.sock")
    port = free_port()
    log = open(os.path.join(tmp, "daemon.log"), "w")  # noqa: SIM115
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentcgroup",
            "daemon",
            "--socket",
            sock,
            "--root",
            args.root,
            "--state-dir",
            os.path.join(tmp, "state"),
            "--metrics",
            f"127.0.0.1:{port}",
        ],
        stderr=log,
    )
    try:
        while not os.path.exists(sock):
            if daemon.poll() is not None:
                with open(log.name) as f:
                    raise SystemExit("the daemon did not start: " + f.read())
            time.sleep(0.05)
        c = Client(sock)
        t0 = time.monotonic()
        for i in range(args.sessions):
            c.open_session(f"s{i:03d}")
            start_detached(sock, f"s{i:03d}", int(args.window * 3 + 120), args.busy)
        print(f"{args.sessions} sessions, one running call each, in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        # settle: the warm pools refill in the background; wait until a 2 s slice is quiet
        for _ in range(30):
            a = cpu_seconds(daemon.pid)
            time.sleep(2)
            if (cpu_seconds(daemon.pid) - a) / 2 < 0.01:
                break
        running = sum(len(s["calls"]) for s in c.status()["sessions"])
        a, t = cpu_seconds(daemon.pid), time.monotonic()
        time.sleep(args.window)
        used, wall = cpu_seconds(daemon.pid) - a, time.monotonic() - t
        pct = 100 * used / wall
        print(
            f"watching {running} running calls in {args.sessions} sessions: {used * 1000:.0f} ms of CPU in "
            f"{wall:.1f} s = {pct:.3f} % of one core (threads {status_of(daemon.pid, 'Threads')}, "
            f"RSS {status_of(daemon.pid, 'VmRSS')})",
            file=sys.stderr,
        )
        stop, took = threading.Event(), []
        scraper = threading.Thread(
            target=scrape_every_second,
            args=(f"http://127.0.0.1:{port}/metrics", stop, took, {} if args.plain else PROMETHEUS_HEADERS),
            daemon=True,
        )
        a, t = cpu_seconds(daemon.pid), time.monotonic()
        scraper.start()
        time.sleep(args.window)
        stop.set()
        scraper.join(15)
        used2, wall2 = cpu_seconds(daemon.pid) - a, time.monotonic() - t
        scraped = 100 * used2 / wall2
        per_scrape = (used2 - used * wall2 / wall) / max(1, len(took)) * 1000  # ms of daemon CPU, quiet part off
        took.sort()
        p50 = took[len(took) // 2] * 1000 if took else float("nan")
        print(
            f"the same, scraped every second ({len(took)} scrapes, median {p50:.1f} ms each): "
            f"{used2 * 1000:.0f} ms of CPU in {wall2:.1f} s = {scraped:.3f} % of one core; "
            f"the metrics cost {scraped - pct:.3f} % of one core ({per_scrape:.1f} ms of daemon CPU per scrape)",
            file=sys.stderr,
        )
        for i in range(args.sessions):
            c.close_session(f"s{i:03d}")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(60)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"daemon_cpu_pct={pct:.3f} sessions={args.sessions} running_calls={running} window_s={wall:.0f} "
        f"scraped_cpu_pct={scraped:.3f} metrics_cost_pct={scraped - pct:.3f} scrape_ms_p50={p50:.1f} "
        f"scrape_cpu_ms={per_scrape:.1f} busy={int(args.busy)} headers={'plain' if args.plain else 'prometheus'}"
    )


if __name__ == "__main__":
    main()
