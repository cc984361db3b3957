"""When a budget runs short, lower-priority tool calls slow down (throttled, then frozen); killed only as a last
resort.

The global budget (the root's) and each session's are read at every event and every ``sample_interval`` while
calls run under them; a short series of each budget's and each call's usage gives how fast they grow (see
:mod:`.growth`) and when the budget will reach its hard limit. A budget is *short* over ``pressure_on`` of it, or
when that time is under ``lead_time``: then **every** growing call below the protected ones is throttled where it
stands (on v2 ``memory.high`` at its usage; on v1/hybrid a stall at the limit), several at once; if none grows
and the budget is over ``pressure_on``, the largest lowest-priority call is. Protected: the calls of the highest
priority present (never victims of the host budget: high-priority ones; of a session's budget where all are of
one priority: the oldest). Still short after ``stall_grace``, a throttled call is frozen.

A frozen call is killed only when a protected call is still running and the budget is at its *edge*
(``urgent_level`` of it, or its hard limit less than ``urgent_lead`` away), or still over ``pressure_on`` at
its kill deadline with a higher-priority call running: that call waits on memory that, without swap, only a held
call's end gives back. Then the frozen call whose death frees the most for the least lost work goes: lowest
priority first, then the most memory per second it has run. Otherwise it stays frozen. At the edge the
deadlines shrink to ``urgent_grace``; the steps stay in order: throttle, freeze, kill.

When the budget is under ``pressure_off`` and not predicted to be short within twice ``lead_time``, the held
calls are released one at a time, highest priority (then oldest) first, each at least a sampling window after
the one before, so they do not all resume into the limit together; if no call under the budget runs any more,
the first held one is released whatever the level. Agent leaves are never touched.

Before any of that, every running call below high priority is *capped* (``caps``, :mod:`.shares`): its usage
plus its share of the budget's headroom (up to ``pressure_on`` for the top rank present, ``pressure_off`` for the
ranks below it), recomputed at each sample, so that a burst faster than a sample stalls at the call's own cap
rather than at the budget's hard limit, where the kernel's OOM killer would choose. Under the host budget the
headroom a call shares leaves out what running calls of higher priority were admitted to grow into and do not use
yet (their declared or predicted peaks less their usage), though a call may always reach its own reservation: a
call that outgrows its prediction is held small, not grown into that room and killed at the edge for them. A
call found stalled at its cap is throttled there (held) unless it is protected. With caps, held calls go on as
soon as the cap they would get leaves them room (they meet their caps, not the limit), the most important first,
one per two samples, instead of by the budget's level. A protected call below high priority that waits at its
cap with the budget full for ``stall_grace + kill_after`` has the frozen call that frees the most killed for it,
if the held calls keep a part of the budget worth having; if not, it needs more than the budget has beside the
rest, and dies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ...backends.base import Stats
from ..actions import Action
from .base import CallInfo, View
from .growth import time_to_limit
from .pressure_caps import PressureCaps
from .pressure_watch import FLOOR, GROWING, HELD, HIGH, MAX_LEVEL, WATCH_FROM, PressureWatch
from .shares import STEP_OF_BUDGET

__all__ = ["FLOOR", "GROWING", "HELD", "HIGH", "MAX_LEVEL", "WATCH_FROM", "PressurePolicy", "PressureWatch"]


class PressurePolicy(PressureCaps):
    name = "pressure"

    def on_start(self, view: View, call: CallInfo) -> list[Action]:
        return self.on_pressure(view)

    def on_pressure(self, view: View) -> list[Action]:
        actions: list[Action] = []
        budgets = self._observe(view)
        for scope, usage, budget, calls in budgets:
            actions += self._evaluate(view, scope, usage, budget, calls)
        actions += self._stuck(view, budgets)
        return actions + self._share(view, budgets, actions) + self._tick(view, budgets)

    def on_memory(self, view: View, call: CallInfo, stats: Stats) -> list[Action]:
        return self._stalled(view, call, stats) + self.on_pressure(view)

    def on_end(self, view: View, call: CallInfo) -> list[Action]:
        for victims in self.victims.values():
            if call in victims:
                victims.remove(call)
        self.hurried -= {(call.id, "throttled"), (call.id, "frozen")}
        self.killed.discard(call.id)
        self.held_rate.pop(call.id, None)
        self.capped.pop(call.id, None)
        self.stuck_since.pop(call.id, None)
        self.stuck_cpu.pop(call.id, None)
        if self.series is not None:
            self.series.forget(f"call:{call.id}")
        if call.id == self.tick_call:
            self.tick_due = self.tick_call = None
        return []

    def _tick(self, view: View, budgets: Sequence[tuple[str, int, int, Sequence[CallInfo]]]) -> list[Action]:
        """Keep one sampling timer while calls run under a budget (re-armed if its call went away)."""
        interval = view.config.sample_interval
        if not self.sampling:
            return []
        if self.tick_due is not None and view.now <= self.tick_due + 4 * interval:
            return []
        carriers = [c for _, _, _, calls in budgets for c in self._live(calls)]
        if not carriers:
            self.tick_due = self.tick_call = None
            return []
        carrier = min(carriers, key=lambda c: (c.phase != "running", c.id))
        self.tick_due, self.tick_call = view.now + interval, carrier.id
        return [self.timer(carrier, "sample the budgets", interval, "tick")]

    def _evaluate(self, view: View, scope: str, usage: int, budget: int, calls: Sequence[CallInfo]) -> list[Action]:
        victims = self.victims.setdefault(scope, [])
        if self._short(view, scope, usage, budget, calls):
            return (
                self._hurry(view, scope, usage, budget, calls, victims)
                + self._squeeze(view, scope, usage, budget, calls, victims)
                + self._unstick(view, scope, usage, budget, calls, victims)
            )
        if victims:
            return self._release_one(view, scope, usage, budget, calls, victims)
        return []

    def _hurry(
        self, view: View, scope: str, usage: int, budget: int, calls: Sequence[CallInfo], victims: list[CallInfo]
    ) -> list[Action]:
        """Bring the pending deadlines of the victims forward, once each, when it became urgent."""
        actions = []
        for v in victims:
            if (v.id, v.phase) in self.hurried or v.phase not in HELD:
                continue
            urgent, timer = self._deadline(view, v, v.phase, scope, usage, budget, calls)
            if urgent:
                actions.append(timer)
        return actions

    def _candidates(self, view: View, scope: str, calls: Sequence[CallInfo]) -> list[CallInfo]:
        protected = self._protected(view, scope, calls)
        out = [
            c
            for c in self._live(calls)
            if c.phase == "running" and not self._is_victim(c) and c not in protected and not c.exited
        ]
        if scope == "":
            out = [c for c in out if view.rank_of(c) < HIGH]
        return out

    def _squeeze(
        self, view: View, scope: str, usage: int, budget: int, calls: Sequence[CallInfo], victims: list[CallInfo]
    ) -> list[Action]:
        """Throttle every growing candidate; over ``pressure_on`` with none growing, the largest lowest one."""
        candidates = self._candidates(view, scope, calls)
        chosen = [c for c in candidates if self.rate(c) >= GROWING]
        held = any(v.phase == "throttled" and v.throttled_by == self.name for v in victims)
        if not chosen and candidates and not held and usage >= view.config.pressure_on * budget:
            chosen = [min(candidates, key=lambda c: (view.rank_of(c), -view.call_usage(c)))]
        actions: list[Action] = []
        why = self._where(scope, usage, budget)
        tte = self._tte(scope, usage, budget, calls)
        if tte < math.inf:
            why += f", full in {tte:.1f} s at this rate"
        where = self._where(scope, usage, budget)
        for call in sorted(chosen, key=lambda c: (view.rank_of(c), -self.rate(c))):
            used = view.call_usage(call)
            # room for what a held call's kernel needs (v1: else fork/exec fail), a starting call's processes too
            level = max(min(used + budget // 64, self.capped.get(call.id) or MAX_LEVEL), FLOOR)
            victims.append(call)
            self.held_rate[call.id] = max(0.0, self.rate(call))
            actions.append(
                self.act(
                    "throttle",
                    call,
                    f"{why}: lower-priority calls give way",
                    level=level,
                    figures={"usage": used, "scope": scope or "host", "growth": int(self.rate(call))},
                )
            )
            actions.append(self._deadline(view, call, "throttled", scope, usage, budget, calls)[1])
            actions += self._notes(view, call, calls, f"{call.label} was throttled: {where}")
        return actions

    def _release(self, view: View, call: CallInfo, scope: str, why: str) -> list[Action]:
        actions: list[Action] = []
        if call.phase == "frozen":
            actions.append(self.act("thaw", call, why))
        if self.caps:  # it goes on under its share of what is left (written with the release)
            cap = self._cap_levels(view, view.budgets(), also=call).get(call.id)
            self.capped[call.id] = cap
            actions.append(self.act("cap", call, "its share of the budget's headroom", level=cap))
        actions.append(self.act("release", call, why, level=call.soft))
        self.victims.get(scope, []).remove(call)
        self.hurried -= {(call.id, "throttled"), (call.id, "frozen")}
        self.released_at[scope] = view.now
        return actions

    def _release_one(
        self,
        view: View,
        scope: str,
        usage: int,
        budget: int,
        calls: Sequence[CallInfo],
        victims: list[CallInfo],
        below: float | None = None,
    ) -> list[Action]:
        """Under ``below`` (``pressure_off``) and not growing short: the most important held call goes on (one
        per sampling window)."""
        cfg = view.config
        if self.caps:
            return self._release_capped(view, scope, usage, budget, victims)
        level = cfg.pressure_off if below is None else below
        if usage >= level * budget or self._tte(scope, usage, budget, calls) < 2 * cfg.lead_time:
            return []
        assert self.series is not None
        if view.now - self.released_at.get(scope, -math.inf) < self.series.window:
            return []
        call = self._first_held(view, victims)
        if call is None:
            return []
        # as memory frees: growing again as it did, would it leave the budget lead_time to spare? (a burst is
        # not held against it for ever: after stall_grace + kill_after it goes on anyway, lest it time out)
        again = self._growth(scope, calls) + self.held_rate.get(call.id, 0.0)
        held_for = view.now - (call.throttled_at if call.throttled_at is not None else view.now)
        if time_to_limit(usage, budget, again) < cfg.lead_time and held_for < cfg.stall_grace + cfg.kill_after:
            return []
        return self._release(view, call, scope, f"pressure passed ({self._where(scope, usage, budget)})")

    def _release_capped(self, view: View, scope: str, usage: int, budget: int, victims: list[CallInfo]) -> list[Action]:
        """With caps: the most important held call whose cap would leave it a step of the budget above its usage
        goes on (it cannot run into the limit: it meets its cap first), one per two samples; a big one waiting
        for room does not hold back a small one behind it."""
        if view.now - self.released_at.get(scope, -math.inf) < 2 * view.config.sample_interval:
            return []
        held = [v for v in victims if v.phase in HELD and v.throttled_by == self.name and v.id not in self.killed]
        for call in sorted(held, key=lambda c: (-view.rank_of(c), -c.elapsed(), c.id)):
            cap = self._cap_levels(view, view.budgets(), also=call).get(call.id)
            if cap is None or cap >= view.call_usage(call) + budget // STEP_OF_BUDGET:
                why = f"room again under its share ({self._where(scope, usage, budget)})"
                return self._release(view, call, scope, why)
        return []

    def _unstick(
        self, view: View, scope: str, usage: int, budget: int, calls: Sequence[CallInfo], victims: list[CallInfo]
    ) -> list[Action]:
        """Nothing under the budget runs any more (all held): the most important held call goes on."""
        if any(c.phase == "running" and not self._is_victim(c) and not c.exited for c in self._live(calls)):
            return []
        call = self._first_held(view, victims)
        if call is None:
            return []
        return self._release(view, call, scope, f"{self._where(scope, usage, budget)}: no other call runs")

    def on_timer(self, view: View, call: CallInfo, key: str) -> list[Action]:
        if key == "tick":
            self.tick_due = self.tick_call = None
            return self.on_pressure(view)
        step, _, scope = key.partition(":")
        if call.throttled_by != self.name or call not in self.victims.get(scope, []):
            return []
        budgets = self._observe(view)
        found = [b for b in budgets if b[0] == scope]
        if not found:
            return []
        _, usage, budget, calls = found[0]
        if not self._short(view, scope, usage, budget, calls):
            # not short: the held calls go on in order (perhaps another first); this one looks again later
            victims = self.victims.get(scope, [])
            actions = self._release_one(view, scope, usage, budget, calls, victims, view.config.pressure_on)
            if call in victims:
                actions.append(self._deadline(view, call, call.phase, scope, usage, budget, calls)[1])
            return actions
        why = self._where(scope, usage, budget)
        if step == "freeze" and call.phase == "throttled":
            stalled = view.now - (call.throttled_at or view.now)
            urgent, timer = self._deadline(view, call, "frozen", scope, usage, budget, calls)
            what = f"{why}: a higher-priority call is waiting for memory" if urgent else f"{why} for {stalled:.1f} s"
            return [self.act("freeze", call, what), timer]
        if step == "kill" and call.phase == "frozen":
            return self._last_resort(view, call, scope, usage, budget, calls)
        return []

    def _last_resort(
        self, view: View, call: CallInfo, scope: str, usage: int, budget: int, calls: Sequence[CallInfo]
    ) -> list[Action]:
        """At the edge with a protected call waiting: the frozen call that frees most for least lost work dies."""
        in_flight = any(c.id in self.killed for c in calls)  # its memory is not back yet: no second kill for it
        edge = self._edge(view, scope, usage, budget, calls) and self._waiting(view, scope, calls, call)
        # or still over pressure_on a whole kill_after later with a higher-priority call running: it cannot grow
        # without the memory the held calls keep, and a burst of it would meet the kernel's OOM killer
        full = usage >= view.config.pressure_on * budget and self._waiting(view, scope, calls, call, True)
        if in_flight or not (edge or full):
            return [self._deadline(view, call, "frozen", scope, usage, budget, calls)[1]]  # it waits on, frozen
        victims = self.victims.get(scope, [])
        frozen = [v for v in victims if v.phase == "frozen" and v.id not in self.killed]
        if scope == "":
            frozen = [v for v in frozen if view.rank_of(v) < HIGH]
        if not frozen:
            return []
        actions = self._kill_frozen(view, scope, usage, budget, calls, frozen)
        if not any(a.verb == "kill" and a.call is call for a in actions):  # not it: it waits on, frozen
            actions.append(self._deadline(view, call, "frozen", scope, usage, budget, calls)[1])
        return actions
