"""``agentcg record`` and the Recorder on the real kernel: calls made by the recorded agent (``agentcg run
--session`` inside it), by this process's own session and by another process joining the session are recorded
with their commands, samples and outcomes."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest

from agentcgroup import Session
from agentcgroup.record import Recorder
from agentcgroup.traces import RecordingWriter, read_recording
from tests.conftest import kernel_skip_reason, leftovers

pytestmark = [pytest.mark.kernel]

MB = 1 << 20


@pytest.fixture(autouse=True)
def _need_kernel() -> None:
    if kernel_skip_reason():
        pytest.skip(kernel_skip_reason())


def test_record_an_agent_whose_calls_run_elsewhere(root_name, tmp_path) -> None:
    out = tmp_path / "session.jsonl"
    py = shlex.quote(sys.executable)
    run = f'{py} -m agentcgroup run --session "$AGENTCG_SESSION" --'
    script = (
        f"{run} {py} -c 'import time; b = bytearray(60 << 20); time.sleep(0.5)'; "
        f"{run} sh -c 'sleep 0.3; exit 3'; "
        'test "$AGENTCG_ROOT" = ' + root_name + " || exit 99; exit 5"
    )
    env = {**os.environ, "AGENTCG_ROOT": root_name}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentcgroup",
            "record",
            "--out",
            str(out),
            "--interval",
            "50ms",
            "--",
            "bash",
            "-c",
            script,
        ],
        capture_output=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 5, r.stderr.decode()  # the agent's own exit code
    summary = r.stderr.decode().strip().splitlines()[-1]
    assert summary.startswith("agentcg: recorded ") and "2 tool calls" in summary and str(out) in summary

    task = read_recording(out)
    assert not task.quirks, task.quirks
    assert len(task.samples) >= 10 and task.interval_s == pytest.approx(0.05)
    mem, sleep = task.calls
    assert "bytearray(60 << 20)" in (mem.command or "") and mem.command.startswith(sys.executable)
    # the agent's calls came to the recording process through its private socket: exact outcomes
    assert mem.outcome["peak_bytes"] >= 60 * MB and mem.outcome["source"] == "controller"
    assert mem.outcome["exit_code"] == 0 and mem.failed is False
    assert mem.samples is not None and max(mem.samples.mem_bytes) >= 60 * MB
    assert sleep.command == "sh -c 'sleep 0.3; exit 3'" and 0.25 <= sleep.duration_s <= 1.0
    assert sleep.outcome["exit_code"] == 3 and sleep.failed is True
    assert max(task.samples.mem_bytes) >= 60 * MB  # the session holds its calls
    assert task.agent_wall_s is not None and task.agent_wall_s > 0.8 and task.startup_s is not None
    report = subprocess.run(
        [sys.executable, "-m", "agentcgroup", "report", "--json", "--min-duration", "0", str(out)],
        capture_output=True,
        timeout=60,
    )
    assert report.returncode == 0, report.stderr.decode()
    assert json.loads(report.stdout)["tasks_found"] == 1
    assert leftovers(root_name) == []


def test_recorder_with_the_sessions_own_calls(root_name, tmp_path) -> None:
    out = tmp_path / "own.jsonl"
    with (
        Session("rec", root=root_name) as s,
        RecordingWriter(out, s.name, interval_s=0.05) as w,
        Recorder.for_session(s, w, interval_s=0.05) as rec,
    ):
        h = s.start([sys.executable, "-c", "bytearray(200 << 20)"], memory="64M")
        rec.track(h)
        assert h.wait().killed_by == "memory"
        s.run([sys.executable, "-c", "import time; time.sleep(0.3)"])  # found by looking at tools/
        env = {**os.environ, "AGENTCG_ROOT": root_name}
        env.pop("AGENTCG_SOCKET", None)
        joined = [sys.executable, "-m", "agentcgroup", "run", "--session", "rec", "--"]
        subprocess.run([*joined, "sh", "-c", "sleep 0.3; exit 2"], env=env, check=False, timeout=30)
    task = read_recording(out)
    killed, slept, foreign = task.calls
    assert killed.outcome["killed"] is True and killed.outcome["killed_by"] == "memory" and killed.failed
    # killed by the kernel (v2: memory.oom.group; v1: its only process OOM-killed, or the rest of the call
    # by the controller's oom group, then a kill step counted in the recording's events)
    assert killed.outcome["source"] == "controller"
    assert task.meta["events"]["kill_events"] == sum(s.action == "kill" for s in h.wait().steps)
    assert "time.sleep(0.3)" in slept.command and slept.outcome["source"] == "controller"
    assert slept.outcome["exit_code"] == 0 and slept.failed is False
    # another process's call: seen in tools/, its outcome what the samples tell (its exit code is not ours)
    assert foreign.command == "sh -c 'sleep 0.3; exit 2'" and foreign.outcome["source"] == "sampled"
    assert 0.2 <= foreign.duration_s <= 1.0 and "exit_code" not in foreign.outcome
    assert leftovers(root_name) == []
