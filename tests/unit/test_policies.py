"""Policies as plugins over a snapshot: fed an injected view, they return actions; nothing touches a kernel."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from agentcgroup.backends.base import Stats
from agentcgroup.controller.actions import Action, Actuator
from agentcgroup.controller.apply import Enforcer
from agentcgroup.controller.config import ControllerConfig
from agentcgroup.controller.intent import Intent
from agentcgroup.controller.loop import Timer
from agentcgroup.controller.policies.base import Policy
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
    """A command that has not ended (``exited`` reads ``returncode``, then ``exited``, then the pidfd)."""

    returncode: int | None = None
    exited: bool = False
    pidfd: int = -1

    def poll(self) -> int | None:
        return self.returncode


@dataclass
class FakeCall:
    """The ToolCall side a policy's actions reach without a kernel: no leaf, so the actuator records steps."""

    call_id: str
    limits: Limits = field(default_factory=Limits)
    timeout: float | None = None
    proc: FakeProc = field(default_factory=FakeProc)
    cg: None = None
    killed_by: str | None = None
    steps: list[tuple[str, str]] = field(default_factory=list)

    def elapsed(self) -> float:
        return 0.0

    def step(self, action: str, reason: str, **figures: object) -> None:
        self.steps.append((action, reason))


class FakeView:
    """What a policy sees (the policies.base.View protocol): config, figures per call, budgets, headroom."""

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
        self.cpu: dict[str, int] = {}  # call id -> CPU µs (absent: the kernel cannot tell)
        self.kept: dict[int, int] = {}  # rank -> host memory kept for higher-priority sessions' predictions

    def stats(self, cs: CallState) -> Stats:
        return Stats(
            memory_current=self.usage.get(cs.id, 0), under_oom=cs.id in self.under_oom, cpu_usec=self.cpu.get(cs.id)
        )

    def call_usage(self, cs: CallState) -> int:
        return self.usage.get(cs.id, 0)

    def rank_of(self, cs: CallState) -> int:
        return cs.rank

    def budgets(self) -> list[tuple[str, int, int, list[CallState]]]:
        return [("", self.root_usage, self.budget, self.calls)] if self.budget else []

    def headroom(self, cs: CallState) -> int:
        if not self.budget:
            return 1 << 62
        return int(self.budget * self.config.pressure_on) - self.root_usage

    def psi_recent(self) -> bool:
        return False

    def kept_for(self, rank: int) -> int:
        return self.kept.get(rank, 0)


def call(
    cid: str, session: FakeSession, soft: int | None = None, hard: int | None = None, timeout: float | None = None
) -> CallState:
    fc = FakeCall(cid, Limits(memory_max=hard, memory_high=soft), timeout)
    return CallState(fc, session, Intent(), CallFuture(), soft=soft)  # type: ignore[arg-type]  # test doubles


def verbs(actions: list[Action]) -> list[tuple[str, str]]:
    return [(a.verb, a.call.id) for a in actions]


class Clock:
    """The loop's call_later, by hand: timers fire when the test says."""

    def __init__(self) -> None:
        self.pending: list[tuple[float, Callable[[], object], Timer]] = []

    def call_later(self, delay: float, cb: Callable[[], object]) -> Timer:
        t = Timer(delay, cb)
        self.pending.append((delay, cb, t))
        return t

    def fire(self) -> None:
        """Every timer armed so far that was not cancelled (in the order they were armed)."""
        due, self.pending = self.pending, []
        for _, cb, t in due:
            if not t.cancelled:
                cb()


class Recorder(Actuator):
    """The real actuator (no leaf: it only writes steps), remembering what it was asked."""

    def __init__(self) -> None:
        super().__init__()
        self.done: list[Action] = []

    def execute(self, action: Action, cs: CallState) -> None:
        self.done.append(action)
        super().execute(action, cs)


def applier(view: FakeView, *policies: Policy) -> tuple[Enforcer, Clock, Recorder]:
    """The controller's one place that applies actions, over the fake view, with a hand-driven clock."""
    clock, rec = Clock(), Recorder()
    return Enforcer(list(policies), rec, lambda: view, clock.call_later), clock, rec  # type: ignore[arg-type,return-value]  # a fake view


def delays(clock: Clock) -> list[float]:
    return [d for d, _, t in clock.pending if not t.cancelled]


CFG = ControllerConfig(stall_grace=1.0, kill_after=2.0, pressure_on=0.9, pressure_off=0.8)


def test_timeout_asks_for_a_timer_then_kills() -> None:
    p = TimeoutPolicy()
    cs = call("c1", FakeSession("s"), timeout=5.0)
    view = FakeView(CFG, {})
    (timer,) = p.on_start(view, cs)
    assert (timer.verb, timer.delay, timer.key, timer.policy) == ("timer", 5.0, "timeout", "timeout")
    cs.call.elapsed = lambda: 5.0  # type: ignore[method-assign]  # when its timer fires
    (kill,) = p.on_timer(view, cs, "timeout")
    assert (kill.verb, kill.by, kill.policy) == ("kill", "timeout", "timeout")
    assert p.on_start(view, call("c2", FakeSession("s"))) == []


