"""Sessions: one agent's cgroup subtree, its agent leaf, and the tool calls it runs.

    <root>/<session>/            session budget (memory), CPU weight
    <root>/<session>/agent/      the agent runtime
    <root>/<session>/tools/<id>/ one tool call

Typical use::

    with Session("s1", limits=Limits.parse(memory="4G")) as s:
        out = s.run(["pytest", "-x"], memory="1G", timeout=600)
        if out.feedback:
            print(out.feedback)
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping, Sequence
from typing import Any

from .backends import Manager, get_manager
from .backends.base import Cgroup
from .cgroupfs import check_name
from .errors import NotFound
from .limits import Limits
from .outcome import Outcome
from .spawn import Process
from .toolcall import DEFAULT_STALL_DEADLINE, ToolCall
from .units import parse_duration
from .warm import WarmPool

_counter = itertools.count(1)


class Session:
    """An agent session. Creating it creates nothing; :meth:`open` (or ``with``) does."""

    def __init__(
        self,
        name: str | None = None,
        *,
        limits: Limits | None = None,
        manager: Manager | None = None,
        root: str | None = None,
        backend: str | None = None,
        warm: int = 1,
    ) -> None:
        self.warm = warm
        self.pool: WarmPool | None = None
        self.name = check_name(name, "session name") if name is not None else f"s{os.getpid()}-{next(_counter)}"
        self.limits = limits or Limits()
        self._own_manager = manager is None
        self._manager = manager
        self._root, self._backend = root, backend
        self.cg: Cgroup | None = None
        self.created = False
        self.agent_cg: Cgroup | None = None

    @property
    def manager(self) -> Manager:
        if self._manager is None:
            self._manager = get_manager(self._root, backend=self._backend)
        return self._manager

    @property
    def path(self) -> tuple[str, ...]:
        return (self.name,)

    # --- lifecycle -----------------------------------------------------------------------------------------
    def open(self) -> Session:
        """Create the session's cgroups (or join an existing session of the same name)."""
        if self.cg is not None:
            return self
        m = self.manager
        try:
            try:
                self.cg = m.open(self.path)
                if not self.limits.is_empty():
                    m.set_limits(self.cg, self.limits)
            except NotFound:
                self.cg = m.create(self.path, self.limits)
                self.created = True
            m.create((*self.path, "tools"))
            if self.warm > 0 and WarmPool.supported(m):
                self.pool = WarmPool(m, (*self.path, "tools"), self.warm)
        except BaseException:
            self._cleanup()
            raise
        return self

    def close(self) -> None:
        """Kill and remove what this session created; release the manager if it is ours."""
        self._cleanup()

    def _cleanup(self) -> None:
        m = self._manager
        try:
            if self.pool is not None:
                pool, self.pool = self.pool, None
                pool.close()
            if m is not None and self.cg is not None:
                if self.created:
                    m.destroy(self.cg)
                else:
                    for name in ("tools",):
                        try:
                            tools = m.open((*self.path, name))
                        except NotFound:
                            continue
                        if not m.children(tools.path):
                            try:
                                m.destroy(tools)
                            except Exception:
                                pass
        finally:
            self.cg = None
            if m is not None and self._own_manager:
                m.close()
                self._manager = None

    def __enter__(self) -> Session:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the agent runtime ---------------------------------------------------------------------------------
    def _agent(self, limits: Limits | None) -> Cgroup:
        self.open()
        if self.agent_cg is None:
            self.agent_cg = self.manager.create((*self.path, "agent"), limits)
        elif limits is not None:
            self.manager.set_limits(self.agent_cg, limits)
        return self.agent_cg

    def spawn_agent(self, argv: Sequence[str], *, limits: Limits | None = None, **kwargs: Any) -> Process:
        """Start the agent runtime in the session's ``agent`` leaf."""
        return self.manager.spawn(self._agent(limits), argv, **kwargs)

    def attach_agent(self, pid: int, *, limits: Limits | None = None) -> None:
        """Move an agent runtime we started (e.g. this process) into the ``agent`` leaf."""
        self.manager.attach(self._agent(limits), pid)

    # --- tool calls ------------------------------------------------------------------------------------------
    def start(
        self,
        argv: Sequence[str],
        *,
        limits: Limits | None = None,
        memory: str | int | None = None,
        memory_high: str | int | None = None,
        cpu: str | float | None = None,
        pids: str | int | None = None,
        timeout: str | float | None = None,
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
    ) -> ToolCall:
        """Start a tool call and return it; :meth:`ToolCall.wait` gives its outcome."""
        call_limits = Limits.parse(memory=memory, memory_high=memory_high, cpu=cpu, pids=pids)
        if limits is not None:
            call_limits = limits.merged(call_limits)
        tmo = parse_duration(timeout, "timeout") if timeout is not None else None
        if call_id is not None:
            check_name(call_id, "call id")
        self.open()
        call = ToolCall(
            self,
            argv,
            limits=call_limits,
            timeout=tmo,
            call_id=call_id,
            env=env,
            cwd=cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            capture_output=capture_output,
            relay_stdout=relay_stdout,
            keep_background=keep_background,
            stall_deadline=stall_deadline,
        )
        return call.start()

    def run(self, argv: Sequence[str], **kwargs: Any) -> Outcome:
        """Run a tool call to its end (see :meth:`start` for the arguments) and return its outcome."""
        return self.start(argv, **kwargs).wait()


def run(
    argv: Sequence[str],
    *,
    session: str | None = None,
    root: str | None = None,
    backend: str | None = None,
    **kwargs: Any,
) -> Outcome:
    """Run one command in a throw-away session (or join ``session``); nothing is left behind."""
    with Session(session, root=root, backend=backend, warm=0) as s:
        return s.run(argv, **kwargs)
