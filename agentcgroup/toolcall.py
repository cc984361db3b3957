"""One tool call: its leaf cgroup, its process tree, and how it ended.

Lifecycle: :meth:`ToolCall.start` creates ``<session>/tools/<id>`` with the call's limits and starts the command
inside it (placed before exec); :meth:`ToolCall.wait` waits on the process's pidfd and the kernel's events for
the leaf, enforcing the timeout and the v1 soft-limit stall; :meth:`ToolCall.finish` kills whatever the command
left behind, reads the figures, removes the leaf and returns the :class:`~agentcgroup.outcome.Outcome`.
"""

from __future__ import annotations

import logging
import os
import select
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .backends.base import Cgroup, Stats
from .errors import CgroupError
from .feedback import build_feedback, command_text
from .limits import Limits
from .outcome import Outcome, Step
from .spawn import PIPE, Process
from .units import MAX_BYTES, format_size
from .warm import new_call_id

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger("agentcgroup")

#: how long a v1 soft-limit stall may last before the controller releases it (or kills the call)
DEFAULT_STALL_DEADLINE = 1.0


class ToolCall:
    def __init__(
        self,
        session: Session,
        argv: Sequence[str],
        *,
        limits: Limits | None = None,
        timeout: float | None = None,
        call_id: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stdin: Any = None,
        stdout: Any = None,
        stderr: Any = None,
        capture_output: bool = False,
        relay_stdout: int | None = None,
        keep_background: bool = False,
        stall_deadline: float = DEFAULT_STALL_DEADLINE,
    ) -> None:
        self.session = session
        self.argv = [os.fspath(a) for a in argv]
        self._id_given = call_id is not None
        self.call_id = call_id or new_call_id()
        self.limits = limits or Limits()
        self.timeout = timeout
        self.env, self.cwd = env, cwd
        if capture_output:
            stdout = stderr = PIPE
        if relay_stdout is not None:
            stdout = PIPE
        self._stdio = (stdin, stdout, stderr)
        self._relay = relay_stdout
        self._relay_broken = False
        self.keep_background = keep_background
        self.stall_deadline = stall_deadline
        self.cg: Cgroup | None = None
        self.proc: Process | None = None
        self.steps: list[Step] = []
        self.killed_by: str | None = None
        self.kill_reason: str | None = None
        self.started_wall = 0.0
        self._t0 = 0.0
        self._efd = -1
        self._stall_since: float | None = None
        self._frozen_since: float | None = None
        self.frozen_s = 0.0
        self._oom_seen = 0
        self._out: dict[int, bytearray] = {}
        self._last_byte = b"\n"
        self.outcome: Outcome | None = None

    @property
    def manager(self):  # type: ignore[no-untyped-def]
        return self.session.manager

    @property
    def path(self) -> tuple[str, ...]:
        return (*self.session.path, "tools", self.call_id)

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    # --- start -------------------------------------------------------------------------------------------
    def start(self) -> ToolCall:
        """Create the leaf (or take a warm one) with the call's limits and start the command in it."""
        m = self.manager
        limits = self.limits
        if m.features.oom_group == "memory.oom.group":
            limits = limits.merged(Limits(oom_group=True))
        pool = self.session.pool if self._id_given is False else None
        spare = pool.take() if pool is not None else None
        stub = None
        if spare is not None:
            self.cg, stub = spare
            self.call_id = self.cg.path[-1]
        else:
            self.cg = m.create(self.path, limits, exist_ok=False)
        stdin, stdout, stderr = self._stdio
        try:
            if stub is not None and not limits.is_empty():
                m.set_limits(self.cg, limits)
            has_memory_limit = self.limits.memory_max is not None or self.limits.memory_high is not None
            if has_memory_limit and hasattr(m, "oom_eventfd"):
                self._efd = m.oom_eventfd(self.cg)
            self.started_wall = time.time()
            self._t0 = time.monotonic()
            if stub is not None:
                self.proc = stub.exec(self.argv, env=self.env, cwd=self.cwd, stdin=stdin, stdout=stdout, stderr=stderr)
            else:
                self.proc = m.spawn(
                    self.cg, self.argv, env=self.env, cwd=self.cwd, stdin=stdin, stdout=stdout, stderr=stderr
                )
        except BaseException:
            if stub is not None:
                stub.close()
            self._close_efd()
            m.destroy(self.cg)
            self.cg = None
            raise
        return self

    def _close_efd(self) -> None:
        if self._efd >= 0:
            os.close(self._efd)
            self._efd = -1

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

    def freeze(self, reason: str, **figures: Any) -> None:
        assert self.cg is not None
        self.manager.freeze(self.cg)
        self._frozen_since = time.monotonic()
        self.step("freeze", reason, **figures)

    def thaw(self, reason: str, **figures: Any) -> None:
        assert self.cg is not None
        self.manager.thaw(self.cg)
        if self._frozen_since is not None:
            self.frozen_s += time.monotonic() - self._frozen_since
            self._frozen_since = None
        self.step("thaw", reason, **figures)

    # --- waiting -----------------------------------------------------------------------------------------
    def wait(self) -> Outcome:
        """Wait for the command, enforcing the timeout and the v1 stall deadline; return the outcome."""
        assert self.proc is not None and self.cg is not None
        if self.outcome is not None:
            return self.outcome
        proc = self.proc
        poller = select.poll()
        if proc.pidfd >= 0:
            poller.register(proc.pidfd, select.POLLIN)
        if self._efd >= 0:
            poller.register(self._efd, select.POLLIN)
        pipes = {f.fileno(): f for f in (proc.stdout, proc.stderr) if f is not None}
        for fd in pipes:
            os.set_blocking(fd, False)
            poller.register(fd, select.POLLIN)
            self._out[fd] = bytearray()
        deadline = self._t0 + self.timeout if self.timeout else None
        try:
            while proc.poll() is None:
                now = time.monotonic()
                wake = [t for t in (deadline, self._stall_wake()) if t is not None]
                if proc.pidfd < 0:
                    wake.append(now + 0.01)
                wait_ms = None if not wake else max(0, (min(wake) - now) * 1000)
                for fd, _ in poller.poll(wait_ms):
                    if fd == self._efd:
                        try:
                            os.read(self._efd, 8)
                        except BlockingIOError:
                            pass
                        self._on_memory_event()
                    elif fd in pipes and self._read_pipe(fd) is False:
                        poller.unregister(fd)
                        del pipes[fd]
                now = time.monotonic()
                if deadline is not None and now >= deadline and proc.poll() is None:
                    self.kill("timeout", f"{self.timeout:g} s", timeout_s=self.timeout)
                    proc.wait()
                self._check_stall(now)
            return self.finish(pipes)
        except BaseException:
            if self.outcome is None:
                self.abort()
            raise

    def _read_pipe(self, fd: int) -> bool | None:
        """Read what is there: False at EOF, None if nothing is ready, True after a chunk."""
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return None
        if not chunk:
            return False
        if (
            self._relay is not None
            and self.proc is not None
            and self.proc.stdout is not None
            and fd == self.proc.stdout.fileno()
        ):
            self._last_byte = chunk[-1:]
            view = memoryview(chunk)
            try:
                while view and not self._relay_broken:
                    view = view[os.write(self._relay, view) :]
            except BrokenPipeError:  # nobody reads our stdout any more: drop the rest
                self._relay_broken = True
        else:
            self._out[fd] += chunk
        return True

    # --- memory events (v1 eventfd; the controller drives v2) ---------------------------------------------
    def _on_memory_event(self) -> None:
        assert self.cg is not None
        try:
            st = self.manager.stats(self.cg)
        except CgroupError:
            return
        if st.oom_kills > self._oom_seen:
            self._oom_seen = st.oom_kills
            if self.proc is not None and self.proc.poll() is None:
                # v1 has no memory.oom.group: one task was killed, the rest of the call follows it
                self.kill(
                    "memory",
                    "OOM kill in the call: the whole call goes (oom group)",
                    oom_kills=st.oom_kills,
                    peak=st.memory_peak,
                )
        if st.under_oom and self._stall_since is None:
            self._stall_since = time.monotonic()
            self.step(
                "throttle",
                "memory at its soft limit: stalled (v1)",
                usage=st.memory_current,
                soft=format_size(self.limits.memory_high),
            )

    def _stall_wake(self) -> float | None:
        return None if self._stall_since is None else self._stall_since + self.stall_deadline

    def _check_stall(self, now: float) -> None:
        if self._stall_since is None or now < self._stall_since + self.stall_deadline or self.cg is None:
            return
        st = self.manager.stats(self.cg)
        if not st.under_oom:
            self._stall_since = None
            return
        self._stall_since = None
        hard = self.limits.memory_max if self.limits.memory_max is not None else MAX_BYTES
        soft = self.limits.memory_high or MAX_BYTES
        if hard > soft:
            self.manager.release_stall(self.cg, hard)
            self.step(
                "release",
                f"stalled {self.stall_deadline:g} s at the soft limit; limit raised to {format_size(hard)}",
                soft=format_size(soft),
                hard=format_size(hard),
            )
        else:
            self.kill(
                "memory",
                f"stalled {self.stall_deadline:g} s at its soft memory limit without relief",
                soft=format_size(soft),
            )

    # --- finish ------------------------------------------------------------------------------------------
    def finish(self, pipes: dict[int, Any] | None = None) -> Outcome:
        """Kill leftovers, read the figures, remove the leaf, build the outcome (idempotent)."""
        if self.outcome is not None:
            return self.outcome
        assert self.proc is not None and self.cg is not None
        proc, cg, m = self.proc, self.cg, self.manager
        if proc.returncode is None:
            proc.wait()
        duration = (proc.ended or time.monotonic()) - self._t0
        leftover = 0
        st = m.stats(cg)
        if st.populated and not self.keep_background:
            leftover = m.kill(cg)
            st = m.stats(cg)
        for fd in list(pipes or {}):  # what the tree wrote before it ended (non-blocking: may be held open)
            while self._read_pipe(fd):
                pass
        if self._frozen_since is not None:
            self.frozen_s += time.monotonic() - self._frozen_since
            self._frozen_since = None
        self._close_efd()
        try:
            pool = self.session.pool
            if pool is not None:
                pool.reap(cg)  # removed in the background: off the caller's path
            else:
                m.destroy(cg)
        finally:
            self.cg = None
        self.outcome = self._outcome(proc, st, duration, leftover)
        proc.close()
        return self.outcome

    def abort(self) -> None:
        """Something went wrong while waiting (or the caller was interrupted): leave nothing behind."""
        if self.cg is not None:
            try:
                self.manager.kill(self.cg)
            finally:
                self._close_efd()
                if self.proc is not None:
                    self.proc.wait()
                    self.proc.close()
                self.manager.destroy(self.cg)
                self.cg = None

    def _outcome(self, proc: Process, st: Stats, duration: float, leftover: int) -> Outcome:
        rc = proc.returncode if proc.returncode is not None else 0
        exit_code, sig = (rc, None) if rc >= 0 else (None, -rc)
        killed_by = self.killed_by
        if killed_by is None and st.oom_kills and rc != 0:
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
        )
        if proc.stdout is not None and self._relay is None:
            out.stdout = bytes(self._out.get(proc.stdout.fileno(), b""))
        if proc.stderr is not None:
            out.stderr = bytes(self._out.get(proc.stderr.fileno(), b""))
        out.feedback = build_feedback(out)
        return out

    @property
    def stdout_ended_with_newline(self) -> bool:
        return self._last_byte == b"\n"
