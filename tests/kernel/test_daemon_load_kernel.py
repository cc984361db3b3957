"""benchmarks/daemon_load.py's light client (every client a coroutine of one event loop) against a real daemon:
its calls run and come back right, and a call the daemon refuses is counted as an error."""

from __future__ import annotations

import importlib.util
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agentcgroup.daemon.client import Client
from tests.kernel.daemon_fixtures import start_daemon, stop_daemon

pytestmark = [pytest.mark.kernel, pytest.mark.v2]


def _load_bench() -> Any:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "daemon_load.py"
    spec = importlib.util.spec_from_file_location("daemon_load", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bench = _load_bench()


def test_the_light_client_runs_real_calls_and_counts_refused_ones(tmp_path, root_name, capsys) -> None:
    d = start_daemon(tmp_path, root_name)
    try:
        line = bench.load(d.sock, d.pid, 3, 4, warmup=1, root=root_name)
        fields = dict(kv.split("=", 1) for kv in line.split())
        assert fields["errors"] == "0" and fields["clients"] == "3", line
        assert float(fields["calls_per_s"]) > 0 and float(fields["client_cpu_ms_per_call"]) >= 0, line
        err = capsys.readouterr().err
        assert "CPU a call: daemon" in err and "latency, ms:" in err and "the later calls" in err, err
        # no such session: the daemon answers each call with an error, and each is counted
        tally = bench.drive_async(d.sock, ["never-opened"], 3, 0, (0.0, 0.0), lambda: None)
        assert tally.errors == 3 and len(tally.lat) == 3
    finally:
        stop_daemon(d, root_name)


def test_the_probe_sees_the_daemons_threads_and_its_commands(tmp_path, root_name) -> None:
    """--probe: the daemon's threads are sampled, and so is each command it runs, by state (a stopped one: T; a
    warm spare's stub would be S)."""
    d = start_daemon(tmp_path, root_name)
    try:
        c = Client(d.sock)
        c.open_session("s")
        call = threading.Thread(target=c.run, args=("s", ["sh", "-c", "kill -STOP $$"]))
        call.start()
        time.sleep(0.2)
        probe = bench.Probe(d.pid, every=0.01)
        probe.start()
        time.sleep(0.2)
        text = probe.stop()
        assert probe.samples >= 5, text
        assert sum(probe.threads.values()) >= probe.samples, text  # every sample saw the daemon's threads
        assert probe.children["T"] >= probe.samples - 1, text  # the stopped command, in each sample
        assert "children by state T:" in text and "threads by wait" in text
        c.close_session("s")  # kills it
        call.join(10)
        assert not call.is_alive()
    finally:
        stop_daemon(d, root_name)
