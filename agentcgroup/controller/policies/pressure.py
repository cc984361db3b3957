"""When a budget runs short, lower-priority tool calls give way: throttled, then frozen, then killed.

The global budget (the root's) and each session's budget are watched (v1: usage thresholds; v2: the calls'
checkpoints and PSI). Over ``pressure_on`` of a budget, the running calls under it are ranked by priority
(lowest first; calls of high-priority sessions are never victims of the global budget), then by usage, and the
first is throttled at its current usage. If the pressure lasts ``stall_grace`` the throttled calls are frozen;
if it lasts ``kill_after`` more, the largest frozen call is killed, and so on. Under ``pressure_off`` frozen
calls thaw and throttles lift. Agent leaves are never touched.

At ``urgent_level`` of a budget, with a higher-priority call still running beside the victims, that call is
waiting on the memory they hold (without swap, a throttle or a freeze gives none back; only their end does):
their deadlines shrink to ``urgent_grace``. They still go throttle, freeze, kill, in that order.
"""

from __future__ import annotations

from collections.abc import Sequence

from ...backends.base import Stats
from ...units import format_size
from ..actions import Action
from .base import CallInfo, Policy, View

HIGH = 2


class PressurePolicy(Policy):
    name = "pressure"

    def __init__(self) -> None:
        self.victims: dict[str, list[CallInfo]] = {}  # scope ("" = global, else session name) -> calls
        self.hurried: set[tuple[str, str]] = set()  # (call id, phase) whose deadline was shortened

    # --- evaluation -----------------------------------------------------------------------------------
    def on_pressure(self, view: View) -> list[Action]:
        actions: list[Action] = []
        for scope, usage, budget, calls in view.budgets():
            actions += self._evaluate(view, scope, usage, budget, calls)
        return actions

    def on_memory(self, view: View, call: CallInfo, stats: Stats) -> list[Action]:
        return self.on_pressure(view)

    def on_end(self, view: View, call: CallInfo) -> list[Action]:
        for victims in self.victims.values():
            if call in victims:
                victims.remove(call)
        self.hurried -= {(call.id, "throttled"), (call.id, "frozen")}
        return []

    def _is_victim(self, call: CallInfo) -> bool:
        return any(call in v for v in self.victims.values())

    def _shortage(self, view: View, scope: str, usage: int, budget: int) -> bool:
        level = usage / budget
        # host PSI hastens action once usage is past pressure_off; below that, a stall is a call's own doing
        # (at its soft limit, or at a v2 checkpoint), not a shortage
        psi = scope == "" and level >= view.config.pressure_off and view.psi_recent()
        return level >= view.config.pressure_on or psi

    def _evaluate(self, view: View, scope: str, usage: int, budget: int, calls: Sequence[CallInfo]) -> list[Action]:
        victims = self.victims.setdefault(scope, [])
        if self._shortage(view, scope, usage, budget):
            return self._hurry(view, scope, usage, budget, calls, victims) + self._squeeze(
                view, scope, usage, budget, calls, victims
            )
        if usage / budget < view.config.pressure_off and victims:
            return self._relieve(scope, usage, budget, victims)
        return []

    @staticmethod
    def _urgent(view: View, usage: int, budget: int, calls: Sequence[CallInfo], victim: CallInfo) -> bool:
        """At the budget's edge with a higher-priority call still running: it waits on the victim's memory."""
        if usage < view.config.urgent_at * budget:
            return False
        mine = view.rank_of(victim)
        return any(c.phase == "running" and view.rank_of(c) > mine for c in calls)

    def _deadline(
        self, view: View, call: CallInfo, phase: str, scope: str, usage: int, budget: int, calls: Sequence[CallInfo]
    ) -> tuple[bool, Action]:
        """(urgent, the timer to the step after ``phase``): ``urgent_grace`` if a higher-priority call waits."""
        cfg = view.config
        usual, key = (cfg.stall_grace, "freeze") if phase == "throttled" else (cfg.kill_after, "kill")
        urgent = self._urgent(view, usage, budget, calls, call) and cfg.urgent_grace < usual
        if urgent:
            self.hurried.add((call.id, phase))
        delay = cfg.urgent_grace if urgent else usual
        return urgent, self.timer(call, f"pressure deadline ({phase})", delay, f"{key}:{scope}")

    def _hurry(
        self,
        view: View,
        scope: str,
        usage: int,
        budget: int,
        calls: Sequence[CallInfo],
        victims: list[CallInfo],
    ) -> list[Action]:
        """Bring the pending deadlines of the victims forward, once each, when it became urgent."""
        actions = []
        for v in victims:
            if (v.id, v.phase) in self.hurried or v.phase not in ("throttled", "frozen"):
                continue
            urgent, timer = self._deadline(view, v, v.phase, scope, usage, budget, calls)
            if urgent:
                actions.append(timer)
        return actions

    @staticmethod
    def _where(scope: str, usage: int, budget: int) -> str:
        what = "the host budget" if scope == "" else f"session {scope}'s budget"
        return f"{what} {format_size(budget)} at {100 * usage / budget:.0f}%"

    def _squeeze(
        self,
        view: View,
        scope: str,
        usage: int,
        budget: int,
        calls: Sequence[CallInfo],
        victims: list[CallInfo],
    ) -> list[Action]:
        candidates = [c for c in calls if c.phase == "running" and not self._is_victim(c)]
        if scope == "":
            candidates = [c for c in candidates if c.rank < HIGH]
        if not candidates or any(v.phase == "throttled" and v.throttled_by == self.name for v in victims):
            return []  # one throttled victim at a time; its deadline decides what comes next
        top = max(view.rank_of(c) for c in calls) if calls else 0
        candidates.sort(key=lambda c: (view.rank_of(c), -(view.call_usage(c))))
        call = candidates[0]
        if view.rank_of(call) >= top and scope == "" and len({view.rank_of(c) for c in calls}) > 1:
            return []
        used = view.call_usage(call)
        victims.append(call)
        why = self._where(scope, usage, budget)
        actions = [
            self.act(
                "throttle",
                call,
                f"{why}: lower-priority calls give way",
                level=used,
                figures={"usage": used, "scope": scope or "host"},
            ),
            self._deadline(view, call, "throttled", scope, usage, budget, calls)[1],
        ]
        return actions + self._notes(view, call, calls, f"{call.label} was throttled: {why}")

    def _notes(self, view: View, victim: CallInfo, calls: Sequence[CallInfo], text: str) -> list[Action]:
        return [
            self.act("note", other, f"protected: {text}")
            for other in calls
            if other is not victim and view.rank_of(other) > view.rank_of(victim)
        ]

    def _relieve(self, scope: str, usage: int, budget: int, victims: list[CallInfo]) -> list[Action]:
        why = f"pressure passed ({self._where(scope, usage, budget)})"
        actions: list[Action] = []
        for call in list(victims):
            if call.phase == "frozen":
                actions.append(self.act("thaw", call, why))
            actions.append(self.act("release", call, why, level=call.soft))
            victims.remove(call)
        return actions

    # --- deadlines ------------------------------------------------------------------------------------
    def on_timer(self, view: View, call: CallInfo, key: str) -> list[Action]:
        step, _, scope = key.partition(":")
        if call.throttled_by != self.name:
            return []
        found = [b for b in view.budgets() if b[0] == scope]
        if not found:
            return []
        _, usage, budget, calls = found[0]
        if not self._shortage(view, scope, usage, budget):
            return self._relieve(scope, usage, budget, self.victims.get(scope, []))
        why = self._where(scope, usage, budget)
        if step == "freeze" and call.phase == "throttled":
            stalled = view.now - (call.throttled_at or view.now)
            urgent, timer = self._deadline(view, call, "frozen", scope, usage, budget, calls)
            what = f"{why}: a higher-priority call is waiting for memory" if urgent else f"{why} for {stalled:.1f} s"
            # the next victim, if the pressure is still there
            return [self.act("freeze", call, what), timer, *self._squeeze_next(view, scope, usage, budget, calls)]
        if step == "kill" and call.phase == "frozen":
            st = view.stats(call)
            actions = [
                self.act(
                    "kill",
                    call,
                    f"{why}: no memory for it",
                    by="policy",
                    figures={"usage": st.memory_current, "scope": scope or "host"},
                )
            ]
            actions += self._notes(view, call, calls, f"{call.label} was killed: {why}")
            victims = self.victims.get(scope, [])
            if call in victims:
                victims.remove(call)  # it is gone: nothing to thaw or release when the pressure passes
            return actions
        return []

    def _squeeze_next(self, view: View, scope: str, usage: int, budget: int, calls: Sequence[CallInfo]) -> list[Action]:
        victims = self.victims.setdefault(scope, [])
        if any(v.phase == "throttled" for v in victims):
            return []
        return self._squeeze(view, scope, usage, budget, calls, victims)
