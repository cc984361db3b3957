"""A session's spare tool-call leaves, each holding a stub that has already moved itself in.

Moving a process between cgroups costs an RCU grace period after a quiet spell (6-16 ms measured on a 2-CPU
VM), and agents' tool calls come seconds apart, so every call would pay it. The pool pays it in the
background: a thread keeps ``size`` spare leaves ready, each with a :class:`~agentcgroup.stub.Stub` inside,
and removes the leaves of finished calls. A call takes a spare, sets its limits and makes the stub exec the
command. One thread serves every pool of the process (:class:`_Refiller`).

A spare is created in the hierarchies that the calls which took this pool's spares needed (every one until a
call has been seen): on a v1 host a leaf in a hierarchy no call uses (``cpu``, for calls without a CPU limit)
cost a mkdir, an rmdir and a move a call. A call that needs a hierarchy its spare lacks has its stub moved
there before it execs (``set_limits``), and the pool's later spares are made in it.

The pool steps aside while calls come back to back. A spare costs the process more CPU than the direct spawn
it replaces (~3.0 against ~2.1 ms of the daemon's CPU a call, one client running ``/bin/true`` in a row,
docs/performance.md "Fifth pass"), and it only saves anything after a quiet spell: measured through the daemon
with no pool, a direct spawn's p50 was ~4 ms while calls came at most 20 ms apart and 13-14 ms from 50 ms
apart (the move's RCU grace period), the same as with a spare below 20 ms. So spares are made only once no call
of the process has started for the pool's ``quiet`` seconds (:data:`QUIET_S`, 20 ms): under back-to-back calls,
whether one session's or fifty sessions' (the grace period is the kernel's, for every cgroup move of the host,
so fifty sessions each calling every 150 ms keep it short as one calling every 3 ms does), calls use the spares
left and then spawn directly; the pool fills again in the first pause, so an agent's calls seconds apart still
find one ready.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from typing import TYPE_CHECKING

from ._lazy import lazy_logger
from .backends.base import Cgroup, Manager
from .errors import AgentCgroupError
from .limits import Limits
from .spawn import STUBS
from .threadnice import at_base

if TYPE_CHECKING:
    from .stub import Stub  # imported when a spare is made: a one-call process (warm=0) never needs it

log = lazy_logger("agentcgroup")

DEBOUNCE_S = 0.005
#: finished leaves of a pool waiting for the refiller at most (each holds a few fds until it is removed)
MAX_DEFERRED = 8
#: spares are made only once no call of the process has started for this long (seconds; the module's docstring)
QUIET_S = 0.02


def new_call_id() -> str:
    return "c" + os.urandom(5).hex()


class _Refiller:
    """The one thread that makes every pool's spares and removes their finished leaves.

    A thread per pool made fifty sessions' worth of threads contend for the interpreter (futex and scheduler
    time was a quarter of the daemon's CPU with 50 busy sessions); one thread serves them all, spares first
    (a call may be waiting to take one), then the finished leaves. It runs while some pool is open."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.cv = threading.Condition()
        self.pools: set[WarmPool] = set()
        self.thread: threading.Thread | None = None
        #: making spares right now: a stub's move into its leaf may hold the kernel's cgroup lock through an RCU
        #: grace period, and every mkdir or rmdir of any cgroup waits for it meanwhile
        self.making = False
        #: when the process's last call (of any pool) started (time.monotonic()): spares wait for a quiet spell
        self.last_start = -1e9
        #: the thread waits with a deadline: for a quiet spell before making some pool's spare
        self.timed = False

    def started(self, quiet: float) -> None:
        """A call took (or looked for) a spare now. Wakes the thread, unless it is already waiting for a quiet
        spell that this call only postpones (calls back to back: no wake-up a call)."""
        with self.cv:
            now = time.monotonic()
            busy = now - self.last_start < quiet
            self.last_start = now
            if not (busy and self.timed):
                self.cv.notify()

    def hold(self, quiet: float) -> float:
        """Seconds before a pool whose ``quiet`` is this may make a spare (<= 0: now)."""
        return quiet - (time.monotonic() - self.last_start)

    def add(self, pool: WarmPool) -> None:
        with self.cv:
            self.pools.add(pool)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._loop, name="agentcg-warm", daemon=True)
                self.thread.start()
            self.cv.notify()

    def discard(self, pool: WarmPool) -> None:
        with self.cv:
            self.pools.discard(pool)
            self.cv.notify()

    def wake(self) -> None:
        with self.cv:
            self.cv.notify()

    def _loop(self) -> None:
        at_base()  # it forks the stubs that calls' commands are exec'ed from: never at a raised priority
        while True:
            with self.cv:
                while True:
                    if not self.pools:
                        self.thread = None
                        return
                    spares, wait = [], None
                    for p in self.pools:
                        if p.needs_spare():
                            hold = self.hold(p.quiet)
                            if hold <= 0:
                                spares.append(p)
                            else:  # calls are coming back to back: look again once they may have paused
                                wait = hold if wait is None else min(wait, hold)
                    reaps = [p for p in self.pools if p.has_reaps()]
                    if spares or reaps:
                        break
                    self.timed = wait is not None
                    try:
                        self.cv.wait(wait)
                    finally:
                        self.timed = False
                if not spares:
                    # only finished leaves to remove: let the caller of the call that just ended have the
                    # interpreter first (the GIL would make it wait for this thread's work)
                    self.cv.wait(DEBOUNCE_S)
            self.making = bool(spares)
            try:
                for pool in spares:
                    pool.refill()
            finally:
                self.making = False
            for pool in reaps:
                pool.reap_pending()


