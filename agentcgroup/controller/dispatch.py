"""The dispatch room: the loop's side of the calls.

A call is started on the caller's thread (spawn is fast and its errors belong to the caller) and handed to the
loop, which from then on owns it: its exit (pidfd), its output pipes, its memory notifications, its timers, the
policies' decisions (:mod:`.apply`), and its end: the outcome built, remembered, written down and given to the
waiter. A handler that fails for a call fails that call alone (an error outcome, its tree killed); the loop
serves on.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .._lazy import lazy_logger
from ..backends.base import Cgroup, EventSource, Manager
from ..errors import AgentCgroupError, CgroupError
from ..feedback import build_feedback, command_text
from ..limits import Limits
from ..outcome import Outcome
from ..spawn import ForeignProcess, can_lower_oom_adj
from ..toolcall import ToolCall
from ..warm import WarmPool
from .actions import Actuator
from .admission import Admission
from .apply import Enforcer
from .callspec import CallSpec
from .config import ControllerConfig
from .events import EventBus, outcome_kind
from .loop import READ, Loop
from .outcomes import Outcomes
from .persist import StateDir
from .policies.base import Policy
from .snapshot import Snapshot
from .state import CallFuture, CallState, SessionState

log = lazy_logger("agentcgroup")

#: v1 notifies an OOM *before* its killer picks a victim: look again this long after
OOM_RELOOK_S = (0.005, 0.05, 0.25)


def _has_exited(pidfd: int) -> bool:
    """Has the process ended (a zombie, not reaped yet)? It is not reaped here: the finish waits for it."""
    try:
        return os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except (OSError, AttributeError):  # not our child, or no P_PIDFD (kernel < 5.4): the pidfd tells, as before
        return False


def boot_clock() -> float:
    """Seconds since boot, counting suspend: a call's start is written down in it too (no wall-clock jumps)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class SessionRef:
    """What a ToolCall needs of its session: name, path, manager, warm pool."""

    def __init__(self, s: SessionState, manager: Manager) -> None:
        self._s, self.manager = s, manager

    @property
    def name(self) -> str:
        return self._s.name

    @property
    def path(self) -> tuple[str, ...]:
        return self._s.path

    @property
    def pool(self) -> WarmPool | None:
        return self._s.pool

    @property
    def kept(self) -> list[Cgroup]:
        """Leaves kept for their background processes (keep_background) until the session closes."""
        return self._s.kept

    def starting(self, warm_after: int, quiet: float) -> None:
        """A call of the session starts: once ``warm_after`` calls started before it, the session keeps spare
        leaves (warm.py; made once no call started for ``quiet`` seconds); until then it holds no spare, stub
        or thread."""
        s = self._s
        if s.pool is not None or not s.warm:
            return
        with s.lock:
            s.starts += 1
            if s.pool is None and s.starts > warm_after and not s.closing:
                s.pool = WarmPool(self.manager, (s.name, "tools"), s.warm, quiet)


