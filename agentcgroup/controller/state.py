"""What the controller knows about its sessions and calls while they run.

A call's ``phase`` (running, throttled, frozen, done) and its throttle fields are changed in one place only,
:mod:`.apply`; policies read them (through :class:`~.policies.base.CallInfo`) and ask for changes with actions.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._record import Identity
from ..backends.base import Cgroup, EventSource
from ..limits import Limits
from ..outcome import Outcome
from .config import PRIORITIES
from .intent import Intent

if TYPE_CHECKING:
    from ..toolcall import ToolCall
    from ..warm import WarmPool
    from .loop import Timer


class SessionState(Identity):  # one object per session: compared and hashed by identity
    FIELDS = (
        "name",
        "uid",
        "priority",
        "limits",
        "cg",
        "agent_cg",
        "pool",
        "warm",
        "starts",
        "closing",
        "lock",
        "calls",
        "sources",
        "created",
        "protected",
        "opened_at",
        "kept",
    )

    def __init__(
        self,
        name: str,
        uid: int,
        priority: str,
        limits: Limits,
        cg: Cgroup,
        agent_cg: Cgroup | None = None,
        pool: WarmPool | None = None,
        warm: int = 0,
        starts: int = 0,
        closing: bool = False,
        lock: threading.Lock | None = None,
        calls: dict[str, CallState] | None = None,
        sources: list[EventSource] | None = None,
        created: bool = True,
        protected: int = 0,
        opened_at: float | None = None,
        kept: list[Cgroup] | None = None,
    ) -> None:
        self.name = name
        self.uid = uid
        self.priority = priority
        self.limits = limits
        self.cg = cg
        self.agent_cg = agent_cg
        self.pool = pool
        self.warm = warm  # spare leaves to make on demand (ControllerConfig.warm_after; SessionRef.starting)
        self.starts = starts
        self.closing = closing
        self.lock: threading.Lock = threading.Lock() if lock is None else lock
        self.calls: dict[str, CallState] = {} if calls is None else calls
        self.sources: list[EventSource] = [] if sources is None else sources
        self.created = created
        self.protected = protected  # bytes of the agent leaf's memory.low
        self.opened_at: float = time.time() if opened_at is None else opened_at
        #: leaves of calls run with keep_background whose processes still ran at the call's end: kept (with their
        #: limits) until the session closes
        self.kept: list[Cgroup] = [] if kept is None else kept

    @property
    def rank(self) -> int:
        return PRIORITIES[self.priority][0]

    @property
    def budget(self) -> int | None:
        return self.limits.memory_max

    @property
    def path(self) -> tuple[str, ...]:
        return (self.name,)

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "uid": self.uid,
            "priority": self.priority,
            "limits": self.limits.to_dict(),
            "agent_memory": self.protected,
            "calls": sorted(self.calls),
            "opened_at": self.opened_at,
        }


class CallFuture:
    """The outcome of a call, when it is known. ``wait()`` from any thread."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._outcome: Outcome | None = None
        self._error: BaseException | None = None
        self.callbacks: list[Callable[[Outcome | None], Any]] = []

    def set(self, outcome: Outcome) -> None:
        self._outcome = outcome
        self._done.set()
        for cb in self.callbacks:
            cb(outcome)

    def fail(self, exc: BaseException) -> None:
        self._error = exc
        self._done.set()
        for cb in self.callbacks:
            cb(None)

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> Outcome | None:
        if not self._done.wait(timeout):
            return None
        if self._error is not None:
            raise self._error
        return self._outcome


class CallState(Identity):  # one object per call: compared and hashed by identity
    FIELDS = (
        "call",
        "session",
        "intent",
        "future",
        "soft",
        "phase",
        "throttled_by",
        "throttled_at",
        "checkpoint",
        "cap",
        "sources",
        "timers",
        "queued_s",
        "pipes",
        "held_s",
        "held_from",
        "reserved",
    )

    def __init__(
        self,
        call: ToolCall,
        session: SessionState,
        intent: Intent,
        future: CallFuture,
        soft: int | None = None,
        phase: str = "running",
        throttled_by: str | None = None,
        throttled_at: float | None = None,
        checkpoint: int | None = None,
        cap: int | None = None,
        sources: list[EventSource] | None = None,
        timers: dict[tuple[str, str], Timer] | None = None,
        queued_s: float = 0.0,
        pipes: dict[int, Any] | None = None,
        held_s: float = 0.0,
        held_from: float | None = None,
        reserved: int = 0,
    ) -> None:
        self.call = call
        self.session = session
        self.intent = intent
        self.future = future
        self.soft = soft  # the call's own soft limit (user's or from its intent)
        self.phase = phase  # running | throttled | frozen | done
        self.throttled_by = throttled_by  # the policy whose throttle holds it
        self.throttled_at = throttled_at
        self.checkpoint = checkpoint
        self.cap = cap  # its share of a shared budget (policies/shares.py): the kernel's soft limit is the least
        self.sources: list[EventSource] = [] if sources is None else sources
        self.timers: dict[tuple[str, str], Timer] = {} if timers is None else timers  # (policy, key) -> timer
        self.queued_s = queued_s
        self.pipes: dict[int, Any] = {} if pipes is None else pipes
        self.held_s = held_s  # seconds held (throttled or frozen) by a policy, the holds that ended
        self.held_from = held_from  # when the hold in force began (None: not held)
        self.reserved = reserved  # bytes admission reserved for it (declared or predicted peak; 0: none)

    @property
    def id(self) -> str:
        return self.call.call_id

    @property
    def rank(self) -> int:
        if self.intent.priority is not None:
            return PRIORITIES[self.intent.priority][0]
        return self.session.rank

    @property
    def label(self) -> str:
        return f"{self.session.name}/{self.id}"

    @property
    def session_name(self) -> str:
        return self.session.name

    # --- what policies may read of the call (see policies.base.CallInfo) ---------------------------------
    @property
    def timeout(self) -> float | None:
        return self.call.timeout

    @property
    def hard(self) -> int | None:
        return self.call.limits.memory_max

    @property
    def exited(self) -> bool:
        """Its command has ended (the rest of its tree may still be there)."""
        proc = self.call.proc
        if proc is None or proc.returncode is not None or getattr(proc, "exited", False):
            return True
        if proc.pidfd >= 0:  # readable once it ended; not reaped here (the outcome reads it as it was)
            return bool(select.select([proc.pidfd], [], [], 0)[0])
        return proc.poll() is not None

    def elapsed(self) -> float:
        return self.call.elapsed()

    def held(self, now: float) -> float:
        """Seconds the controller has held it (throttled or frozen) so far, the hold in force included."""
        return self.held_s + (now - self.held_from if self.held_from is not None else 0.0)
