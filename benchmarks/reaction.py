#!/usr/bin/env python3
"""Reaction time: from a memory-threshold crossing to the controller's action, beside a 1 s polling loop.

Each trial runs one tool call of a low-priority session under a global budget. The call touches memory 64 KiB
at a time, reading the budget cgroup's usage after each step, and stamps CLOCK_MONOTONIC the moment it sees
usage cross the pressure threshold (``--pressure-on`` of ``--budget``). Then:

* agentcgroup: the kernel notifies the controller (v1: a usage threshold eventfd; v2: the call's checkpoint in
  memory.events), the pressure policy throttles the call; the actuator stamps the same clock when done.
* polling (how systemd-oomd and oomd watch: a loop reading usage every second): a thread reads the usage every
  1 s and, once over the threshold, throttles the call the same way and stamps the clock.

reaction = action stamp - crossing stamp. Medians and p99 over the trials, in one run. The last line is
machine-readable: ``reaction_p50_ms=0.6 reaction_p99_ms=4.1 polling_p50_ms=503 ...``

Usage: python benchmarks/reaction.py [--trials 100] [--polling-trials 100] [--budget 256M] [--root agentcg-bench]
"""

from __future__ import annotations

import argparse
import mmap
import os
import random
import struct
import sys
import tempfile
import time

from agentcgroup import Controller, ControllerConfig, Manager, get_manager
from agentcgroup.quantile import median, quantile
from agentcgroup.units import parse_size

ALLOCATOR = r"""
import mmap, os, struct, sys, time
usage_file, threshold, stamp_file, hold = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
sfd = os.open(stamp_file, os.O_RDWR)
stamp = mmap.mmap(sfd, 32)               # (start of the current step, crossing seen at, crossed?)
fd = os.open(usage_file, os.O_RDONLY)
def usage():
    return int(os.pread(fd, 64, 0))
buf = mmap.mmap(-1, threshold + (64 << 20))
page, off = 4096, 0
while True:                              # 1 MiB steps far from the threshold, 64 KiB steps near it
    u = usage()
    if u >= threshold:
        struct.pack_into("=dq", stamp, 8, time.monotonic(), 1)
        break
    step = (1 << 20) if threshold - u > (8 << 20) else (64 << 10)
    struct.pack_into("=d", stamp, 0, time.monotonic())
    for p in range(off, off + step, page):
        buf[p] = 1                       # a throttle may stall us here: the step's start stays recorded
    off += step
for p in range(off, off + (16 << 20), page):   # a burst goes on growing (until it is throttled)
    buf[p] = 1
time.sleep(hold)
"""


def usage_file(manager: Manager) -> str:
    root = manager.root_cgroup()
    if "memory" in root.backend_data["dirs"]:
        return root.backend_data["dirs"]["memory"].path + "/memory.usage_in_bytes"
    return root.backend_data["dirs"]["unified"].path + "/memory.current"


class Stamp:
    """The allocator's shared progress record: when the crossing happened (seen, or the stalled step)."""

    def __init__(self, path: str) -> None:
        self.path = path
        with open(path, "wb") as f:
            f.write(bytes(32))
        self.fd = os.open(path, os.O_RDWR)
        self.mm = mmap.mmap(self.fd, 32)

    def crossing(self) -> float:
        step_start, seen_at, crossed = struct.unpack_from("=ddq", self.mm, 0)
        return seen_at if crossed else step_start

    def crossed(self) -> bool:
        return bool(struct.unpack_from("=q", self.mm, 16)[0])

    def close(self) -> None:
        self.mm.close()
        os.close(self.fd)
        os.unlink(self.path)


