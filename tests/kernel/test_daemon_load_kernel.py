"""benchmarks/daemon_load.py's light client (every client a coroutine of one event loop) against a real daemon:
its calls run and come back right, and a call the daemon refuses is counted as an error."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from tests.kernel.daemon_fixtures import start_daemon, stop_daemon

pytestmark = [pytest.mark.kernel]


def _load_bench() -> Any:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "daemon_load.py"
    spec = importlib.util.spec_from_file_location("daemon_load", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bench = _load_bench()


def test_the_light_client_runs_real_calls_and_counts_refused_ones(tmp_path, root_name) -> None:
    d = start_daemon(tmp_path, root_name)
    try:
        line = bench.load(d.sock, d.pid, 3, 4, warmup=1, root=root_name)
        fields = dict(kv.split("=", 1) for kv in line.split())
        assert fields["errors"] == "0" and fields["clients"] == "3", line
        assert float(fields["calls_per_s"]) > 0 and float(fields["client_cpu_ms_per_call"]) >= 0, line
        # no such session: the daemon answers each call with an error, and each is counted
        tally = bench.drive_async(d.sock, ["never-opened"], 3, 0, (0.0, 0.0), lambda: None)
        assert tally.errors == 3 and len(tally.lat) == 3
    finally:
        stop_daemon(d, root_name)
