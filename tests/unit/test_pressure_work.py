"""What a kill under a shared budget loses is the work a call did (its CPU), not its age: from recorded usage and
CPU series, without a kernel. A call waiting at its cap that still burns CPU is working, not stuck; a stuck one
that mostly waited dies before a frozen call of its priority that worked."""

from __future__ import annotations

from tests.unit.test_pressure_growth import mk, world

MiB = 1 << 20
TICK = 0.05


def _big_stuck_at_its_cap():  # type: ignore[no-untyped-def]
    """A big old low call and a small one; the big one then at its cap, the budget full, no CPU used yet."""
    clock = [0.0]
    big, small = mk("l1", "low", clock, started=-30.0), mk("l2", "low", clock)
    _, view, enf, sim, rec = world([big, small], clock)
    view.usage |= {"l1": 700 * MiB, "l2": 10 * MiB}
    view.root_usage = 850 * MiB
    view.cpu |= {"l1": 0, "l2": 0}
    enf.pressure()
    view.usage["l1"] = big.cap or 0
    view.root_usage = 170 * MiB + view.usage["l1"] + view.usage["l2"]
    assert view.root_usage >= 0.9 * 1000 * MiB  # the budget is full
    return big, view, enf, sim, rec


def test_a_call_at_its_cap_whose_cpu_grows_is_not_killed_once_flat_it_is() -> None:
    big, view, enf, sim, rec = _big_stuck_at_its_cap()
    for _ in range(int(6.0 / TICK)):  # 6 s at its cap, computing at half a core: twice the stuck deadline
        view.cpu["l1"] += int(0.5 * TICK * 1e6)
        sim.advance(view.now + TICK, view)
        enf.pressure()
    assert not [a for a in rec.done if a.verb == "kill"]
    flat_from = view.now
    for _ in range(int(2.9 / TICK)):  # its CPU flat now (it waits for memory): under stall_grace + kill_after
        sim.advance(view.now + TICK, view)
        enf.pressure()
    assert not [a for a in rec.done if a.verb == "kill"]
    for _ in range(10):
        sim.advance(view.now + TICK, view)
        enf.pressure()
    (kill,) = [a for a in rec.done if a.verb == "kill"]
    assert kill.call is big and "needs more" in kill.reason
    assert 3.0 <= view.now - flat_from <= 3.0 + 11 * TICK


def test_a_slow_trickle_of_cpu_is_not_work() -> None:
    """Under ``WORKING`` (a tenth of a core): the kernel's reclaim at the cap, not progress; it is stuck."""
    big, view, enf, sim, rec = _big_stuck_at_its_cap()
    for _ in range(int(3.6 / TICK)):
        view.cpu["l1"] += int(0.05 * TICK * 1e6)
        sim.advance(view.now + TICK, view)
        enf.pressure()
    assert [a.call for a in rec.done if a.verb == "kill"] == [big]


def _two_big(old_cpu_s: float, new_cpu_s: float) -> list[str]:
    """Two big low calls that do not fit together: the older (protected) at its cap, the newer held, frozen, with
    250 MiB. Each has worked the given CPU seconds; returns who was killed."""
    clock = [0.0]
    old, new = mk("l1", "low", clock, started=-30.0), mk("l2", "low", clock, started=-10.0)
    _, view, enf, sim, rec = world([old, new], clock)
    view.usage |= {"l1": 500 * MiB, "l2": 250 * MiB}
    view.cpu |= {"l1": int(old_cpu_s * 1e6), "l2": int(new_cpu_s * 1e6)}
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
        sim.advance(view.now + TICK, view)
        enf.pressure()
    return [a.call.id for a in rec.done if a.verb == "kill"]


def test_the_stuck_call_that_mostly_waited_dies_before_a_frozen_one_that_worked() -> None:
    # the older one is 30 s old but worked 0.5 s of CPU; the frozen newer one worked 4 s: the older one goes
    # (it loses less work, and frees more)
    assert _two_big(old_cpu_s=0.5, new_cpu_s=4.0) == ["l1"]
    # the other way round (the older one worked 4 s, the newer 0.5 s): the frozen newer one goes
    assert _two_big(old_cpu_s=4.0, new_cpu_s=0.5) == ["l2"]
