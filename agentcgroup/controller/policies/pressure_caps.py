"""The pressure policy's caps (:mod:`.shares` computes them): every running call below high priority runs under
its usage plus its share of the budget's headroom, so that a burst faster than a sample stalls at its own cap,
not at the budget's hard limit; a call found stalled at its cap is held there; a protected call stuck at its cap
with the budget full is the last resort's business (:meth:`PressureCaps._stuck`)."""

from __future__ import annotations

from collections.abc import Sequence

from ...backends.base import Stats
from ...units import format_size
from ..actions import Action
from .base import CallInfo, View
from .pressure_watch import FLOOR, HELD, HELD_WORTH, HIGH, PressureWatch
from .shares import STEP_OF_BUDGET, Share, fair_caps, moved


class PressureCaps(PressureWatch):
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
            reserved = {c.id: c.reserved for c in calls}
            kept = self._kept_caps(view, scope, usage, budget, shares, slack, reserved)
            for sh in shares:
                level = (on if sh.rank >= top else off).get(sh.id)
                if level is not None and sh.id in kept:
                    level = min(level, kept[sh.id])
                if level is not None:
                    out[sh.id] = min(level, out.get(sh.id, level))
        return out

    def _kept_caps(
        self,
        view: View,
        scope: str,
        usage: int,
        budget: int,
        shares: Sequence[Share],
        slack: int,
        reserved: dict[str, int],
    ) -> dict[str, int]:
        """Under the host budget: a call shares only what is left beside the room the running higher-priority
        calls were admitted to grow into (their reservations, declared or predicted, less their usage:
        :meth:`View.kept_for`), and may reach its own reservation whatever that leaves. So a call that outgrows
        its prediction is held early, small, where it stands (then frozen, and released when room frees),
        rather than growing into that room and being killed for the higher call at the budget's edge."""
        if scope != "":
            return {}
        line = int(view.config.pressure_off * budget) - usage
        out: dict[str, int] = {}
        for rank in {sh.rank for sh in shares if sh.capped}:
            kept = view.kept_for(rank)
            if kept <= 0:
                continue
            caps = fair_caps(line - kept, shares, FLOOR, slack)
            for sh in shares:
                if sh.rank == rank and sh.id in caps:
                    out[sh.id] = max(caps[sh.id], reserved.get(sh.id, 0))
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
                    self.stuck_cpu.pop(c.id, None)
                    continue
                if self._working(view, c):  # it works at its cap (its CPU grows): waiting, not stuck
                    self.stuck_since[c.id] = view.now
                    continue
                since = self.stuck_since.setdefault(c.id, view.now)
                if view.now - since < cfg.stall_grace + cfg.kill_after or c.id in self.killed:
                    continue
                if self._waiting(view, scope, calls, c, True) or any(k in self.killed for k in (x.id for x in calls)):
                    continue  # a higher-priority call runs, or memory is on its way back: not yet
                where = self._where(scope, usage, budget)
                held = [v for v in self.victims.get(scope, []) if v.phase in HELD and v.id not in self.killed]
                worked = self._worked(view, c)
                why = f"{where}: it waited {view.now - since:.1f} s at its share, {format_size(cap)}, and needs more"
                if sum(view.call_usage(v) for v in held) >= budget // HELD_WORTH:
                    frozen = [v for v in held if v.phase == "frozen"]
                    if not frozen:
                        continue
                    other = self._cheapest(view, frozen)
                    # the frozen one dies for it, unless it worked more than this one, that mostly waited: a kill
                    # loses the work done, not the time waited (and this one frees more)
                    if view.rank_of(other) < view.rank_of(c) or self._worked(view, other) <= worked:
                        need = "an older call, stalled at its share, needs the memory it holds"
                        actions += self._kill_frozen(view, scope, usage, budget, calls, frozen, need)
                        self.stuck_since[c.id] = view.now  # its turn again only a whole deadline later
                        continue
                    why += f" than the budget has beside held work; it worked {worked:.1f} s, they more"
                else:
                    why += " than the budget has beside the other work"
                used = view.call_usage(c)
                actions.append(
                    self.act(
                        "kill",
                        c,
                        why,
                        by="policy",
                        figures={"usage": used, "scope": scope or "host", "cap": cap, "worked_s": round(worked, 3)},
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
