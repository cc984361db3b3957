"""A call's time limit counts the time it was let run, not the time the controller held it for others (up to
twice the limit in all), through the real Enforcer's phase changes on a simulated clock, without a kernel."""

from __future__ import annotations

from agentcgroup.controller.actions import Action
from agentcgroup.controller.apply import Enforcer
from agentcgroup.controller.intent import Intent
from agentcgroup.controller.policies.timeout import TimeoutPolicy
from agentcgroup.controller.state import CallFuture, CallState
from agentcgroup.limits import Limits
from tests.unit.test_policies import FakeSession, FakeView, Recorder
from tests.unit.test_pressure_growth import CFG, AgedCall, SimClock


def _world(timeout: float) -> tuple[CallState, Enforcer, SimClock, FakeView, Recorder]:
    clock = [0.0]
    fc = AgedCall("c1", Limits(), timeout, clock=clock)
    cs = CallState(fc, FakeSession("s", "low"), Intent(), CallFuture())  # type: ignore[arg-type]  # test double
    view = FakeView(CFG, {"c1": 0}, now=0.0)
    sim, rec = SimClock(clock), Recorder()
    enf = Enforcer([TimeoutPolicy()], rec, lambda: view, sim.call_later)  # type: ignore[arg-type,return-value]
    enf.started(cs)
    return cs, enf, sim, view, rec


def _do(enf: Enforcer, cs: CallState, verb: str, view: FakeView) -> None:
    enf.apply([Action(verb, cs, "the shared budget", policy="pressure", level=1 << 20)], view.now)


def kills(rec: Recorder) -> list[Action]:
    return [a for a in rec.done if a.verb == "kill"]


def test_never_held_it_is_killed_at_its_limit() -> None:
    cs, _, sim, view, rec = _world(5.0)
    sim.advance(4.99, view)
    assert not kills(rec)
    sim.advance(5.0, view)
    (k,) = kills(rec)
    assert k.by == "timeout" and k.reason == "5 s" and cs.held(view.now) == 0


def test_the_time_held_is_added_to_its_limit() -> None:
    cs, enf, sim, view, rec = _world(5.0)
    sim.advance(1.0, view)
    _do(enf, cs, "throttle", view)  # held from 1 s: throttled, then frozen, then thawed and released at 4 s
    sim.advance(2.0, view)
    _do(enf, cs, "freeze", view)
    sim.advance(3.5, view)
    _do(enf, cs, "thaw", view)
    sim.advance(4.0, view)
    _do(enf, cs, "release", view)
    assert cs.phase == "running" and cs.held(view.now) == 3.0 and cs.held_from is None
    sim.advance(7.99, view)  # 5 s would have killed it; it ran 1 + 3.99 s
    assert not kills(rec)
    sim.advance(8.0, view)  # 5 s running and 3 s held
    (k,) = kills(rec)
    assert k.reason == "5 s of running, besides 3.0 s held" and k.figures["held_s"] == 3.0


def test_held_for_ever_it_is_still_killed_at_twice_its_limit() -> None:
    cs, enf, sim, view, rec = _world(5.0)
    sim.advance(0.5, view)
    _do(enf, cs, "throttle", view)
    sim.advance(9.99, view)
    assert not kills(rec) and cs.phase == "throttled"
    sim.advance(10.0, view)
    (k,) = kills(rec)
    assert k.by == "timeout" and k.reason == "10 s in all, 9.5 s of them held (at most 2x its 5 s)"
