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
rather than at the budget's hard limit, where the kernel's OOM killer would choose. A call found stalled at its
cap is throttled there (held) unless it is protected. With caps, held calls go on as soon as the cap they would
get leaves them room (they meet their caps, not the limit), the most important first, one per two samples,
instead of by the budget's level. A protected call below high priority that waits at its cap with the budget
full for ``stall_grace + kill_after`` has the frozen call that frees the most killed for it, if the held calls
keep a part of the budget worth having; if not, it needs more than the budget has beside the rest, and dies.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ...backends.base import Stats
from ...units import format_size
from ..actions import Action
from .base import CallInfo, Policy, View
from .growth import Series, time_to_limit
from .shares import STEP_OF_BUDGET, Share, fair_caps, moved

HIGH = 2
#: growth under which a call does not count as growing (B/s)
GROWING = 4 << 20
#: rate-based throttling starts over this fraction of ``pressure_off`` (a burst at a low level is no shortage)
WATCH_FROM = 0.5
HELD = ("throttled", "frozen")
#: the least cap or throttle level: what a call's processes need to start (fork and exec are charged without
#: stalling: at a v1 limit they fail with ENOMEM)
FLOOR = 32 << 20
#: held calls keeping this part of a budget (1/HELD_WORTH) are worth a kill for a protected call stuck at its cap
HELD_WORTH = 16
MAX_LEVEL = 1 << 62


