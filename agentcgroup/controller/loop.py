"""The event loop: it only waits (epoll) and dispatches (fd handlers, timers, calls from other threads).

Everything the controller decides runs on this loop's thread; other threads hand work over with
:meth:`Loop.call_soon_threadsafe`. Kernel notifications arrive as fds: pidfds (a process ended), eventfds (v1
memory thresholds and OOM), ``memory.events``/``cgroup.events`` (v2, ``POLLPRI``), PSI triggers (``POLLPRI``).
"""

from __future__ import annotations

import heapq
import itertools
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from .._lazy import lazy_logger

log = lazy_logger("agentcgroup")

#: a handler that holds the loop longer than this is logged (event=loop-slow): every other call waits for it
SLOW_S = 0.1
#: the longest single wait: epoll takes at most ~24.8 days (2**31 ms); a timer further out (a 720 h timeout)
#: is simply waited for in several steps, so durations of any length work
MAX_WAIT_S = 3600.0

READ = select.EPOLLIN


class Timer:
    __slots__ = ("callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[[], Any]) -> None:
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self) -> None:
        self.cancelled = True


class Loop:
    def __init__(self) -> None:
        self._ep = select.epoll()
        self._handlers: dict[int, Callable[[int, int], Any]] = {}
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._soon: deque[Callable[[], Any]] = deque()
        self._woken = False  # the wake-up fd was written since the loop last looked at _soon
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._ep.register(self._wake, READ)
        self._stopping = False
        self.thread: threading.Thread | None = None

    # --- registration (loop thread only, or before the loop runs) ---------------------------------------
    def add(self, fd: int, events: int, handler: Callable[[int, int], Any]) -> None:
        self._ep.register(fd, events)
        self._handlers[fd] = handler

    def remove(self, fd: int) -> None:
        if self._handlers.pop(fd, None) is not None:
            try:
                self._ep.unregister(fd)
            except (OSError, ValueError):
                pass

    def call_at(self, when: float, callback: Callable[[], Any]) -> Timer:
        t = Timer(when, callback)
        heapq.heappush(self._timers, (when, next(self._seq), t))
        return t

    def call_later(self, delay: float, callback: Callable[[], Any]) -> Timer:
        return self.call_at(time.monotonic() + delay, callback)

    # --- from any thread ------------------------------------------------------------------------------
    def call_soon_threadsafe(self, callback: Callable[[], Any]) -> None:
        """Run ``callback`` on the loop's next turn. The wake-up fd is written once until the loop takes the
        callbacks handed over (a write, a wake-up and a GIL hand-off less for each one after the first): the
        loop clears the flag before it looks at them, so a callback appended after that writes again."""
        self._soon.append(callback)
        if self.thread is threading.current_thread():
            return  # the loop's own thread: this turn runs what is queued before it waits again, no wake-up needed
        if not self._woken:
            self._woken = True
            os.eventfd_write(self._wake, 1)

    def in_loop(self) -> bool:
        return self.thread is threading.current_thread()

    def stop(self) -> None:
        self._stopping = True
        os.eventfd_write(self._wake, 1)

    # --- running ----------------------------------------------------------------------------------------
    def start(self, name: str = "agentcg-loop") -> None:
        self.thread = threading.Thread(target=self.run, name=name, daemon=True)
        self.thread.start()

    def run(self) -> None:
        if self.thread is None:
            self.thread = threading.current_thread()
        while not self._stopping:
            try:
                self.run_once()
            except Exception:  # in the wait itself (handlers are guarded): log it and serve on
                log.exception("event=loop-error where=wait")
                time.sleep(0.01)  # never a busy loop on a persistent fault

    def run_once(self, max_wait: float | None = None) -> None:
        timeout = MAX_WAIT_S
        if self._soon:
            timeout = 0.0
        elif self._timers:
            timeout = min(MAX_WAIT_S, max(0.0, self._timers[0][0] - time.monotonic()))
        if max_wait is not None:
            timeout = min(timeout, max_wait)
        events = self._ep.poll(timeout)
        # the wake-up fd read first, then the flag cleared, then _soon looked at: a callback appended after the
        # clear writes again (the next poll wakes); one whose write the read took is run in this turn
        if any(fd == self._wake for fd, _ in events):
            try:
                os.eventfd_read(self._wake)
            except BlockingIOError:
                pass
        self._woken = False
        # what other threads handed over first (a worker's result, a call's completion): it finishes work
        # already under way, which should not wait behind this turn's new input (a flood of it, in a daemon)
        for _ in range(len(self._soon)):
            self._guard(self._soon.popleft())
        for fd, ev in events:
            if fd == self._wake:
                continue
            handler = self._handlers.get(fd)
            if handler is not None:
                self._guard(handler, fd, ev)
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, t = heapq.heappop(self._timers)
            if not t.cancelled:
                self._guard(t.callback)
        while self._soon:
            self._guard(self._soon.popleft())

    @staticmethod
    def _guard(fn: Callable[..., Any], *args: Any) -> None:
        """Run a handler; an exception is logged and the loop serves on (handlers of a call catch their own,
        to fail just that call: see controller.dispatch)."""
        t0 = time.monotonic()
        try:
            fn(*args)
        except Exception:  # a bug in one handler must not stop the controller
            log.exception("event=loop-error handler=%r", fn)
        took = time.monotonic() - t0
        if took > SLOW_S:
            log.info("event=loop-slow handler=%s took=%.3f", getattr(fn, "__qualname__", fn), took)

    def close(self) -> None:
        self._ep.close()
        os.close(self._wake)
