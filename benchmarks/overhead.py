#!/usr/bin/env python3
"""Added latency of the in-process tool-call path over a bare ``subprocess.run`` of the same command.

For each command (``/bin/true``, a 50 ms sleep) it alternates, run by run, a bare ``subprocess.run`` and a
tool call through an open :class:`agentcgroup.Session` (create the leaf, place the process before exec, wait,
collect the figures, remove the leaf), so both see the same machine state.

Then the process-per-call path an agent pays through the CLI (the shim, the Claude Code prefix, a script):
``agentcg run -- /bin/true`` (embedded) and the same with ``AGENTCG_SOCKET`` set (a daemon started for the
run), each alternated run by run with ``python3 -c pass`` (this interpreter), so both see the same machine
state; the ratios are of the medians.

Prints medians, p99 and ratios; the last line is machine-readable:

    added_p50_ms=0.41 added_p99_ms=2.3 ratio_true=1.3 ... cli_ratio=2.1 cli_daemon_ratio=1.6 cli_cpu_ratio=1.9 ...

(``cli_cpu_ratio``, ``cli_daemon_cpu_ratio``: the same pairs in CPU time, user + system of the process and the
children it waited for, which a loaded machine disturbs less than wall time; the daemon's share is not in it.)

The package is compiled to bytecode first (an installed package is; PYTHONDONTWRITEBYTECODE would make each
process compile what it imports).

Usage: python benchmarks/overhead.py [--runs 300] [--cli-runs 30] [--cli-only] [--agentcg CMD] [--root R]
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shlex
import shutil
import signal
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


def agentcg_argv(given: str | None) -> list[str]:
    """``--agentcg`` if given, else the installed ``agentcg`` script beside this interpreter (what an agent runs),
    else ``-m agentcgroup``."""
    if given:
        return shlex.split(given)
    script = os.path.join(os.path.dirname(sys.executable), "agentcg")
    return [script] if os.access(script, os.X_OK) else [sys.executable, "-m", "agentcgroup"]


def bytecode_env() -> dict[str, str]:
    """The package compiled to bytecode first, as an installed package is (pip compiles at install): with
    PYTHONDONTWRITEBYTECODE set every process would compile every module it imports, which no user pays."""
    import compileall

    import agentcgroup

    compileall.compile_dir(os.path.dirname(agentcgroup.__file__), quiet=1)
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def timed(argv: list[str], env: dict[str, str] | None = None, cpu: list[float] | None = None) -> float:
    """Wall ms of one run; its CPU ms (user + system, with the children it waited for) appended to ``cpu``."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdin=subprocess.DEVNULL)
    wall = (time.perf_counter() - t0) * 1000
    if cpu is not None:
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1000)
    return wall


def measure_cli(
    runs: int,
    root: str,
    socket_path: str | None,
    agentcg: list[str],
    warmup: int = 3,
    cpu: tuple[list[float], list[float]] | None = None,
) -> tuple[list[float], list[float]]:
    """Paired: ``python3 -c pass`` then ``agentcg run -- /bin/true`` (through the daemon if a socket is given)."""
    base = bytecode_env()
    env = dict(base, AGENTCG_ROOT=root)
    env.pop("AGENTCG_SOCKET", None)
    if socket_path:
        env["AGENTCG_SOCKET"] = socket_path
    ours_argv = [*agentcg, "run", "--", "/bin/true"]
    python, ours = [], []
    for i in range(runs + warmup):
        keep = cpu if i >= warmup else None
        p = timed([sys.executable, "-c", "pass"], base, keep[0] if keep else None)
        o = timed(ours_argv, env, keep[1] if keep else None)
        if i >= warmup:
            python.append(p)
            ours.append(o)
    return python, ours


