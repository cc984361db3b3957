#!/usr/bin/env python3
"""A high-priority burst of process start-ups beside low-priority CPU hogs: what the CPU controls buy.

The high-priority session's calls in ``agentcg bench`` are short bursts of process start-up (a shell starting
4 interpreters at once). This measures one such burst, a call of a high-priority session, in three
settings, round-robin in one run so that the host's drift hits them alike:

* alone: nothing else runs;
* beside hogs: a low-priority session runs one CPU spinner per CPU (the shipped CPU weights, high 400 vs low
  25, i.e. cpu.shares 4096 vs 256 on v1);
* beside capped hogs: the same, with the low session capped at half a CPU (cpu.max / cfs_quota_us).

A perfect CPU priority would make the last two cost nothing over alone. Prints medians and the ratios against
alone; the last line is machine-readable: ``burst_alone_ms=22.4 hogs_ratio=1.12 capped_ratio=1.15 ...``.

Usage: python benchmarks/burst.py [--rounds 15] [--bursts 10] [--procs 4] [--root agentcg-bench-burst]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from agentcgroup import Controller, Limits
from agentcgroup.quantile import median

SETTINGS = ("alone", "hogs", "capped")


def burst_argv(procs: int) -> list[str]:
    start = f"{sys.executable} -I -S -c pass &"
    return ["bash", "-c", " ".join([start] * procs) + " wait"]


def one_setting(ctl: Controller, setting: str, bursts: int, procs: int) -> list[float]:
    """``bursts`` calls of the high session in ``setting``; their durations (s)."""
    hogs = []
    if setting != "alone":
        limits = Limits(cpu=0.5) if setting == "capped" else None
        ctl.open_session("lo", priority="low", limits=limits)
        for _ in range(os.cpu_count() or 1):
            hogs.append(ctl.submit("lo", [sys.executable, "-I", "-S", "-c", "while 1: pass"], timeout=600))
        time.sleep(0.3)  # the hogs are spinning
    try:
        out = []
        for _ in range(bursts):
            o = ctl.run("hi", burst_argv(procs))
            if not o.ok:
                raise SystemExit(f"a burst failed: {o.feedback or o.returncode}")
            out.append(o.duration_s)
            time.sleep(0.05)  # the agent's think time
        return out
    finally:
        for h in hogs:
            h.kill("the measurement is over")
        for h in hogs:
            h.wait(10)
        if setting != "alone":
            ctl.close_session("lo")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15, help="rounds; each runs every setting once (default 15)")
    ap.add_argument("--bursts", type=int, default=10, help="bursts per setting and round (default 10)")
    ap.add_argument("--procs", type=int, default=4, help="interpreters each burst starts at once (default 4)")
    ap.add_argument("--root", default="agentcg-bench-burst", help="root cgroup name (removed afterwards)")
    args = ap.parse_args()
    for name in ("rounds", "bursts", "procs"):
        if getattr(args, name) < 1:
            ap.error(f"invalid {name} {getattr(args, name)!r}: need at least 1")
    ctl = Controller(root=args.root)
    times: dict[str, list[float]] = {s: [] for s in SETTINGS}
    try:
        ctl.open_session("hi", priority="high")
        for r in range(args.rounds):
            order = SETTINGS[r % 3 :] + SETTINGS[: r % 3]
            for setting in order:
                times[setting] += one_setting(ctl, setting, args.bursts, args.procs)
            print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
    finally:
        ctl.close()
    alone = median(times["alone"])
    print(f"cpus={os.cpu_count()} bursts per setting={len(times['alone'])} procs per burst={args.procs}")
    for s in SETTINGS:
        med = median(times[s])
        print(f"{s:>7}: median {med * 1e3:6.1f} ms  ratio to alone {med / alone:.3f}")
    figures = {
        "burst_alone_ms": round(alone * 1e3, 2),
        "hogs_ratio": round(median(times["hogs"]) / alone, 3),
        "capped_ratio": round(median(times["capped"]) / alone, 3),
    }
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
