"""The persisted history (SQLite under the state directory): round trip, the bound, several writer processes at
once, a foreign file; and observations from a controller's persisted outcomes and from the paper's format."""

from __future__ import annotations

import multiprocessing
import os
import stat

import pytest

from agentcgroup.controller.persist import StateDir
from agentcgroup.errors import InvalidValue
from agentcgroup.outcome import Outcome
from agentcgroup.predict.history import Observation
from agentcgroup.predict.sources import from_outcomes, from_traces, load_history
from agentcgroup.predict.store import FILE, HistoryStore, is_store
from tests.conftest import DATA

T = 1_770_000_000.0


def obs(i: int, session: str = "s1") -> Observation:
    return Observation(session, f"pytest tests/t{i % 7}.py", T + i, T + i + 1, memory=i << 20, cpu_s=0.5)


def test_round_trip_and_mode(tmp_path) -> None:
    with HistoryStore(tmp_path) as st:  # a state directory: the file goes in it
        assert st.add([obs(1), obs(2)]) == 2
        st.add(obs(3))
        assert [o.memory for o in st.load()] == [1 << 20, 2 << 20, 3 << 20]
        assert st.history().count == 3
    path = tmp_path / FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and is_store(path) and is_store(tmp_path)
    with HistoryStore(path) as again:
        assert len(again) == 3


def test_bounded(tmp_path) -> None:
    with HistoryStore(tmp_path / "h.sqlite3", max_rows=50) as st:
        for i in range(0, 3000, 100):
            st.add([obs(j) for j in range(i, i + 100)])
        kept = st.load()
        assert len(kept) <= 50 + 1000 and kept[-1].memory == 2999 << 20
        assert [o.memory >> 20 for o in kept] == sorted(o.memory >> 20 for o in kept)
    with pytest.raises(InvalidValue):
        HistoryStore(tmp_path / "x.sqlite3", max_rows=0)


def _writer(path: str, k: int, n: int) -> None:
    with HistoryStore(path) as st:
        for i in range(n):
            st.add(obs(i, session=f"w{k}"))


def test_concurrent_writer_processes(tmp_path) -> None:
    path = str(tmp_path / FILE)
    HistoryStore(path).close()
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, k, 150)) for k in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with HistoryStore(path) as st:
        got = st.load()
    assert len(got) == 600
    for k in range(4):
        assert sorted(o.memory for o in got if o.session == f"w{k}") == [i << 20 for i in range(150)]


def test_a_bad_row_is_skipped(tmp_path) -> None:
    with HistoryStore(tmp_path) as st:
        st.add(obs(1))
        st._db.execute("INSERT INTO observations (session, start, doc) VALUES ('x', 0, '{not json')")
        st.add(obs(2))
        assert len(st.load()) == 2
    (tmp_path / "plain.txt").write_text("hello")
    assert not is_store(tmp_path / "plain.txt") and not is_store(tmp_path / "missing")


def test_outcomes_of_a_state_dir(tmp_path) -> None:
    sd = StateDir(tmp_path)
    out = Outcome("s1", "c1", "pytest -x", ["pytest", "-x"], "hybrid", exit_code=1, duration_s=3.0, cpu_s=2.5,
                  memory_peak=300 << 20)  # fmt: skip
    sd.save_outcome(0, out)
    sd.save_outcome(0, Outcome("s1", "c2", "big", ["big"], "hybrid", refused=True))
    (tmp_path / "outcomes" / "torn.json").write_text("{")
    with open(tmp_path / "outcomes" / "log.jsonl", "a") as f:
        f.write('{"owner":0,"ended":1.0,"outc\n')
    got = from_outcomes(tmp_path)
    assert len(got) == 1
    o = got[0]
    assert (o.session, o.command, o.memory, o.cpu_s, o.failed) == ("s1", ("pytest", "-x"), 300 << 20, 2.5, True)
    assert o.duration == pytest.approx(3.0)
    base, sessions = load_history([tmp_path])
    assert len(base) == 1 and sessions == 1


def test_load_history_kinds(tmp_path) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as st:
        st.add([obs(1, "a"), obs(2, "b")])
    base, sessions = load_history([tmp_path / "h.sqlite3", DATA / "predict" / "session-s1.jsonl"])
    assert sessions == 3 and len(base) == 2 + 8
    with pytest.raises(FileNotFoundError):
        load_history([tmp_path / "nope"])
    os.mkdir(tmp_path / "empty")
    with pytest.raises(ValueError, match="empty"):
        load_history([tmp_path / "empty"])


