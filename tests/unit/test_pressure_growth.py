"""The pressure policy's decisions from usage series, without a kernel: which calls are throttled at which
predicted time to the limit, which call is killed when one must be, in which order held calls are released.

The series are fed the way the controller feeds them: one sampling tick at a time, each tick a fresh view of the
budget's and the calls' usage. The last test replays the AgentCgroup paper's three-call shape (one high, two
low, rising and falling, a shared budget under the sum of their peaks) against a simulated memory cgroup.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from agentcgroup.controller.actions import Action
from agentcgroup.controller.apply import Enforcer
from agentcgroup.controller.config import ControllerConfig
from agentcgroup.controller.intent import Intent
from agentcgroup.controller.loop import Timer
from agentcgroup.controller.policies.growth import Series, time_to_limit
from agentcgroup.controller.policies.pressure import PressurePolicy
from agentcgroup.controller.state import CallFuture, CallState
from agentcgroup.limits import Limits
from tests.unit.test_policies import FakeCall, FakeSession, FakeView, Recorder

MiB = 1 << 20
CFG = ControllerConfig(
    budget=1000 * MiB, stall_grace=1.0, kill_after=2.0, pressure_on=0.9, pressure_off=0.8, lead_time=1.0
)


@dataclass
class AgedCall(FakeCall):
    """A FakeCall that started at ``started`` on the test's clock."""

    started: float = 0.0
    clock: list[float] = field(default_factory=lambda: [0.0])

    def elapsed(self) -> float:
        return self.clock[0] - self.started


def mk(cid: str, priority: str, clock: list[float], started: float = 0.0) -> CallState:
    fc = AgedCall(cid, Limits(), started=started, clock=clock)
    return CallState(fc, FakeSession(f"s-{cid}", priority), Intent(), CallFuture())  # type: ignore[arg-type]


class SimClock:
    """The loop's call_later on a simulated time line: timers fire when the test advances past them."""

    def __init__(self, now: list[float]) -> None:
        self.now = now
        self.heap: list[tuple[float, int, Callable[[], object], Timer]] = []
        self.seq = itertools.count()

    def call_later(self, delay: float, cb: Callable[[], object]) -> Timer:
        t = Timer(delay, cb)
        heapq.heappush(self.heap, (self.now[0] + delay, next(self.seq), cb, t))
        return t

    def advance(self, to: float, view: FakeView) -> None:
        while self.heap and self.heap[0][0] <= to:
            due, _, cb, t = heapq.heappop(self.heap)
            if not t.cancelled:
                self.now[0] = view.now = due
                cb()
        self.now[0] = view.now = to


def world(
    calls: list[CallState], clock: list[float], caps: bool = True
) -> tuple[PressurePolicy, FakeView, Enforcer, SimClock, Recorder]:
    """``caps`` off: the policy's level-based path alone (held calls go on by the budget's level and growth)."""
    view = FakeView(CFG, {c.id: 0 for c in calls}, budget=1000 * MiB, now=clock[0])
    view.calls = list(calls)
    sim, rec = SimClock(clock), Recorder()
    p = PressurePolicy(caps=caps)
    enf = Enforcer([p], rec, lambda: view, sim.call_later)  # type: ignore[arg-type,return-value]  # a fake view
    return p, view, enf, sim, rec


def feed(p: PressurePolicy, view: FakeView, series: dict[str, list[int]], dt: float = 0.05) -> list[Action]:
    """Sampling ticks with the recorded usages (MiB) of each call; the budget's usage is their sum."""
    actions: list[Action] = []
    for i in range(len(next(iter(series.values())))):
        view.now += dt
        for cid, values in series.items():
            view.usage[cid] = values[i] * MiB
        view.root_usage = sum(view.usage.values())
        actions = p.on_pressure(view)
    return actions


def throttled(actions: list[Action]) -> list[str]:
    return [a.call.id for a in actions if a.verb == "throttle"]


