"""Writes synthetic-agent.jsonl: a made-up agent session for the replay tests (run from the repository root:
``python3 tests/data/replay/make_synthetic.py``). Deterministic: the same file every time.

Shape: an agent runtime that starts at ~20 MB and settles around 150 MB, drifting up slowly; tool calls that
rise to 300-600 MB in total (a test run, an install, a build, two overlapping calls) and a few short ones
with no load of their own; 45 s sampled every 0.25 s, CPU ~0.1 core for the agent and ~0.6 for busy calls.
"""

from __future__ import annotations

import math
import os

from agentcgroup.traces import RecordingWriter

MB = 1 << 20
T0 = 1_770_000_000.0
STEP = 0.25
END = 45.0
#: (id, command, start, end, plateau MB above the agent, rise seconds)
CALLS = [
    ("c1", "python -m pytest tests/ -x", 4.0, 12.0, 250, 2.0),
    ("c2", "pip install -e .[test]", 15.0, 22.0, 300, 3.0),
    ("c3", "ls -la", 23.5, 23.6, 0, 0.1),
    ("c4", "cargo build --release", 26.0, 37.0, 430, 4.0),
    ("c5", "git status", 38.0, 38.1, 0, 0.1),
    ("c6", "python -m pytest tests/unit", 39.5, 43.0, 120, 1.0),
    ("c7", "python -m pytest tests/kernel", 40.5, 43.5, 100, 1.0),
]


def agent_mb(t: float) -> float:
    if t < 1.0:
        return 20 + 130 * t
    return 150 + 20 * (t / END) + 3 * math.sin(t / 1.7)


def call_mb(t: float, start: float, end: float, plateau: float, rise: float) -> float:
    if not start <= t <= end:
        return 0.0
    up = min(1.0, (t - start) / rise) if rise > 0 else 1.0
    down = min(1.0, (end - t) / 0.5)
    return plateau * min(up, down) * (1 + 0.04 * math.sin(3 * t))


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "synthetic-agent.jsonl")
    host = {"hostname": "synthetic", "system": "Linux", "cpus": 2}
    with RecordingWriter(path, "synthetic-agent", interval_s=STEP, host=host, started_at=T0) as w:
        cpu_usec = 0
        open_calls: set[str] = set()
        n = int(END / STEP)
        for i in range(n + 1):
            t = i * STEP
            for cid, cmd, start, _end, _, _ in CALLS:
                if cid not in open_calls and start <= t:
                    w.call_start(cid, cmd, t=T0 + start, tool="Bash")
                    open_calls.add(cid)
            total, busy = agent_mb(t), 0.0
            for cid, _, start, end, plateau, rise in CALLS:
                own = call_mb(t, start, end, plateau, rise)
                if start <= t <= end:
                    total += own
                    busy = max(busy, 0.6 if plateau else 0.0)
                    w.sample(t=T0 + t, call=cid, mem_bytes=int(own * MB))
            cpu_usec += int((0.1 + busy) * STEP * 1e6)
            w.sample(t=T0 + t, mem_bytes=int(total * MB), cpu_usec=cpu_usec)
            for cid, _, start, end, _, _ in CALLS:
                if cid in open_calls and end < t + STEP and end >= t:
                    w.call_end(cid, {"exit_code": 0, "duration_s": end - start}, t=T0 + end)
        w.close(agent_wall_s=END, t=T0 + END)


if __name__ == "__main__":
    main()
