"""What idle sessions and connections cost the daemon: a few fds each, no thread, no helper process; spare
leaves (with their stubs) only for the sessions that make calls."""

from __future__ import annotations

import os
import socket

import pytest

from agentcgroup.daemon.client import Client
from agentcgroup.spawn import STUBS
from tests.kernel.daemon_fixtures import start_daemon, stop_daemon, wait_for

pytestmark = [pytest.mark.kernel]


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(x) for x in f.read().split()]
    return out


def test_idle_sessions_and_connections_hold_no_thread_or_helper(tmp_path, root_name) -> None:
    d = start_daemon(tmp_path, root_name)
    try:
        c = Client(d.sock)
        c.open_session("warmup")  # the root, the backends' first handles, the worker threads
        c.run("warmup", ["true"])
        c.close_session("warmup")
        fds0, threads0 = d.fd_count(), d.threads()
        n = 40
        for i in range(n):
            c.open_session(f"idle{i}")
        assert d.fd_count() - fds0 <= 4 * n, "more than 4 fds per idle session"
        assert d.threads() < threads0 + n // 4, "a thread per idle session"  # (the worker pool may grow a little)
        assert _children(d.pid) == [], "a helper process per idle session"

        conns = []
        for _ in range(n):
            s = socket.socket(socket.AF_UNIX)
            s.connect(d.sock)
            conns.append(s)
        wait_for(lambda: d.fd_count() >= fds0 + n, "the connections accepted")
        assert d.threads() < threads0 + n // 4, "a thread per idle connection"
        for s in conns:
            s.close()

        # a session that makes calls gets its spares (stubs placed in advance) from its second call on
        assert c.run("idle0", ["true"]).exit_code == 0
        assert _children(d.pid) == []
        assert c.run("idle0", ["true"]).exit_code == 0
        if STUBS:
            wait_for(lambda: len(_children(d.pid)) >= 1, "the busy session's spare leaves")
        assert c.run("idle0", ["true"]).exit_code == 0
        for i in range(n):
            c.close_session(f"idle{i}")
        wait_for(lambda: _children(d.pid) == [], "the spares dismissed with their session")
    finally:
        stop_daemon(d, root_name)
