"""The one place that applies actions (controller/apply.py), without a kernel: the phase each verb leaves a
call in, what a done or killed call still takes, timers routed back to the policy that asked, by name."""

from __future__ import annotations

import pytest

from agentcgroup.backends.base import Stats
from agentcgroup.controller.actions import Action
from agentcgroup.controller.policies.base import CallInfo, Policy, View
from agentcgroup.errors import InvalidValue
from tests.unit.test_policies import CFG, FakeSession, FakeView, applier, call


class Asks(Policy):
    """Asks for a timer with key 'k' at start, and records which timers came back to it."""

    def __init__(self, name: str, delay: float = 1.0) -> None:
        self.name, self.delay = name, delay
        self.fired: list[tuple[str, str]] = []
        self.ended: list[str] = []

    def on_start(self, view: View, c: CallInfo) -> list[Action]:
        return [self.timer(c, "test", self.delay, "k")]

    def on_timer(self, view: View, c: CallInfo, key: str) -> list[Action]:
        self.fired.append((c.id, key))
        return [self.act("note", c, f"{self.name} fired")]

    def on_end(self, view: View, c: CallInfo) -> list[Action]:
        self.ended.append(c.id)
        return []


def test_each_verb_leaves_the_call_in_its_phase() -> None:
    cs = call("c1", FakeSession("s"), soft=100)
    view = FakeView(CFG, {})
    enf, _, rec = applier(view)
    p = Policy()
    steps = [
        ("throttle", {"level": 90}, ("throttled", "policy", 100)),  # the kernel's limit: the call's stays
        ("freeze", {}, ("frozen", "policy", 100)),
        ("thaw", {}, ("throttled", "policy", 100)),  # the throttle still holds it
        ("release", {"level": 120}, ("running", None, 120)),  # release sets the soft limit it names
        ("throttle", {"level": 80}, ("throttled", "policy", 120)),
        ("recover", {}, ("running", None, 120)),  # back under by itself: nothing written
        ("freeze", {}, ("frozen", None, 120)),
        ("thaw", {}, ("running", None, 120)),
    ]
    for verb, kw, (phase, by, soft) in steps:
        enf.apply([p.act(verb, cs, verb, **kw)], 5.0)
        assert (cs.phase, cs.throttled_by, cs.soft) == (phase, by, soft), verb
    assert cs.throttled_at == 5.0
    assert [a.verb for a in rec.done] == [v for v, _, _ in steps if v != "recover"]


def test_a_killed_call_takes_notes_only_and_a_done_call_nothing() -> None:
    cs = call("c1", FakeSession("s"))
    view = FakeView(CFG, {})
    enf, clock, rec = applier(view)
    p = Policy()
    cs.call.killed_by = "timeout"  # type: ignore[misc]  # a FakeCall, killed
    enf.apply([p.act("freeze", cs, "x"), p.act("note", cs, "seen"), p.timer(cs, "t", 1.0, "k")], 0.0)
    assert [a.verb for a in rec.done] == ["note"] and cs.phase == "running" and not clock.pending
    enf.end(cs)
    enf.apply([p.act("note", cs, "late")], 0.0)
    assert [a.verb for a in rec.done] == ["note"] and cs.phase == "done"


def test_timers_come_back_to_the_policy_that_asked_by_name_not_by_key() -> None:
    a, b = Asks("alpha"), Asks("beta", delay=2.0)
    cs = call("c1", FakeSession("s"))
    enf, clock, rec = applier(FakeView(CFG, {}), a, b)
    enf.started(cs)
    assert sorted(cs.timers) == [("alpha", "k"), ("beta", "k")]  # the same key, two timers
    assert sorted(d for d, _, _ in clock.pending) == [1.0, 2.0]
    clock.fire()
    assert a.fired == [("c1", "k")] and b.fired == [("c1", "k")]
    assert sorted(x.reason for x in rec.done) == ["alpha fired", "beta fired"]
    assert cs.timers == {}


def test_the_same_key_replaces_a_pending_timer_and_end_cancels_them() -> None:
    a = Asks("alpha")
    cs = call("c1", FakeSession("s"))
    enf, clock, _ = applier(FakeView(CFG, {}), a)
    enf.started(cs)
    enf.started(cs)  # asks again: the first timer is cancelled
    assert [t.cancelled for _, _, t in clock.pending] == [True, False]
    enf.end(cs)
    assert all(t.cancelled for _, _, t in clock.pending) and cs.phase == "done" and a.ended == ["c1"]
    clock.fire()
    assert a.fired == []


def test_policies_see_what_the_ones_before_them_did() -> None:
    class First(Policy):
        name = "first"

        def on_memory(self, view: View, c: CallInfo, stats: Stats) -> list[Action]:
            return [self.act("throttle", c, "first", level=1)]

    class Second(Policy):
        name = "second"
        saw: str = ""

        def on_memory(self, view: View, c: CallInfo, stats: Stats) -> list[Action]:
            Second.saw = f"{c.phase}/{c.throttled_by}"
            return []

    cs = call("c1", FakeSession("s"))
    enf, _, _ = applier(FakeView(CFG, {}), First(), Second())
    enf.memory(cs)
    assert Second.saw == "throttled/first"


def test_a_timer_names_a_policy_of_this_controller_and_names_are_unique() -> None:
    cs = call("c1", FakeSession("s"))
    enf, _, _ = applier(FakeView(CFG, {}), Asks("alpha"))
    stranger = Asks("stranger")
    with pytest.raises(ValueError, match="stranger"):
        enf.apply([stranger.timer(cs, "t", 1.0, "k")], 0.0)
    with pytest.raises(InvalidValue, match="name of its own"):
        applier(FakeView(CFG, {}), Asks("twin"), Asks("twin"))


def test_a_policy_failing_in_its_timer_fails_that_call_through_on_error() -> None:
    from agentcgroup.controller.actions import Actuator
    from agentcgroup.controller.apply import Enforcer
    from tests.unit.test_policies import Clock

    class Broken(Asks):
        def on_timer(self, view: View, c: CallInfo, key: str) -> list[Action]:
            raise RuntimeError("bug")

    failed: list[tuple[str, str]] = []
    clock = Clock()
    view = FakeView(CFG, {})
    enf = Enforcer(
        [Broken("b")], Actuator(), lambda: view, clock.call_later, lambda c, e: failed.append((c.id, str(e)))
    )  # type: ignore[arg-type,return-value]  # a fake view
    cs = call("c1", FakeSession("s"))
    enf.started(cs)
    clock.fire()
    assert failed == [("c1", "bug")]