def trial_controller(ctl: Controller, ufile: str, threshold: int, tmp: str, i: int) -> float:
    stamp = Stamp(os.path.join(tmp, f"c{i}"))
    n = len(ctl.actuator.log)
    h = ctl.submit("low", [sys.executable, "-c", ALLOCATOR, ufile, str(threshold), stamp.path, "30"])
    deadline = time.monotonic() + 60
    acts: list[float] = []
    while not acts and time.monotonic() < deadline:
        log = list(ctl.actuator.log)[n:]
        acts = [t for t, verb, label, _ in log if verb == "throttle" and label.endswith(h.call_id)]
        time.sleep(0.002)
    time.sleep(0.05)  # let a not-stalled allocator finish its step and record what it saw
    t_cross = stamp.crossing()
    h.kill("trial over")
    h.wait(60)
    stamp.close()
    if not acts:
        raise SystemExit(f"trial {i}: the controller never throttled the call")
    return (acts[0] - t_cross) * 1000


def trial_polling(ctl: Controller, manager: Manager, ufile: str, threshold: int, tmp: str, i: int) -> float:
    stamp = Stamp(os.path.join(tmp, f"p{i}"))
    h = ctl.submit("low", [sys.executable, "-c", ALLOCATOR, ufile, str(threshold), stamp.path, "30"])
    acted: list[float] = []
    fd = os.open(ufile, os.O_RDONLY)
    first = random.uniform(0, 1.0)  # a daemon's poll is not in step with the burst: a random phase
    try:
        while not acted:  # a 1 s polling loop, as systemd-oomd's and oomd's
            time.sleep(first)
            first = 1.0
            if int(os.pread(fd, 64, 0)) >= threshold and h.call is not None and h.call.cg is not None:
                manager.set_soft_limit(h.call.cg, manager.memory_current(h.call.cg))
                acted.append(time.monotonic())
    finally:
        os.close(fd)
    time.sleep(0.05)
    t_cross = stamp.crossing()
    h.kill("trial over")
    h.wait(30)
    stamp.close()
    return (acted[0] - t_cross) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--polling-trials", type=int, default=100)
    ap.add_argument("--budget", default="256M")
    ap.add_argument("--pressure-on", type=float, default=0.5)
    ap.add_argument("--root", default="agentcg-bench")
    args = ap.parse_args()
    budget = parse_size(args.budget)
    threshold = int(budget * args.pressure_on)
    m = get_manager(args.root)
    ufile = usage_file(m)
    tmp = tempfile.mkdtemp(prefix="agentcg-reaction-")
    cfg = ControllerConfig(
        budget=budget,
        pressure_on=args.pressure_on,
        pressure_off=args.pressure_on * 0.6,
        stall_grace=30,
        kill_after=30,
        warm=1,
    )
    ours: list[float] = []
    polled: list[float] = []
    try:
        with Controller(m, config=cfg) as ctl:
            ctl.open_session("low", priority="low")
            print(
                f"backend={m.kind} budget={args.budget} threshold={threshold >> 20} MiB trials={args.trials}",
                file=sys.stderr,
            )
            for i in range(args.trials):
                ours.append(trial_controller(ctl, ufile, threshold, tmp, i))
        # the polling arm: the same controller without its policies (nothing else reacts)
        with Controller(m, config=cfg, policies=[]) as ctl:
            ctl.open_session("low", priority="low")
            for i in range(args.polling_trials):
                polled.append(trial_polling(ctl, m, ufile, threshold, tmp, i))
    finally:
        m.close()
        os.rmdir(tmp)
    print(
        f"agentcgroup (kernel events): p50 {median(ours):.3f} ms  p99 {quantile(ours, 0.99):.3f} ms  "
        f"min {min(ours):.3f}  max {max(ours):.3f}  (n={len(ours)})"
    )
    print(
        f"1 s polling loop:            p50 {median(polled):.1f} ms  p99 {quantile(polled, 0.99):.1f} ms  "
        f"(n={len(polled)})"
    )
    print(
        f"reaction_p50_ms={median(ours):.3f} reaction_p99_ms={quantile(ours, 0.99):.3f} "
        f"polling_p50_ms={median(polled):.1f} polling_p99_ms={quantile(polled, 0.99):.1f} "
        f"ratio_p50={median(polled) / max(median(ours), 1e-6):.0f} "
        f"trials={len(ours)} backend={m.kind}"
    )


if __name__ == "__main__":
    main()
