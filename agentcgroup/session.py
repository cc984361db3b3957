"""Sessions: one agent's cgroup subtree, its agent leaf, and the tool calls it runs.

    <root>/<session>/            session budget (memory), CPU weight
    <root>/<session>/agent/      the agent runtime (protected)
    <root>/<session>/tools/<id>/ one tool call

A :class:`Session` is the embedded face of the :class:`~agentcgroup.controller.Controller`: without one given it
runs a private controller (its event loop on a background thread) for as long as the session is open::

    with Session("s1", limits=Limits.parse(memory="4G")) as s:
        out = s.run(["pytest", "-x"], memory="1G", timeout=600)
        if out.feedback:
            print(out.feedback)
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from typing import Any

from .backends import Manager
from .cgroupfs import check_name
from .controller.config import ControllerConfig, check_priority
from .controller.core import CallHandle, Controller
from .controller.intent import Intent
from .limits import Limits
from .outcome import Outcome
from .spawn import Process
from .units import parse_duration

_counter = itertools.count(1)


class Session:
    """An agent session. Creating it creates nothing; :meth:`open` (or ``with``) does."""

    def __init__(
        self,
        name: str | None = None,
        *,
        limits: Limits | None = None,
        priority: str = "normal",
        controller: Controller | None = None,
        manager: Manager | None = None,
        root: str | None = None,
        backend: str | None = None,
        warm: int = 2,
        config: ControllerConfig | None = None,
    ) -> None:
        self.name = check_name(name, "session name") if name is not None else f"s{os.getpid()}-{next(_counter)}"
        self.limits = limits or Limits()
        self.priority = check_priority(priority)
        self._ctl = controller
        self._own_ctl = controller is None
        self._manager, self._root, self._backend = manager, root, backend
        self._config = (config or ControllerConfig()).with_(warm=warm) if controller is None else None
        self.is_open = False

    @property
    def controller(self) -> Controller:
        if self._ctl is None:
            self._ctl = Controller(self._manager, root=self._root, backend=self._backend, config=self._config)
        return self._ctl

    @property
    def manager(self) -> Manager:
        return self.controller.manager

    @property
    def path(self) -> tuple[str, ...]:
        return (self.name,)

    # --- lifecycle -----------------------------------------------------------------------------------------
    def open(self) -> Session:
        """Create the session's cgroups (or join an existing session of the same name)."""
        if self.is_open:
            return self
        try:
            self.controller.open_session(self.name, priority=self.priority, limits=self.limits)
        except BaseException:
            self._release()
            raise
        self.is_open = True
        return self

    def close(self) -> None:
        """Kill the session's running calls and remove what it created."""
        try:
            if self.is_open and self._ctl is not None:
                self.is_open = False
                self._ctl.close_session(self.name)
        finally:
            self._release()

    def _release(self) -> None:
        if self._own_ctl and self._ctl is not None:
            ctl, self._ctl = self._ctl, None
            ctl.close()

    def __enter__(self) -> Session:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the agent runtime ---------------------------------------------------------------------------------
    def spawn_agent(self, argv: Sequence[str], **kwargs: Any) -> Process:
        """Start the agent runtime in the session's ``agent`` leaf."""
        self.open()
        return self.controller.spawn_agent(self.name, argv, **kwargs)

    def attach_agent(self, pid: int) -> None:
        """Move an agent runtime we started (e.g. this process) into the ``agent`` leaf."""
        self.open()
        self.controller.attach_agent(self.name, pid)

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
        intent: Intent | None = None,
        **kwargs: Any,
    ) -> CallHandle:
        """Start a tool call; ``.wait()`` on the handle gives its outcome.

        Limits: ``memory`` (hard), ``memory_high`` (soft), ``cpu`` (``50%``), ``pids``, ``timeout`` (s);
        ``intent`` declares what it expects. Other keywords: ``env``, ``cwd``, ``stdin``/``stdout``/``stderr``,
        ``capture_output``, ``relay_stdout``, ``keep_background``, ``call_id``, ``run_as``.
        """
        call_limits = Limits.parse(memory=memory, memory_high=memory_high, cpu=cpu, pids=pids)
        if limits is not None:
            call_limits = limits.merged(call_limits)
        tmo = parse_duration(timeout, "timeout") if timeout is not None else None
        self.open()
        return self.controller.submit(self.name, argv, limits=call_limits, timeout=tmo, intent=intent, **kwargs)

    def run(self, argv: Sequence[str], **kwargs: Any) -> Outcome:
        """Run a tool call to its end (see :meth:`start` for the arguments) and return its outcome."""
        out = self.start(argv, **kwargs).wait()
        assert out is not None
        return out


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
