"""Our recording format: the writer's records and checks, the reader's tolerance, a hand-made file."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest

from agentcgroup.traces import (
    DEFAULT_INTERVAL_S,
    FORMAT,
    RECORDING_FORMAT,
    RecordingError,
    RecordingWriter,
    is_recording,
    read_recording,
)

DEMO = Path(__file__).resolve().parents[1] / "data" / "traces" / "recording" / "demo-session.jsonl"
T = 1000.0
HOST = {"hostname": "h", "cpus": 2}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_writer_records_are_one_json_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    with RecordingWriter(path, "s1", host=HOST, started_at=T, startup_s=0.25, meta={"agent": "x"}) as rec:
        rec.sample(t=T + 0.1, mem_bytes=190_000_000, cpu_usec=5_000, psi_some_avg10=0.5, kill_events=0)
        rec.call_start("c1", ["python", "-m", "pytest", "a b.py"], tool="Bash", intent={"memory": 10**9}, t=T + 0.15)
        rec.sample(t=T + 0.2, call="c1", mem_bytes=50_000_000)
        rec.call_end("c1", {"exit_code": 2}, t=T + 0.3)
    header, s1, start, s2, end, closing = _lines(path)
    assert header == {
        "type": "header",
        "format": FORMAT,
        "version": 1,
        "session": "s1",
        "interval_s": DEFAULT_INTERVAL_S,
        "started_at": T,
        "host": HOST,
        "startup_s": 0.25,
        "meta": {"agent": "x"},
    }
    assert s1 == {
        "type": "sample",
        "t": T + 0.1,
        "mem_bytes": 190_000_000,
        "cpu_usec": 5_000,
        "kill_events": 0,
        "psi_some_avg10": 0.5,
    }
    assert start["command"] == "python -m pytest 'a b.py'"
    assert start["argv"] == ["python", "-m", "pytest", "a b.py"]
    assert (start["tool"], start["intent"]) == ("Bash", {"memory": 10**9})
    assert s2 == {"type": "sample", "t": T + 0.2, "call": "c1", "mem_bytes": 50_000_000}
    assert end == {"type": "call_end", "t": T + 0.3, "call": "c1", "outcome": {"exit_code": 2}}
    assert closing["type"] == "end" and "unfinished_calls" not in closing


def test_round_trip_through_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    clock = iter([T, T + 1.0]).__next__  # header, end
    rec = RecordingWriter(path, "round-trip", host=HOST, interval_s=0.5, clock=clock)
    usec = 0
    for i in range(5):
        usec += 250_000 if i else 0
        rec.sample(t=T + 0.5 * i, mem_bytes=(100 + 10 * i) * 10**6, cpu_usec=usec)
    rec.call_start("c1", "make test", t=T + 0.6)
    rec.call_end("c1", {"exit_code": 0, "killed": False}, t=T + 1.6)
    rec.call_start("c2", "sleep 100", t=T + 1.7)
    rec.close()
    task = read_recording(path)
    assert (task.name, task.fmt, task.interval_s) == ("round-trip", RECORDING_FORMAT, 0.5)
    assert task.samples.mem_bytes == tuple((100 + 10 * i) * 10**6 for i in range(5))
    assert task.samples.cpu_cores[1:] == pytest.approx([0.5] * 4)
    c1, c2 = task.calls
    assert (c1.command, c1.category, c1.failed, c1.duration_s) == (
        "make test",
        "test",
        False,
        pytest.approx(1.0),
    )
    assert (c2.end, c2.failed) == (None, None)
    assert "1 tool calls never ended" in task.quirks
    assert task.agent_wall_s == pytest.approx(1.0)  # end.t - started_at
    assert _lines(path)[-1]["unfinished_calls"] == ["c2"]


def test_writer_rejects_bad_values_naming_them(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"session name '\.\./x'"):
        RecordingWriter(tmp_path / "a.jsonl", "../x", host=HOST)
    with pytest.raises(ValueError, match="sampling interval"):
        RecordingWriter(tmp_path / "b.jsonl", "s", host=HOST, interval_s=0)
    rec = RecordingWriter(tmp_path / "c.jsonl", "s", host=HOST)
    with pytest.raises(ValueError, match="memory current -1"):
        rec.sample(mem_bytes=-1)
    with pytest.raises(ValueError, match="memory current True"):
        rec.sample(mem_bytes=True)
    with pytest.raises(ValueError, match="time nan"):
        rec.sample(mem_bytes=1, t=float("nan"))
    with pytest.raises(ValueError, match="call id 'a/b'"):
        rec.call_start("a/b", "ls")
    with pytest.raises(ValueError, match="no such call"):
        rec.call_end("never", {})
    rec.call_start("c1", "ls")
    with pytest.raises(ValueError, match="already started"):
        rec.call_start("c1", "ls")
    rec.close()
    rec.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        rec.sample(mem_bytes=1)
    # nothing invalid reached the file
    assert [r["type"] for r in _lines(tmp_path / "c.jsonl")] == ["header", "call_start", "end"]


def test_writer_to_an_open_file_leaves_it_open_and_is_thread_safe() -> None:
    buf = io.StringIO()
    rec = RecordingWriter(buf, "threads", host=HOST, clock=lambda: T)

    def sampler() -> None:
        for _ in range(200):
            rec.sample(mem_bytes=1)

    threads = [threading.Thread(target=sampler) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    rec.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1 + 800 + 1
    assert all(json.loads(line)["type"] in {"header", "sample", "end"} for line in lines)
    assert not buf.closed


def test_reader_tolerates_a_cut_short_file(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    rec = RecordingWriter(path, "cut", host=HOST, started_at=T)
    for i in range(3):
        rec.sample(t=T + i, mem_bytes=10 * i)
    rec.call_start("c1", "pytest", t=T + 0.5)
    path.write_text(path.read_text() + '{"type":"sample","t":1003.0,"mem_by')  # the writer was killed
    text = path.read_text().replace('"type":"sample","t":1001.0', '"type":"mystery","t":1001.0')
    path.write_text(text + "\n")
    task = read_recording(path)
    assert task.samples.mem_bytes == (0, 20)
    assert "last line truncated (the writer did not finish it)" in task.quirks
    assert "1 records of unknown type ignored" in task.quirks
    assert "no end record (the recording was not closed)" in task.quirks
    assert "1 tool calls never ended" in task.quirks
    assert task.agent_wall_s is None


def test_reader_refuses_other_files_and_newer_versions(tmp_path: Path) -> None:
    other = tmp_path / "other.jsonl"
    other.write_text('{"hello": 1}\n')
    assert not is_recording(other)
    with pytest.raises(RecordingError, match="not an agentcg-recording"):
        read_recording(other)
    newer = tmp_path / "newer.jsonl"
    newer.write_text(json.dumps({"type": "header", "format": FORMAT, "version": 2, "session": "s"}) + "\n")
    assert is_recording(newer)
    with pytest.raises(RecordingError, match="version 2 is not supported"):
        read_recording(newer)


def test_the_hand_made_recording() -> None:
    task = read_recording(DEMO)
    assert (task.name, task.interval_s, task.startup_s, task.agent_wall_s) == ("demo-session", 0.1, 0.5, 2.0)
    assert task.quirks == []
    assert len(task.samples) == 12
    assert max(task.samples.mem_bytes) == 600_000_000
    assert task.samples.mem_peak_bytes is not None and task.samples.mem_peak_bytes[4] == 612_000_000
    cores = task.samples.cpu_cores
    assert cores[0] is None
    assert cores[1:5] == pytest.approx([1.0] * 4, abs=1e-4)
    assert cores[5] == pytest.approx(0.1, abs=1e-4)
    c1, c2 = task.calls
    assert (c1.call_id, c1.category, c1.failed, c1.duration_s) == ("c1", "test", True, pytest.approx(0.4))
    assert c1.outcome is not None and c1.outcome["peak_bytes"] == 612_000_000
    assert c1.samples is not None and c1.samples.mem_bytes == (6_000_000, 65_000_000, 415_000_000)
    assert (c2.failed, c2.samples) == (False, None)
    assert task.meta["host"]["hostname"] == "testhost"
    assert task.meta["events"] == {
        "throttle_events": 0,
        "freeze_events": 0,
        "kill_events": 0,
        "psi_some_avg10": 1.5,
    }
