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

from ...units import format_size
from ..actions import Action
from .base import Policy

HIGH = 2


class PressurePolicy(Policy):
    name = "pressure"

    def __init__(self) -> None:
        self.victims: dict[str, list] = {}  # scope ("" = global, else session name) -> [CallState]
        self.hurried: set[tuple[str, str]] = set()  # (call id, phase) whose deadline was shortened

    # --- evaluation -----------------------------------------------------------------------------------
    def on_pressure(self, view):  # type: ignore[no-untyped-def]
        actions: list[Action] = []
        for scope, usage, budget, calls in view.budgets():
            actions += self._evaluate(view, scope, usage, budget, calls)
        return actions

    def on_memory(self, view, cs, stats):  # type: ignore[no-untyped-def]
        return self.on_pressure(view)

    def on_end(self, view, cs):  # type: ignore[no-untyped-def]
        for victims in self.victims.values():
            if cs in victims:
                victims.remove(cs)
        self.hurried -= {(cs.id, "throttled"), (cs.id, "frozen")}
        return []

    def _evaluate(self, view, scope, usage, budget, calls):  # type: ignore[no-untyped-def]
        cfg = view.config
        victims = self.victims.setdefault(scope, [])
        level = usage / budget
        # host PSI hastens action once usage is past pressure_off; below that, a stall is a call's own doing
        # (at its soft limit, or at a v2 checkpoint), not a shortage
        psi = scope == "" and level >= cfg.pressure_off and view.psi_recent()
        if level >= cfg.pressure_on or psi:
            return self._hurry(view, scope, usage, budget, calls, victims) + self._squeeze(
                view, scope, usage, budget, calls, victims
            )
        if level < cfg.pressure_off and victims:
            return self._relieve(view, scope, usage, budget, victims)
        return []

    @staticmethod
    def _urgent(view, usage, budget, calls, victim) -> bool:  # type: ignore[no-untyped-def]
        """At the budget's edge with a higher-priority call still running: it waits on the victim's memory."""
        if usage < view.config.urgent_at * budget:
            return False
        mine = view.rank_of(victim)
        return any(c.phase == "running" and view.rank_of(c) > mine for c in calls)

    def _deadline(self, view, cs, phase, scope, usage, budget, calls):  # type: ignore[no-untyped-def]
        """(urgent, the timer to the step after ``phase``): ``urgent_grace`` if a higher-priority call waits."""
        cfg = view.config
        usual, key = (cfg.stall_grace, "pressure-freeze") if phase == "throttled" else (cfg.kill_after, "pressure-kill")
        urgent = self._urgent(view, usage, budget, calls, cs) and cfg.urgent_grace < usual
        if urgent:
            self.hurried.add((cs.id, phase))
        delay = cfg.urgent_grace if urgent else usual
        return urgent, Action("timer", cs, f"pressure deadline ({phase})", delay=delay, key=f"{key}:{scope}")

    def _hurry(self, view, scope, usage, budget, calls, victims):  # type: ignore[no-untyped-def]
        """Bring the pending deadlines of the victims forward, once each, when it became urgent."""
        actions = []
        for v in victims:
            if (v.id, v.phase) in self.hurried or v.phase not in ("throttled", "frozen"):
                continue
            urgent, timer = self._deadline(view, v, v.phase, scope, usage, budget, calls)
            if urgent:
                actions.append(timer)
        return actions

    def _where(self, scope: str, usage: int, budget: int) -> str:
        what = "the host budget" if scope == "" else f"session {scope}'s budget"
        return f"{what} {format_size(budget)} at {100 * usage / budget:.0f}%"

    def _squeeze(self, view, scope, usage, budget, calls, victims):  # type: ignore[no-untyped-def]
        candidates = [cs for cs in calls if cs.phase in ("running",) and cs not in victims]
        if scope == "":
            candidates = [cs for cs in candidates if cs.rank < HIGH]
        if not candidates or any(v.phase == "throttled" and v.throttled_by == "pressure" for v in victims):
            return []  # one throttled victim at a time; its deadline decides what comes next
        top = max(view.rank_of(cs) for cs in calls) if calls else 0
        candidates.sort(key=lambda cs: (view.rank_of(cs), -(view.call_usage(cs))))
        cs = candidates[0]
        if view.rank_of(cs) >= top and scope == "" and len({view.rank_of(c) for c in calls}) > 1:
            return []
        used = view.call_usage(cs)
        victims.append(cs)
        cs.phase, cs.throttled_by, cs.throttled_at = "throttled", "pressure", view.now
        why = self._where(scope, usage, budget)
        actions = [
            Action(
                "throttle",
                cs,
                f"{why}: lower-priority calls give way",
                level=used,
                figures={"usage": used, "scope": scope or "host"},
            ),
            self._deadline(view, cs, "throttled", scope, usage, budget, calls)[1],
        ]
        actions += self._notes(view, cs, calls, f"{cs.label} was throttled: {why}")
        return actions

    def _notes(self, view, victim, calls, text):  # type: ignore[no-untyped-def]
        return [
            Action("note", other, f"protected: {text}")
            for other in calls
            if other is not victim and view.rank_of(other) > view.rank_of(victim)
        ]

    def _relieve(self, view, scope, usage, budget, victims):  # type: ignore[no-untyped-def]
        why = f"pressure passed ({self._where(scope, usage, budget)})"
        actions: list[Action] = []
        for cs in list(victims):
            if cs.phase == "frozen":
                actions.append(Action("thaw", cs, why))
            actions.append(Action("release", cs, why, level=cs.soft))
            cs.phase, cs.throttled_by = "running", None
            victims.remove(cs)
        return actions

    # --- deadlines ------------------------------------------------------------------------------------
    def on_timer(self, view, cs, key):  # type: ignore[no-untyped-def]
        if not key.startswith("pressure-") or cs.throttled_by != "pressure":
            return []
        scope = key.split(":", 1)[1]
        found = [b for b in view.budgets() if b[0] == scope]
        if not found:
            return []
        _, usage, budget, calls = found[0]
        level = usage / budget
        psi = scope == "" and level >= view.config.pressure_off and view.psi_recent()
        if level < view.config.pressure_on and not psi:
            return self._relieve(view, scope, usage, budget, self.victims.get(scope, []))
        why = self._where(scope, usage, budget)
        if key.startswith("pressure-freeze") and cs.phase == "throttled":
            stalled = view.now - (cs.throttled_at or view.now)
            urgent, timer = self._deadline(view, cs, "frozen", scope, usage, budget, calls)
            what = f"{why}: a higher-priority call is waiting for memory" if urgent else f"{why} for {stalled:.1f} s"
            actions = [Action("freeze", cs, what), timer]
            # the next victim, if the pressure is still there
            return actions + self._squeeze_next(view, scope, usage, budget, calls)
        if key.startswith("pressure-kill") and cs.phase == "frozen":
            st = view.stats(cs)
            actions = [
                Action(
                    "kill",
                    cs,
                    f"{why}: no memory for it",
                    by="policy",
                    figures={"usage": st.memory_current, "scope": scope or "host"},
                )
            ]
            actions += self._notes(view, cs, calls, f"{cs.label} was killed: {why}")
            victims = self.victims.get(scope, [])
            if cs in victims:
                victims.remove(cs)  # it is gone: nothing to thaw or release when the pressure passes
            return actions
        return []

    def _squeeze_next(self, view, scope, usage, budget, calls):  # type: ignore[no-untyped-def]
        victims = self.victims.setdefault(scope, [])
        if any(v.phase == "throttled" for v in victims):
            return []
        return self._squeeze(view, scope, usage, budget, calls, victims)