def cli_figures(runs: int, root: str, agentcg: list[str], given: str | None = None) -> dict[str, float]:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from daemon_load import start_daemon  # the daemon of the load benchmark, on a socket of its own

    cpu: tuple[list[float], list[float]] = ([], [])  # python3 -c pass, agentcg run (embedded)
    cpu_d: tuple[list[float], list[float]] = ([], [])  # the same pair, through the daemon
    py, emb = measure_cli(runs, root, None, agentcg, cpu=cpu)
    proc, sock, tmp = start_daemon(root + "-daemon", [], given)  # the same build's daemon
    try:
        py_d, dmn = measure_cli(runs, root, sock, agentcg, cpu=cpu_d)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)
    r = {
        "python_p50": median(py),
        "cli_p50": median(emb),
        "cli_ratio": median(emb) / median(py),
        "python_d_p50": median(py_d),
        "cli_daemon_p50": median(dmn),
        "cli_daemon_ratio": median(dmn) / median(py_d),
        # CPU time (the process and what it waited for; the daemon's share not included): less sensitive to a
        # loaded machine than wall time
        "cli_cpu_ratio": median(cpu[1]) / median(cpu[0]),
        "cli_daemon_cpu_ratio": median(cpu_d[1]) / median(cpu_d[0]),
    }
    print(
        f"cli      python3 -c pass p50 {r['python_p50']:.1f} ms | agentcg run -- /bin/true p50 {r['cli_p50']:.1f} ms"
        f" | ratio {r['cli_ratio']:.2f}\n"
        f"cli      python3 -c pass p50 {r['python_d_p50']:.1f} ms | the same with AGENTCG_SOCKET p50 "
        f"{r['cli_daemon_p50']:.1f} ms | ratio {r['cli_daemon_ratio']:.2f}\n"
        f"cli      CPU (user + system) p50: python3 -c pass {median(cpu[0]):.1f} ms | agentcg run "
        f"{median(cpu[1]):.1f} ms"
        f" (ratio {r['cli_cpu_ratio']:.2f}) | with AGENTCG_SOCKET {median(cpu_d[1]):.1f} ms (ratio "
        f"{r['cli_daemon_cpu_ratio']:.2f})"
    )
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=300, help="runs per command and path (>= 200)")
    ap.add_argument("--root", default="agentcg-bench")
    ap.add_argument("--backend", default=None)
    ap.add_argument("--warm", type=int, default=2, help="spare pre-placed leaves (the session default is 2)")
    ap.add_argument("--cli-runs", type=int, default=30, help="paired runs of each process-per-call path (0: none)")
    ap.add_argument("--cli-only", action="store_true", help="only the process-per-call figures")
    ap.add_argument("--agentcg", help="the agentcg command line to time (default: the installed script)")
    args = ap.parse_args()
    if args.cli_only:
        c = cli_figures(args.cli_runs, args.root, agentcg_argv(args.agentcg), args.agentcg)
        print(
            f"cli_ratio={c['cli_ratio']:.2f} cli_daemon_ratio={c['cli_daemon_ratio']:.2f} "
            f"cli_cpu_ratio={c['cli_cpu_ratio']:.2f} cli_daemon_cpu_ratio={c['cli_daemon_cpu_ratio']:.2f} "
            f"cli_runs={args.cli_runs}"
        )
        return
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
    cli = ""
    if args.cli_runs:
        c = cli_figures(args.cli_runs, args.root, agentcg_argv(args.agentcg), args.agentcg)
        cli = (
            f" cli_ratio={c['cli_ratio']:.2f} cli_daemon_ratio={c['cli_daemon_ratio']:.2f}"
            f" cli_cpu_ratio={c['cli_cpu_ratio']:.2f} cli_daemon_cpu_ratio={c['cli_daemon_cpu_ratio']:.2f}"
            f" cli_runs={args.cli_runs}"
        )
    t = results["true"]
    s50 = results["sleep50"]
    print(
        f"added_p50_ms={t['added_p50']:.3f} added_p99_ms={t['added_p99']:.3f} ratio_true={t['ratio']:.2f} "
        f"added_p50_ms_sleep50={s50['added_p50']:.3f} ratio_sleep50={s50['ratio']:.3f} "
        f"backend={m.kind} runs={args.runs}{cli}"
    )


if __name__ == "__main__":
    main()
