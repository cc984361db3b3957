"""The daemon's closer thread: refused connections are closed off the loop's thread, and never pile up."""

from __future__ import annotations

import os
import threading
import time

from agentcgroup.daemon import closer as closer_mod
from agentcgroup.daemon.closer import Closer


def _open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def test_handed_over_fds_are_closed_and_too_many_are_closed_at_once(monkeypatch) -> None:
    gate = threading.Event()
    real = closer_mod._close

    def slow(fds: list[int]) -> None:  # the thread is busy until the gate opens
        gate.wait(5)
        real(fds)

    monkeypatch.setattr(closer_mod, "_close", slow)
    c = Closer(most=4)
    try:
        pipes = [os.pipe() for _ in range(3)]
        first = [fd for p in pipes[:2] for fd in p]  # 4: fills its room
        c.close_later(first)
        deadline = time.monotonic() + 5
        while c.pending != 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert c.pending == 4 and all(_open(fd) for fd in first)
        monkeypatch.setattr(closer_mod, "_close", real)  # what is over the room is closed here, at once
        c.close_later(list(pipes[2]))
        assert not any(_open(fd) for fd in pipes[2])
        gate.set()
        deadline = time.monotonic() + 5
        while c.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        assert c.pending == 0 and not any(_open(fd) for fd in first)
    finally:
        gate.set()
        c.stop()


def test_stop_closes_what_waits() -> None:
    c = Closer()
    r, w = os.pipe()
    c.close_later([r, w])
    c.stop()
    assert not _open(r) and not _open(w)
