"""The replay load worker: memory and CPU along a schedule, in whatever cgroup it was started in.

Stdlib only, run as a script (``python3 -I -S worker.py SCHEDULE.json``, or ``-`` for stdin) so that its own
footprint stays small. The schedule is one JSON object::

    {"start": 12345.6,            # time.monotonic() of offset 0 (CLOCK_MONOTONIC: the same in every process)
     "end": 4.2,                  # exit at this offset (s)
     "points": [[0.0, 157286400, 0.3], [0.1, 209715200, 0.9], ...],   # [offset s, bytes, cores]
     "tick": 0.01,                # how often the target is re-read (s)
     "overhead": null,            # bytes of its own to subtract; null: measured at start (RssAnon)
     "others": [[0.0, 0], ...],   # optional step series: how many other workers' overhead to make room for
     "elastic": false}            # true: the schedule advances only as fast as the worker gets to run

Memory follows the points linearly: an anonymous mapping grows to ``bytes - overhead`` (every new page
written, so the kernel charges it; in 32 MB steps, so that a target that falls meanwhile is noticed) and
shrinks with ``MADV_DONTNEED`` (the pages go back at once). CPU is a
step function (each point's cores hold until the next point), burnt in each tick for ``cores * tick``
seconds (one process burns at most one core). Before ``start`` it waits; at ``end`` it exits 0.

Elastic (``"elastic": true``, for benchmarks): the schedule's clock advances one tick per tick of work done,
not with the wall clock. A worker that is throttled (its memory stalls), frozen or starved of CPU (its CPU is
burnt in CPU time, not wall time) falls behind its schedule and takes longer, as a real command would.

``others`` lets the agent's worker hold back what the tool-call workers that carry no load of their own cost
(each is a process like this one): the session's total then follows the trace, not the trace plus a few MB
per concurrent call.
"""

from __future__ import annotations

import bisect
import json
import mmap
import sys
import time
from typing import Any

PAGE = mmap.PAGESIZE
MADV_POPULATE_WRITE = 23  # Linux 5.14+: fault pages in without a trap per page
#: growth goes in steps this big (~10 ms at 3 GB/s), the target read again between them
GROW_STEP = 32 << 20
_POPULATE = [True]


def own_bytes() -> int:
    """This process's anonymous memory (what its memory cgroup is charged for it), in bytes."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class Load:
    """An anonymous mapping whose first ``size`` bytes are resident."""

    def __init__(self, capacity: int) -> None:
        self.capacity = max(PAGE, -(-capacity // PAGE) * PAGE)
        self.map = mmap.mmap(-1, self.capacity, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self.size = 0

    def resize(self, target: int, max_grow: int | None = None) -> bool:
        """Move towards ``target`` bytes (growing by at most ``max_grow``); True if it is not there yet."""
        target = min(self.capacity, max(0, target) // PAGE * PAGE)
        if target > self.size:
            end = target if max_grow is None else min(target, self.size + max(PAGE, max_grow // PAGE * PAGE))
            self._populate(self.size, end)
            self.size = end
            return end < target
        if target < self.size:
            self.map.madvise(mmap.MADV_DONTNEED, target, self.size - target)
            self.size = target
        return False

    def _populate(self, start: int, end: int) -> None:
        if _POPULATE[0]:
            try:
                self.map.madvise(MADV_POPULATE_WRITE, start, end - start)
                return
            except OSError:
                _POPULATE[0] = False  # older kernel: write every page
        m = self.map
        for off in range(start, end, PAGE):
            m[off] = 1


def value_at(times: list[float], points: list[list[float]], t: float) -> tuple[float, float]:
    """(bytes, cores) at offset ``t``: bytes interpolated linearly, cores held from the last point."""
    if not points:
        return 0.0, 0.0
    i = bisect.bisect_right(times, t)
    if i == 0:
        return float(points[0][1]), float(points[0][2])
    if i == len(points):
        return float(points[-1][1]), float(points[-1][2])
    (t0, b0, c0), (t1, b1, _) = points[i - 1][:3], points[i][:3]
    frac = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
    return b0 + (b1 - b0) * frac, float(c0)


def run(schedule: dict[str, Any]) -> None:
    points = sorted((list(p) for p in schedule.get("points", [])), key=lambda p: p[0])
    times = [float(p[0]) for p in points]
    others = sorted((list(o) for o in schedule.get("others") or []), key=lambda o: o[0])
    others_t = [float(o[0]) for o in others]
    start = float(schedule["start"])
    end = float(schedule["end"])
    tick = max(0.001, float(schedule.get("tick") or 0.01))
    elastic = bool(schedule.get("elastic"))
    load = Load(int(max((p[1] for p in points), default=0)))
    overhead = schedule.get("overhead")
    overhead = own_bytes() if overhead is None else int(overhead)
    clock = time.monotonic
    while (wait := start - clock()) > 0:  # read once: on a busy host the clock moves between two reads
        time.sleep(min(wait, tick))
    done = 0.0  # elastic: schedule time worked through
    while True:
        t_tick = clock()
        now = done if elastic else t_tick - start
        if now >= end:
            return
        want, cores = value_at(times, points, now)
        i = bisect.bisect_right(others_t, now)
        room = overhead * (1.0 + (float(others[i - 1][1]) if i > 0 else 0.0))
        if load.resize(int(want - room), GROW_STEP):
            continue  # still growing: look at the target again before the next step (it may have fallen)
        burn = min(1.0, max(0.0, cores)) * tick
        if elastic:  # CPU time: starved of CPU, the burn takes longer
            until = time.thread_time() + burn
            while time.thread_time() < until:
                pass
            done += tick
        else:
            until = t_tick + burn
            while clock() < until:
                pass
        left = t_tick + tick - clock() if elastic else min(t_tick + tick, start + end) - clock()
        if left > 0:
            time.sleep(left)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: worker.py SCHEDULE.json|-\n")
        return 2
    if argv[1] == "-":
        schedule = json.load(sys.stdin)
    else:
        with open(argv[1], encoding="utf-8") as f:
            schedule = json.load(f)
    run(schedule)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
