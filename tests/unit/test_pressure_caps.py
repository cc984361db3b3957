"""Each lower-priority call's own cap under a shared budget (policies/shares.py and the pressure policy), without
a kernel: what the caps are, that a burst faster than a sample stalls at them and not at the budget's hard limit,
who is held when one stalls there, and how held calls go on again (in order, each under a fresh cap).

A simulated memory cgroup stands in for the kernel: a call's usage never passes the soft level last written for
it (v1 stalls it there: ``oom_kill_disable``), and the budget's usage is the calls' sum plus the agents'.
"""

from __future__ import annotations

from agentcgroup.backends.base import Stats
from agentcgroup.controller.actions import Action, least
from agentcgroup.controller.policies.pressure import FLOOR, PressurePolicy
from agentcgroup.controller.policies.shares import Share, fair_caps, moved
from agentcgroup.controller.policies.softlimit import SoftLimitPolicy
from agentcgroup.controller.state import CallState
from tests.unit.test_policies import FakeSession, FakeView, call
from tests.unit.test_pressure_growth import CFG, mk, world

MiB = 1 << 20


def test_fair_caps_weigh_priorities_and_keep_the_protected_share_free() -> None:
    calls = [
        Share("h", 2, 300 * MiB, capped=False),
        Share("n", 1, 100 * MiB, capped=True),
        Share("l", 0, 50 * MiB, capped=True),
    ]
    caps = fair_caps(600 * MiB, calls, floor=32 * MiB, slack=4 * MiB)
    # weights 3 (high, never capped: its share stays free), 2, 1 of 600 MiB
    assert caps == {"n": 100 * MiB + 200 * MiB, "l": 50 * MiB + 100 * MiB}
    # no room left: each where it stands plus the slack; a starting call gets the floor
    caps = fair_caps(-50 * MiB, [*calls, Share("new", 0, 2 * MiB, capped=True)], floor=32 * MiB, slack=4 * MiB)
    assert caps == {"n": 104 * MiB, "l": 54 * MiB, "new": 32 * MiB}
    assert fair_caps(100 * MiB, [], 1, 1) == {}


def test_a_cap_is_written_again_only_when_it_moved_by_a_step() -> None:
    b = 1024 * MiB  # a step is 16 MiB
    assert moved(None, 10 * MiB, b) and moved(10 * MiB, None, b) and not moved(None, None, b)
    assert not moved(100 * MiB, 104 * MiB, b)  # the slack of a call at its cap: no ratchet
    assert moved(100 * MiB, 116 * MiB, b) and moved(100 * MiB, 84 * MiB, b)


def test_the_kernel_level_is_the_least_of_the_cap_and_the_own_soft_limit() -> None:
    assert least(None, None) is None and least(5, None, 7) == 5 and least(None, 3) == 3


def caps_of(actions: list[Action]) -> dict[str, int | None]:
    return {a.call.id: a.level for a in actions if a.verb == "cap"}