def test_series_rate_and_time_to_limit() -> None:
    s = Series(0.3)
    for i in range(8):
        s.add("b", i * 0.05, (100 + 10 * i) * MiB)  # 200 MiB/s, but only the last 0.3 s are kept
    assert abs(s.rate("b") - 200 * MiB) < 1 * MiB
    assert s.rate("none") == 0.0
    s.add("one", 0.0, 5)
    assert s.rate("one") == 0.0  # one sample says nothing
    assert time_to_limit(900, 1000, 50.0) == 2.0 and time_to_limit(1000, 1000, 0.0) == 0.0
    assert time_to_limit(10, 1000, 0.0) == float("inf")


def test_every_growing_lower_call_is_throttled_once_the_limit_is_under_lead_time_away() -> None:
    clock = [0.0]
    hi, lo1, lo2, lo3 = mk("h1", "high", clock), mk("l1", "low", clock), mk("l2", "low", clock), mk("l3", "low", clock)
    p, view, *_ = world([hi, lo1, lo2, lo3], clock)
    # recorded: high and two lows grow 100 MiB/s each; the third low holds still. 300 MiB/s together.
    rise = {"h1": [100 + 5 * i for i in range(6)], "l1": [100 + 5 * i for i in range(6)]}
    rise |= {"l2": [100 + 5 * i for i in range(6)], "l3": [100] * 6}
    # at 475 MiB of 1000 the limit is 1.75 s away: no action
    assert throttled(feed(p, view, rise)) == []
    # at 715 MiB (under pressure_on) it is 0.95 s away: both growing lows, not the still one, not the high one
    more = {k: [v[-1] + (5 * (i + 1) if k != "l3" else 0) for i in range(16)] for k, v in rise.items()}
    assert throttled(feed(p, view, {k: v[:-2] for k, v in more.items()})) == []  # 685 MiB: 1.38 s away
    acts = feed(p, view, {k: v[-2:] for k, v in more.items()})
    assert sorted(throttled(acts)) == ["l1", "l2"]
    more = {k: [v[-1] + (5 * (i + 1) if k != "l3" else 0) for i in range(3)] for k, v in more.items()}
    acts = feed(p, view, more)
    held = [c.id for c in p.victims[""]]
    assert sorted(held) == ["l1", "l2"]  # several at once, not only the largest
    assert "h1" not in held and "l3" not in held
    assert view.root_usage < CFG.pressure_on * 1000 * MiB  # before the level-based rule would have acted
    assert acts == [] or throttled(acts) == []  # each throttled once


