"""The controller's settings, validated up front (a bad value is an error naming it, before anything runs)."""

from __future__ import annotations

from typing import Any

from .._record import Frozen
from ..errors import InvalidValue
from ..units import parse_duration, parse_size

#: priority classes: rank (higher = more important) and the CPU weight their sessions get
PRIORITIES: dict[str, tuple[int, int]] = {"high": (2, 400), "normal": (1, 100), "low": (0, 25)}


def check_priority(value: str) -> str:
    if value not in PRIORITIES:
        raise InvalidValue("priority", value, f"expected one of {', '.join(PRIORITIES)}")
    return value


class ControllerConfig(Frozen):
    """Everything the controller decides with. Sizes in bytes, times in seconds.

    budget          memory for all sessions together (the root cgroup's hard limit); None: no global budget
    pressure_on     fraction of a budget (global or a session's) at which lower-priority calls give way
    pressure_off    fraction under which the pressure has passed (frozen calls thaw, throttles lift)
    stall_grace     how long a call may stay throttled (at its soft limit, or under pressure) before freezing
    kill_after      how long a call may stay frozen without relief before it is killed
    urgent_level    fraction of a budget (never below pressure_on) at which a higher-priority call still
                    running waits on the memory lower-priority ones hold: their deadlines shrink to urgent_grace
    urgent_grace    the throttle and freeze deadlines then (the steps stay in order: throttle, freeze, kill)
    lead_time       act this long before a budget is predicted to reach its hard limit (from how fast it and
                    its calls grow): every growing lower-priority call is throttled then; the last quarter of
                    it is the edge, where a higher-priority call waits on what the held calls keep
    sample_interval how often the pressure policy reads the budgets and calls while calls run under one
    admission_wait  how long a call whose declared memory does not fit may wait in the queue
    tool_oom_score_adj   oom_score_adj of a low-priority call's processes; normal-priority calls get 2/3 of
                         it, high-priority calls 1/3 (see :meth:`tool_adj`): if the kernel's OOM killer fires
                         anyway it takes low tools first, then normal, then high; agents last: they get
                         1000 below high calls (see :meth:`agent_adj`)
    agent_memory_low     protection of each session's agent leaf from reclaim
    psi_stall_ms / psi_window_ms   host PSI trigger (memory "some"): pressure even below the budget
    checkpoint      v2: usage step at which a growing call notifies the controller (None: budget/32, >= 16 MiB)
    warm            spare pre-placed leaves per session (0: off)
    warm_after      calls a session starts before its spares are made (0: at open). The daemon uses 1: an idle
                    session, or one opened for a single call (``agentcg run``), holds no spare, stub or thread
    warm_quiet      seconds with no call starting before spares are made (0: at once). Calls back to back
                    spawn directly (cheaper then); the pool fills again in their first pause (warm.py)
    predict         a call that declares no memory reserves its predicted peak, from what similar calls
                    used (history in the state dir, when there is one); queued while it does not fit
    """

    FIELDS = (
        "budget",
        "pressure_on",
        "pressure_off",
        "stall_grace",
        "kill_after",
        "urgent_level",
        "urgent_grace",
        "lead_time",
        "sample_interval",
        "admission_wait",
        "tool_oom_score_adj",
        "agent_memory_low",
        "psi_stall_ms",
        "psi_window_ms",
        "checkpoint",
        "warm",
        "warm_after",
        "warm_quiet",
        "predict",
    )
    budget: int | None
    pressure_on: float
    pressure_off: float
    stall_grace: float
    kill_after: float
    urgent_level: float
    urgent_grace: float
    lead_time: float
    sample_interval: float
    admission_wait: float
    tool_oom_score_adj: int
    agent_memory_low: int
    psi_stall_ms: int
    psi_window_ms: int
    checkpoint: int | None
    warm: int
    warm_after: int
    warm_quiet: float
    predict: bool

    def __init__(
        self,
        budget: int | None = None,
        pressure_on: float = 0.90,
        pressure_off: float = 0.80,
        stall_grace: float = 1.0,
        kill_after: float = 2.0,
        urgent_level: float = 0.97,
        urgent_grace: float = 0.1,
        lead_time: float = 1.0,
        sample_interval: float = 0.05,
        admission_wait: float = 30.0,
        tool_oom_score_adj: int = 1000,
        agent_memory_low: int = 256 << 20,
        psi_stall_ms: int = 150,
        psi_window_ms: int = 2000,
        checkpoint: int | None = None,
        warm: int = 2,
        warm_after: int = 0,
        warm_quiet: float = 0.02,  # warm.QUIET_S (not imported: this module is light, warm.py is not)
        predict: bool = False,
    ) -> None:
        self._set("budget", budget)
        self._set("pressure_on", pressure_on)
        self._set("pressure_off", pressure_off)
        self._set("stall_grace", stall_grace)
        self._set("kill_after", kill_after)
        self._set("urgent_level", urgent_level)
        self._set("urgent_grace", urgent_grace)
        self._set("lead_time", lead_time)
        self._set("sample_interval", sample_interval)
        self._set("admission_wait", admission_wait)
        self._set("tool_oom_score_adj", tool_oom_score_adj)
        self._set("agent_memory_low", agent_memory_low)
        self._set("psi_stall_ms", psi_stall_ms)
        self._set("psi_window_ms", psi_window_ms)
        self._set("checkpoint", checkpoint)
        self._set("warm", warm)
        self._set("warm_after", warm_after)
        self._set("warm_quiet", warm_quiet)
        self._set("predict", predict)
        self._check()

    def _check(self) -> None:
        if self.budget is not None and self.budget <= 0:
            raise InvalidValue("budget", self.budget, "must be a positive size")
        if not 0 < self.pressure_off < self.pressure_on <= 1:
            raise InvalidValue(
                "pressure_on/pressure_off", (self.pressure_on, self.pressure_off), "need 0 < off < on <= 1"
            )
        if not 0 < self.urgent_level <= 1:
            raise InvalidValue("urgent_level", self.urgent_level, "need 0 < it <= 1")
        if not self.sample_interval > 0:
            raise InvalidValue("sample_interval", self.sample_interval, "must be more than zero seconds")
        for name in ("stall_grace", "kill_after", "urgent_grace", "lead_time", "admission_wait"):
            v = getattr(self, name)
            if not v >= 0:
                raise InvalidValue(name, v, "must be zero or more seconds")
        if not -1000 <= self.tool_oom_score_adj <= 1000:
            raise InvalidValue("tool_oom_score_adj", self.tool_oom_score_adj, "must be -1000..1000")
        if self.warm < 0:
            raise InvalidValue("warm", self.warm, "must be 0 or more")
        if self.warm_after < 0:
            raise InvalidValue("warm_after", self.warm_after, "must be 0 or more")
        if not 0 <= self.warm_quiet <= 60:
            raise InvalidValue("warm_quiet", self.warm_quiet, "must be 0..60 seconds")

    def tool_adj(self, priority: str, agents_lowered: bool = True) -> int:
        """oom_score_adj for the processes of a call of ``priority``: low > normal > high > agents.

        The kernel's badness adds ``adj / 1000`` of the OOM-ing cgroup's limit to each process's size, so
        steps of a third of the range put a third of the budget between the classes: a low call is taken
        before a normal or high one unless it is the smaller by more than that. Agents sit 1000 below the
        high calls (:meth:`agent_adj`). ``agents_lowered`` False (a controller without CAP_SYS_RESOURCE, whose
        agents stay at 0): the classes keep their order in the top fifth of the range (1000, 900, 800), so that
        an agent goes before a call only if it holds 80 % of the budget more than the call does (a third was
        not enough: an agent of 60 % of the budget outscored a high call of 20 %); between calls a tenth of
        the budget then separates the classes.
        """
        adj = self.tool_oom_score_adj
        if adj <= 0:
            return adj  # not a ranking (e.g. the bench's baselines, 0 for all): the same for every class
        rank = PRIORITIES[check_priority(priority)][0]
        ranked = adj * (3 - rank) // 3
        if not agents_lowered:
            return adj - (adj - ranked) * 3 // 10
        return ranked

    def agent_adj(self) -> int | None:
        """oom_score_adj for a session's agent runtime: 1000 below a high-priority call's (-667 by default), so
        that no tool process outranks an agent whatever their sizes, or None (left as inherited) when tools are
        not ranked (``tool_oom_score_adj`` <= 0, the bench's baselines).

        A third of the budget between a high call and an agent left at 0 is not enough: an agent holding most
        of a small budget outscores a high call that grows past the rest (``agentcg capacity --budget 96M``
        lost its agent so). 1000 apart, the call's size plus the budget beats the agent's size, which the
        budget bounds. Never -1000 (the kernel's "never kill"): an agent alone over its budget must still go.
        """
        adj = self.tool_adj("high")
        if adj <= 0:
            return None
        return max(-999, adj - 1000)

    @property
    def urgent_at(self) -> float:
        return max(self.urgent_level, self.pressure_on)

    @property
    def urgent_lead(self) -> float:
        """Predicted seconds to a budget's hard limit under which it is at the edge (like ``urgent_level``)."""
        return self.lead_time / 4

    @property
    def checkpoint_step(self) -> int:
        if self.checkpoint is not None:
            return self.checkpoint
        return max(16 << 20, (self.budget or (8 << 30)) // 32)

    @classmethod
    def parse(cls, **kw: Any) -> ControllerConfig:
        """From user text: sizes like ``2G``, durations like ``500ms``; unknown keys are an error."""
        names = set(cls.FIELDS)
        out: dict[str, Any] = {}
        for key, value in kw.items():
            if value is None:
                continue
            if key not in names:
                raise InvalidValue("setting", key, f"unknown; known: {', '.join(sorted(names))}")
            if key in ("budget", "agent_memory_low", "checkpoint"):
                out[key] = parse_size(value, key)
            elif key in (
                "stall_grace",
                "kill_after",
                "urgent_grace",
                "lead_time",
                "sample_interval",
                "admission_wait",
                "warm_quiet",
            ):
                out[key] = 0.0 if str(value) == "0" else parse_duration(value, key)
            elif key == "predict":
                out[key] = _flag(key, value)
            else:
                kind = float if key in ("pressure_on", "pressure_off", "urgent_level") else int
                try:
                    out[key] = kind(value)
                except (TypeError, ValueError):
                    raise InvalidValue(
                        key, value, f"expected {'a fraction' if kind is float else 'an integer'}"
                    ) from None
        return cls(**out)

    def with_(self, **kw: Any) -> ControllerConfig:
        return self.replace(**kw)


def _flag(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "on", "yes", "true"):
        return True
    if text in ("0", "off", "no", "false"):
        return False
    raise InvalidValue(key, value, "expected on or off")
