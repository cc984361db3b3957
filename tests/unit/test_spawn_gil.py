"""The C spawner lets go of the GIL while its vfork child runs (placement, exec): a daemon's other threads run
meanwhile instead of waiting for the child's cgroup moves (a v1 migration can wait ~10 ms for an RCU grace
period) and exec.

The child's first step writes "0" to each given cgroup.procs fd. Given instead a pipe whose buffer is full, the
child blocks there until another thread of the parent reads the pipe, which it can only do if the spawning
thread let go of the GIL. Run in a subprocess: if the GIL were held, it would hang (and be killed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from agentcgroup import spawn

SCRIPT = r"""
import fcntl, os, threading, time
from agentcgroup.spawn import _spawn_c
r, w = os.pipe()
fcntl.fcntl(w, 1031, 4096)  # F_SETPIPE_SZ: one page
os.set_blocking(w, False)
try:
    while True:
        os.write(w, b"x" * 4096)
except BlockingIOError:
    pass
os.set_blocking(w, True)
drained = []

main = threading.get_native_id()

def drain():
    # until the vfork child exists (it then waits on the full pipe): each look lets go of the GIL and needs it
    # back, which a spawn that kept it would never give
    while not open(f"/proc/self/task/{main}/children").read().split():
        time.sleep(0.005)
    n = 0
    while n < 4096 + 1:  # what filled it, then the child's "0"
        n += len(os.read(r, 65536))
    drained.append(n)

t = threading.Thread(target=drain)
t.start()
pid = _spawn_c("/bin/true", ["true"], dict(os.environ), None, [0, 1, 2], [w], False, [], [])
_, status = os.waitpid(pid, 0)
t.join()
print("ok", os.waitstatus_to_exitcode(status), drained[0])
"""


@pytest.mark.skipif(spawn._c is None, reason="the C spawner is not built")
def test_other_threads_run_while_the_child_has_not_exec_d() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        # the vfork child too (it holds the pipe's read end itself, so it would wait on it forever)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("the spawn held the GIL while its child waited: the other thread never ran")
    assert proc.returncode == 0, err
    assert out.split() == ["ok", "0", "4097"]
