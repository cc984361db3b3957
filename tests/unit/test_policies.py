"""Policies as plugins over a snapshot: fed an injected view, they return actions; nothing touches a kernel."""

from __future__ import annotations

from dataclasses import dataclass, field

from agentcgroup.backends.base import Stats
from agentcgroup.controller.config import ControllerConfig
from agentcgroup.controller.intent import Intent
from agentcgroup.controller.policies.oomgroup import OomGroupPolicy
from agentcgroup.controller.policies.pressure import PressurePolicy
from agentcgroup.controller.policies.softlimit import SoftLimitPolicy
from agentcgroup.controller.policies.timeout import TimeoutPolicy
from agentcgroup.controller.state import CallFuture, CallState
from agentcgroup.limits import Limits

MiB = 1 << 20


@dataclass
class FakeSession:
    name: str
    priority: str = "normal"

    @property
    def rank(self) -> int:
        return {"high": 2, "normal": 1, "low": 0}[self.priority]


@dataclass
class FakeProc:
    code: int | None = None

    def poll(self) -> int | None:
        return self.code


@dataclass
class FakeCall:
    call_id: str
    limits: Limits = field(default_factory=Limits)
    timeout: float | None = None
    proc: FakeProc = field(default_factory=FakeProc)

    def elapsed(self) -> float:
        return 0.0


class FakeView:
    """What a policy sees: config, figures per call, budgets, headroom."""

    def __init__(
        self,
        config: ControllerConfig,
        usage: dict[str, int],
        budget: int | None = None,
        root_usage: int = 0,
        now: float = 100.0,
    ) -> None:
        self.config, self.usage, self.now = config, usage, now
        self.budget, self.root_usage = budget, root_usage
        self.kernel_oom_group = False
        self.calls: list[CallState] = []
        self.under_oom: set[str] = set()

    def stats(self, cs: CallState) -> Stats:
        return Stats(memory_current=self.usage.get(cs.id, 0), under_oom=cs.id in self.under_oom)

    def call_usage(self, cs: CallState) -> int:
        return self.usage.get(cs.id, 0)

    def rank_of(self, cs: CallState) -> int:
        return cs.rank

    def budgets(self):  # type: ignore[no-untyped-def]
        return [("", self.root_usage, self.budget, self.calls)] if self.budget else []

    def headroom(self, cs: CallState) -> int:
        if not self.budget:
            return 1 << 62
        return int(self.budget * self.config.pressure_on) - self.root_usage

    def psi_recent(self) -> bool:
        return False


def call(
    cid: str, session: FakeSession, soft: int | None = None, hard: int | None = None, timeout: float | None = None
) -> CallState:
    fc = FakeCall(cid, Limits(memory_max=hard, memory_high=soft), timeout)
    return CallState(fc, session, Intent(), CallFuture(), soft=soft)  # type: ignore[arg-type]


def verbs(actions) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(a.verb, a.call.id) for a in actions]


CFG = ControllerConfig(stall_grace=1.0, kill_after=2.0, pressure_on=0.9, pressure_off=0.8)


def test_timeout_asks_for_a_timer_then_kills() -> None:
    p = TimeoutPolicy()
    cs = call("c1", FakeSession("s"), timeout=5.0)
    view = FakeView(CFG, {})
    (timer,) = p.on_start(view, cs)
    assert (timer.verb, timer.delay, timer.key) == ("timer", 5.0, "timeout")
    (kill,) = p.on_timer(view, cs, "timeout")
    assert (kill.verb, kill.by) == ("kill", "timeout")
    assert p.on_start(view, call("c2", FakeSession("s"))) == []


def test_oom_group_kills_the_rest_once() -> None:
    p = OomGroupPolicy()
    cs = call("c1", FakeSession("s"))
    view = FakeView(CFG, {})
    (kill,) = p.on_memory(view, cs, Stats(oom_kills=1))
    assert kill.by == "memory"
    assert p.on_memory(view, cs, Stats(oom_kills=1)) == []  # already acted on that one
    view.kernel_oom_group = True
    assert p.on_memory(view, cs, Stats(oom_kills=2)) == []  # v2: the kernel did it


def test_soft_limit_throttle_freeze_kill_without_room() -> None:
    p = SoftLimitPolicy()
    cs = call("c1", FakeSession("s"), soft=100 * MiB)
    view = FakeView(CFG, {"c1": 99 * MiB})
    acts = p.on_memory(view, cs, view.stats(cs))
    assert [a.verb for a in acts] == ["throttle", "timer"] and acts[1].delay == 1.0
    assert cs.phase == "throttled"
    acts = p.on_timer(view, cs, "soft-stalled")
    assert [a.verb for a in acts] == ["freeze", "timer"] and acts[1].delay == 2.0
    cs.phase = "frozen"  # the controller marks it when it carries the freeze out
    (kill,) = p.on_timer(view, cs, "soft-frozen")
    assert kill.verb == "kill" and kill.by == "memory" and "100 MiB" in kill.reason


def test_soft_limit_releases_when_a_hard_limit_leaves_room() -> None:
    p = SoftLimitPolicy()
    cs = call("c1", FakeSession("s"), soft=100 * MiB, hard=1024 * MiB)
    view = FakeView(CFG, {"c1": 100 * MiB})
    p.on_memory(view, cs, view.stats(cs))
    (release,) = p.on_timer(view, cs, "soft-stalled")
    assert release.verb == "release" and release.level is None and cs.phase == "running"


def test_soft_limit_does_nothing_if_the_call_came_back_under() -> None:
    p = SoftLimitPolicy()
    cs = call("c1", FakeSession("s"), soft=100 * MiB)
    view = FakeView(CFG, {"c1": 100 * MiB})
    p.on_memory(view, cs, view.stats(cs))
    view.usage["c1"] = 40 * MiB
    assert p.on_timer(view, cs, "soft-stalled") == [] and cs.phase == "running"


