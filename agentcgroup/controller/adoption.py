"""The adoption room: what a previous controller (same root, same state dir) left, taken over after a restart.

Its sessions are built again the one way sessions are built (:meth:`Sessions.build`), from what was written
down: owner, priority, limits, agent protection. Its running calls are watched again; their outcomes are
completed (exit status unknown: the process is no longer our child). A call that ended while nobody watched
ended after the dead controller last stamped its heartbeat (and no one can tell how long after: the kernel keeps no
exit time): its duration is what is known, up to that stamp, never the downtime; a step gives the window.
Leaves nobody recorded (a dead controller's spare leaves) are killed and removed.
"""

from __future__ import annotations

import time
from typing import Any

from .._lazy import lazy_logger
from ..backends.base import Cgroup, Manager
from ..cgroupfs import check_name
from ..errors import AgentCgroupError, InvalidName, NotFound
from ..limits import Limits
from ..spawn import ForeignProcess
from ..toolcall import ToolCall
from .callspec import CallSpec
from .config import check_priority
from .dispatch import Dispatch, SessionRef, boot_clock
from .intent import Intent
from .persist import StateDir
from .sessions import Sessions
from .state import CallFuture, CallState, SessionState

log = lazy_logger("agentcgroup")

#: a process whose kernel start time is later than its call's recorded start (by more than this) is not the
#: call's: its pid was reused
PID_REUSE_SLACK_S = 1.0


class Adoption:
    def __init__(self, manager: Manager, store: StateDir, sessions: Sessions, dispatch: Dispatch) -> None:
        self.manager, self.store, self.sessions, self.dispatch = manager, store, sessions, dispatch

    def run(self) -> None:
        m = self.manager
        self.last_alive = self.store.alive_at()
        self.dispatch.outcomes.load()
        calls = self.store.calls()
        for name, rec in self.store.sessions().items():
            try:
                check_name(name, "session")
                m.open((name,))
            except (NotFound, InvalidName):
                self.store.drop_session(name)
                continue
            try:
                uid, priority = int(rec["uid"]), check_priority(rec["priority"])
                limits = Limits(**rec.get("limits", {}))
                agent_memory = rec.get("agent_memory")
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("event=adopt-skip session=%s reason='torn record' error=%r", name, str(exc))
                continue
            s = self.sessions.build(
                name,
                uid,
                priority,
                limits,
                None if agent_memory is None else int(agent_memory),
                created=bool(rec.get("created", True)),
                before_pool=lambda s: self._leaves(s, calls),
            )
            log.info("event=adopt-session session=%s uid=%d calls=%d", name, uid, len(s.calls))
        for call_id in calls:  # records of calls whose session or leaf is gone
            self.store.drop_call(call_id)

    def _leaves(self, s: SessionState, calls: dict[str, dict[str, Any]]) -> None:
        m = self.manager
        for leaf in m.children((s.name, "tools")):
            try:
                check_name(leaf)
            except InvalidName:
                continue  # made by a tool, not by us: removed with the session
            cg = m.open((s.name, "tools", leaf))
            rec = calls.pop(leaf, None)
            if rec is None or rec.get("session") != s.name:
                log.info(
                    "event=adopt-remove session=%s leaf=%s reason='no record (a spare or torn call)'", s.name, leaf
                )
                m.destroy(cg)
                continue
            try:
                self._call(s, cg, rec)
            except (KeyError, TypeError, ValueError, AgentCgroupError) as exc:
                log.warning("event=adopt-remove session=%s leaf=%s reason='torn record' error=%r", s.name, leaf, exc)
                m.destroy(cg)
                self.store.drop_call(leaf)

    def _call(self, s: SessionState, cg: Cgroup, rec: dict[str, Any]) -> None:
        argv = [str(a) for a in rec["argv"]]
        pid = int(rec["pid"])
        run_as = rec.get("run_as")
        spec = CallSpec.of(
            argv,
            limits=Limits(**rec.get("limits", {})),
            timeout=rec.get("timeout"),
            call_id=cg.path[-1],
            keep_background=bool(rec.get("keep_background")),
            run_as=(int(run_as[0]), int(run_as[1])) if run_as else None,
        )
        call = ToolCall(SessionRef(s, self.manager), spec)
        call.cg = cg
        started = float(rec["started"])
        now_wall, now_mono = time.time(), time.monotonic()
        ran = max(0.0, now_wall - started)
        if rec.get("started_boot") is not None:  # the boot clock does not jump with the wall clock
            ran = max(0.0, boot_clock() - float(rec["started_boot"]))
        call.started_wall = started
        call._t0 = now_mono - ran
        proc = ForeignProcess(pid, argv)
        call.proc = proc
        call.step("note", "adopted after a controller restart: exit status unknown, output not captured")
        if not self._same_process(cg, pid, started):  # it ended while nobody watched (or the pid is reused)
            proc.close()
            seen = max(started, min(self.last_alive or started, now_wall))
            proc.exited, proc.ended = True, now_mono - (now_wall - seen)
            lo, hi = round(seen - started, 3), round(now_wall - started, 3)
            call.step(
                "note", "ended while no controller watched: its end is not known", ran_at_least_s=lo, ran_at_most_s=hi
            )
        cs = CallState(call, s, Intent(**rec.get("intent", {})), CallFuture(), soft=rec.get("soft"))
        s.calls[call.call_id] = cs
        self.dispatch.loop.call_soon_threadsafe(lambda: self.dispatch.register(cs))
        log.info("event=adopt-call session=%s call=%s pid=%d alive=%s", s.name, cs.id, pid, not proc.exited)

    def _same_process(self, cg: Cgroup, pid: int, started: float) -> bool:
        """``pid`` is still the call's command: in its leaf, and started by the kernel no later than the call."""
        if pid not in self.manager.pids(cg):
            return False
        import psutil  # only after a restart: keeps `import agentcgroup` light

        try:
            return bool(psutil.Process(pid).create_time() <= started + PID_REUSE_SLACK_S)
        except psutil.Error:
            return False