_REFILLER = _Refiller()
# a forked child has no refiller thread (nor the pools' stubs): it starts afresh
os.register_at_fork(after_in_child=_REFILLER.reset)


class WarmPool:
    """``size`` spares of one session, made once no call has started for ``quiet`` seconds (0: at once)."""

    def __init__(self, manager: Manager, tools_path: tuple[str, ...], size: int = 1, quiet: float = QUIET_S) -> None:
        self.manager, self.tools_path, self.size, self.quiet = manager, tools_path, size, quiet
        #: spares made, calls that took one, calls that found none ready (and spawned directly)
        self.made = self.taken = self.missed = 0
        self._ready: collections.deque[tuple[Cgroup, Stub]] = collections.deque()
        self._reap: collections.deque[Cgroup] = collections.deque()
        self._cv = threading.Condition()
        self._closed = False
        self._busy = False  # the refiller is working for this pool: close waits for it
        self._failures = 0
        #: the limits of the calls that took a spare, merged: their spares' hierarchies (None: every one)
        self._shape: Limits | None = None
        _REFILLER.add(self)

    @staticmethod
    def supported(manager: Manager) -> bool:
        return STUBS and manager.preplace

    def take(self, limits: Limits | None = None) -> tuple[Cgroup, Stub] | None:
        """A ready spare (leaf, stub), or None if none is ready right now (never waits). ``limits``: the call's,
        so that the next spares are made in the hierarchies they need."""
        with self._cv:
            if limits is not None:
                self._shape = limits if self._shape is None else self._shape.merged(limits)
            item = self._ready.popleft() if self._ready else None
            if item is None:
                self.missed += 1
            else:
                self.taken += 1
        _REFILLER.started(self.quiet)
        return item

    @property
    def ready(self) -> int:
        """Spares ready to be taken right now."""
        return len(self._ready)

    @property
    def aside(self) -> bool:
        """Whether the pool is stepping aside: short of spares, and waiting for calls to pause before it makes
        one (calls meanwhile spawn directly)."""
        return len(self._ready) < self.size and not self._closed and _REFILLER.hold(self.quiet) > 0

    def defer_reap(self, cg: Cgroup) -> bool:
        """Hand ``cg`` (a finished call's leaf) to the refiller if it is making a spare right now, so that the
        call's outcome does not wait for the kernel's cgroup lock: after a quiet spell, a stub's move into its
        leaf holds that lock through an RCU grace period (10-30 ms on a busy 2-CPU host), and an rmdir waits
        all that time. True if taken (the refiller removes it right after the spare); at most
        :data:`MAX_DEFERRED` wait per pool (past it, the caller removes the leaf itself)."""
        with self._cv:
            if self._closed or not _REFILLER.making or len(self._reap) >= MAX_DEFERRED:
                return False
            self._reap.append(cg)
        _REFILLER.wake()
        return True

    def reap(self, cg: Cgroup) -> None:
        """Remove ``cg`` (a finished, empty call leaf) in the background."""
        with self._cv:
            if self._closed:
                self.manager.destroy(cg)
                return
            self._reap.append(cg)
        _REFILLER.wake()

    # --- the refiller's side -------------------------------------------------------------------------------
    def needs_spare(self) -> bool:
        return not self._closed and len(self._ready) < self.size and self._failures <= 3

    def has_reaps(self) -> bool:
        return bool(self._reap)

    def _begin(self) -> bool:
        with self._cv:
            if self._closed:
                return False
            self._busy = True
            return True

    def _end(self) -> None:
        with self._cv:
            self._busy = False
            self._cv.notify_all()

    def refill(self) -> None:
        """Make spares until ``size`` are ready (on the refiller's thread)."""
        if not self._begin():
            return
        try:
            while self.needs_spare() and _REFILLER.hold(self.quiet) <= 0:  # a call came: it may be the first of many
                try:
                    item = self._make()
                except (AgentCgroupError, OSError) as exc:
                    self._failures += 1
                    log.warning("event=warm-failed reason=%r", str(exc))
                    continue
                with self._cv:
                    self._ready.append(item)  # if closed meanwhile, close() removes it
                    self.made += 1
        finally:
            self._end()

    def reap_pending(self) -> None:
        """Remove the finished leaves handed over so far (on the refiller's thread)."""
        if not self._begin():
            return
        try:
            with self._cv:
                reap = list(self._reap)
                self._reap.clear()
            for cg in reap:
                try:
                    self.manager.destroy(cg)
                except AgentCgroupError as exc:
                    log.warning("event=reap-failed call=%s reason=%r", cg.name, str(exc))
        finally:
            self._end()

    def _make(self) -> tuple[Cgroup, Stub]:
        m = self.manager
        shape = self._shape
        cg = m.create((*self.tools_path, new_call_id()), exist_ok=False, full=shape is None, shape=shape)
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
        """Dismiss spare stubs; remove every leaf still pending (after the refiller's work for it, if any)."""
        with self._cv:
            self._closed = True
            while self._busy:
                self._cv.wait()
        _REFILLER.discard(self)
        while self._ready:
            cg, stub = self._ready.popleft()
            stub.close()
            self.manager.destroy(cg)
        while self._reap:
            self.manager.destroy(self._reap.popleft())
