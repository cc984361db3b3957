"""Closing refused connections off the loop's thread.

A connection refused unread (its uid over its request rate) costs the loop an accept and a close; the close is
most of it when the peer queued descriptors on it (the kernel releases each one: ~30 us for an fd flood's
connection, against ~6 us for the accept). A client that connects while such a flood is refused waits in the
listening socket's queue behind every connection of it, so the loop hands the closes to this thread and only
accepts: the queue drains several times faster. The thread runs at a low priority (:data:`NICE`), and what
waits for it is bounded (:data:`MAX_PENDING`); past it, the loop closes at once itself.
"""

from __future__ import annotations

import os
import queue
import threading

#: descriptors handed over and not yet closed, at most (each holds an entry of the daemon's fd table meanwhile)
MAX_PENDING = 128
#: the closer thread's nice value (what it does is cleanup: the loop and the calls' threads come first)
NICE = 10


class Closer:
    def __init__(self, most: int = MAX_PENDING) -> None:
        self.most = most
        self._q: queue.SimpleQueue[list[int] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending = 0
        self._thread = threading.Thread(target=self._run, name="agentcg-closer", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        return self._pending

    def close_later(self, fds: list[int]) -> None:
        """Close ``fds`` (they are ours from here); at once, on this thread, if too many wait already."""
        with self._lock:
            room = self._thread.is_alive() and self._pending + len(fds) <= self.most
            if room:
                self._pending += len(fds)
        if room:
            self._q.put(fds)
        else:
            _close(fds)

    def stop(self) -> None:
        """Close what waits, then end the thread."""
        self._q.put(None)
        self._thread.join(5)

    def _run(self) -> None:
        try:  # Linux: a thread's own nice value; the kernel's share of a flood waits for the calls' work
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
        except OSError:
            pass
        while True:
            fds = self._q.get()
            if fds is None:
                return
            _close(fds)
            with self._lock:
                self._pending -= len(fds)


def _close_each(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


try:  # the C helper closes a whole batch with the interpreter released once (os.close takes it back each time)
    from .._spawn import close_fds as _close
except ImportError:  # no compiler at install
    _close = _close_each
