"""``agentcg daemon --predict`` (issue 16): through the daemon, a call that declares nothing but is predicted,
from its uid's earlier calls, to overflow its session's budget beside what runs already is queued, not started
into a kill; and each uid is predicted from its own calls only (its history apart from every other uid's)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from agentcgroup.daemon.client import Client
from tests.conftest import SLOW
from tests.kernel.daemon_fixtures import make_tenants, remove_tenants, start_daemon, stop_daemon
from tests.kernel.test_predicted_admission_kernel import HOLD, JOB, MiB  # the same call, through the daemon

pytestmark = [pytest.mark.kernel, pytest.mark.v2]


def _rows(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as c:
        return int(c.execute("select count(*) from observations").fetchone()[0])


def test_the_daemon_queues_a_call_predicted_to_overflow_its_session(tmp_path, root_name) -> None:
    d = start_daemon(tmp_path, root_name, "--predict", "--admission-wait", f"{60 * SLOW:.0f}s")
    try:
        c = Client(d.sock)
        c.open_session("s", limits={"memory": 400 * MiB})
        first = c.run("s", JOB)  # no history: started at once; it teaches the history
        assert first.exit_code == 0 and first.queued_s < 0.5, first
        outs: dict[str, object] = {}
        started = threading.Event()

        def run(key: str) -> None:
            outs[key] = Client(d.sock).run("s", JOB, on_started=lambda _id: started.set())

        hold = threading.Thread(target=run, args=("hold",))
        hold.start()
        # admitted and started before the second is asked for (a fixed pause let a slow thread's request come
        # second: the hold call was then the one queued)
        assert started.wait(60 * SLOW), "the first call did not start"
        second = threading.Thread(target=run, args=("second",))
        second.start()
        hold.join(120 * SLOW)
        second.join(120 * SLOW)
        out1, out2 = outs["hold"], outs["second"]
        assert out1.exit_code == 0 and out1.killed_by is None, out1
        assert out2.exit_code == 0 and out2.killed_by is None, out2  # queued, not killed
        assert out2.queued_s >= HOLD * 0.3, out2
        assert out2.feedback is not None and "queued" in out2.feedback and "predicted peak" in out2.feedback
        c.close_session("s")
    finally:
        stop_daemon(d, root_name)
    assert _rows(Path(d.state) / "history.sqlite3") == 3  # root's calls, in root's store


@pytest.mark.host_only(reason="which uid's history a call is learned into: the same on every cgroup version")
def test_each_uid_learns_into_its_own_history(tmp_path, root_name) -> None:
    (tenant,) = make_tenants(1)
    d = start_daemon(tmp_path, root_name, "--predict")
    try:
        code = (
            "import sys; from agentcgroup.daemon.client import Client; c = Client(sys.argv[1]); "
            "c.open_session('t', limits={'memory': 256 << 20}); "
            "o = c.run('t', ['/bin/sh', '-c', 'exit 0']); c.close_session('t'); print(o.exit_code)"
        )
        r = tenant.run(code, d.sock)
        assert r.returncode == 0 and r.stdout.strip() == "0", r.stderr[-2000:]
    finally:
        stop_daemon(d, root_name)
        remove_tenants([tenant])
    state = Path(d.state)
    own = state / "history" / f"uid-{tenant.uid}"
    assert _rows(own / "history.sqlite3") == 1
    assert _rows(state / "history.sqlite3") == 0  # nothing of the tenant's in root's history
    assert (state / "history").stat().st_mode & 0o777 == 0o700 and own.stat().st_uid == 0  # the tenant cannot read it