def high_and_low(root_usage: int) -> tuple[PressurePolicy, CallState, CallState, FakeView]:
    """A pressure policy over a 1000 MiB budget, a high call (500 MiB) and a low one (300 MiB)."""
    c_hi, c_lo = call("h1", FakeSession("hi", "high")), call("l1", FakeSession("lo", "low"))
    view = FakeView(CFG, {"h1": 500 * MiB, "l1": 300 * MiB}, budget=1000 * MiB, root_usage=root_usage)
    view.calls = [c_hi, c_lo]
    return PressurePolicy(), c_hi, c_lo, view


def test_pressure_takes_the_low_priority_call_first_and_spares_high() -> None:
    p, c_hi, c_lo, view = high_and_low(950 * MiB)
    acts = p.on_pressure(view)
    assert verbs(acts)[:2] == [("throttle", "l1"), ("timer", "l1")]
    assert ("note", "h1") in verbs(acts)  # the protected call is told
    assert acts[0].level == 300 * MiB  # throttled where it stands
    # the deadline passes with the pressure still there: frozen, then killed
    acts = p.on_timer(view, c_lo, "pressure-freeze:")
    assert verbs(acts)[:2] == [("freeze", "l1"), ("timer", "l1")]
    c_lo.phase = "frozen"
    acts = p.on_timer(view, c_lo, "pressure-kill:")
    assert verbs(acts)[0] == ("kill", "l1") and acts[0].by == "policy"
    assert all(a.call is not c_hi or a.verb == "note" for a in acts)
    # once it is killed, the pressure passing has nothing to thaw or release for it
    view.root_usage = 400 * MiB
    assert [v for v in verbs(p.on_pressure(view)) if v[1] == "l1"] == []


def test_pressure_at_the_edge_brings_the_deadlines_forward_for_a_waiting_higher_call() -> None:
    # 92 %: lower-priority calls give way on the usual deadlines
    p, _hi, c_lo, view = high_and_low(920 * MiB)
    acts = p.on_pressure(view)
    assert verbs(acts)[:2] == [("throttle", "l1"), ("timer", "l1")] and acts[1].delay == CFG.stall_grace
    # 98 %: the high call waits on the low one's memory: its freeze deadline is brought forward, once
    view.root_usage = 980 * MiB
    acts = p.on_pressure(view)
    assert [(a.verb, a.key, a.delay) for a in acts if a.call is c_lo] == [
        ("timer", "pressure-freeze:", CFG.urgent_grace)
    ]
    assert not [a for a in p.on_pressure(view) if a.call is c_lo and a.verb == "timer"]
    # frozen with the kill deadline as short, and still throttle -> freeze -> kill, in order
    acts = p.on_timer(view, c_lo, "pressure-freeze:")
    assert verbs(acts)[:2] == [("freeze", "l1"), ("timer", "l1")] and acts[1].delay == CFG.urgent_grace
    assert "higher-priority call is waiting for memory" in acts[0].reason
    c_lo.phase = "frozen"
    assert verbs(p.on_timer(view, c_lo, "pressure-kill:"))[0] == ("kill", "l1")


def test_no_hurry_without_a_higher_priority_call() -> None:
    p = PressurePolicy()
    c1, c2 = call("n1", FakeSession("a", "normal")), call("n2", FakeSession("b", "normal"))
    view = FakeView(CFG, {"n1": 500 * MiB, "n2": 400 * MiB}, budget=1000 * MiB, root_usage=990 * MiB)
    view.calls = [c1, c2]
    acts = p.on_pressure(view)
    assert [a.delay for a in acts if a.verb == "timer"] == [CFG.stall_grace]


def test_pressure_passing_thaws_and_lifts() -> None:
    p = PressurePolicy()
    lo = FakeSession("lo", "low")
    c_lo = call("l1", lo)
    view = FakeView(CFG, {"l1": 300 * MiB}, budget=1000 * MiB, root_usage=950 * MiB)
    view.calls = [c_lo, call("n1", FakeSession("n", "normal"))]
    p.on_pressure(view)
    c_lo.phase = "frozen"
    view.root_usage = 500 * MiB
    acts = p.on_pressure(view)
    assert verbs(acts) == [("thaw", "l1"), ("release", "l1")] and c_lo.phase == "running"


def test_high_priority_calls_are_never_victims_of_the_global_budget() -> None:
    p = PressurePolicy()
    hi = FakeSession("hi", "high")
    view = FakeView(CFG, {"h1": 900 * MiB}, budget=1000 * MiB, root_usage=950 * MiB)
    view.calls = [call("h1", hi)]
    assert p.on_pressure(view) == []


def test_controller_settings_from_text_name_the_bad_value() -> None:
    import pytest

    from agentcgroup import InvalidValue

    cfg = ControllerConfig.parse(urgent_level="0.95", urgent_grace="50ms", pressure_on="0.96")
    assert cfg.urgent_grace == 0.05 and cfg.urgent_at == 0.96  # never below pressure_on
    for kw, text in (
        ({"urgent_level": "x"}, "invalid urgent_level 'x': expected a fraction"),
        ({"urgent_level": "1.5"}, "invalid urgent_level 1.5"),
        ({"urgent_grace": "-1s"}, "urgent_grace"),
        ({"warm": "two"}, "invalid warm 'two': expected an integer"),
        ({"urgency": "1"}, "invalid setting 'urgency'"),
    ):
        with pytest.raises(InvalidValue, match=text.replace(".", r"\.")):
            ControllerConfig.parse(**kw)
