"""The loop's wake-up fd: written once for callbacks handed over between two looks of the loop, and no callback
handed over from another thread is ever left waiting (a lost wake-up would hold a call's outcome)."""

from __future__ import annotations

import threading
import time

from agentcgroup.controller import loop as loop_mod
from agentcgroup.controller.loop import Loop


def test_callbacks_handed_over_before_the_loop_looks_wake_it_once(monkeypatch) -> None:
    writes: list[int] = []
    real = loop_mod.os.eventfd_write
    monkeypatch.setattr(loop_mod.os, "eventfd_write", lambda fd, n: (writes.append(n), real(fd, n)))
    lp = Loop()
    try:
        ran: list[int] = []
        for i in range(5):
            lp.call_soon_threadsafe(lambda i=i: ran.append(i))
        assert len(writes) == 1
        lp.run_once(0)
        assert ran == [0, 1, 2, 3, 4]
        lp.call_soon_threadsafe(lambda: ran.append(5))  # after the loop looked: a write again
        assert len(writes) == 2
        lp.run_once(0)
        assert ran[-1] == 5
        lp.run_once(0)  # the wake-up fd is drained: a turn with nothing to do does not spin
    finally:
        lp.close()


def test_no_callback_from_other_threads_is_left_waiting() -> None:
    lp = Loop()
    n_threads, each = 4, 2000
    done = threading.Event()
    count = [0]

    def one() -> None:
        count[0] += 1
        if count[0] == n_threads * each:
            done.set()

    def feed() -> None:
        for _ in range(each):
            lp.call_soon_threadsafe(one)

    ts = [threading.Thread(target=feed) for _ in range(n_threads)]
    for t in ts:
        t.start()
    try:
        while not done.is_set():
            t0 = time.monotonic()
            lp.run_once(5.0)  # a lost wake-up: the poll waits out the 5 s with callbacks queued
            assert time.monotonic() - t0 < 2.0, f"{len(lp._soon)} callbacks left waiting"
    finally:
        for t in ts:
            t.join()
        lp.close()
    assert count[0] == n_threads * each


def test_a_callback_handed_over_during_a_turn_does_not_silence_the_next() -> None:
    """A callback run by the loop hands over another (as a worker's result does while the loop drains): the
    wake-up that came with it must not leave the flag set with the fd drained, or the next callback from
    another thread would wait out the whole poll."""
    lp = Loop()
    ran: list[str] = []
    try:
        lp.call_soon_threadsafe(lambda: (ran.append("x1"), lp.call_soon_threadsafe(lambda: ran.append("x2"))))
        lp.run_once(0)
        assert ran == ["x1", "x2"]  # both in one turn; the next poll must still hear a new hand-over
        timer = threading.Timer(0.1, lambda: lp.call_soon_threadsafe(lambda: ran.append("x3")))
        timer.start()
        t0 = time.monotonic()
        while "x3" not in ran and time.monotonic() - t0 < 5:
            lp.run_once(3.0)
        timer.join()
        assert "x3" in ran and time.monotonic() - t0 < 1.5, "the wake-up was lost: the loop waited out its poll"
    finally:
        lp.close()


def test_a_callback_handed_over_on_the_loops_own_thread_runs_this_turn_without_a_wake_up(monkeypatch) -> None:
    """The daemon's loop hands itself work (a connection's next turn after a reply): no eventfd write, no
    extra turn; it runs before the loop waits again, even with a long wait ahead."""
    writes: list[int] = []
    real = loop_mod.os.eventfd_write
    monkeypatch.setattr(loop_mod.os, "eventfd_write", lambda fd, n: (writes.append(n), real(fd, n)))
    lp = Loop()
    lp.thread = threading.current_thread()
    ran: list[str] = []
    try:
        lp.call_soon_threadsafe(lambda: (ran.append("first"), lp.call_soon_threadsafe(lambda: ran.append("second"))))
        assert writes == []  # on the loop's own thread
        t0 = time.monotonic()
        lp.run_once(5.0)  # something queued: no wait at all
        assert ran == ["first", "second"]  # the one it handed itself ran in the same turn
        assert writes == []
        assert time.monotonic() - t0 < 1.0
        woken = []
        t = threading.Thread(target=lambda: lp.call_soon_threadsafe(lambda: woken.append(1)))
        t.start()
        t.join()
        assert writes == [1]  # from another thread: written, as before
        lp.run_once(5.0)
        assert woken == [1]
    finally:
        lp.close()
