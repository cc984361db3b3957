"""The recorder on a fake Manager and a fake /proc: calls found and ended, spares skipped, samples written,
handles let go; and exact outcomes through a real in-process controller (no-cgroup backend)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from agentcgroup import Session
from agentcgroup.backends.base import Cgroup, Stats
from agentcgroup.errors import NotFound
from agentcgroup.outcome import Outcome, Step
from agentcgroup.record import Recorder, outcome_record
from agentcgroup.record.calls import RecordedCall, step_counts
from agentcgroup.traces import RecordingWriter, read_recording
from tests.unit.test_recorder_leaves import FakeProc

MB = 1 << 20


class FakeManager:
    """The verbs the recorder uses, over a dict: path -> (pids, Stats)."""

    kind = "fake"

    def __init__(self) -> None:
        self.groups: dict[tuple[str, ...], list] = {("s",): [[], Stats(memory_current=100 * MB, cpu_usec=0)]}
        self.groups[("s", "tools")] = [[], Stats()]
        self.destroyed: list[str] = []

    def add(self, name: str, pids: list[int], mem: int = 0) -> None:
        self.groups[("s", "tools", name)] = [pids, Stats(memory_current=mem, memory_peak=mem, cpu_usec=1000)]

    def children(self, path) -> list[str]:
        path = tuple(path)
        if path not in self.groups:
            raise NotFound(f"no {path}")
        return sorted(p[-1] for p in self.groups if len(p) == len(path) + 1 and p[: len(path)] == path)

    def open(self, path) -> Cgroup:
        if tuple(path) not in self.groups:
            raise NotFound(f"no {path}")
        return Cgroup(tuple(path))

    def memory_pressure(self, cg: Cgroup) -> tuple[float | None, float | None]:
        return 1.5, 0.25

    def pids(self, cg: Cgroup) -> list[int]:
        g = self.groups.get(cg.path)
        return list(g[0]) if g else []

    def stats(self, cg: Cgroup) -> Stats:
        g = self.groups.get(cg.path)
        if g is None:
            raise NotFound(f"no {cg.path}")
        return g[1]

    def destroy(self, cg: Cgroup, timeout: float = 5.0) -> None:
        assert cg.path not in self.groups, "the recorder removed a leaf that was still there"
        self.destroyed.append(cg.path[-1])
        cg.closed = True


@pytest.fixture
def setup(tmp_path: Path):
    proc = FakeProc(tmp_path / "proc")
    (tmp_path / "proc").mkdir()
    proc.add(1, ["init"], 0)
    proc.add(50, ["agent"], 1)
    m = FakeManager()
    clock = iter(float(i) for i in range(1000, 100000))
    out = tmp_path / "rec.jsonl"
    w = RecordingWriter(out, "s", interval_s=0.1, host={}, started_at=999.0)
    rec = Recorder(w, "s", manager=m, proc_root=proc.path, clock=lambda: next(clock))  # type: ignore[arg-type]  # a FakeManager
    rec._cg = m.open(("s",))  # as start() does, without the thread
    return proc, m, w, rec, out


def test_calls_found_sampled_and_ended(setup) -> None:
    proc, m, w, rec, out = setup
    proc.add(10, ["/x/agentcg-stub", "3"], 50)
    m.add("spare", [10])
    proc.add(20, ["pytest", "-x"], 50)
    m.add("c1", [20], mem=40 * MB)
    proc.add(30, ["agent"], 50)  # placed, not exec'd yet
    m.add("c2", [30])
    rec.scan()
    assert rec.calls_started == 1
    rec.sample()
    m.groups[("s", "tools", "c1")][1] = Stats(memory_current=60 * MB, memory_peak=70 * MB, cpu_usec=5000, oom_kills=1)
    proc.add(30, ["make", "all"], 50)  # now it has exec'd
    rec.scan()
    assert rec.calls_started == 2
    rec.sample()
    m.groups[("s", "tools", "c1")][0] = []  # c1 emptied
    rec.scan()
    assert rec.calls_ended == 1
    del m.groups[("s", "tools", "c1")]
    del m.groups[("s", "tools", "spare")]
    rec.scan()  # gone: let go of at the next look
    assert m.destroyed == []
    rec.scan()
    assert sorted(m.destroyed) == ["c1", "spare"]
    del m.groups[("s", "tools", "c2")]
    rec.scan()
    assert rec.calls_ended == 2
    w.close()

    task = read_recording(out)
    assert len(task.samples) == 2 and task.samples.mem_bytes[0] == 100 * MB
    c1, c2 = task.calls
    assert (c1.call_id, c1.command, c2.command) == ("c1", "pytest -x", "make all")
    assert c1.outcome == {
        "duration_s": pytest.approx(c1.end - c1.start),
        "peak_bytes": 70 * MB,
        "cpu_usec": 5000,
        "killed": True,
        "reason": "the kernel's OOM killer killed a process of the call",
        "source": "sampled",
    }
    assert c1.failed is True and c2.failed is None  # an exit code nobody told us is not made up
    assert c1.samples is not None and list(c1.samples.mem_bytes) == [40 * MB, 60 * MB]
    assert task.meta["events"]["kill_events"] == 1


def test_a_session_that_goes_away_stops_nothing_else(setup) -> None:
    _proc, m, w, rec, _out = setup
    m.groups.pop(("s", "tools"))
    rec.scan()  # no tools/: nothing to look at
    assert rec.calls_started == 0
    w.close()


def test_outcome_record_maps_the_outcome() -> None:
    out = Outcome(
        session="s",
        call_id="c1",
        command="x",
        argv=["x"],
        backend="hybrid",
        exit_code=None,
        signal=9,
        duration_s=1.5,
        cpu_s=0.25,
        memory_peak=5 * MB,
        killed_by="memory",
        kill_reason="out of memory",
        frozen_s=0.2,
        steps=[Step(0.1, "freeze", "r"), Step(0.2, "kill", "r"), Step(0.0, "throttle", "r")],
    )
    rec = outcome_record(out)
    assert rec["killed"] is True and rec["frozen"] is True and rec["reason"] == "out of memory"
    assert (rec["peak_bytes"], rec["cpu_usec"], rec["signal"], rec["returncode"]) == (5 * MB, 250000, 9, 137)
    assert step_counts(out.steps) == {"throttle_events": 1, "freeze_events": 1, "kill_events": 1}


def test_sampled_outcome_of_a_call_never_read() -> None:
    assert RecordedCall("c", 10.0).sampled_outcome(12.5) == {"duration_s": 2.5, "source": "sampled"}


def test_tracked_calls_are_exact(tmp_path: Path) -> None:
    out = tmp_path / "exact.jsonl"
    with Session("exact", backend="none", warm=0) as s, RecordingWriter(out, s.name) as w:
        rec = Recorder.for_session(s, w, interval_s=0.05)
        with rec:
            h = s.start([sys.executable, "-c", "import sys; sys.exit(3)"])
            rec.track(h, "the traced command")
            h.wait()
            s.run(["true"])
        assert rec.calls_started >= 1
    task = read_recording(out)
    first = task.calls[0]
    assert first.command == "the traced command"
    assert first.outcome["exit_code"] == 3 and first.outcome["source"] == "controller" and first.failed is True
    assert task.samples and not task.quirks


def test_a_late_track_still_names_the_command_it_stands_for(tmp_path: Path) -> None:
    """The recorder bug: track() had one 20 ms scan to claim a call, so under CPU load a replay's recording
    stored the worker's command line. Now a call of the in-process controller waits for track()."""
    for tracked, late_s in ((True, 0.4), (False, 0.2)):
        out = tmp_path / f"late-{tracked}.jsonl"
        with Session(f"late{int(tracked)}", backend="none", warm=0) as s, RecordingWriter(out, s.name) as w:
            rec = Recorder.for_session(s, w, interval_s=0.05, poll_s=0.005, tracked=tracked)
            with rec:
                h = s.start(["sleep", "0.8"])
                scans = rec.samples
                deadline = time.monotonic() + 10
                while rec.samples < scans + 3 and time.monotonic() < deadline:  # the scan saw the leaf, more than once
                    time.sleep(0.01)
                time.sleep(late_s)  # a loaded machine: the caller comes back late
                rec.track(h, "pytest -x tests/")
                h.wait()
        (call,) = read_recording(out).calls
        assert call.command == "pytest -x tests/", (tracked, call.command)


def test_calls_through_the_private_socket_are_all_recorded(tmp_path: Path) -> None:
    from agentcgroup.daemon.client import Client
    from agentcgroup.record.serve import private_socket
    from agentcgroup.record.tracking import TrackingController

    out = tmp_path / "socket.jsonl"
    ctl = TrackingController(backend="none")
    try:
        with Session("via-socket", controller=ctl) as s, RecordingWriter(out, s.name) as w:
            rec = Recorder.for_session(s, w, interval_s=0.05)
            ctl.recorder = rec
            with rec, private_socket(ctl) as sock:
                assert oct(os.stat(os.path.dirname(sock)).st_mode & 0o777) == "0o700"
                client = Client(sock)
                for code in (0, 4, 0):  # each over in a millisecond: none is missed
                    assert client.run(s.name, ["sh", "-c", f"exit {code}"]).exit_code == code
            assert not os.path.exists(sock)
    finally:
        ctl.close()
    task = read_recording(out)
    assert [c.outcome["exit_code"] for c in task.calls] == [0, 4, 0]
    assert [c.command for c in task.calls] == ["sh -c 'exit 0'", "sh -c 'exit 4'", "sh -c 'exit 0'"]
