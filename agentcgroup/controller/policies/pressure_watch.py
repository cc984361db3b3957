"""What the pressure policy (:mod:`.pressure`) reads and shares between its parts: each budget's and call's
usage series and growth, when a budget is short or at its edge, which calls are protected, the deadlines of held
calls, and the last resort's choice of which frozen call dies. No decisions to throttle, cap or release here."""

from __future__ import annotations

from collections.abc import Sequence

from ...units import format_size
from ..actions import Action
from .base import CallInfo, Policy, View
from .growth import Series, time_to_limit

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
#: a call at its cap burning at least this much CPU (cores) still works there: it is not stuck
WORKING = 0.1
MAX_LEVEL = 1 << 62


class PressureWatch(Policy):
    def __init__(self, sampling: bool = True, caps: bool = True) -> None:
        """``sampling``: keep a timer that reads the budgets every ``sample_interval`` (off: events only).
        ``caps``: cap every call that would give way at its share of the budget's headroom (off: levels only)."""
        self.sampling = sampling
        self.caps = caps
        self.capped: dict[str, int | None] = {}  # call id -> the cap last asked for
        self.stuck_since: dict[str, float] = {}  # protected call id -> since when it waits at its cap, budget full
        self.stuck_cpu: dict[str, tuple[float, int]] = {}  # such a call's id -> (when, its CPU µs then)
        self.victims: dict[str, list[CallInfo]] = {}  # scope ("" = global, else session name) -> calls
        self.hurried: set[tuple[str, str]] = set()  # (call id, phase) whose deadline was shortened
        self.series: Series | None = None
        self.released_at: dict[str, float] = {}  # scope -> when its last held call was released
        self.killed: set[str] = set()  # call ids this policy killed (draining)
        self.held_rate: dict[str, float] = {}  # call id -> how fast it grew when it was throttled (B/s)
        self.tick_due: float | None = None
        self.tick_call: str | None = None

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

    def _worked(self, view: View, call: CallInfo) -> float:
        """The work a call's death would lose: its CPU seconds (where the kernel tells), else the seconds it was let
        run (its age less the time it was held)."""
        cpu = view.stats(call).cpu_usec
        return cpu / 1e6 if cpu is not None else max(0.0, call.elapsed() - call.held(view.now))

    def _working(self, view: View, call: CallInfo) -> bool:
        """Its CPU grew by at least ``WORKING`` of a core since the last look: it makes progress where it is."""
        cpu = view.stats(call).cpu_usec
        if cpu is None:
            return False
        last = self.stuck_cpu.get(call.id)
        self.stuck_cpu[call.id] = (view.now, cpu)
        if last is None or view.now <= last[0]:
            return False
        return (cpu - last[1]) / 1e6 >= WORKING * (view.now - last[0])

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

    def _alone(self, scope: str, calls: Sequence[CallInfo]) -> bool:
        """A session's budget with one live call in it (the host's budget is shared with every session's agents)."""
        return scope != "" and len(self._live(calls)) == 1

    @staticmethod
    def _where(scope: str, usage: int, budget: int) -> str:
        what = "the host budget" if scope == "" else f"session {scope}'s budget"
        return f"{what} {format_size(budget)} at {100 * usage / budget:.0f}%"

    def _notes(self, view: View, victim: CallInfo, calls: Sequence[CallInfo], text: str) -> list[Action]:
        return [
            self.act("note", other, f"protected: {text}")
            for other in calls
            if other is not victim and view.rank_of(other) > view.rank_of(victim)
        ]

    def _first_held(self, view: View, victims: list[CallInfo]) -> CallInfo | None:
        held = [v for v in victims if v.phase in HELD and v.throttled_by == self.name and v.id not in self.killed]
        return max(held, key=lambda c: (view.rank_of(c), c.elapsed(), c.id)) if held else None

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

    def _cheapest(self, view: View, calls: Sequence[CallInfo]) -> CallInfo:
        """Lowest priority first, then the most memory per second of work lost."""
        return min(calls, key=lambda c: (view.rank_of(c), -view.call_usage(c) / (self._worked(view, c) + 1.0), c.id))

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
        the most memory per second of work (:meth:`_worked`) it would lose."""
        victims = self.victims.get(scope, [])
        dead = self._cheapest(view, frozen)
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