def test_oom_group_kills_the_rest_once() -> None:
    p = OomGroupPolicy()
    cs = call("c1", FakeSession("s"))
    view = FakeView(CFG, {})
    (kill,) = p.on_memory(view, cs, Stats(oom_kills=1))
    assert (kill.by, kill.policy) == ("memory", "oom-group")
    assert p.on_memory(view, cs, Stats(oom_kills=1)) == []  # already acted on that one
    view.kernel_oom_group = True
    assert p.on_memory(view, cs, Stats(oom_kills=2)) == []  # v2: the kernel did it
    view.kernel_oom_group = False
    cs.call.proc.returncode = 137  # type: ignore[attr-defined]  # a FakeProc: its command ended, nothing to group
    assert p.on_memory(view, cs, Stats(oom_kills=3)) == []
    p.on_end(view, cs)
    assert p.seen == {}


def test_soft_limit_throttle_freeze_kill_without_room() -> None:
    cs = call("c1", FakeSession("s"), soft=100 * MiB)
    view = FakeView(CFG, {"c1": 99 * MiB})
    enf, clock, rec = applier(view, SoftLimitPolicy())
    enf.memory(cs)
    assert (cs.phase, cs.throttled_by, cs.throttled_at) == ("throttled", "soft-limit", view.now)
    assert [a.verb for a in rec.done] == ["throttle"] and rec.done[0].level == 100 * MiB
    assert delays(clock) == [1.0]
    clock.fire()  # still at its limit, no hard limit above: frozen
    assert cs.phase == "frozen" and delays(clock) == [2.0]
    clock.fire()
    kill = rec.done[-1]
    assert kill.verb == "kill" and kill.by == "memory" and "100 MiB" in kill.reason
    assert [v for v, _ in cs.call.steps] == ["throttle", "freeze", "kill"]  # type: ignore[attr-defined]  # FakeCall


def test_soft_limit_releases_when_a_hard_limit_leaves_room() -> None:
    cs = call("c1", FakeSession("s"), soft=100 * MiB, hard=1024 * MiB)
    view = FakeView(CFG, {"c1": 100 * MiB})
    enf, clock, rec = applier(view, SoftLimitPolicy())
    enf.memory(cs)
    clock.fire()
    release = rec.done[-1]
    assert release.verb == "release" and release.level is None
    assert (cs.phase, cs.throttled_by, cs.soft) == ("running", None, None)  # its soft limit is lifted


def test_soft_limit_thaws_when_room_appears_while_frozen() -> None:
    cs = call("c1", FakeSession("s"), soft=100 * MiB, hard=1024 * MiB)
    view = FakeView(CFG, {"c1": 100 * MiB}, budget=1000 * MiB, root_usage=890 * MiB)  # 10 MiB of room only
    enf, clock, rec = applier(view, SoftLimitPolicy())
    enf.memory(cs)
    clock.fire()
    assert cs.phase == "frozen"
    view.root_usage = 100 * MiB
    clock.fire()
    assert [a.verb for a in rec.done] == ["throttle", "freeze", "release", "thaw"]
    assert (cs.phase, cs.soft) == ("running", None)


def test_soft_limit_does_nothing_if_the_call_came_back_under() -> None:
    cs = call("c1", FakeSession("s"), soft=100 * MiB)
    view = FakeView(CFG, {"c1": 100 * MiB})
    enf, clock, rec = applier(view, SoftLimitPolicy())
    enf.memory(cs)
    view.usage["c1"] = 40 * MiB
    clock.fire()
    assert [a.verb for a in rec.done] == ["throttle"]  # nothing written: it recovered by itself
    assert (cs.phase, cs.throttled_by, cs.soft) == ("running", None, 100 * MiB)


def high_and_low(root_usage: int) -> tuple[PressurePolicy, CallState, CallState, FakeView]:
    """A pressure policy over a 1000 MiB budget, a high call (500 MiB) and a low one (300 MiB)."""
    c_hi, c_lo = call("h1", FakeSession("hi", "high")), call("l1", FakeSession("lo", "low"))
    view = FakeView(CFG, {"h1": 500 * MiB, "l1": 300 * MiB}, budget=1000 * MiB, root_usage=root_usage)
    view.calls = [c_hi, c_lo]
    return PressurePolicy(sampling=False), c_hi, c_lo, view


