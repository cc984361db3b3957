"""One tool call: its leaf cgroup, its process tree, and how it ended.

Lifecycle: :meth:`ToolCall.start` creates ``<session>/tools/<id>`` with the call's limits (or takes a warm
spare) and starts the command inside it, placed before exec; the controller waits for it and enforces its
limits (kill/freeze/thaw here are the verbs it uses); :meth:`ToolCall.finish` kills whatever the command left
behind, reads the figures, removes the leaf and returns the :class:`~agentcgroup.outcome.Outcome`.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._lazy import lazy_logger
from .backends.base import Cgroup, Manager, Stats
from .errors import FreezeTimeout
from .feedback import build_feedback, command_text
from .limits import Limits
from .outcome import Outcome, Step
from .spawn import PIPE, STDOUT, ForeignProcess, Process
from .warm import new_call_id

if TYPE_CHECKING:
    from .controller.callspec import CallSpec

log = lazy_logger("agentcgroup")

#: how long a freeze waits for every task to stop before it is left to the kernel to finish
FREEZE_WAIT = 0.5

#: ``launcher(call, stdin, stdout, stderr) -> Process``: starts the command and puts it into ``call.cg`` itself
Launcher = Callable[["ToolCall", Any, Any, Any], Process]


def _is_stdout(spec: Any) -> bool:
    return isinstance(spec, int) and not isinstance(spec, bool) and spec == STDOUT


class ToolCall:
    """A tool call's lifecycle. Waiting for it and enforcing its limits is the controller's job."""

    def __init__(
        self,
        session: Any,
        spec: CallSpec,
        *,
        leaf_limits: Limits | None = None,
        oom_score_adj: int | None = None,
    ) -> None:
        self.session = session  # needs .name, .path, .manager, .pool
        self.spec = spec
        self.argv = list(spec.argv)
        self._id_given = spec.call_id is not None
        self.call_id = spec.call_id or new_call_id()
        self.limits = spec.limits
        self.leaf_limits = leaf_limits or self.limits
        self.timeout = spec.timeout
        stdin, stdout, stderr = spec.stdin, spec.stdout, spec.stderr
        if spec.capture_output:  # stderr=STDOUT: both streams in one pipe, their order kept (outcome.stdout)
            stdout, stderr = PIPE, (STDOUT if _is_stdout(stderr) else PIPE)
        if spec.relay_stdout is not None:
            stdout = PIPE
        self._stdio = (stdin, stdout, stderr)
        self._relay = spec.relay_stdout
        self._relay_broken = False
        self.keep_background = spec.keep_background
        self.oom_score_adj = oom_score_adj
        #: where the leaf goes (default ``<session>/tools``; a container's cgroup for ``docker exec`` calls)
        self.parent = spec.parent
        self.cg: Cgroup | None = None
        self.proc: Process | None = None
        self.steps: list[Step] = []
        self.killed_by: str | None = None
        self.kill_reason: str | None = None
        self.escaped = False  # its command left its leaf (a root tool can; the outcome says so)
        self.started_wall = 0.0
        self._t0 = 0.0
        self._frozen_since: float | None = None
        self.frozen_s = 0.0
        self._out: dict[int, bytearray] = {}
        #: captured output kept per stream at most (None: all); the rest is read and dropped, and said so
        self.capture_limit = spec.capture_limit
        self._dropped = 0
        self._last_byte = b"\n"
        self.outcome: Outcome | None = None

    @property
    def manager(self) -> Manager:
        m: Manager = self.session.manager
        return m

    @property
    def path(self) -> tuple[str, ...]:
        return (*(self.parent or (*self.session.path, "tools")), self.call_id)

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    # --- start -------------------------------------------------------------------------------------------
    def start(self) -> ToolCall:
        """Create the leaf (or take a warm one) with the call's limits and start the command in it."""
        m = self.manager
        limits = self.leaf_limits
        if m.features.oom_group == "memory.oom.group":
            limits = limits.merged(Limits(oom_group=True))
        launcher = self.spec.launcher
        pool = self.session.pool if not (self._id_given or launcher or self.parent) else None
        spare = pool.take(limits) if pool is not None else None
        stub = None
        if spare is not None:
            self.cg, stub = spare
            self.call_id = self.cg.path[-1]
        else:
            self.cg = m.create(self.path, limits, exist_ok=False)
        stdin, stdout, stderr = self._stdio
        spec = self.spec
        uid, gid = spec.run_as if spec.run_as is not None else (None, None)
        extra: dict[str, Any] = {
            "uid": uid,
            "gid": gid,
            "oom_score_adj": self.oom_score_adj,
            "new_session": spec.new_session,
        }
        try:
            if stub is not None and not limits.is_empty():
                m.set_limits(self.cg, limits)
            self.started_wall = time.time()
            self._t0 = time.monotonic()
            if launcher is not None:
                self.proc = launcher(self, stdin, stdout, stderr)
            elif stub is not None:
                self.proc = stub.exec(
                    self.argv, env=spec.env, cwd=spec.cwd, stdin=stdin, stdout=stdout, stderr=stderr, **extra
                )
            else:
                self.proc = m.spawn(
                    self.cg, self.argv, env=spec.env, cwd=spec.cwd, stdin=stdin, stdout=stdout, stderr=stderr, **extra
                )
        except BaseException:
            if stub is not None:
                stub.close()
            m.destroy(self.cg)
            self.cg = None
            raise
        return self

    # --- actions -----------------------------------------------------------------------------------------
    def step(self, action: str, reason: str, **figures: Any) -> None:
        s = Step(round(self.elapsed(), 4), action, reason, figures)
        self.steps.append(s)
        fig = " ".join(f"{k}={v}" for k, v in figures.items())
        log.info("event=%s session=%s call=%s reason=%r %s", action, self.session.name, self.call_id, reason, fig)

    def kill(self, by: str, reason: str, **figures: Any) -> None:
        """Kill the call's whole tree, once; the first reason wins."""
        if self.killed_by is not None or self.cg is None:
            return
        self.killed_by, self.kill_reason = by, reason
        self.step("kill", reason, **figures)
        if self._frozen_since is not None:
            self.frozen_s += time.monotonic() - self._frozen_since
            self._frozen_since = None
        self.manager.kill(self.cg)
        proc = self.proc
        if proc is not None and self._may_escape() and proc.poll() is None and self._left_leaf(proc.pid):
            proc.send_signal(signal.SIGKILL)  # our own child, out of reach of the leaf's kill

    def _may_escape(self) -> bool:
        """Only a root command can move itself to another cgroup (a ``docker exec`` client is outside by design)."""
        return self.spec.launcher is None and self.spec.run_as is None and os.geteuid() == 0

    def _left_leaf(self, pid: int) -> bool:
        """Whether the command moved itself out of its leaf (noted once, as a step)."""
        if not self.escaped and self.cg is not None and self.manager.holds(self.cg, pid) is False:
            self.escaped = True
            self.step("escape", "its command moved itself out of its cgroup: limits, kills and figures lost it")
        return self.escaped

    def freeze(self, reason: str, **figures: Any) -> None:
        """Freeze the call's tree. Waits at most ``FREEZE_WAIT``: a task the kernel is holding (a v2
        ``memory.high`` penalty sleep lasts up to 2 s) is not running, and stops as soon as it is let go."""
        assert self.cg is not None
        try:
            self.manager.freeze(self.cg, timeout=FREEZE_WAIT)
        except FreezeTimeout as exc:
            log.info("event=freeze-pending call=%s/%s detail=%r", self.session.name, self.call_id, str(exc))
        self._frozen_since = time.monotonic()
        self.step("freeze", reason, **figures)

    def thaw(self, reason: str, **figures: Any) -> None:
        assert self.cg is not None
        self.manager.thaw(self.cg)
        if self._frozen_since is not None:
            self.frozen_s += time.monotonic() - self._frozen_since
            self._frozen_since = None
        self.step("thaw", reason, **figures)

    def _read_pipe(self, fd: int) -> bool | None:
        """Read what is there: False at EOF, None if nothing is ready, True after a chunk."""
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return None
        if not chunk:
            return False
        proc = self.proc
        if self._relay is not None and proc is not None and proc.stdout is not None and fd == proc.stdout.fileno():
            self._last_byte = chunk[-1:]
            view = memoryview(chunk)
            try:
                while view and not self._relay_broken:
                    view = view[os.write(self._relay, view) :]
            except BrokenPipeError:  # nobody reads our stdout any more: drop the rest
                self._relay_broken = True
        else:
            buf = self._out.setdefault(fd, bytearray())
            room = len(chunk) if self.capture_limit is None else max(0, self.capture_limit - len(buf))
            buf.extend(chunk[:room])
            if room < len(chunk):
                if not self._dropped:
                    self.step("note", f"captured output over {self.capture_limit} bytes a stream is dropped")
                self._dropped += len(chunk) - room
        return True

    # --- finish ------------------------------------------------------------------------------------------
    def finish(self, pipes: dict[int, Any] | None = None) -> Outcome:
        """Kill leftovers, read the figures, remove the leaf, build the outcome (idempotent)."""
        if self.outcome is not None:
            return self.outcome
        assert self.proc is not None and self.cg is not None
        proc, cg, m = self.proc, self.cg, self.manager
        if proc.returncode is None and not isinstance(proc, ForeignProcess):
            if self._may_escape():
                self._left_leaf(proc.pid)  # read before it is reaped: a zombie still shows its cgroup (cgroup2)
            proc.wait()
        duration = (proc.ended or time.monotonic()) - self._t0
        leftover = kept = 0
        st = m.stats(cg)
        if st.populated and not self.keep_background:
            leftover = m.kill(cg)
            st = m.stats(cg)
        elif st.populated and isinstance(getattr(self.session, "kept", None), list) and self.parent is None:
            kept = len(m.pids(cg))
            if kept:
                self.step("note", f"{kept} background process(es) kept running in its cgroup until the session closes")
        for fd in list(pipes or {}):  # what the tree wrote before it ended (non-blocking: may be held open)
            while self._read_pipe(fd):
                pass
        if self._frozen_since is not None:
            self.frozen_s += time.monotonic() - self._frozen_since
            self._frozen_since = None
        try:
            pool = self.session.pool if self.parent is None else None
            if kept:
                self.session.kept.append(cg)  # the session removes it when it closes
            elif pool is not None:
                # an empty leaf goes at once (an rmdir a hierarchy, ~0.05 ms each): finished leaves queued for
                # the pool's thread piled up under load (hundreds, each holding ~10 fds that every exec of
                # the process then closes); one the kernel does not let go at once is removed there. But while
                # that thread places a spare, the rmdir would wait for the kernel's cgroup lock (held through
                # an RCU grace period after a quiet spell): then the leaf is that thread's to remove, a little
                # later, and the outcome does not wait
                if not pool.defer_reap(cg) and not m.remove_if_empty(cg):
                    pool.reap(cg)
            else:
                m.destroy(cg)
        finally:
            self.cg = None
        self.outcome = self._outcome(proc, st, duration, leftover)
        self.outcome.background_kept = kept
        proc.close()
        return self.outcome

    def _outcome(self, proc: Process, st: Stats, duration: float, leftover: int) -> Outcome:
        foreign = isinstance(proc, ForeignProcess)
        rc = proc.returncode if proc.returncode is not None else (0 if not foreign else None)
        if rc is None:
            exit_code, sig = None, None
        else:
            exit_code, sig = (rc, None) if rc >= 0 else (None, -rc)
        killed_by = self.killed_by
        if killed_by is None and st.oom_kills and rc != 0 and not foreign:
            # a process of the call was OOM-killed and the call failed: the memory limit ended it (on v2 the
            # oom group kills the whole leaf; here the command may have noticed first and exited by itself)
            killed_by = "memory"
        elif killed_by is None and sig is not None:
            killed_by = "signal"
        soft = self.limits.memory_high
        out = Outcome(
            session=self.session.name,
            call_id=self.call_id,
            command=command_text(self.argv),
            argv=list(self.argv),
            backend=self.manager.kind,
            exit_code=exit_code,
            signal=sig,
            duration_s=round(duration, 6),
            cpu_s=None if st.cpu_usec is None else round(st.cpu_usec / 1e6, 6),
            memory_peak=st.memory_peak,
            memory_limit=self.limits.memory_max if self.limits.memory_max is not None else soft,
            memory_high=soft,
            oom_kills=st.oom_kills,
            killed_by=killed_by,
            kill_reason=self.kill_reason,
            memory_high_events=st.memory_high_events,
            cpu_throttled_s=None if st.cpu_throttled_usec is None else round(st.cpu_throttled_usec / 1e6, 6),
            frozen_s=round(self.frozen_s, 6),
            pids_denied=st.pids_denied,
            leftover_killed=leftover,
            limits=self.limits.to_dict(),
            steps=list(self.steps),
            enforced=self.manager.kind != "none",
            exit_status_known=not foreign,
            escaped=self.escaped,
        )
        if foreign and killed_by is None and st.oom_kills:
            out.killed_by = "memory"
        if proc.stdout is not None and self._relay is None:
            out.stdout = bytes(self._out.get(proc.stdout.fileno(), b""))
        if proc.stderr is not None:
            out.stderr = bytes(self._out.get(proc.stderr.fileno(), b""))
        out.feedback = build_feedback(out)
        return out

    @property
    def stdout_ended_with_newline(self) -> bool:
        return self._last_byte == b"\n"