def test_paper_format_calls() -> None:
    """The paper's files: shell calls only, their own memory split off the container's as the replay does, a
    call without a sample inside has an unknown peak, not 0."""
    by_label = {s.label: s for s in from_traces([DATA / "traces" / "paper"])}
    quirky = by_label["quirky__task-1"]  # a TodoWrite and a sub-agent's Task call are left out
    assert [o.command for o in quirky.calls] == [
        "cd /testbed && python -m pytest tests/ -x 2>&1 | tail -20",
        "pip install -e .",
        "python -m pytest tests/ -x",
    ]
    # the test run's rise above the agent; the install, inside the sub-agent's Task call, its own (none);
    # the last call has no sample inside: unknown
    assert [o.memory for o in quirky.calls] == [1_000_000_000, 0, None]
    assert [o.memory for o in by_label["retry__task-2#2"].calls] == [130_000_000, 140_000_000, 120_000_000]
    assert by_label["failed__task-4"].calls == []


def test_the_outcome_log_keeps_the_newest_and_turns_over(tmp_path, monkeypatch) -> None:
    """Outcomes are lines of a log that becomes the old log once it holds KEEP_OUTCOME_FILES: between that many
    and twice as many are on disk, the newest, none skipped, and no other file is made."""
    from agentcgroup.controller import persist

    monkeypatch.setattr(persist, "KEEP_OUTCOME_FILES", 5)
    sd = persist.StateDir(tmp_path / "state")
    for i in range(33):
        sd.save_outcome(0, Outcome("s1", f"c{i:02d}", "true", ["true"], "hybrid"))
        kept = [o.call_id for _owner, o in sd.outcomes()]
        assert min(i + 1, 5) <= len(kept) <= 10, kept
        assert kept == [f"c{j:02d}" for j in range(i + 1 - len(kept), i + 1)]  # the newest, in order
    assert sorted(p.name for p in (tmp_path / "state" / "outcomes").iterdir()) == ["log.1.jsonl", "log.jsonl"]
    sd.close()  # the successor comes after this controller let go of the state dir
    again = persist.StateDir(tmp_path / "state")  # a successor counts the log's lines: it turns over alike
    for i in range(33, 40):
        again.save_outcome(0, Outcome("s1", f"c{i:02d}", "true", ["true"], "hybrid"))
    kept = [o.call_id for _owner, o in again.outcomes()]
    assert 5 <= len(kept) <= 10 and kept == [f"c{j:02d}" for j in range(40 - len(kept), 40)]


def test_a_call_creates_and_removes_no_file_after_the_first(tmp_path, monkeypatch) -> None:
    """An ended call's record becomes a spare (no reader takes it for a record) and the next call's record is that
    file written over; the outcome is a line of the log: the same inode goes round, none is created or freed
    (ext4 pays for both), and what the files say is what was written last."""
    from agentcgroup.controller import persist

    monkeypatch.setattr(persist, "KEEP_OUTCOME_FILES", 3)
    sd = persist.StateDir(tmp_path / "state")
    outs, calls = tmp_path / "state" / "outcomes", tmp_path / "state" / "calls"
    sd.save_call("c00", {"session": "s", "argv": ["a long command line"] * 20})
    ino = (calls / "c00.json").stat().st_ino
    sd.save_outcome(0, Outcome("s", "c00", "true", ["true"], "hybrid", exit_code=0))
    assert sd.calls() == {} and [p.stat().st_ino for p in calls.iterdir()] == [ino]
    for i in range(1, 12):
        sd.save_call(f"c{i:02d}", {"session": "s", "n": i})
        assert [p.name for p in calls.iterdir()] == [f"c{i:02d}.json"]
        assert (calls / f"c{i:02d}.json").stat().st_ino == ino
        assert sd.calls() == {f"c{i:02d}": {"session": "s", "n": i}}  # cut to the new text: no stale tail
        sd.save_outcome(0, Outcome("s", f"c{i:02d}", "true", ["true"], "hybrid", exit_code=i))
        assert sd.calls() == {} and [p.stat().st_ino for p in calls.iterdir()] == [ino]
        assert {p.name for p in outs.iterdir()} <= {"log.jsonl", "log.1.jsonl"}
    assert [(o.call_id, o.exit_code) for _owner, o in sd.outcomes()][-3:] == [(f"c{i:02d}", i) for i in range(9, 12)]
    sd.close()
    assert persist.StateDir(tmp_path / "state")._spare() == calls / next(calls.iterdir()).name  # a successor's


