#!/usr/bin/env python3
"""What ``agentcg run -- true`` costs on a systemd host, beside ``python3 -c pass`` (the bar: <= 2.5x), run by
run in the same process so both see the same machine state.

Where it runs decides the path (``agentcg doctor`` says which): inside a unit with ``Delegate=yes`` the runner
only moves into the unit's ``supervisor`` leaf; anywhere else it first asks systemd over D-Bus for a transient
scope and waits until it has been moved there (two cgroup migrations in all). Run it in each place to compare:

    python benchmarks/systemd_scope.py                                  # as it is (a job unit with Delegate=yes)
    systemd-run --wait --pipe -- python benchmarks/systemd_scope.py     # a service without delegation: scopes
    runuser -u USER -- env XDG_RUNTIME_DIR=/run/user/UID python benchmarks/systemd_scope.py   # the user's manager

The last line is machine-readable: ``path=... base_p50_ms=... run_p50_ms=... ratio=...``.

Usage: python benchmarks/systemd_scope.py [--runs 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time


def timed(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    py = sys.executable
    doctor = json.loads(subprocess.run([py, "-m", "agentcgroup", "doctor", "--json"], capture_output=True).stdout)
    placement = (
        "import time\nfrom agentcgroup.detect import detect\nfrom agentcgroup.systemd import delegated_base\n"
        "layout = detect()\nt = time.perf_counter()\ndelegated_base(layout)\nprint(time.perf_counter() - t)"
    )
    place_s: list[float] = []
    arms = {
        "python3 -c pass": [py, "-c", "pass"],
        "agentcg run -- true": [py, "-m", "agentcgroup", "run", "--", "true"],
        "agentcg run --backend none -- true": [py, "-m", "agentcgroup", "run", "--backend", "none", "--", "true"],
    }
    times: dict[str, list[float]] = {k: [] for k in arms}
    for argv in arms.values():  # warm the page cache
        timed(argv)
    for _ in range(args.runs):
        for name, argv in arms.items():
            times[name].append(timed(argv))
        # the systemd step alone, in a fresh process: D-Bus, the scope, the moves (or the unit's leaf)
        out = subprocess.run([py, "-c", placement], capture_output=True, text=True, check=True)
        place_s.append(float(out.stdout))
    base = statistics.median(times["python3 -c pass"])
    print(f"systemd path: {doctor['systemd']['path']} ({doctor['systemd']['why']})")
    for name, xs in times.items():
        med = statistics.median(xs)
        print(f"{name:40s} median {med * 1e3:8.1f} ms  x{med / base:5.2f} of python3 -c pass  (n={len(xs)})")
    place = statistics.median(place_s)
    print(f"{'the systemd placement alone':40s} median {place * 1e3:8.1f} ms  x{place / base:5.2f} of python3 -c pass")
    run_med = statistics.median(times["agentcg run -- true"])
    none_med = statistics.median(times["agentcg run --backend none -- true"])
    print(
        f"path={doctor['systemd']['path'].split()[0]} base_p50_ms={base * 1e3:.1f} run_p50_ms={run_med * 1e3:.1f} "
        f"ratio={run_med / base:.2f} placement_ms={place * 1e3:.1f} placement_ratio={place / base:.3f} "
        f"cgroups_ms={(run_med - none_med) * 1e3:.1f}"
    )


if __name__ == "__main__":
    main()
