"""What a replay returns: the measured timeline, each call's outcome, and the fidelity figures."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..outcome import Outcome
from .fidelity import Fidelity
from .plan import ReplayPlan


@dataclass
class CallResult:
    """One replayed tool call."""

    index: int
    trace_call_id: str
    command: str | None
    planned_start: float  # replay seconds
    started: float | None = None  # replay seconds (None: never started)
    call_id: str | None = None  # the session's id for it (its leaf)
    outcome: Outcome | None = None
    error: str | None = None  # the replay itself went wrong (not started, the worker failed); None otherwise

    @property
    def killed(self) -> bool:
        """The controller killed it (a limit, a policy, the replay's own deadline)."""
        return self.outcome is not None and self.outcome.killed_by is not None

    @property
    def refused(self) -> bool:
        return self.outcome is not None and self.outcome.refused

    def to_dict(self) -> dict[str, Any]:
        out = self.outcome
        return {
            "index": self.index,
            "trace_call_id": self.trace_call_id,
            "command": self.command,
            "planned_start": round(self.planned_start, 6),
            "started": None if self.started is None else round(self.started, 6),
            "call_id": self.call_id,
            "error": self.error,
            "outcome": None if out is None else out.to_dict(),
        }


@dataclass
class ReplayResult:
    plan: ReplayPlan
    session: str
    started_at: float  # Unix time of replay offset 0
    times: tuple[float, ...]  # when the session's memory was measured (replay seconds)
    memory: tuple[int, ...]  # what it was (bytes)
    fidelity: Fidelity
    duration_s: float  # from offset 0 until every worker had ended
    calls: tuple[CallResult, ...] = ()
    agent_returncode: int | None = None
    agent_error: str | None = None
    kernel_peak: int | None = None  # the session cgroup's high-water mark, when the backend has one
    notes: tuple[str, ...] = field(default=())

    @property
    def correlation(self) -> float | None:
        return self.fidelity.correlation

    @property
    def peak_ratio(self) -> float | None:
        return self.fidelity.peak_ratio

    @property
    def failed_calls(self) -> list[CallResult]:
        """Calls the replay could not play (not started, their worker failed): a fault of the replay."""
        return [c for c in self.calls if c.error is not None]

    @property
    def killed_calls(self) -> list[CallResult]:
        """Calls the controller killed: an outcome of the policy under test, not a fault of the replay."""
        return [c for c in self.calls if c.killed]

    def to_dict(self, timeline: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {
            "plan": self.plan.to_dict(),
            "session": self.session,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 6),
            **self.fidelity.to_dict(),
            "kernel_peak": self.kernel_peak,
            "calls": len(self.calls),
            "calls_failed": len(self.failed_calls),
            "calls_killed": len(self.killed_calls),
            "calls_refused": sum(1 for c in self.calls if c.refused),
            "agent_returncode": self.agent_returncode,
            "agent_error": self.agent_error,
            "notes": list(self.notes),
        }
        if timeline:
            d["timeline"] = {"t": [round(t, 4) for t in self.times], "memory": list(self.memory)}
            d["call_results"] = [c.to_dict() for c in self.calls]
        return d