def test_a_torn_log_line_is_skipped_and_the_next_starts_afresh(tmp_path) -> None:
    """A crash mid-append leaves a torn last line: readers skip it, and the next outcome starts a line of its
    own (not glued to the torn one). Outcome files of earlier versions are still read, first."""
    from agentcgroup.controller import persist

    sd = persist.StateDir(tmp_path)
    sd.save_outcome(0, Outcome("s", "c1", "true", ["true"], "hybrid", exit_code=1))
    with open(tmp_path / "outcomes" / "log.jsonl", "a") as f:
        f.write('{"owner":0,"ended":1.0,"outcome":{"sess')
    (tmp_path / "outcomes" / "c0.json").write_text(
        '{"owner":0,"outcome":' + __import__("json").dumps(Outcome("s", "c0", "t", ["t"], "hybrid").to_dict()) + "}"
    )
    sd.close()
    again = persist.StateDir(tmp_path)
    again.save_outcome(7, Outcome("s", "c2", "true", ["true"], "hybrid", exit_code=2))
    assert [(owner, o.call_id) for owner, o in again.outcomes()] == [(0, "c0"), (0, "c1"), (7, "c2")]


def test_an_outcome_without_a_record_and_a_failed_write(tmp_path, monkeypatch) -> None:
    """An outcome of a call never written down gets a file of its own; a write that fails leaves no file and
    says which one."""
    from agentcgroup.controller import persist

    sd = persist.StateDir(tmp_path / "state")
    sd.save_outcome(0, Outcome("s", "r1", "true", ["true"], "hybrid", refused=True))
    assert [o.call_id for _owner, o in sd.outcomes()] == ["r1"]

    def full(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(persist.os, "write", full)
    with pytest.raises(persist.StateWriteError, match=r"calls/c1\.json: No space left"):
        sd.save_call("c1", {"session": "s"})
    assert not list((tmp_path / "state" / "calls").iterdir())


def test_a_file_written_over_is_cut_to_its_new_text_without_o_trunc(tmp_path, monkeypatch) -> None:
    """A reused file is written over and cut to the new text's length (no stale tail of the longer old text),
    and never opened with O_TRUNC: on ext4 a file truncated to nothing starts writeback when it is closed."""
    from agentcgroup.controller import persist

    flags: list[int] = []
    real_open = persist.os.open

    def spy(path, flag, *args):  # type: ignore[no-untyped-def]
        flags.append(flag)
        return real_open(path, flag, *args)

    monkeypatch.setattr(persist.os, "open", spy)
    sd = persist.StateDir(tmp_path / "state")
    sd.save_call("c00", {"session": "s", "argv": ["x" * 3000]})
    sd.save_outcome(0, Outcome("s", "c00", "true", ["true"], "hybrid"))
    sd.save_call("c01", {"n": 1})  # the long record's file, reused for a short one
    assert sd.calls() == {"c01": {"n": 1}}
    assert (tmp_path / "state" / "calls" / "c01.json").read_bytes() == b'{"n":1}'
    assert flags and not any(f & os.O_TRUNC for f in flags)


def test_a_session_opened_for_one_call_creates_and_frees_no_inode(tmp_path) -> None:
    """What `agentcg run` through the daemon does a call: a session file written, a call recorded and ended, the
    session file dropped. After the first round the same two inodes go round (spares written over), and the
    files read back are what was written last."""
    from agentcgroup.controller import persist

    sd = persist.StateDir(tmp_path)

    def inodes() -> set[int]:
        return {p.stat().st_ino for sub in ("sessions", "calls") for p in (tmp_path / sub).iterdir()}

    def one_call(i: int) -> None:
        sd.save_session(f"run{i}", {"uid": 0, "priority": "normal", "limits": {"memory_max": i}})
        assert sd.sessions() == {f"run{i}": {"uid": 0, "priority": "normal", "limits": {"memory_max": i}}}
        sd.save_call(f"c{i:02d}", {"session": f"run{i}"})
        sd.save_outcome(0, Outcome(f"run{i}", f"c{i:02d}", "true", ["true"], "hybrid"))
        sd.drop_session(f"run{i}")
        assert sd.sessions() == {} and sd.calls() == {}

    one_call(0)
    first = inodes()
    assert len(first) == 2
    for i in range(1, 6):
        one_call(i)
        assert inodes() == first


def test_a_state_dir_serves_one_controller_at_a_time(tmp_path) -> None:
    """A second daemon given a live one's state dir wiped its session and call records (it took them for
    ended): the second one is refused, naming the dir, and reads or writes nothing; once the first lets go (or
    dies), a successor may use it."""
    from agentcgroup.controller import persist
    from agentcgroup.errors import AgentCgroupError

    sd = persist.StateDir(tmp_path / "state")
    sd.save_outcome(0, Outcome("s", "c1", "true", ["true"], "hybrid"))
    before = sorted(p.name for p in (tmp_path / "state").rglob("*"))
    with pytest.raises(AgentCgroupError, match=f"another agentcg daemon uses the state dir {tmp_path}/state"):
        persist.StateDir(tmp_path / "state")
    assert sorted(p.name for p in (tmp_path / "state").rglob("*")) == before
    sd.close()
    again = persist.StateDir(tmp_path / "state")
    assert [o.call_id for _owner, o in again.outcomes()] == ["c1"]
    again.close()
