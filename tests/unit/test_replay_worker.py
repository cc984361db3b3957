"""The load worker: its schedule arithmetic, its mapping, and one real run (no cgroups needed)."""

from __future__ import annotations

import json
import mmap
import signal
import subprocess
import sys
import time

import pytest

from agentcgroup.replay import worker
from agentcgroup.replay.runner import WORKER

MB = 1 << 20


def test_value_at_interpolates_memory_and_holds_cpu() -> None:
    pts = [[0.0, 0, 0.5], [1.0, 100, 1.0], [3.0, 300, 0.0]]
    ts = [p[0] for p in pts]
    assert worker.value_at(ts, pts, -1.0) == (0.0, 0.5)
    assert worker.value_at(ts, pts, 0.5) == (50.0, 0.5)
    assert worker.value_at(ts, pts, 2.0) == (200.0, 1.0)
    assert worker.value_at(ts, pts, 9.0) == (300.0, 0.0)
    assert worker.value_at([], [], 1.0) == (0.0, 0.0)


def test_load_grows_and_shrinks_in_whole_pages() -> None:
    load = worker.Load(3 * MB)
    load.resize(2 * MB + 5)
    assert load.size == 2 * MB
    load.resize(10 * MB)  # capped at the capacity
    assert load.size == load.capacity == 3 * MB
    load.resize(mmap.PAGESIZE + 1)
    assert load.size == mmap.PAGESIZE
    load.resize(-5)
    assert load.size == 0


def test_own_bytes_is_the_anonymous_memory() -> None:
    assert 1 * MB < worker.own_bytes() < 2048 * MB


def _rss_anon(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def test_a_worker_holds_its_target_then_exits() -> None:
    sched = {"start": time.monotonic() + 0.1, "end": 0.5, "points": [[0.0, 64 * MB, 0.2]], "tick": 0.01}
    proc = subprocess.Popen([sys.executable, "-I", "-S", WORKER, "-"], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(sched).encode())
    proc.stdin.close()
    seen = 0
    deadline = time.monotonic() + 5
    while proc.poll() is None and time.monotonic() < deadline:
        seen = max(seen, _rss_anon(proc.pid))
        time.sleep(0.01)
    assert proc.wait(5) == 0
    assert 56 * MB <= seen <= 70 * MB  # its own few MB are part of the target


def test_usage_error() -> None:
    r = subprocess.run([sys.executable, "-I", "-S", WORKER], capture_output=True)
    assert r.returncode == 2 and b"usage" in r.stderr


@pytest.mark.parametrize("elastic", [False, True])
def test_an_elastic_worker_falls_behind_when_stopped(elastic: bool) -> None:
    sched = {"start": time.monotonic(), "end": 0.6, "points": [[0.0, 0, 0.5]], "tick": 0.01, "elastic": elastic}
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-I", "-S", WORKER, "-"], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(sched).encode())
    proc.stdin.close()
    time.sleep(0.1)
    proc.send_signal(signal.SIGSTOP)  # as a freeze would
    time.sleep(0.8)
    proc.send_signal(signal.SIGCONT)
    assert proc.wait(5) == 0
    took = time.monotonic() - t0
    if elastic:
        assert took >= 1.2  # stopped at 0.1 s for 0.8 s, then the ~0.5 s of schedule it had left: ~1.4 s
    else:
        assert took < 1.2  # the wall clock went on: its end passed while stopped, it ends when resumed (~0.9 s)
