"""The policies ``agentcg bench`` compares, each one the controller set up the way that policy works.

Every arm runs the same sessions under the same host budget (the root cgroup's hard limit: the "host"); they
differ in what else they do:

* ``none``: no isolation. One parent limit; no per-session limits, no priorities, no OOM preferences: when
  the budget runs out the kernel's OOM killer takes the largest process, agent or tool.
* ``static``: per-session hard limits sized to each session's own peak (x1.1), as a careful operator would
  set them; the sessions together still over-commit the budget.
* ``high``: memory.high only: each session gets a soft limit at its fair share of the budget and nothing
  escalates (v1: the stall at the limit, ``oom_kill_disable``); a call that cannot go on waits for its timeout.
* ``psi-kill``: oomd-like: no isolation, plus a monitor that kills the whole session using the most memory
  (agent included, as systemd-oomd kills a unit) once memory pressure or budget use stays high for 0.5 s.
* ``agentcgroup``: the controller as shipped: priorities, protected agent leaves, tools first for the OOM
  killer, and graduated throttle -> freeze -> kill of lower-priority calls under pressure.
* ``learned``: ``agentcgroup`` with admission by prediction (``ControllerConfig.predict``): each call, which
  declares nothing, reserves its predicted peak and waits while it does not fit (docs/predict.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..controller.config import ControllerConfig
from ..controller.core import default_policies
from ..controller.policies.base import Policy
from ..controller.policies.oomgroup import OomGroupPolicy
from ..controller.policies.timeout import TimeoutPolicy
from ..errors import InvalidValue
from ..limits import Limits


@dataclass(frozen=True)
class Arm:
    name: str
    title: str
    priorities: bool = False  # sessions keep their priorities (else all run as "normal")
    static_peak: bool = False  # per-session memory.max at the session's peak
    fair_high: bool = False  # per-session memory.high at budget / sessions
    oomd: bool = False  # the oomd-like killer runs beside it
    full_controller: bool = False
    predict: bool = False  # admission reserves each call's predicted peak

    def config(self, budget: int | None) -> ControllerConfig:
        if self.full_controller:
            return ControllerConfig(budget=budget, warm=0, predict=self.predict)
        # the baselines get none of agentcgroup's protections: tools and agents are equal for the OOM killer
        return ControllerConfig(budget=budget, warm=0, tool_oom_score_adj=0, agent_memory_low=0)

    def policies(self) -> list[Policy]:
        if self.full_controller:
            return default_policies()
        return [TimeoutPolicy(), OomGroupPolicy()]  # a timed-out or OOM-killed call goes whole, as anywhere

    def session_limits(self, peak: int, budget: int | None, sessions: int) -> Limits:
        if self.static_peak:
            return Limits(memory_max=int(peak * 1.1))
        if self.fair_high and budget is not None:
            return Limits(memory_high=budget // max(1, sessions))
        return Limits()


ARMS: dict[str, Arm] = {
    a.name: a
    for a in (
        Arm("none", "no isolation"),
        Arm("static", "static per-session limits (peak)", static_peak=True),
        Arm("high", "memory.high only", fair_high=True),
        Arm("psi-kill", "PSI-kill (oomd-like)", oomd=True),
        Arm("agentcgroup", "agentcgroup", priorities=True, full_controller=True),
        Arm("learned", "agentcgroup + learned intents", priorities=True, full_controller=True, predict=True),
    )
}


def parse_arms(text: str) -> list[Arm]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InvalidValue("arms", text, f"expected some of {', '.join(ARMS)}")
    for n in names:
        if n not in ARMS:
            raise InvalidValue("arm", n, f"expected one of {', '.join(ARMS)}")
    return [ARMS[n] for n in dict.fromkeys(names)]
