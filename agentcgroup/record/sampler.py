"""The recorder: one session's resource timeline, sampled into an ``agentcg-recording`` (docs/recording-format.md).

It watches the session's subtree ``<root>/<session>`` through a Manager, on a background thread:

* every ``poll_s`` (20 ms) it looks at ``tools/``: a leaf whose process has exec'd a command is a call that
  started (``call_start``, its command from ``/proc``); a call whose leaf emptied or went away ended
  (``call_end``). Warm spares (an ``agentcg-stub`` alone) are not calls yet. So it records the calls of any
  process: this one's controller, ``agentcg run --session``, the shim, the daemon;
* every ``interval_s`` (100 ms) it writes one sample of the session and one of each running call: memory
  current and peak, CPU, memory PSI, throttle/freeze/kill counts.

Calls shorter than ``poll_s`` may slip between two looks. Calls of a controller in this process are exact:
pass it as ``controller`` (its calls' argv, intent, start and outcome are used) or hand each started call to
:meth:`Recorder.track`. With ``tracked=True`` every call of ``controller`` in the session is handed to
:meth:`Recorder.track` (``agentcg record``, ``agentcg replay``): the scan then never records one itself, however
late ``track()`` comes (a replay's call stands for a traced command: the worker's command line is not it).
Without it, a call of ``controller`` waits ``CLAIM_S`` after its start for ``track()`` before the scan records it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from ..backends.base import Cgroup, Manager, Stats
from ..errors import AgentCgroupError, NotFound
from ..traces.recording import DEFAULT_INTERVAL_S, RecordingWriter
from . import leaves
from .calls import COUNTERS, RecordedCall, outcome_record, step_counts

log = logging.getLogger("agentcgroup")

POLL_S = 0.02
#: how long a call may stay "about to exec" before it is recorded with what its leaf shows
PENDING_SCANS = 25
#: how many scans a call that ended waits for its controller's outcome
OUTCOME_SCANS = 100
#: how long after its start a call of the in-process controller waits for track() (without ``tracked``)
CLAIM_S = 1.0


class Recorder:
    """Record session ``session`` (its cgroup beneath ``manager``'s root) into ``writer``.

    ``manager`` should be one of the recorder's own (``get_manager(root)``): its handles on other processes'
    leaves are then its alone. ``controller``: the in-process controller running (some of) the session's calls.
    """

    def __init__(
        self,
        writer: RecordingWriter,
        session: str,
        *,
        manager: Manager,
        interval_s: float = DEFAULT_INTERVAL_S,
        poll_s: float | None = None,
        controller: Any = None,
        tracked: bool = False,
        proc_root: str = "/proc",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.writer, self.session, self.manager = writer, session, manager
        self.interval_s = interval_s
        self.poll_s = min(interval_s, POLL_S) if poll_s is None else poll_s
        self.controller, self.proc_root, self.clock = controller, proc_root, clock
        self.tracked = tracked and controller is not None
        self.samples = 0  # session samples written
        self.calls_started = 0
        self.calls_ended = 0
        self._calls: dict[str, RecordedCall] = {}
        self._done: dict[str, RecordedCall] = {}  # ended, leaf not yet gone (ignored until it is)
        self._pending: dict[str, int] = {}  # leaf -> scans spent "about to exec"
        self._seen: dict[str, Cgroup] = {}  # our handles on leaves that are not calls (spares, empty)
        self._unclaimed: set[str] = set()  # our controller's calls waiting for track() (their end watched)
        self._gone: list[Cgroup] = []  # handles on leaves that went away, let go of at the next scan
        self._ended_counts = dict.fromkeys(COUNTERS, 0)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cg: Cgroup | None = None
        self._own_manager = False

    @classmethod
    def for_session(cls, session: Any, writer: RecordingWriter, **kwargs: Any) -> Recorder:
        """A recorder of an open :class:`~agentcgroup.Session`, exact for the calls of its controller.

        It gets a Manager of its own on the session's root (on a host without cgroups, where groups exist only
        inside the process that made them, the session's)."""
        m = session.manager
        own = m.kind != "none"
        if own:
            from ..backends import get_manager

            m = get_manager(m.root_name, backend="v2" if m.kind == "v2" else "hybrid")
        kwargs.setdefault("controller", session.controller)
        rec = cls(writer, session.name, manager=m, **kwargs)
        rec._own_manager = own
        return rec

    # --- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> Recorder:
        self._cg = self.manager.open((self.session,))
        self._thread = threading.Thread(target=self._loop, name="agentcg-recorder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread after one last look and sample. Calls still running stay unfinished in the file."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(10)
            self._thread = None
            with self._lock:
                try:
                    self.scan()
                    self.sample()
                except (AgentCgroupError, OSError, ValueError) as exc:
                    log.warning("event=record-error session=%s error=%r", self.session, str(exc))
        if self._own_manager:
            self._own_manager = False
            self.manager.close()  # closes every handle of ours

    def __enter__(self) -> Recorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _loop(self) -> None:
        next_sample = time.monotonic()
        while True:
            with self._lock:
                try:
                    self.scan()
                    if time.monotonic() >= next_sample:
                        self.sample()
                        next_sample += self.interval_s
                        if next_sample < time.monotonic():  # fell behind: keep the cadence from now
                            next_sample = time.monotonic() + self.interval_s
                except NotFound:
                    log.info("event=record-stop session=%s reason='the session is gone'", self.session)
                    return
                except (AgentCgroupError, OSError, ValueError) as exc:
                    log.warning("event=record-error session=%s error=%r", self.session, str(exc))
            if self._stop.wait(min(self.poll_s, max(0.0, next_sample - time.monotonic()))):
                return

    # --- calls ----------------------------------------------------------------------------------------
    def track(self, handle: Any, command: str | list[str] | None = None) -> None:
        """Record exactly a call this process started (a :class:`~agentcgroup.controller.core.CallHandle`): its
        argv (or ``command``, e.g. the traced command a replay stands for), intent, start, and its outcome
        when it ends."""
        cs = handle.state
        if cs is None:  # refused before it ran
            out = handle.wait(0)
            if out is not None:
                t = self.clock()
                self.writer.call_start(out.call_id, command or out.argv, t=t, intent=out.intent or None)
                self.writer.call_end(out.call_id, outcome_record(out), t=t)
            return
        with self._lock:
            call = self._calls.get(cs.id)
            if call is None and cs.id not in self._done:
                start = cs.call.started_wall or self.clock()
                call = self._begin(cs.id, self._open_leaf(cs.id), command or cs.call.argv, start, cs)
            if call is not None and call.tracked is None:
                call.tracked = cs
        handle.future.callbacks.append(lambda out, i=cs.id: self._ended_exact(i, out))
        if handle.done():
            self._ended_exact(cs.id, handle.wait(0))

    def _ended_unclaimed(self, cs: Any, out: Any) -> None:
        """A call of our controller ended before track() or the scan took it: recorded whole, exactly."""
        with self._lock:
            self._unclaimed.discard(cs.id)
            if out is None or cs.id in self._calls or cs.id in self._done:
                return
            call = self._begin(cs.id, None, cs.call.argv, cs.call.started_wall or self.clock(), cs)
            call.tracked = cs
            self._end(call, outcome_record(out), call.start + out.duration_s)

    def _ended_exact(self, call_id: str, out: Any) -> None:
        with self._lock:
            call = self._calls.get(call_id)
            if call is None or call.ended or out is None:
                return
            self._end(call, outcome_record(out), call.start + out.duration_s)

    def _controller_call(self, call_id: str) -> Any:
        if self.controller is None:
            return None
        for cs in self.controller.calls():
            if cs.id == call_id and cs.session.name == self.session:
                return cs
        return None

    def _begin(
        self, call_id: str, cg: Cgroup | None, argv: str | list[str] | None, t: float, cs: Any = None
    ) -> RecordedCall:
        call = RecordedCall(call_id, t, cg, argv, cs)
        self._calls[call_id] = call
        intent = cs.intent.to_dict() if cs is not None else None
        self.writer.call_start(call_id, argv, t=t, intent=intent or None)
        self.calls_started += 1
        return call

    def _end(self, call: RecordedCall, outcome: dict[str, Any], t: float) -> None:
        call.ended = True
        self._calls.pop(call.call_id, None)
        self._done[call.call_id] = call
        if call.tracked is not None:
            call.counts = step_counts(call.tracked.call.steps)
        for k in COUNTERS:
            self._ended_counts[k] += call.counts[k]
        self.writer.call_end(call.call_id, outcome, t=max(t, call.start))
        self.calls_ended += 1

    # --- one look at tools/ ------------------------------------------------------------------------------
    def scan(self) -> None:
        m = self.manager
        try:
            names = set(m.children((self.session, "tools")))
        except NotFound:
            names = set()
        now = self.clock()
        gone, self._gone = self._gone, []
        for cg in gone:
            self._release(cg)
        for name in [n for n in self._seen if n not in names]:
            self._gone.append(self._seen.pop(name))
            self._pending.pop(name, None)
        for name in [n for n in self._done if n not in names]:
            done_cg = self._done.pop(name).cg
            if done_cg is not None:
                self._gone.append(done_cg)
        for name in sorted(names - set(self._calls) - set(self._done)):
            self._discover(name, now)
        for call in list(self._calls.values()):
            if call.cg is None:  # tracked only: its outcome callback ends it
                continue
            left = call.call_id not in names
            if not left and call.tracked is None:
                self._observe(call)  # the kernel's peak and OOM kills, while the leaf is there to read
            if left or not self._pids(call.cg):
                self._finish(call, now, left)

    def _observe(self, call: RecordedCall) -> Stats | None:
        if call.cg is None:
            return None
        try:
            st = self.manager.stats(call.cg)
        except AgentCgroupError:
            return None
        call.observe(st)
        return st

    def _open_leaf(self, name: str) -> Cgroup | None:
        self._pending.pop(name, None)
        cg = self._seen.pop(name, None)
        if cg is not None:
            return cg
        try:
            return self.manager.open((self.session, "tools", name))
        except NotFound:
            return None

    def _discover(self, name: str, now: float) -> None:
        cg = self._seen.get(name)
        if cg is None:
            cg = self._open_leaf(name)
            if cg is None:
                return
            self._seen[name] = cg
        leaf = leaves.classify(self._pids(cg), self.proc_root)
        if leaf.state in (leaves.EMPTY, leaves.SPARE):
            self._pending.pop(name, None)
            return
        if leaf.state == leaves.PENDING:
            n = self._pending[name] = self._pending.get(name, 0) + 1
            if n < PENDING_SCANS:
                return
        cs = self._controller_call(name)
        if cs is None and self._ours_unregistered(leaf):
            return  # our controller started it a moment ago and has not registered it yet: look again
        if cs is not None and (self.tracked or (not cs.future.done() and time.time() - cs.call.started_wall < CLAIM_S)):
            # our controller's: track() (called as it starts) claims it, with the command it stands for; without
            # ``tracked``, one that ends unclaimed is recorded at its end, from its controller's outcome
            if not self.tracked and name not in self._unclaimed:
                self._unclaimed.add(name)
                cs.future.callbacks.append(lambda out, c=cs: self._ended_unclaimed(c, out))
            return
        self._pending.pop(name, None)
        del self._seen[name]
        if cs is not None:
            argv, start = cs.call.argv, cs.call.started_wall or now
        else:
            argv, start = leaf.argv, now
        call = self._begin(name, cg, argv, start, cs)
        self._observe(call)

    def _ours_unregistered(self, leaf: leaves.Leaf) -> bool:
        """A leaf whose command is a child of this process, while our controller lists no call of that name:
        the controller spawned it (or exec'd a stub of its warm pool) and registers it right after."""
        if self.controller is None or leaf.pid is None or self.proc_root != "/proc":
            return False
        return leaves.parent(leaf.pid, self.proc_root) == os.getpid()

    def _pids(self, cg: Cgroup) -> list[int]:
        try:
            return self.manager.pids(cg)
        except AgentCgroupError:
            return []

    def _finish(self, call: RecordedCall, now: float, gone: bool) -> None:
        """The call's leaf emptied or went away: end it, with its controller's outcome when there is one."""
        out, waiting = self._exact_outcome(call)
        if waiting and call.end_wait < OUTCOME_SCANS:
            call.end_wait += 1  # its controller has not built the outcome yet
            return
        if out is not None:
            end = call.start + out.duration_s if call.tracked is not None else now
            self._end(call, outcome_record(out), end)
            return
        if not gone and call.cg is not None:
            self._observe(call)
        self._end(call, call.sampled_outcome(now), now)

    def _exact_outcome(self, call: RecordedCall) -> tuple[Any, bool]:
        """(the controller's outcome or None, whether it is worth waiting for one)."""
        if call.tracked is not None:
            fut = call.tracked.future
            out = fut.wait(0) if fut.done() else None
            return out, out is None
        if self.controller is None:
            return None, False
        try:
            out = self.controller.outcome(call.call_id)
        except AgentCgroupError:  # not a call of this controller
            return None, False
        return out, out is None

    def _release(self, cg: Cgroup) -> None:
        """Let go of our handle on a leaf its owner removed a scan ago (removing it again is a no-op that closes
        our handle: the Manager has no other verb for that)."""
        if cg.closed:
            return
        try:
            if not self.manager.pids(cg):  # never kill: only a leaf that is empty and gone is let go
                self.manager.destroy(cg, timeout=0)
        except AgentCgroupError:
            pass

    # --- one sample -----------------------------------------------------------------------------------
    def sample(self) -> None:
        assert self._cg is not None
        m = self.manager
        st = m.stats(self._cg)
        t = self.clock()
        counts = dict(self._ended_counts)
        for call in list(self._calls.values()):
            if call.cg is not None:
                cst = self._observe(call)
                if cst is None:
                    continue
                self._write(t, cst, call.call_id, call.counts)
            elif call.tracked is not None:
                call.counts = step_counts(call.tracked.call.steps)
            for k in COUNTERS:
                counts[k] += call.counts[k]
        some, full = m.memory_pressure(self._cg)
        self._write(t, st, None, counts, some, full)
        self.samples += 1

    def _write(
        self,
        t: float,
        st: Stats,
        call: str | None,
        counts: dict[str, int],
        some: float | None = None,
        full: float | None = None,
    ) -> None:
        self.writer.sample(
            t=t,
            call=call,
            mem_bytes=st.memory_current or 0,
            mem_peak_bytes=st.memory_peak,
            cpu_usec=st.cpu_usec,
            psi_some_avg10=some,
            psi_full_avg10=full,
            **counts,
        )
