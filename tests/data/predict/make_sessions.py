"""Writes session-*.jsonl: four made-up agent sessions for the predictor's tests (run from the repository root:
``python3 tests/data/predict/make_sessions.py``). Deterministic: the same files every time.

Each call's outcome has its exact peak (as our recorder writes the leaf's ``memory.peak``), so the expected
predictions can be worked out by hand. The sessions run one after another, an hour apart: s1 and s2 are the
"first half", s3 and s4 the second. Every session runs the same kinds of calls, at its own size (``scale``):

  t    command                                         peak (MiB, x scale)   exit
  0    ls -la                                          1                     0
  10   python -m pytest tests/ -x                      2 (fails at once)     2
  20   pip install -e .                                150                   0
  40   cd /repo && python3 -m pytest tests/unit        200                   0
  60   git status                                      3                     0
  70   python -m pytest tests/unit -q                  220                   0
  90   bash -c 'cargo build --release'                 600                   0
  120  timeout 600 cargo build --release               640                   0
"""

from __future__ import annotations

import os

from agentcgroup.traces import RecordingWriter

MIB = 1 << 20
T0 = 1_770_000_000.0
CALLS = [
    (0, 1.0, "ls -la", 1, 0),
    (10, 0.5, "python -m pytest tests/ -x", 2, 2),
    (20, 8.0, "pip install -e .", 150, 0),
    (40, 12.0, "cd /repo && python3 -m pytest tests/unit", 200, 0),
    (60, 0.2, "git status", 3, 0),
    (70, 11.0, "python -m pytest tests/unit -q", 220, 0),
    (90, 25.0, "bash -c 'cargo build --release'", 600, 0),
    (120, 24.0, "timeout 600 cargo build --release", 640, 0),
]
SESSIONS = [("s1", 1.0), ("s2", 1.5), ("s3", 0.8), ("s4", 1.2)]


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    for k, (name, scale) in enumerate(SESSIONS):
        t0 = T0 + 3600 * k
        path = os.path.join(here, f"session-{name}.jsonl")
        host = {"hostname": "synthetic", "system": "Linux", "cpus": 2}
        with RecordingWriter(path, name, interval_s=1.0, host=host, started_at=t0) as w:
            w.sample(t=t0, mem_bytes=150 * MIB, cpu_usec=0)
            for i, (at, dur, cmd, mib, code) in enumerate(CALLS):
                cid = f"c{i + 1}"
                w.call_start(cid, cmd, t=t0 + at, tool="Bash")
                peak = int(mib * scale * MIB)
                outcome = {"exit_code": code, "duration_s": dur, "peak_bytes": peak, "cpu_usec": int(dur * 0.5e6)}
                w.call_end(cid, outcome, t=t0 + at + dur)
            w.close(agent_wall_s=200.0, t=t0 + 200)


if __name__ == "__main__":
    main()