def test_lower_calls_are_capped_at_their_share_from_recorded_usage_high_never() -> None:
    clock = [0.0]
    hi, lo, nm = mk("h1", "high", clock), mk("l1", "low", clock), mk("n1", "normal", clock)
    p, view, *_ = world([hi, lo, nm], clock)
    view.usage |= {"h1": 200 * MiB, "l1": 100 * MiB, "n1": 100 * MiB}
    view.root_usage = 500 * MiB  # 100 MiB of agents
    view.now = 0.05
    acts = p.on_pressure(view)
    # beside a high call, up to pressure_off of 1000 MiB (the rest is its room); weights high 3, normal 2, low 1
    room = 800 * MiB - 500 * MiB
    assert caps_of(acts) == {"l1": 100 * MiB + room // 6, "n1": 100 * MiB + room * 2 // 6}
    # the budget fills: the caps come down with the room (never under the usage), written once they moved a step
    view.usage["h1"] = 440 * MiB
    view.root_usage = 740 * MiB
    view.now = 0.1
    acts = p.on_pressure(view)
    assert caps_of(acts) == {"l1": 100 * MiB + 60 * MiB // 6, "n1": 100 * MiB + 60 * MiB * 2 // 6}
    view.root_usage = 742 * MiB  # 2 MiB more: not written again
    view.now = 0.15
    assert caps_of(p.on_pressure(view)) == {}
    # the high call ends: the normal one is the top now, its share up to pressure_on; the low one's up to
    # pressure_off (beside a higher call); shares by 2 and 1
    view.calls.remove(hi)
    p.on_end(view, hi)
    view.usage["h1"] = 0
    view.root_usage = 300 * MiB
    view.now = 0.2
    assert caps_of(p.on_pressure(view)) == {"l1": 100 * MiB + 500 * MiB // 3, "n1": 100 * MiB + 600 * MiB * 2 // 3}


def test_a_burst_faster_than_a_sample_stalls_at_the_cap_not_the_hard_limit() -> None:
    """Recorded: two low calls jump by 300 MiB each within one 50 ms sample beside a growing high one."""
    clock = [0.0]
    hi, l1, l2 = mk("h1", "high", clock), mk("l1", "low", clock), mk("l2", "low", clock)
    _, view, enf, sim, rec = world([hi, l1, l2], clock)
    agents = 120 * MiB
    want = {"h1": [100, 150, 200, 300, 350, 350, 350], "l1": [50, 60, 360, 400, 420, 420, 420]}
    want["l2"] = [50, 50, 50, 350, 400, 420, 420]
    worst = 0
    for i in range(len(want["h1"])):
        for cs in (hi, l1, l2):
            limit = least(cs.cap) if cs.phase == "running" else None
            held = [a.level for a in rec.done if a.call is cs and a.verb == "throttle" and a.level is not None]
            if cs.phase != "running" and held:
                limit = held[-1]
            v = want[cs.id][i] * MiB
            view.usage[cs.id] = v if limit is None else min(v, limit)  # the kernel stalls it at its level
        view.root_usage = agents + sum(view.usage.values())
        worst = max(worst, view.root_usage)
        sim.advance(view.now + 0.05, view)
        enf.pressure()
    assert worst <= 0.9 * 1000 * MiB  # demand was 120 + 350 + 420 + 420 = 1310 MiB
    assert worst >= 0.7 * 1000 * MiB  # and the budget was used
    assert not any(a.verb == "kill" for a in rec.done)
    assert hi.cap is None and not [a for a in rec.done if a.call is hi and a.verb in ("throttle", "cap")]


def test_a_call_stalled_at_its_cap_is_held_and_its_feedback_names_the_shared_budget() -> None:
    clock = [0.0]
    hi, lo = mk("h1", "high", clock), mk("l1", "low", clock)
    _, view, enf, _, rec = world([hi, lo], clock)
    view.usage |= {"h1": 300 * MiB, "l1": 100 * MiB}
    view.root_usage = 500 * MiB
    enf.pressure()
    assert lo.cap == 100 * MiB + 300 * MiB // 4
    view.usage["l1"] = lo.cap
    view.root_usage += 100 * MiB
    view.under_oom.add("l1")
    enf.memory(lo)
    throttle = [a for a in rec.done if a.call is lo and a.verb == "throttle"]
    assert lo.phase == "throttled" and len(throttle) == 1
    assert throttle[0].figures["scope"] == "host" and throttle[0].figures["cap"] == 175 * MiB
    assert "at its share" in throttle[0].reason


def test_a_protected_call_at_its_cap_waits_there_unheld() -> None:
    """Only low calls run: the oldest is protected (it runs on), capped too, and at its cap it is not held."""
    clock = [0.0]
    old, new = mk("l1", "low", clock, started=-5.0), mk("l2", "low", clock)
    _, view, enf, _, rec = world([old, new], clock)
    view.usage |= {"l1": 400 * MiB, "l2": 50 * MiB}
    view.root_usage = 550 * MiB
    enf.pressure()
    assert old.cap is not None and new.cap is not None
    view.usage["l1"] = old.cap
    view.under_oom.add("l1")
    enf.memory(old)
    assert old.phase == "running" and not [a for a in rec.done if a.call is old and a.verb == "throttle"]


def test_held_calls_go_on_one_at_a_time_most_important_first_each_under_a_cap() -> None:
    clock = [0.0]
    hi, lo, nm = mk("h1", "high", clock), mk("l1", "low", clock), mk("n1", "normal", clock)
    _, view, enf, sim, rec = world([hi, lo, nm], clock)
    view.usage |= {"h1": 500 * MiB, "l1": 150 * MiB, "n1": 150 * MiB}
    view.root_usage = 880 * MiB
    enf.pressure()
    for cs in (lo, nm):  # both stall at their caps
        view.usage[cs.id] = cs.cap or 0
        view.under_oom.add(cs.id)
        view.root_usage = 80 * MiB + sum(view.usage.values())
        enf.memory(cs)
    assert lo.phase == nm.phase == "throttled"
    view.under_oom.clear()
    # the high call ends: memory frees
    view.usage["h1"] = 0
    view.calls.remove(hi)
    enf.end(hi)
    view.root_usage = 80 * MiB + view.usage["l1"] + view.usage["n1"]
    sim.advance(view.now + 0.05, view)
    enf.pressure()
    assert nm.phase == "running" and lo.phase == "throttled"  # the normal one first
    went = [a.verb for a in rec.done if a.call is nm][-2:]
    assert went == ["cap", "release"] and nm.cap is not None and nm.cap > view.usage["n1"]
    sim.advance(view.now + 0.4, view)  # a sampling window later: the low one
    enf.pressure()
    assert lo.phase == "running" and lo.cap is not None


def test_the_own_soft_limit_policy_leaves_a_stall_at_a_cap_alone() -> None:
    p = SoftLimitPolicy()
    c = call("l1", FakeSession("lo", "low"), soft=500 * MiB)
    view = FakeView(CFG, {"l1": 200 * MiB}, budget=1000 * MiB)
    assert p.on_memory(view, c, Stats(memory_current=200 * MiB, under_oom=True)) == []
    assert [a.verb for a in p.on_memory(view, c, Stats(memory_current=499 * MiB, under_oom=True))] == [
        "throttle",
        "timer",
    ]


def test_caps_off_writes_none() -> None:
    clock = [0.0]
    cs: list[CallState] = [mk("h1", "high", clock), mk("l1", "low", clock)]
    _, view, *_ = world(cs, clock)
    view.usage |= {"h1": 100 * MiB, "l1": 100 * MiB}
    view.root_usage = 300 * MiB
    assert caps_of(PressurePolicy(caps=False).on_pressure(view)) == {}
    assert caps_of(PressurePolicy().on_pressure(view))["l1"] >= FLOOR


def test_a_protected_call_stuck_at_its_cap_with_the_budget_full_is_the_one_killed() -> None:
    """Only low calls: the oldest (protected) waits at its cap, the budget full; small newer ones are held. After
    stall_grace + kill_after the big one goes (its need is more than the budget has), not the small ones."""
    clock = [0.0]
    big, small = mk("l1", "low", clock, started=-30.0), mk("l2", "low", clock)
    _, view, enf, sim, rec = world([big, small], clock)
    view.usage |= {"l1": 700 * MiB, "l2": 10 * MiB}
    view.root_usage = 850 * MiB
    enf.pressure()
    view.usage["l1"] = big.cap or 0
    view.root_usage = 170 * MiB + view.usage["l1"] + view.usage["l2"]
    assert view.root_usage >= 0.9 * 1000 * MiB
    for _ in range(int(2.9 / 0.05)):  # under stall_grace + kill_after: it waits
        sim.advance(view.now + 0.05, view)
        enf.pressure()
    assert not any(a.verb == "kill" for a in rec.done)
    for _ in range(10):
        sim.advance(view.now + 0.05, view)
        enf.pressure()
    kills = [a for a in rec.done if a.verb == "kill"]
    assert (
        [a.call.id for a in kills] == ["l1"] and kills[0].figures["scope"] == "host" and "needs more" in kills[0].reason
    )
    # a higher-priority call running: the stuck call is not protected any more, nor killed by this rule
    clock2 = [0.0]
    hi, lo = mk("h1", "high", clock2), mk("l1", "low", clock2, started=-30.0)
    _, view2, enf2, sim2, rec2 = world([hi, lo], clock2)
    view2.usage |= {"h1": 100 * MiB, "l1": 600 * MiB}
    view2.root_usage = 850 * MiB
    enf2.pressure()
    view2.usage["l1"] = lo.cap or 0
    view2.root_usage = 910 * MiB
    for _ in range(80):
        sim2.advance(view2.now + 0.05, view2)
        enf2.pressure()
    assert not [a for a in rec2.done if a.verb == "kill" and "needs more" in a.reason]


def test_a_stuck_protected_call_has_a_frozen_call_worth_its_memory_killed_for_it_not_itself() -> None:
    """Two big low calls that do not fit together: the older (protected) waits at its cap, the newer is held
    with 250 MiB (over budget/16). The newer, frozen, dies for the older, which then goes on; not the older."""
    clock = [0.0]
    old, new = mk("l1", "low", clock, started=-30.0), mk("l2", "low", clock, started=-1.0)
    _, view, enf, sim, rec = world([old, new], clock)
    view.usage |= {"l1": 500 * MiB, "l2": 250 * MiB}
    view.root_usage = 890 * MiB
    enf.pressure()
    view.usage["l2"] = new.cap or 0
    view.under_oom.add("l2")
    view.root_usage = 140 * MiB + view.usage["l1"] + view.usage["l2"]
    enf.memory(new)
    assert new.phase == "throttled"
    view.usage["l1"] = old.cap or 0
    view.root_usage = 140 * MiB + view.usage["l1"] + view.usage["l2"]
    for _ in range(80):
        sim.advance(view.now + 0.05, view)
        enf.pressure()
    kills = [a for a in rec.done if a.verb == "kill"]
    assert [a.call.id for a in kills] == ["l2"] and "older call" in kills[0].reason


def test_a_sessions_only_call_is_not_capped_by_its_sessions_budget() -> None:
    """Under a session's budget alone, a call may grow to the session's hard limit (nothing of the session to
    protect); a second call under it and both are capped."""
    p = PressurePolicy(sampling=False)
    a, b = call("c1", FakeSession("s", "normal")), call("c2", FakeSession("s", "normal"))
    view = FakeView(CFG, {"c1": 500 * MiB, "c2": 10 * MiB})
    budgets = [("s", 510 * MiB, 1000 * MiB, [a])]
    view.budgets = lambda: budgets  # type: ignore[method-assign]  # a session's budget, no host budget
    assert caps_of(p.on_pressure(view)) == {}
    budgets[0] = ("s", 510 * MiB, 1000 * MiB, [a, b])
    assert set(caps_of(p.on_pressure(view))) == {"c1", "c2"}