def test_pressure_takes_the_low_priority_call_first_and_spares_high() -> None:
    p, c_hi, c_lo, view = high_and_low(950 * MiB)
    acts = p.on_pressure(view)
    assert verbs(acts)[:2] == [("throttle", "l1"), ("timer", "l1")]
    assert ("note", "h1") in verbs(acts)  # the protected call is told
    assert acts[0].level == 300 * MiB + 1000 * MiB // 64  # where it stands, with room for its kernel allocations
    enf, clock, rec = applier(view, p)
    enf.apply(acts, view.now)
    assert (c_lo.phase, c_lo.throttled_by) == ("throttled", "pressure") and c_hi.phase == "running"
    # the deadline passes with the pressure still there: frozen; still over pressure_on with the high call
    # running beside it a kill deadline later: killed (the high call cannot grow without its memory)
    clock.fire()
    assert c_lo.phase == "frozen" and rec.done[-1].verb == "freeze"
    clock.fire()
    kill = next(a for a in rec.done if a.verb == "kill")
    assert kill.call is c_lo and kill.by == "policy"
    assert all(a.call is not c_hi or a.verb == "note" for a in rec.done)
    # once it is killed, the pressure passing has nothing to thaw or release for it
    view.root_usage = 400 * MiB
    assert [v for v in verbs(p.on_pressure(view)) if v[1] == "l1"] == []


def test_pressure_at_the_edge_brings_the_deadlines_forward_for_a_waiting_higher_call() -> None:
    # 92 %: lower-priority calls give way on the usual deadlines
    p, _hi, c_lo, view = high_and_low(920 * MiB)
    enf, clock, rec = applier(view, p)
    enf.pressure()
    assert verbs(rec.done)[0] == ("throttle", "l1") and delays(clock) == [CFG.stall_grace]
    # 98 %: the high call waits on the low one's memory: its freeze deadline is brought forward, once
    view.root_usage = 980 * MiB
    enf.pressure()
    assert delays(clock) == [CFG.urgent_grace]  # the same timer, armed again sooner (the first is cancelled)
    enf.pressure()
    assert delays(clock) == [CFG.urgent_grace]
    # frozen with the kill deadline as short, and still throttle -> freeze -> kill, in order
    clock.fire()
    assert c_lo.phase == "frozen" and "higher-priority call is waiting for memory" in rec.done[-1].reason
    assert delays(clock) == [CFG.urgent_grace]
    clock.fire()
    assert [v for v, c in verbs(rec.done) if c == "l1"] == ["throttle", "freeze", "kill"]


def test_no_hurry_without_a_higher_priority_call() -> None:
    p = PressurePolicy(sampling=False)
    c1, c2 = call("n1", FakeSession("a", "normal")), call("n2", FakeSession("b", "normal"))
    view = FakeView(CFG, {"n1": 500 * MiB, "n2": 400 * MiB}, budget=1000 * MiB, root_usage=990 * MiB)
    view.calls = [c1, c2]
    acts = p.on_pressure(view)
    assert [a.delay for a in acts if a.verb == "timer"] == [CFG.stall_grace]


def test_pressure_passing_thaws_and_lifts() -> None:
    p = PressurePolicy(sampling=False)
    c_lo = call("l1", FakeSession("lo", "low"))
    view = FakeView(CFG, {"l1": 300 * MiB}, budget=1000 * MiB, root_usage=950 * MiB)
    view.calls = [c_lo, call("n1", FakeSession("n", "normal"))]
    enf, clock, rec = applier(view, p)
    enf.pressure()
    clock.fire()
    assert c_lo.phase == "frozen"
    view.root_usage = 500 * MiB
    enf.pressure()
    # it goes on under its share of the budget's headroom (the cap, before the release writes it)
    mine = [v for v in verbs(rec.done) if v[1] == "l1"]
    assert mine[-3:] == [("thaw", "l1"), ("cap", "l1"), ("release", "l1")] and c_lo.phase == "running"
    assert c_lo.cap is not None and c_lo.cap >= 300 * MiB
    assert c_lo.throttled_by is None


def test_pressure_deadline_after_the_pressure_passed_lifts_the_throttle() -> None:
    p = PressurePolicy(sampling=False, caps=False)  # by the budget's level (with caps: test_pressure_caps.py)
    c_lo = call("l1", FakeSession("lo", "low"))
    view = FakeView(CFG, {"l1": 300 * MiB}, budget=1000 * MiB, root_usage=950 * MiB)
    view.calls = [c_lo, call("n1", FakeSession("n", "normal"))]
    enf, clock, rec = applier(view, p)
    enf.pressure()
    view.root_usage = 850 * MiB  # under pressure_on, over pressure_off: no event, but the deadline looks
    clock.fire()
    assert verbs(rec.done)[-1] == ("release", "l1") and c_lo.phase == "running"


def test_high_priority_calls_are_never_victims_of_the_global_budget() -> None:
    p = PressurePolicy(sampling=False)
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