class PressurePolicy(Policy):
    name = "pressure"

    def __init__(self, sampling: bool = True, caps: bool = True) -> None:
        """``sampling``: keep a timer that reads the budgets every ``sample_interval`` (off: events only).
        ``caps``: cap every call that would give way at its share of the budget's headroom (off: levels only)."""
        self.sampling = sampling
        self.caps = caps
        self.capped: dict[str, int | None] = {}  # call id -> the cap last asked for
        self.stuck_since: dict[str, float] = {}  # protected call id -> since when it waits at its cap, budget full
        self.victims: dict[str, list[CallInfo]] = {}  # scope ("" = global, else session name) -> calls
        self.hurried: set[tuple[str, str]] = set()  # (call id, phase) whose deadline was shortened
        self.series: Series | None = None
        self.released_at: dict[str, float] = {}  # scope -> when its last held call was released
        self.killed: set[str] = set()  # call ids this policy killed (draining)
        self.held_rate: dict[str, float] = {}  # call id -> how fast it grew when it was throttled (B/s)
        self.tick_due: float | None = None
        self.tick_call: str | None = None

    # --- what the figures say -------------------------------------------------------------------------
    def _observe(self, view: View) -> list[tuple[str, int, int, Sequence[CallInfo]]]:
        cfg = view.config
        if self.series is None:
            self.series = Series(max(0.3, 6 * cfg.sample_interval))
        budgets = view.budgets()
        for scope, usage, _, calls in budgets:
            self.series.add(f"budget:{scope}", view.now, usage)
            for c in calls:
                self.series.add(f"call:{c.id}", view.now, view.call_usage(c))
        return budgets

    def rate(self, call: CallInfo) -> float:
        return 0.0 if self.series is None else self.series.rate(f"call:{call.id}")

    def _growth(self, scope: str, calls: Sequence[CallInfo]) -> float:
        """B/s the budget grows at: what its running calls add, plus what grows in it apart from the calls
        (agents, caches; its own trend less all the calls'). Held calls do not count: their past growth is
        over."""
        if self.series is None:
            return 0.0
        running = sum(max(0.0, self.rate(c)) for c in calls if c.phase == "running" and not self._is_victim(c))
        other = self.series.rate(f"budget:{scope}") - sum(self.rate(c) for c in calls)
        return running + max(0.0, other)

    def _tte(self, scope: str, usage: int, budget: int, calls: Sequence[CallInfo]) -> float:
        return time_to_limit(usage, budget, self._growth(scope, calls))

    def _short(self, view: View, scope: str, usage: int, budget: int, calls: Sequence[CallInfo]) -> bool:
        cfg = view.config
        level = usage / budget
        # host PSI hastens action once usage is past pressure_off; below that, a stall is a call's own doing
        psi = scope == "" and level >= cfg.pressure_off and view.psi_recent()
        soon = level >= WATCH_FROM * cfg.pressure_off and self._tte(scope, usage, budget, calls) < cfg.lead_time
        return level >= cfg.pressure_on or psi or soon

    def _edge(self, view: View, scope: str, usage: int, budget: int, calls: Sequence[CallInfo]) -> bool:
        cfg = view.config
        return usage >= cfg.urgent_at * budget or self._tte(scope, usage, budget, calls) <= cfg.urgent_lead

    def _is_victim(self, call: CallInfo) -> bool:
        return any(call in v for v in self.victims.values())

    def _live(self, calls: Sequence[CallInfo]) -> list[CallInfo]:
        return [c for c in calls if c.id not in self.killed and c.phase != "done"]

    def _protected(self, view: View, scope: str, calls: Sequence[CallInfo]) -> list[CallInfo]:
        """The calls that never give way under this budget."""
        live = self._live(calls)
        if not live:
            return []
        ranks = {view.rank_of(c) for c in live}
        if scope == "" or len(ranks) > 1:
            top = max(ranks)
            mine = [c for c in live if view.rank_of(c) == top]
            if len(ranks) > 1 or (scope == "" and top >= HIGH):
                return mine
        return [max(live, key=lambda c: (c.elapsed(), c.id))]  # one priority: the oldest runs on

    def _waiting(
        self, view: View, scope: str, calls: Sequence[CallInfo], victim: CallInfo, higher: bool = False
    ) -> bool:
        """A call at least as important as ``victim`` (``higher``: more) still runs: it waits on what the held
        calls keep."""
        mine = view.rank_of(victim) + (1 if higher else 0)
        return any(
            c.phase == "running" and not self._is_victim(c) and c is not victim and view.rank_of(c) >= mine
            for c in self._live(calls)
        )

    # --- events ---------------------------------------------------------------------------------------
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

    # --- throttling -----------------------------------------------------------------------------------
    def _urgent(self, view: View, usage: int, budget: int, calls: Sequence[CallInfo], victim: CallInfo) -> bool:
        """At the budget's edge with a higher-priority call still running: it waits on the victim's memory."""
        scope = next((s for s, v in self.victims.items() if victim in v), victim.session_name)
        return self._edge(view, scope, usage, budget, calls) and self._waiting(view, scope, calls, victim, True)

    def _deadline(
        self, view: View, call: CallInfo, phase: str, scope: str, usage: int, budget: int, calls: Sequence[CallInfo]
    ) -> tuple[bool, Action]:
        """(urgent, the timer to the step after ``phase``): ``urgent_grace`` if a protected call waits."""
        cfg = view.config
        usual, key = (cfg.stall_grace, "freeze") if phase == "throttled" else (cfg.kill_after, "kill")
        urgent = self._urgent(view, usage, budget, calls, call) and cfg.urgent_grace < usual
        if urgent:
            self.hurried.add((call.id, phase))
        delay = cfg.urgent_grace if urgent else usual
        return urgent, self.timer(call, f"pressure deadline ({phase})", delay, f"{key}:{scope}")

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

    @staticmethod
    def _where(scope: str, usage: int, budget: int) -> str:
        what = "the host budget" if scope == "" else f"session {scope}'s budget"
        return f"{what} {format_size(budget)} at {100 * usage / budget:.0f}%"

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

    def _notes(self, view: View, victim: CallInfo, calls: Sequence[CallInfo], text: str) -> list[Action]:
        return [
            self.act("note", other, f"protected: {text}")
            for other in calls
            if other is not victim and view.rank_of(other) > view.rank_of(victim)
        ]

    # --- caps -----------------------------------------------------------------------------------------
    def _cap_levels(
        self, view: View, budgets: Sequence[tuple[str, int, int, Sequence[CallInfo]]], also: CallInfo | None = None
    ) -> dict[str, int]:
        """The cap of each running call below high priority under some budget (the least over its budgets): the
        protected ones too (they are not held when they reach it, but no burst of theirs meets the hard limit
        first); ``also``: a held call about to go on, counted as running."""
        out: dict[str, int] = {}
        for scope, usage, budget, calls in budgets:
            if self._alone(scope, calls):
                continue  # a session's only call: nothing of the session to protect from it, its hard limit holds
            shares = [
                Share(c.id, view.rank_of(c), view.call_usage(c), view.rank_of(c) < HIGH)
                for c in self._live(calls)
                if ((c.phase == "running" and not self._is_victim(c)) or c is also) and not c.exited
            ]
            # beside a higher-priority call the lower ones stop at pressure_off: what is left above is the room it
            # bursts into without meeting their memory (which only a kill gives back); the top rank at pressure_on
            top = max((view.rank_of(c) for c in self._live(calls)), default=0)
            slack = budget // (4 * STEP_OF_BUDGET)
            on = fair_caps(int(view.config.pressure_on * budget) - usage, shares, FLOOR, slack)
            off = fair_caps(int(view.config.pressure_off * budget) - usage, shares, FLOOR, slack)
            for sh in shares:
                level = (on if sh.rank >= top else off).get(sh.id)
                if level is not None:
                    out[sh.id] = min(level, out.get(sh.id, level))
        return out

    def _share(
        self, view: View, budgets: Sequence[tuple[str, int, int, Sequence[CallInfo]]], done: Sequence[Action]
    ) -> list[Action]:
        """Each running call's cap, written when it moved by a step (lifted once it no longer gives way)."""
        if not self.caps or not budgets:
            return []
        levels = self._cap_levels(view, budgets)
        step = min(b for _, _, b, _ in budgets)
        acted = {a.call.id for a in done if a.verb in ("throttle", "release", "cap")}
        actions: list[Action] = []
        for _, _, _, calls in budgets:
            for c in self._live(calls):
                if c.id in acted or c.phase != "running" or c.exited or self._is_victim(c):
                    continue  # a held call's throttle is in force; its release sets its cap
                acted.add(c.id)
                new = levels.get(c.id)
                if moved(self.capped.get(c.id), new, step):
                    self.capped[c.id] = new
                    why = "its share of the budget's headroom" if new is not None else "it no longer gives way"
                    actions.append(self.act("cap", c, why, level=new))
        return actions

    def _alone(self, scope: str, calls: Sequence[CallInfo]) -> bool:
        """A session's budget with one live call in it (the host's budget is shared with every session's agents)."""
        return scope != "" and len(self._live(calls)) == 1

    def _stuck(self, view: View, budgets: Sequence[tuple[str, int, int, Sequence[CallInfo]]]) -> list[Action]:
        """A protected call below high priority that has waited at its cap, the budget full, for ``stall_grace +
        kill_after`` would wait until its timeout, holding what others wait for. If the held calls under the budget
        keep a part of it worth having (``budget / HELD_WORTH``), the frozen one that frees the most for the least
        lost work dies for it (as for a higher-priority call at the edge); if they keep less, what it needs is
        more than the budget has beside the rest (agents, other work): it dies. The last resort either way."""
        if not self.caps:
            return []
        cfg = view.config
        actions: list[Action] = []
        for scope, usage, budget, calls in budgets:
            if self._alone(scope, calls):
                continue
            full = usage >= cfg.pressure_on * budget - budget // STEP_OF_BUDGET  # its cap is the budget's line
            for c in self._protected(view, scope, calls):
                cap = self.capped.get(c.id)
                at_cap = cap is not None and view.call_usage(c) >= cap - budget // STEP_OF_BUDGET
                if not (full and at_cap and c.phase == "running" and view.rank_of(c) < HIGH):
                    self.stuck_since.pop(c.id, None)
                    continue
                since = self.stuck_since.setdefault(c.id, view.now)
                if view.now - since < cfg.stall_grace + cfg.kill_after or c.id in self.killed:
                    continue
                if self._waiting(view, scope, calls, c, True) or any(k in self.killed for k in (x.id for x in calls)):
                    continue  # a higher-priority call runs, or memory is on its way back: not yet
                where = self._where(scope, usage, budget)
                held = [v for v in self.victims.get(scope, []) if v.phase in HELD and v.id not in self.killed]
                if sum(view.call_usage(v) for v in held) >= budget // HELD_WORTH:
                    frozen = [v for v in held if v.phase == "frozen"]
                    if frozen:
                        need = "an older call, stalled at its share, needs the memory it holds"
                        actions += self._kill_frozen(view, scope, usage, budget, calls, frozen, need)
                        self.stuck_since[c.id] = view.now  # its turn again only a whole deadline later
                    continue
                used = view.call_usage(c)
                actions.append(
                    self.act(
                        "kill",
                        c,
                        f"{where}: it waited {view.now - since:.1f} s at its share, {format_size(cap)}, and needs more"
                        " than the budget has beside the other work",
                        by="policy",
                        figures={"usage": used, "scope": scope or "host", "cap": cap},
                    )
                )
                self.killed.add(c.id)
        return actions

    def _stalled(self, view: View, call: CallInfo, stats: Stats) -> list[Action]:
        """A running call stalled at its cap (v1: under_oom; v2: at its memory.high): held there, in order."""
        cap = self.capped.get(call.id)
        if cap is None or call.phase != "running" or call.exited or self._is_victim(call):
            return []
        found = [b for b in self._observe(view) if call in b[3]]
        if not found or any(call in self._protected(view, b[0], b[3]) for b in found):
            return []  # a protected call stalled at its cap waits there: the held calls' memory is what it needs
        used = stats.memory_current or 0
        if not (stats.under_oom or used >= 0.95 * cap) or (call.soft is not None and call.soft <= cap):
            return []  # not at the cap, or at its own soft limit (the soft-limit policy's business)
        scope, usage, budget, calls = min(found, key=lambda b: b[2] - b[1])  # the budget with the least room
        self.victims.setdefault(scope, []).append(call)
        self.held_rate[call.id] = max(0.0, self.rate(call))
        where = self._where(scope, usage, budget)
        return [
            self.act(
                "throttle",
                call,
                f"{where}: at its share of it, {format_size(cap)}; lower-priority calls give way",
                level=max(cap, used),
                figures={"usage": used, "scope": scope or "host", "cap": cap},
            ),
            self._deadline(view, call, "throttled", scope, usage, budget, calls)[1],
            *self._notes(view, call, calls, f"{call.label} was throttled: {where}"),
        ]

    # --- releasing ------------------------------------------------------------------------------------
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

    def _first_held(self, view: View, victims: list[CallInfo]) -> CallInfo | None:
        held = [v for v in victims if v.phase in HELD and v.throttled_by == self.name and v.id not in self.killed]
        return max(held, key=lambda c: (view.rank_of(c), c.elapsed(), c.id)) if held else None

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

    # --- deadlines ------------------------------------------------------------------------------------
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

    def _kill_frozen(
        self,
        view: View,
        scope: str,
        usage: int,
        budget: int,
        calls: Sequence[CallInfo],
        frozen: Sequence[CallInfo],
        need: str = "a higher-priority call needs the memory it holds",
    ) -> list[Action]:
        """Of ``frozen``, the call whose death frees the most for the least lost work: lowest priority first, then
        the most memory per second it has run."""
        victims = self.victims.get(scope, [])
        dead = min(frozen, key=lambda c: (view.rank_of(c), -view.call_usage(c) / (c.elapsed() + 1.0), c.id))
        st = view.stats(dead)
        why = self._where(scope, usage, budget)
        actions = [
            self.act(
                "kill",
                dead,
                f"{why}: {need}",
                by="policy",
                figures={"usage": st.memory_current, "scope": scope or "host"},
            )
        ]
        actions += self._notes(view, dead, calls, f"{dead.label} was killed: {why}")
        victims.remove(dead)  # it is gone: nothing to thaw or release when the pressure passes
        self.killed.add(dead.id)
        return actions