class Dispatch:
    def __init__(
        self,
        loop: Loop,
        manager: Manager,
        config: ControllerConfig,
        policies: Sequence[Policy],
        actuator: Actuator,
        snapshot: Callable[[], Snapshot],
        admission: Admission,
        outcomes: Outcomes,
        store: StateDir | None,
        events: EventBus | None = None,
    ) -> None:
        self.loop, self.manager, self.config = loop, manager, config
        self.admission, self.outcomes, self.store = admission, outcomes, store
        self.lock = outcomes.sessions.lock
        self.events = events or EventBus()
        self.enforcer = Enforcer(policies, actuator, snapshot, loop.call_later, self.fail, self.events)

    # --- starting (the caller's thread) ----------------------------------------------------------------------
    def start(self, s: SessionState, spec: CallSpec, queued: float, token: str) -> CallState:
        """Create the leaf, start the command in it, write it down, hand it to the loop. On any failure
        nothing is left: no leaf, no process, no reservation."""
        soft = spec.limits.memory_high
        leaf = self._with_checkpoint(spec, soft)
        ref = SessionRef(s, self.manager)
        ref.starting(self.config.warm_after, self.config.warm_quiet)
        adj = self.config.tool_adj(spec.intent.priority or s.priority, can_lower_oom_adj())
        call = ToolCall(ref, spec, leaf_limits=leaf, oom_score_adj=adj)
        cs = CallState(call, s, spec.intent, CallFuture(), soft=soft, queued_s=queued)
        try:
            call.start()
        except BaseException:
            self.admission.release(token)
            raise
        cs.reserved = self.admission.claim(token, call.call_id)
        cs.checkpoint = leaf.memory_high if leaf.memory_high != soft else None
        with self.lock:
            s.calls[call.call_id] = cs
        try:
            self.save(cs)
        except BaseException:
            self._undo(cs)
            raise
        if self.events.active:
            self.events.emit(
                "call-start", s.name, s.uid, cs.id, priority=s.priority, command=command_text(call.argv)[:200]
            )
        if self.loop.in_loop() or self.loop.thread is None:
            self.register(cs)
        else:
            self.loop.call_soon_threadsafe(lambda: self.register(cs))
        return cs

    def _undo(self, cs: CallState) -> None:
        """A started call that cannot be written down is refused: its tree killed and reaped, its leaf removed."""
        call = cs.call
        try:
            call.kill("error", "refused: it could not be written down for a successor to adopt")
            call.finish()
        except AgentCgroupError as exc:
            log.warning("event=undo-failed call=%s error=%r", cs.label, str(exc))
        finally:
            with self.lock:
                cs.session.calls.pop(cs.id, None)
            self.admission.release(cs.id)

    def save(self, cs: CallState) -> None:
        if self.store is None:
            return
        call = cs.call
        assert call.proc is not None
        self.store.save_call(
            cs.id,
            {
                "session": cs.session.name,
                "argv": call.argv,
                "pid": call.proc.pid,
                "started": call.started_wall,
                "started_boot": boot_clock() - call.elapsed(),
                "timeout": call.timeout,
                "limits": call.limits.as_dict(),
                "intent": cs.intent.to_dict(),
                "soft": cs.soft,
                "keep_background": call.keep_background,
                "run_as": call.spec.run_as,
            },
        )

    def _with_checkpoint(self, spec: CallSpec, soft: int | None) -> Limits:
        """v2 has no usage thresholds: a growing call's memory.high doubles as one (raised as it is crossed)."""
        if self.manager.kind != "v2" or self.config.budget is None:
            return spec.limits
        step = self.config.checkpoint_step
        return spec.limits.merged(Limits(memory_high=step if soft is None else min(soft, step)))

    # --- the loop's side -------------------------------------------------------------------------------------
    def guarded(self, cs: CallState, fn: Callable[..., Any]) -> Callable[..., None]:
        """``fn`` as a loop handler of ``cs``: an exception in it fails that call, not the loop."""

        def run(*args: Any) -> None:
            try:
                fn(*args)
            except Exception as exc:
                self.fail(cs, exc)

        return run

    def register(self, cs: CallState) -> None:
        self.guarded(cs, self._register)(cs)

    def _register(self, cs: CallState) -> None:
        call = cs.call
        proc = call.proc
        assert proc is not None
        ended = proc.pidfd >= 0 and _has_exited(proc.pidfd)  # then finished below, in this turn
        if proc.pidfd < 0:  # no pidfd (old kernel): poll the process
            self._poll_exit(cs)
        elif not ended:
            self.loop.add(proc.pidfd, READ, self.guarded(cs, lambda fd, ev: self._on_exit(cs)))
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                fd = f.fileno()
                os.set_blocking(fd, False)
                cs.pipes[fd] = f
                self.loop.add(fd, READ, self.guarded(cs, lambda fd, ev: self._on_pipe(cs, fd)))
        if ended:
            # a short command (true, ls, cat) is often over before the loop takes it: its memory notifications
            # would be watched only to be dropped at once (v1: an eventfd, two control files, an epoll add and
            # delete), and its pidfd's wake-up would come next turn. What they would tell (an OOM kill, the peak)
            # its figures say at the finish, as for every call.
            self.enforcer.started(cs)
            self._on_exit(cs)
            return
        if call.cg is not None:
            try:
                src = self.manager.memory_events(call.cg)
            except CgroupError as exc:
                log.warning("event=watch-failed call=%s error=%r", cs.label, str(exc))
                src = None
            if src is not None:
                cs.sources.append(src)
                self.loop.add(src.fd, src.events, self.guarded(cs, lambda fd, ev: self._on_memory(cs, src)))
        self.enforcer.started(cs)

    def _poll_exit(self, cs: CallState) -> None:
        if cs.phase == "done":
            return
        proc = cs.call.proc
        if proc is not None and (proc.poll() is not None or getattr(proc, "exited", False)):
            self._on_exit(cs)
        else:
            cs.timers[("dispatch", "poll")] = self.loop.call_later(0.01, self.guarded(cs, lambda: self._poll_exit(cs)))

    def _on_pipe(self, cs: CallState, fd: int) -> None:
        if cs.call._read_pipe(fd) is False:
            self.loop.remove(fd)
            cs.pipes.pop(fd, None)

    def _on_memory(self, cs: CallState, src: EventSource | None) -> None:
        if src is not None:
            src.drain()
            if src.kind == "oom":
                for delay in OOM_RELOOK_S:
                    self.loop.call_later(delay, self.guarded(cs, lambda: self._on_memory(cs, None)))
        if cs.phase == "done" or cs.call.cg is None:
            return
        usage = self.enforcer.memory(cs)
        self._raise_checkpoint(cs, usage)

    def _raise_checkpoint(self, cs: CallState, usage: int) -> None:
        if cs.checkpoint is None or cs.phase != "running" or cs.call.cg is None:
            return
        if usage < cs.checkpoint * 0.9:
            return
        nxt = usage + self.config.checkpoint_step
        level = nxt if cs.soft is None or nxt < cs.soft else cs.soft
        cs.checkpoint = None if level == cs.soft else nxt
        if cs.cap is not None and cs.cap < level:
            level = cs.cap  # its share of the shared budget holds (the cap's crossing notifies too)
        try:
            self.manager.set_soft_limit(cs.call.cg, level)
        except CgroupError as exc:
            log.warning("event=checkpoint-failed call=%s error=%r", cs.label, str(exc))

    def pressure(self) -> None:
        self.enforcer.pressure()

    def _on_exit(self, cs: CallState) -> None:
        if cs.phase == "done":
            return
        self.finish(cs)
        self.enforcer.pressure()

    # --- from other threads ----------------------------------------------------------------------------------
    def kill(self, cs: CallState, reason: str) -> None:
        self.loop.call_soon_threadsafe(self.guarded(cs, lambda: self.enforcer.kill(cs, "policy", reason)))

    def in_loop(self, fn: Callable[[], None], wait: float = 30.0) -> None:
        """Run ``fn`` on the loop and wait for it (or here, when the loop does not run or this is it)."""
        t = self.loop.thread
        if t is None or not t.is_alive() or self.loop.in_loop():
            fn()
            return
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        self.loop.call_soon_threadsafe(run)
        done.wait(wait)

    def end_session_calls(self, s: SessionState, reason: str) -> None:
        """Kill and finish every call of ``s`` (on the loop)."""

        def end(cs: CallState) -> None:
            self.enforcer.kill(cs, "policy", reason)
            self.finish(cs)

        def run() -> None:
            for cs in list(s.calls.values()):
                self.guarded(cs, end)(cs)

        self.in_loop(run)

    # --- the end ---------------------------------------------------------------------------------------------
    def fail(self, cs: CallState, exc: Exception) -> None:
        """A handler failed for ``cs``: log it, kill its tree, finish it with an error outcome."""
        log.error("event=call-error call=%s error=%r", cs.label, exc, exc_info=exc)
        if cs.phase == "done":
            return
        try:
            self.enforcer.kill(cs, "error", f"the controller failed: {exc}", source="controller")
        except Exception as kill_exc:  # finish below still cleans up what it can
            log.warning("event=kill-failed call=%s error=%r", cs.label, str(kill_exc))
        self.finish(cs, error=f"{type(exc).__name__}: {exc}")

    def finish(self, cs: CallState, error: str | None = None) -> None:
        """The command ended (or its session closes): build the outcome, clean up, tell the waiter."""
        if cs.phase == "done":
            return
        try:
            self.enforcer.end(cs)
        except Exception:
            log.exception("event=policy-end-failed call=%s", cs.label)
        proc = cs.call.proc
        if proc is not None and proc.pidfd >= 0:
            self.loop.remove(proc.pidfd)
        for fd in list(cs.pipes):
            self.loop.remove(fd)
        for src in cs.sources:
            self.loop.remove(src.fd)
            src.close()
        cs.sources.clear()
        try:
            out = cs.call.finish(cs.pipes)
        except Exception as exc:  # the outcome says what went wrong; the call is cleaned up as far as can be
            log.exception("event=finish-failed call=%s", cs.label)
            out = self._error_outcome(cs)
            error = error or f"{type(exc).__name__}: {exc}"
        out.queued_s = round(cs.queued_s, 6)
        out.intent = cs.intent.to_dict()
        if error is not None:
            out.error = error
            out.feedback = build_feedback(out)
        note = self.admission.note(cs.id)  # queued on a predicted peak: say so
        if note is not None:
            out.feedback = f"{note} {out.feedback or ''}".strip()
        with self.lock:  # remembered before it leaves the running set: outcome() never finds neither
            self.outcomes.remember(cs.session.uid, out)
            cs.session.calls.pop(cs.id, None)
        self.admission.release(cs.id)
        self.outcomes.save(cs.session.uid, out)  # over the call's record in the state dir: that goes with it
        self.admission.learn(out, cs.session.uid)  # the next call of its kind (of its uid) is sized from this one
        log.info(
            "event=call-end session=%s call=%s rc=%s killed_by=%s peak=%s duration=%.3f",
            cs.session.name,
            cs.id,
            out.returncode,
            out.killed_by,
            out.memory_peak,
            out.duration_s,
        )
        if self.events.active:
            self.events.emit(
                "call-end",
                cs.session.name,
                cs.session.uid,
                cs.id,
                priority=cs.session.priority,
                outcome=outcome_kind(out),
                returncode=out.returncode,
                killed_by=out.killed_by,
                reason=out.kill_reason,
                memory_peak=out.memory_peak,
                cpu_s=out.cpu_s,
                oom_kills=out.oom_kills,
                duration_s=out.duration_s,
            )
        cs.future.set(out)

    def _error_outcome(self, cs: CallState) -> Outcome:
        """What is known of a call whose outcome could not be built; its tree killed, reaped and removed as
        far as possible (its leaf, if that fails too, is logged for the operator)."""
        call, m = cs.call, self.manager
        proc, cg = call.proc, call.cg
        try:
            if cg is not None and not cg.closed:
                m.kill(cg)
        except AgentCgroupError as exc:
            log.warning("event=kill-failed call=%s error=%r", cs.label, str(exc))
        rc: int | None = None
        if proc is not None and not isinstance(proc, ForeignProcess):
            if proc.wait(1.0) is None:  # out of the leaf's reach: it is our child, end it
                proc.send_signal(signal.SIGKILL)
            rc = proc.wait()
        if proc is not None:
            proc.close()
        try:
            if cg is not None:
                m.destroy(cg)
        except AgentCgroupError as exc:
            log.error("event=leaf-left call=%s error=%r", cs.label, str(exc))
        call.cg = None
        return Outcome(
            session=cs.session.name,
            call_id=cs.id,
            command=command_text(call.argv),
            argv=list(call.argv),
            backend=m.kind,
            exit_code=rc if rc is not None and rc >= 0 else None,
            signal=-rc if rc is not None and rc < 0 else None,
            duration_s=round(call.elapsed(), 6),
            killed_by=call.killed_by,
            kill_reason=call.kill_reason,
            limits=call.limits.to_dict(),
            steps=list(call.steps),
            enforced=m.kind != "none",
            exit_status_known=rc is not None,
            escaped=call.escaped,
        )
