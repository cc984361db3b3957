#!/usr/bin/env python3
"""Added latency of the in-process tool-call path over a bare ``subprocess.run`` of the same command.

For each command (``/bin/true``, a 50 ms sleep) it alternates, run by run, a bare ``subprocess.run`` and a
tool call through an open :class:`agentcgroup.Session` (create the leaf, place the process before exec, wait,
collect the figures, remove the leaf), so both see the same machine state. Prints medians, p99 and ratios;
the last line is machine-readable:

    added_p50_ms=0.41 added_p99_ms=2.3 ratio_true=1.3 ...

Usage: python benchmarks/overhead.py [--runs 300] [--root agentcg-bench] [--backend auto]
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import time

from agentcgroup import Session
from agentcgroup.quantile import median, quantile


def measure(session: Session, argv: list[str], runs: int, warmup: int = 20) -> tuple[list[float], list[float]]:
    bare, ours = [], []
    for i in range(runs + warmup):
        t0 = time.perf_counter()
        subprocess.run(argv, check=True)
        t1 = time.perf_counter()
        out = session.run(argv)
        t2 = time.perf_counter()
        if out.returncode != 0:
            raise SystemExit(f"tool call failed: {out}")
        if i >= warmup:
            bare.append((t1 - t0) * 1000)
            ours.append((t2 - t1) * 1000)
    return bare, ours


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=300, help="runs per command and path (>= 200)")
    ap.add_argument("--root", default="agentcg-bench")
    ap.add_argument("--backend", default=None)
    ap.add_argument("--warm", type=int, default=2, help="spare pre-placed leaves (the session default is 2)")
    args = ap.parse_args()
    cases = {"true": ["/bin/true"], "sleep50": ["/bin/sleep", "0.05"]}
    results = {}
    gc.disable()
    with Session("bench", root=args.root, backend=args.backend, warm=args.warm) as s:
        m = s.manager
        print(f"backend={m.kind} fast_spawn={m.features.fast_spawn} runs={args.runs}", file=sys.stderr)
        for name, argv in cases.items():
            bare, ours = measure(s, argv, args.runs)
            added = [o - b for o, b in zip(ours, bare, strict=True)]
            r = {
                "bare_p50": median(bare),
                "ours_p50": median(ours),
                "bare_p99": quantile(bare, 0.99),
                "ours_p99": quantile(ours, 0.99),
                "added_p50": median(ours) - median(bare),
                "added_p99": quantile(ours, 0.99) - quantile(bare, 0.99),
                "added_pair_p50": median(added),
                "ratio": median(ours) / median(bare),
            }
            results[name] = r
            print(
                f"{name:8s} bare p50 {r['bare_p50']:.3f} ms p99 {r['bare_p99']:.3f} | tool call p50 "
                f"{r['ours_p50']:.3f} ms p99 {r['ours_p99']:.3f} | added p50 {r['added_p50']:.3f} ms "
                f"p99 {r['added_p99']:.3f} ms | ratio {r['ratio']:.2f}"
            )
    gc.enable()
    t = results["true"]
    s50 = results["sleep50"]
    print(
        f"added_p50_ms={t['added_p50']:.3f} added_p99_ms={t['added_p99']:.3f} ratio_true={t['ratio']:.2f} "
        f"added_p50_ms_sleep50={s50['added_p50']:.3f} ratio_sleep50={s50['ratio']:.3f} "
        f"backend={m.kind} runs={args.runs}"
    )


if __name__ == "__main__":
    main()
