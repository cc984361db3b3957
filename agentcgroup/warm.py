"""A session's spare tool-call leaves, each holding a stub that has already moved itself in.

Moving a process between cgroups costs an RCU grace period after a quiet spell (6-16 ms measured on a 2-CPU
VM), and agents' tool calls come seconds apart, so every call would pay it. The pool pays it in the
background: a thread keeps ``size`` spare leaves ready (created in every hierarchy, so any limit can be set
later without moving anything), each with a :class:`~agentcgroup.stub.Stub` inside, and removes the leaves
of finished calls. A call takes a spare, sets its limits and makes the stub exec the command.
"""

from __future__ import annotations

import collections
import os
import threading
from typing import TYPE_CHECKING

from ._lazy import lazy_logger
from .backends.base import Cgroup, Manager
from .errors import AgentCgroupError
from .spawn import STUBS

if TYPE_CHECKING:
    from .stub import Stub  # imported when a spare is made: a one-call process (warm=0) never needs it

log = lazy_logger("agentcgroup")

DEBOUNCE_S = 0.005


def new_call_id() -> str:
    return "c" + os.urandom(5).hex()


class WarmPool:
    def __init__(self, manager: Manager, tools_path: tuple[str, ...], size: int = 1) -> None:
        self.manager, self.tools_path, self.size = manager, tools_path, size
        self._ready: collections.deque[tuple[Cgroup, Stub]] = collections.deque()
        self._reap: collections.deque[Cgroup] = collections.deque()
        self._cv = threading.Condition()
        self._closed = False
        self._failures = 0
        self._thread = threading.Thread(target=self._loop, name="agentcg-warm", daemon=True)
        self._thread.start()

    @staticmethod
    def supported(manager: Manager) -> bool:
        return STUBS and manager.preplace

    def take(self) -> tuple[Cgroup, Stub] | None:
        """A ready spare (leaf, stub), or None if none is ready right now (never waits)."""
        with self._cv:
            item = self._ready.popleft() if self._ready else None
            self._cv.notify()
        return item

    def reap(self, cg: Cgroup) -> None:
        """Remove ``cg`` (a finished, empty call leaf) in the background."""
        with self._cv:
            if self._closed:
                self.manager.destroy(cg)
                return
            self._reap.append(cg)
            self._cv.notify()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._closed and not self._reap and (len(self._ready) >= self.size or self._failures > 3):
                    self._cv.wait()
                if self._closed:
                    return
                if self._ready:
                    # only finished leaves to remove: let the caller of the call that just ended have the
                    # interpreter first (the GIL would make it wait for this thread's work)
                    self._cv.wait(DEBOUNCE_S)
                if self._closed:
                    return
                reap = list(self._reap)
                self._reap.clear()
                need = len(self._ready) < self.size and self._failures <= 3
            for cg in reap:
                try:
                    self.manager.destroy(cg)
                except AgentCgroupError as exc:
                    log.warning("event=reap-failed call=%s reason=%r", cg.name, str(exc))
            if need:
                try:
                    item = self._make()
                except (AgentCgroupError, OSError) as exc:
                    self._failures += 1
                    log.warning("event=warm-failed reason=%r", str(exc))
                    continue
                with self._cv:
                    if self._closed:
                        item[1].close()
                        self.manager.destroy(item[0])
                        return
                    self._ready.append(item)

    def _make(self) -> tuple[Cgroup, Stub]:
        m = self.manager
        cg = m.create((*self.tools_path, new_call_id()), exist_ok=False, full=True)
        try:
            from .stub import Stub

            stub = Stub()
        except BaseException:
            m.destroy(cg)
            raise
        try:
            fds = m.open_placement(cg)
            try:
                stub.place(fds)
            finally:
                for fd in fds:
                    os.close(fd)
            m.stats(cg)  # opens the control files the call's outcome will read: preads only, later
        except BaseException:
            stub.close()
            m.destroy(cg)
            raise
        return cg, stub

    def close(self) -> None:
        """Stop the thread; dismiss spare stubs; remove every leaf still pending."""
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join()
        while self._ready:
            cg, stub = self._ready.popleft()
            stub.close()
            self.manager.destroy(cg)
        while self._reap:
            self.manager.destroy(self._reap.popleft())
