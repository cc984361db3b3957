"""The one place that runs the policies, applies their actions and changes a call's phase.

For each event it takes a fresh :class:`~.snapshot.Snapshot`, asks each policy in turn, and applies that
policy's actions before asking the next (so the next sees the phases the first one set). Applying an action:

    throttle  phase throttled, held by the action's policy (since now); the kernel's soft limit to ``level``
    release   phase running; the call's soft limit becomes ``level`` (None: lifted); written to the kernel (the
              least of it and the call's cap)
    cap       the call's share of a shared budget becomes ``level`` (None: none); written to the kernel while it
              runs (the least of it and its own soft limit); no phase change, no step in the outcome
    recover   phase running (the call came back under its limit by itself); nothing written
    freeze    phase frozen; the call's tree frozen
    thaw      phase throttled if a throttle still holds it, else running; the tree thawed
    kill      the whole tree killed (the phase stays: the call is draining; nothing else acts on it)
    note      a step in the outcome
    timer     the policy that asked gets ``on_timer(key)`` after ``delay`` (one timer per policy and key)

A call that is done, or killed, takes no more actions (a note still reaches a killed call's outcome).
Every action applied is also an :class:`~.events.Event` (with, for a reaction to a kernel event, the time from
the event's handling to the action done: ``latency_s``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from ..errors import InvalidValue
from .actions import Action, Actuator
from .events import EventBus
from .loop import Timer
from .policies.base import Policy
from .snapshot import Snapshot
from .state import CallState

#: ``call_later(delay, callback) -> Timer`` (the loop's)
Schedule = Callable[[float, Callable[[], Any]], Timer]


class Enforcer:
    def __init__(
        self,
        policies: Sequence[Policy],
        actuator: Actuator,
        snapshot: Callable[[], Snapshot],
        call_later: Schedule,
        on_error: Callable[[CallState, Exception], None] | None = None,
        events: EventBus | None = None,
    ) -> None:
        names = [p.name for p in policies]
        if len(set(names)) != len(names):
            raise InvalidValue("policies", names, "each policy needs a name of its own (timers find it by name)")
        self.policies = list(policies)
        self._by_name = {p.name: p for p in policies}
        self.actuator = actuator
        self._snapshot = snapshot
        self._call_later = call_later
        self._on_error = on_error  # a timer's policy failed for a call (dispatch fails that call)
        self.events = events or EventBus()
        self._event_at: float | None = None  # when the kernel event being handled was taken up

    # --- events ---------------------------------------------------------------------------------------------
    def started(self, cs: CallState) -> None:
        snap = self._snapshot()
        for p in self.policies:
            self.apply(p.on_start(snap, cs), snap.now)

    def memory(self, cs: CallState) -> int:
        """A memory notification for ``cs``; its usage as this event read it."""
        self._event_at = time.monotonic()
        try:
            snap = self._snapshot()
            st = snap.stats(cs)
            for p in self.policies:
                self.apply(p.on_memory(snap, cs, st), snap.now)
            return st.memory_current or 0
        finally:
            self._event_at = None

    def pressure(self) -> None:
        self._event_at = time.monotonic()
        try:
            snap = self._snapshot()
            for p in self.policies:
                self.apply(p.on_pressure(snap), snap.now)
        finally:
            self._event_at = None

    def kill(self, cs: CallState, by: str, reason: str, source: str = "request") -> None:
        """A kill nobody's policy decided (a client's request, a closing session, a controller error)."""
        self.apply([Action("kill", cs, reason, policy=source, by=by)], 0.0)

    def end(self, cs: CallState) -> None:
        """The call is done: no timer, no action any more; each policy forgets it."""
        cs.phase = "done"
        for t in cs.timers.values():
            t.cancel()
        cs.timers.clear()
        snap = self._snapshot()
        for p in self.policies:
            p.on_end(snap, cs)

    # --- actions ---------------------------------------------------------------------------------------------
    def apply(self, actions: Sequence[Action], now: float) -> None:
        for a in actions:
            cs = cast(CallState, a.call)  # policies are handed CallStates (as CallInfo): the same objects
            if cs.phase == "done":
                continue
            if cs.call.killed_by is not None and a.verb != "note":
                continue  # killed and draining: no thaw, release or second kill for it
            if a.verb == "timer":
                self._arm(a, cs)
                continue
            self._move(a, cs, now)
            if a.verb != "recover":
                self.actuator.execute(a, cs)
            if self.events.active:
                self._emit(a, cs)

    def _emit(self, a: Action, cs: CallState) -> None:
        fields: dict[str, Any] = {
            "reason": a.reason,
            "policy": a.policy,
            "priority": cs.session.priority,
            "phase": cs.phase,
        }
        if a.level is not None:
            fields["level"] = a.level
        if a.verb == "kill":
            fields["by"] = a.by
        if a.figures:
            fields["figures"] = dict(a.figures)
        if self._event_at is not None:
            fields["latency_s"] = time.monotonic() - self._event_at
        self.events.emit(a.verb, cs.session.name, cs.session.uid, cs.id, **fields)

    @staticmethod
    def _move(a: Action, cs: CallState, now: float) -> None:
        """The call's phase after ``a``; the time it is held (throttled or frozen) added up as it goes."""
        was_held = cs.phase in ("throttled", "frozen")
        Enforcer._phase(a, cs, now)
        held = cs.phase in ("throttled", "frozen")
        if held and not was_held:
            cs.held_from = now
        elif was_held and not held and cs.held_from is not None:
            cs.held_s += max(0.0, now - cs.held_from)
            cs.held_from = None

    @staticmethod
    def _phase(a: Action, cs: CallState, now: float) -> None:
        if a.verb == "throttle":
            cs.phase, cs.throttled_by, cs.throttled_at = "throttled", a.policy, now
        elif a.verb in ("release", "recover"):
            cs.phase, cs.throttled_by = "running", None
            if a.verb == "release":
                cs.soft = a.level
        elif a.verb == "cap":
            cs.cap = a.level
        elif a.verb == "freeze":
            cs.phase = "frozen"
        elif a.verb == "thaw":
            cs.phase = "throttled" if cs.throttled_by is not None else "running"

    def _arm(self, a: Action, cs: CallState) -> None:
        policy = self._by_name.get(a.policy)
        if policy is None:
            raise ValueError(f"a timer for {cs.label} names no policy of this controller: {a.policy!r}")
        key = (a.policy, a.key)
        old = cs.timers.pop(key, None)
        if old is not None:
            old.cancel()
        cs.timers[key] = self._call_later(a.delay, lambda: self._fire(policy, cs, a.key))

    def _fire(self, policy: Policy, cs: CallState, key: str) -> None:
        cs.timers.pop((policy.name, key), None)
        if cs.phase == "done":
            return
        try:
            snap = self._snapshot()
            self.apply(policy.on_timer(snap, cs, key), snap.now)
        except Exception as exc:
            if self._on_error is None:
                raise
            self._on_error(cs, exc)
