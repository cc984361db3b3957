"""The policy contract. A policy reads a snapshot, returns actions; the controller carries them out.

A policy sees the controller only through two narrow protocols: :class:`View` (one event's snapshot of the
budgets, figures and settings) and :class:`CallInfo` (what it may know of a call). It never changes a call: it
returns :class:`~..actions.Action` objects that name it (``self.act(...)``), and one place
(:mod:`agentcgroup.controller.apply`) applies them, changing the call's phase and asking the kernel. A timer a
policy asks for (``self.timer(...)``) comes back to that same policy's :meth:`Policy.on_timer`.

Hooks (all optional, all return a list of actions):
    on_start(view, call)            a call started
    on_memory(view, call, stats)    a kernel memory notification for a call (threshold, high, OOM, stall)
    on_pressure(view)               a budget threshold or PSI trigger fired, or a call ended
    on_timer(view, call, key)       a timer this policy asked for expired
    on_end(view, call)              a call ended (its outcome is being built)

A policy may keep state of its own (per call id, per budget); it forgets a call in ``on_end``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ...backends.base import Stats
from ..actions import Action

if TYPE_CHECKING:
    from ..config import ControllerConfig


class CallInfo(Protocol):
    """What a policy may read of a running call."""

    @property
    def id(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def session_name(self) -> str: ...
    @property
    def rank(self) -> int: ...
    @property
    def phase(self) -> str: ...  # running | throttled | frozen | done
    @property
    def throttled_by(self) -> str | None: ...  # the name of the policy whose throttle holds it
    @property
    def throttled_at(self) -> float | None: ...
    @property
    def soft(self) -> int | None: ...  # its own soft limit
    @property
    def hard(self) -> int | None: ...  # its hard limit
    @property
    def timeout(self) -> float | None: ...
    @property
    def exited(self) -> bool: ...  # its command ended (the rest of its tree may not have)
    def elapsed(self) -> float: ...
    def held(self, now: float) -> float: ...  # seconds the controller held it (throttled or frozen) so far
    @property
    def reserved(self) -> int: ...  # bytes admission reserved for it (declared or predicted peak; 0: none)


#: (scope: "" for the host budget else the session's name, usage, budget, the running calls under it)
Budget = tuple[str, int, int, Sequence[Any]]


class View(Protocol):
    """One event's snapshot: figures are read at most once each."""

    @property
    def now(self) -> float: ...
    @property
    def config(self) -> ControllerConfig: ...
    @property
    def kernel_oom_group(self) -> bool: ...  # the kernel kills a whole call on OOM (v2 memory.oom.group)
    def stats(self, call: Any) -> Stats: ...
    def call_usage(self, call: Any) -> int: ...
    def rank_of(self, call: Any) -> int: ...
    def budgets(self) -> list[Budget]: ...
    def headroom(self, call: Any) -> int: ...
    def psi_recent(self) -> bool: ...
    def kept_for(self, rank: int) -> int: ...  # what higher-priority running calls reserved and do not use yet


class Policy:
    name = "policy"

    def act(self, verb: str, call: CallInfo, reason: str, **kw: Any) -> Action:
        """An action of this policy (``kw``: level, by, figures)."""
        return Action(verb, call, reason, policy=self.name, **kw)

    def timer(self, call: CallInfo, reason: str, delay: float, key: str) -> Action:
        """Ask for :meth:`on_timer` (``key``) on ``call`` after ``delay`` s; the same key replaces it."""
        return self.act("timer", call, reason, delay=delay, key=key)

    def on_start(self, view: View, call: CallInfo) -> list[Action]:
        return []

    def on_memory(self, view: View, call: CallInfo, stats: Stats) -> list[Action]:
        return []

    def on_pressure(self, view: View) -> list[Action]:
        return []

    def on_timer(self, view: View, call: CallInfo, key: str) -> list[Action]:
        return []

    def on_end(self, view: View, call: CallInfo) -> list[Action]:
        return []