def test_a_slow_grower_at_the_same_level_is_left_alone() -> None:
    clock = [0.0]
    hi, lo = mk("h1", "high", clock), mk("l1", "low", clock)
    p, view, *_ = world([hi, lo], clock)
    # 800 MiB and growing 20 MiB/s together: the limit is 10 s away
    acts = feed(p, view, {"h1": [400 + i // 2 for i in range(10)], "l1": [400 + i // 2 for i in range(10)]})
    assert throttled(acts) == [] and p.victims[""] == []


def test_held_calls_are_released_one_at_a_time_highest_priority_first() -> None:
    clock = [0.0]
    hi, norm, lo = mk("h1", "high", clock), mk("n1", "normal", clock), mk("l1", "low", clock)
    _p, view, enf, sim, rec = world([hi, norm, lo], clock)
    view.usage = {"h1": 500 * MiB, "n1": 200 * MiB, "l1": 250 * MiB}
    view.root_usage = 950 * MiB
    enf.pressure()  # 95 %, nothing grows: the largest lowest first, one at a time
    assert [a.call.id for a in rec.done if a.verb == "throttle"] == ["l1"]
    sim.advance(0.05, view)  # a tick
    view.usage["h1"] += 40 * MiB  # the high call grows to 99 %: the low one is frozen at once, the normal one
    view.root_usage += 40 * MiB  # is the next to give way (nothing else is throttled)
    sim.advance(0.3, view)
    assert (lo.phase, norm.phase, hi.phase) == ("frozen", "throttled", "running")
    # the high call ends: 450 MiB in use, nothing grows
    view.calls.remove(hi)
    del view.usage["h1"]
    view.root_usage = 450 * MiB
    enf.end(hi)
    enf.pressure()
    first = [a.call.id for a in rec.done if a.verb == "release"]
    assert first == ["n1"] and lo.phase != "running"  # the normal one first, alone
    sim.advance(view.now + 0.1, view)  # within a sampling window of it: the low one waits
    assert [a.call.id for a in rec.done if a.verb == "release"] == ["n1"]
    sim.advance(view.now + 0.5, view)
    assert [a.call.id for a in rec.done if a.verb == "release"] == ["n1", "l1"] and lo.phase == "running"


def test_a_kill_takes_the_frozen_call_that_frees_most_per_second_of_work_lost() -> None:
    clock = [10.0]
    hi = mk("h1", "high", clock, started=9.0)
    old_big = mk("l1", "low", clock, started=0.0)  # 300 MiB after 10 s: 27 MiB per second of work lost
    young = mk("l2", "low", clock, started=9.5)  # 200 MiB after 0.5 s: 133 MiB/s
    norm = mk("n1", "normal", clock, started=9.9)  # 400 MiB after 0.1 s: the most per second, but normal
    _p, view, enf, sim, rec = world([hi, old_big, young, norm], clock, caps=False)
    view.usage = {"h1": 60 * MiB, "l1": 300 * MiB, "l2": 200 * MiB, "n1": 400 * MiB}
    view.root_usage = 960 * MiB
    view.now = 10.0
    enf.pressure()  # nothing grows, 96 %: one at a time, from the lowest priority up
    for _ in range(6):
        sim.advance(view.now + 1.0, view)
    # still over pressure_on a kill deadline after the first freeze, the high call running: one kill, and of the
    # frozen low calls the young one (the most memory per second of work lost); one kill in flight at a time
    assert [a.call.id for a in rec.done if a.verb == "kill"] == ["l2"]
    assert hi.phase == "running" and (old_big.phase, norm.phase) == ("frozen", "frozen")
    view.calls.remove(young)  # its tree gone, its memory back (760 MiB): the pressure passes, in order
    view.root_usage -= view.usage.pop("l2")
    enf.end(young)
    for _ in range(3):
        sim.advance(view.now + 1.0, view)
    assert [a.call.id for a in rec.done if a.verb == "kill"] == ["l2"]
    assert [a.call.id for a in rec.done if a.verb == "release"][:2] == ["n1", "l1"]


def test_no_kill_under_pressure_on_away_from_the_edge() -> None:
    clock = [0.0]
    hi, lo = mk("h1", "high", clock), mk("l1", "low", clock)
    _p, view, enf, sim, rec = world([hi, lo], clock, caps=False)  # with caps: test_pressure_caps.py
    view.usage["l1"] = 70 * MiB
    # the low call grows 600 MiB/s beside a steady high one; throttled, it grows no more
    for _ in range(40):
        if lo.phase == "running":
            view.usage["l1"] += 30 * MiB
        view.usage["h1"] = 550 * MiB
        view.root_usage = sum(view.usage.values())
        sim.advance(view.now + 0.05, view)
        enf.pressure()
    assert lo.phase == "throttled" and view.root_usage < 0.9 * 1000 * MiB and view.now - lo.throttled_at < 2.5
    # under pressure_on and nothing growing: the edge is not near; it waits, held, but never dies; nor is it
    # released while growing again as it did would bring the budget to its limit within lead_time...
    assert not any(a.verb == "kill" for a in rec.done)
    assert [a.verb for a in rec.done if a.call is lo and a.verb not in ("note", "cap")] == ["throttle"]
    assert lo.phase == "throttled"
    # ...for longer than stall_grace + kill_after: then it goes on (a held call must not run into its timeout)
    for _ in range(4):
        sim.advance(view.now + 0.5, view)
    assert [a.verb for a in rec.done if a.call is lo and a.verb not in ("note", "cap")] == ["throttle", "release"]


def test_high_calls_are_never_killed_for_the_host_budget() -> None:
    clock = [0.0]
    h1, h2 = mk("h1", "high", clock), mk("h2", "high", clock, started=-1.0)
    _p, view, enf, sim, rec = world([h1, h2], clock)
    view.usage = {"h1": 500 * MiB, "h2": 490 * MiB}
    view.root_usage = 990 * MiB
    enf.pressure()
    for _ in range(10):
        sim.advance(view.now + 1.0, view)
    assert [a.verb for a in rec.done if a.verb != "timer"] == []


def test_when_every_call_is_held_the_most_important_goes_on() -> None:
    clock = [0.0]
    lo1, lo2 = mk("l1", "low", clock, started=-2.0), mk("l2", "low", clock)
    n1 = mk("n1", "normal", clock)
    _p, view, enf, sim, rec = world([n1, lo1, lo2], clock)
    view.usage = {"n1": 100 * MiB, "l1": 400 * MiB, "l2": 450 * MiB}
    view.root_usage = 950 * MiB
    enf.pressure()
    sim.advance(1.5, view)  # the larger low one throttled, then frozen; then the other throttled
    assert (lo2.phase, lo1.phase, n1.phase) == ("frozen", "throttled", "running")
    # the normal call ends; the budget is still over pressure_on with only held calls: the older low goes on
    view.calls.remove(n1)
    del view.usage["n1"]
    view.root_usage = 950 * MiB
    enf.end(n1)
    enf.pressure()
    assert [a.call.id for a in rec.done if a.verb == "release"] == ["l1"]
    assert (lo1.phase, lo2.phase) == ("running", "frozen")  # one goes on, not both into the limit


def demand(peak: int, p: float) -> int:
    """The paper's shape, in MiB: rising for 1.2 s to its peak, held to 1.5 s, falling to a third by 2.0 s."""
    if p <= 1.2:
        return int(20 + (peak - 20) * p / 1.2)
    if p <= 1.5:
        return peak
    return int(peak - (peak - peak // 3) * min(1.0, (p - 1.5) / 0.5))


def test_the_paper_shape_slows_the_low_calls_instead_of_killing_them() -> None:
    """One high and two low calls rise together under a budget smaller than their peaks' sum (1100 MiB against
    420 + 406 + 406): the high call runs as fast as alone, no call dies, the budget is never exceeded."""
    clock = [0.0]
    cfg = CFG.with_(budget=1100 * MiB)
    peaks = {"h1": 420, "l1": 406, "l2": 406}
    calls = [mk("h1", "high", clock), mk("l1", "low", clock), mk("l2", "low", clock, started=0.001)]
    _p, view, enf, sim, rec = world(calls, clock)
    view.config, view.budget = cfg, 1100 * MiB
    progress = dict.fromkeys(peaks, 0.0)
    ended: dict[str, float] = {}
    worst = 0
    for c in calls:
        enf.started(c)
    dt = 0.01
    while len(ended) < 3 and clock[0] < 30:
        for c in calls:
            if c.id in ended:
                continue
            want = demand(peaks[c.id], progress[c.id] + dt) * MiB
            held = c.phase == "frozen" or (c.phase == "throttled" and want > view.usage[c.id])
            if not held:  # a throttled call goes on while it needs no more than it holds (v1: a stall)
                progress[c.id] += dt
                view.usage[c.id] = want
        view.root_usage = sum(u for cid, u in view.usage.items() if cid not in ended)
        worst = max(worst, view.root_usage)
        assert view.root_usage <= 1100 * MiB, "the kernel's OOM killer would fire here"
        for c in calls:
            if c.id not in ended and (progress[c.id] >= 2.0 or c.call.killed_by is not None):
                ended[c.id] = clock[0]
                view.calls.remove(c)
                view.usage[c.id] = 0
                enf.end(c)
                enf.pressure()
        sim.advance(clock[0] + dt, view)
    assert not any(a.verb == "kill" for a in rec.done)
    assert set(ended) == set(peaks)
    assert ended["h1"] <= 2.0 + 2 * dt  # as fast as alone: never held
    assert max(ended["l1"], ended["l2"]) > 2.2  # the low ones paid in time
    assert worst > 0.6 * 1100 * MiB  # and the budget was used, not kept empty
    held = [a.call.id for a in rec.done if a.verb == "throttle"]
    assert set(held) <= {"l1", "l2"} and held
