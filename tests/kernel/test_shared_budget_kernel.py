"""The AgentCgroup paper's multi-tenant shape through the daemon, on the real kernel: one high-priority and two
low-priority tool calls start together under one shared budget smaller than the sum of their peaks, each rising
to its peak, holding, and falling. The high call runs about as fast as alone; the low ones are slowed, not
killed; the kernel's OOM killer never fires.

Scaled to half the paper's figures (budget 1.1 GB -> 550 MiB; peaks 420/406/406 MB -> 210/203/203 MiB) so it
fits the CI guest; the generator follows the traces' rise (1.2 s), hold (0.3 s) and fall to a third (0.5 s).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading

import pytest

from agentcgroup.daemon.client import Client
from agentcgroup.outcome import Outcome
from tests.conftest import SLOW, kernel_skip_reason, leftovers
from tests.kernel.daemon_fixtures import wait_up

pytestmark = [pytest.mark.kernel]

PY = sys.executable
MiB = 1 << 20
BUDGET = 550
PEAKS = {"hi": 210, "lo1": 203, "lo2": 203}
#: 10 runs on the host; 3 in the emulated v2 guest, where one run takes ~30 s (CI keeps within its time)
RUNS = int(os.environ.get("AGENTCG_SHAPE_RUNS", "3" if os.environ.get("AGENTCG_VM") else "10"))

# rise to PEAK MiB in 2 MiB steps over RISE s, hold HOLD s, fall to a third over FALL s; every step is paced
# after the one before (a stalled step delays the rest: the work is slowed, not skipped)
SHAPE = """
import sys, time
peak, rise, hold, fall = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
chunks, n = [], peak // 2
for _ in range(n):
    chunks.append(bytearray(2 << 20))
    time.sleep(rise / n)
time.sleep(hold)
drop = n - n // 3
for _ in range(drop):
    chunks.pop()
    time.sleep(fall / drop)
print("done", flush=True)
"""


def shape(peak: int) -> list[str]:
    return [PY, "-c", SHAPE, str(peak), "1.2", "0.3", "0.5"]


def oom_kills(root_name: str) -> int:
    """Kernel OOM kills counted at the daemon's root (v2 memory.events, hierarchical; v1 memory.oom_control)."""
    total = 0
    for base in leftovers(root_name):
        for fname in ("memory.events", "memory.oom_control"):
            try:
                with open(f"{base}/{fname}") as f:
                    for line in f:
                        key, _, value = line.partition(" ")
                        if key == "oom_kill":
                            total += int(value)
            except OSError:
                pass
    return total


@pytest.fixture
def daemon(tmp_path, root_name):
    if kernel_skip_reason():
        pytest.skip(kernel_skip_reason())
    sockdir = tempfile.mkdtemp(prefix="agentcg-test-sock-")
    sock = os.path.join(sockdir, "agentcg.sock")
    cmd = [PY, "-m", "agentcgroup", "daemon", "--socket", sock, "--root", root_name, "--budget", f"{BUDGET}M"]
    cmd += ["--state-dir", str(tmp_path / "state")]
    log = tmp_path / "daemon.log"
    proc = subprocess.Popen(cmd, stderr=open(log, "w"))  # noqa: SIM115
    wait_up(proc, sock, lambda: log.read_text())
    try:
        yield sock
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        os.rmdir(sockdir)
        assert leftovers(root_name) == []


def run_together(sock: str, names: list[str]) -> dict[str, Outcome]:
    out: dict[str, Outcome] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(len(names))

    def one(name: str) -> None:
        try:
            c = Client(sock)
            start.wait(10)
            out[name] = c.run(name, shape(PEAKS[name]), capture_output=True, timeout=60 * SLOW)
        except BaseException as exc:  # reported below, with the others' outcomes
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120 * SLOW)
    assert not errors, errors
    return out


def test_the_paper_shape_slows_the_low_calls_and_the_kernel_never_kills(daemon, root_name) -> None:
    c = Client(daemon)
    c.open_session("hi", priority="high")
    c.open_session("lo1", priority="low")
    c.open_session("lo2", priority="low")
    run_together(daemon, ["hi", "lo1", "lo2"])  # warm: the first round pays for cold caches and leaves
    alone = min(c.run("hi", shape(PEAKS["hi"]), capture_output=True).duration_s for _ in range(2))
    slowdowns, low_times, throttled = [], [], 0
    for run in range(RUNS):
        out = run_together(daemon, ["hi", "lo1", "lo2"])
        for name, o in out.items():
            assert o.exit_code == 0 and o.stdout == b"done\n", (run, name, o.killed_by, o.kill_reason, o.steps)
            assert o.oom_kills == 0, (run, name, o.steps)
        hi = out["hi"]
        assert not [s for s in hi.steps if s.action in ("throttle", "freeze", "kill")], hi.steps
        slowdowns.append(hi.duration_s / alone)
        low_times += [out["lo1"].duration_s, out["lo2"].duration_s]
        throttled += sum(any(s.action == "throttle" for s in out[n].steps) for n in ("lo1", "lo2"))
        assert oom_kills(root_name) == 0, f"run {run}: the kernel's OOM killer fired inside the budget"
    print(f"alone {alone:.2f} s; high/alone {[round(s, 3) for s in slowdowns]}; low {[round(t, 2) for t in low_times]}")
    # the high call never held (above), within a generous bound of its time alone in every run (the machine is
    # shared: its CPUs are not ours alone; the goal is 5 %, measured on a quiet one), and about as fast
    # in the median
    assert max(slowdowns) < 2.0 * SLOW, (alone, slowdowns)
    assert sorted(slowdowns)[len(slowdowns) // 2] < 1.15 * SLOW, (alone, slowdowns)
    # the low ones paid for it in time: held back while the high call needed the room
    assert throttled >= RUNS, (throttled, low_times)
    for name in ("hi", "lo1", "lo2"):
        c.close_session(name)
